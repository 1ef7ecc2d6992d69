//! Recovery: a lost connection replaced within `--retry-for`, and what was not confirmed sent
//! again under the same publishing ids, after counting what the broker already stored.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::confirms::Entry;
use super::producer::CLOSE_TIMEOUT;
use super::{Publisher, PublisherEvent};
use crate::broker::BrokerSettings;
use crate::error::{ConnectError, Result};

/// How long opening a producer on a new connection, or asking what the broker stored, may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

impl Publisher {
    /// Replaces a lost connection: reconnects with backoff for up to `--retry-for`, then sends
    /// every unconfirmed message again under its publishing id. With deduplication the broker
    /// drops those it had already stored; without it they may be stored twice. Each step sees
    /// the state the one before left, and a stop may end any of them.
    pub async fn recover(&mut self) -> Result<()> {
        if self.recipe.broker.retry_for.is_zero() {
            return Err(ConnectError::Lost {
                addr: self.recipe.broker.addr(),
                during: "publishing (--retry-for 0s: not reconnecting)",
            }
            .into());
        }
        let lost_at = Instant::now();
        loop {
            let broker = self.reopen(lost_at).await?;
            // The name first: what the broker stored under it is ours only while we hold it.
            self.keep_name().await?;
            if self.recipe.dedup {
                self.settle_stored(&broker).await;
            }
            if self.resend_unconfirmed(lost_at).await {
                return Ok(());
            }
            self.tracker.mark_lost();
        }
    }

    /// The nodes to reconnect through, in order: the one the watchdog found leading first, the
    /// one we lost last (a node that hangs costs a whole handshake timeout to each request
    /// sent its way). Closes the old producer aside and tells that the connection was lost.
    fn nodes_after_loss(&mut self) -> BrokerSettings {
        self.tracker.connection.fetch_add(1, Ordering::Relaxed);
        if let Some(old) = self.producer.take() {
            // Closed aside: a node that hangs would hold the reconnect for CLOSE_TIMEOUT.
            // Nothing more goes out through it, and what it still sends, deduplication drops.
            tokio::spawn(async move {
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, old.close()).await;
            });
        }
        let moved_to = self.tracker.take_moved_to();
        let suspect = self.tracker.node();
        let broker = self
            .recipe
            .broker
            .preferring(moved_to.as_deref(), suspect.as_deref());
        // The node lost, when known (the one the producer wrote to), not every --uri.
        let lost = suspect.unwrap_or_else(|| self.recipe.broker.addr());
        tracing::info!(addr = %lost, "publisher connection lost; reconnecting");
        self.emit(PublisherEvent::ConnectionLost {
            addr: lost,
            retry_for: self.recipe.broker.retry_for,
        });
        broker
    }

    /// Opens a producer on a new connection, with backoff, within the window that runs from
    /// `lost_at` across every reconnect, raced with the run's stop. Each attempt connects
    /// anew through whichever node answers, which locates the stream's leader now (on a
    /// cluster it may have moved off the node we lost). Returns the nodes it went through.
    async fn reopen(&mut self, lost_at: Instant) -> Result<BrokerSettings> {
        let broker = self.nodes_after_loss();
        let advice = format!(
            "; {} of {} confirmed{}",
            self.confirmed(),
            self.tracker.sent(),
            self.recipe_advice
        );
        let (recipe, tracker, nodes) = (&self.recipe, &self.tracker, &broker);
        let reconnect = nodes.with_retries(lost_at, "publishing", &advice, || async {
            let env = nodes.connect().await?;
            // The metadata request and the leader's handshake have no time limit of their
            // own, and a leader that hangs answers neither.
            let built = tokio::time::timeout(OPEN_TIMEOUT, recipe.build_on(&env, tracker))
                .await
                .map_err(|_| ConnectError::Timeout {
                    addr: nodes.addr(),
                    during: "open a producer on the stream's leader",
                    timeout: OPEN_TIMEOUT,
                })??;
            Ok((env, built))
        });
        let mut stop = self.stop.clone();
        let stopped = async {
            match stop.as_mut() {
                Some(stop) => stop.stopped().await,
                None => std::future::pending().await,
            }
        };
        let (env, (producer, filtering)) = tokio::select! {
            biased;
            _ = stopped => {
                return Err(ConnectError::Lost {
                    addr: self.recipe.broker.addr(),
                    during: "publishing (stopped while reconnecting)",
                }
                .into())
            }
            reconnected = reconnect => reconnected?,
        };
        tracing::info!(stream = %self.recipe.stream, after_ms = lost_at.elapsed().as_millis() as u64, "producer open again");
        self.recipe.env = env;
        self.tracker.note_connected(producer.node(), Instant::now());
        self.producer = Some(producer);
        self.filtering = filtering;
        self.tracker.lost.store(false, Ordering::Relaxed);
        self.tracker.reconnects.fetch_add(1, Ordering::Relaxed);
        Ok(broker)
    }

    /// Sends every message still unconfirmed again, in publishing-id order and frames of the
    /// run's batch size: false when the connection was lost again on the way.
    async fn resend_unconfirmed(&mut self, lost_at: Instant) -> bool {
        let mut resend: Vec<(u64, Entry)> = self
            .tracker
            .lock_unconfirmed()
            .iter()
            .map(|(id, unconfirmed)| (*id, unconfirmed.entry.clone()))
            .collect();
        resend.sort_unstable_by_key(|(id, _)| *id);
        tracing::info!(resending = resend.len(), "publisher reconnected");
        let per_frame = self.recipe.batch_size / self.recipe.batching.sub_entry_size.max(1);
        self.emit(PublisherEvent::Reconnected {
            after: lost_at.elapsed(),
            resending: resend.len() as u64,
            deduplicated: self.recipe.dedup,
        });
        for chunk in resend.chunks(per_frame.max(1) as usize) {
            if self.hand_over(chunk.to_vec()).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Counts as confirmed the unconfirmed messages the broker says it stored (their publishing
    /// ids are at most its last one for our name): only the rest are sent again. A sub-entry
    /// batch is re-sent as it was first built, so it is stored whole or not at all.
    /// Asked through `broker` (the nodes in the reconnect's order), within `OPEN_TIMEOUT`:
    /// without an answer everything unconfirmed is sent again, which deduplication makes safe.
    async fn settle_stored(&self, broker: &BrokerSettings) {
        let recipe = &self.recipe;
        let asked = broker.last_publishing_id(&recipe.producer_name, &recipe.stream);
        let Ok(Ok(stored)) = tokio::time::timeout(OPEN_TIMEOUT, asked).await else {
            return;
        };
        let ids: Vec<u64> = self
            .tracker
            .lock_unconfirmed()
            .keys()
            .copied()
            .filter(|id| *id <= stored)
            .collect();
        self.tracker.settle(&ids, true, &self.in_flight);
    }
}
