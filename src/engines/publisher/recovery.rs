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
    /// drops those it had already stored; without it they may be stored twice. (One sequence on
    /// purpose: reconnect, take the name again, count what the broker stored, resend the rest;
    /// each step must see the state the one before left, and a stop may end any of them.)
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
            self.tracker.connection.fetch_add(1, Ordering::Relaxed);
            if let Some(old) = self.producer.take() {
                // Closed aside: a node that hangs would hold the reconnect for CLOSE_TIMEOUT.
                // Nothing more goes out through it, and what it still sends, deduplication drops.
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(CLOSE_TIMEOUT, old.close()).await;
                });
            }
            // The node the watchdog found leading first, the one we lost last: a node that
            // hangs costs a whole handshake timeout to each request sent its way.
            let moved_to = self.tracker.take_moved_to();
            let suspect = self.tracker.node();
            let broker = self
                .recipe
                .broker
                .preferring(moved_to.as_deref(), suspect.as_deref());
            // The node lost, when known (the one the producer wrote to), not every --uri.
            let lost = suspect.clone().unwrap_or_else(|| self.recipe.broker.addr());
            tracing::info!(addr = %lost, "publisher connection lost; reconnecting");
            self.emit(PublisherEvent::ConnectionLost {
                addr: lost,
                retry_for: self.recipe.broker.retry_for,
            });
            let advice = format!(
                "; {} of {} confirmed{}",
                self.confirmed(),
                self.tracker.sent(),
                self.recipe_advice
            );
            // The window runs from the loss, across every attempt of this loop. Each attempt
            // connects anew through whichever node answers, which locates the stream's leader
            // now (on a cluster it may have moved off the node we lost).
            let (recipe, tracker, broker) = (&self.recipe, &self.tracker, &broker);
            let reconnect = broker.with_retries(lost_at, "publishing", &advice, || async {
                let env = broker.connect().await?;
                // The metadata request and the leader's handshake have no time limit of
                // their own, and a leader that hangs answers neither.
                let built = tokio::time::timeout(OPEN_TIMEOUT, recipe.build_on(&env, tracker))
                    .await
                    .map_err(|_| ConnectError::Timeout {
                        addr: broker.addr(),
                        during: "open a producer on the stream's leader",
                        timeout: OPEN_TIMEOUT,
                    })??;
                Ok((env, built))
            });
            // Raced with the run's stop: reconnecting may go on for all of --retry-for.
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
            // The name first: what the broker stored under it is ours only while we hold it.
            self.keep_name().await?;
            if self.recipe.dedup {
                self.settle_stored(broker).await;
            }
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
            let mut failed = false;
            for chunk in resend.chunks(per_frame.max(1) as usize) {
                let entries = chunk.to_vec();
                if self.hand_over(entries).await.is_err() {
                    failed = true;
                    break;
                }
            }
            if !failed {
                return Ok(());
            }
            self.tracker.mark_lost();
        }
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
