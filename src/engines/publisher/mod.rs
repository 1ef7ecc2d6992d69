//! The publishing engine: the one producer path every source of updates goes through
//! (generated updates, `--input` files and stdin, the HTTP gateway, the benchmark). Updates are
//! written into frames of `batch_size` messages and handed to the client without waiting for
//! their confirms; a semaphore bounds the unconfirmed messages so memory stays flat, every
//! confirm is timed into a histogram, and a lost connection is replaced and what was not
//! confirmed sent again. It never prints: it reports through [`PublisherEvent`]s and counters.

mod confirms;
mod frames;
mod pace;
mod partitioned;
mod producer;
mod recovery;
mod watchdog;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rabbitmq_stream_client::error::ProducerPublishError;
use rabbitmq_stream_client::types::CompressionType;
use rabbitmq_stream_client::{BatchConfirmCallback, Environment};
use rayon::prelude::*;
use tokio::sync::Semaphore;

pub use confirms::{BatchOutcome, BatchReceipt, PublisherStats};
pub use frames::{GroupSent, OnHanded, OnHandedBy, SentGroups};
pub use pace::Pace;
pub use partitioned::PartitionedPublisher;

/// What a publisher achieved (a statistic: it lives with the others).
pub use crate::stats::PublishOutcome;

use confirms::{BatchWaiter, ConfirmTracker, Entry, NumberedEntry, Unconfirmed};
use producer::{AnyProducer, ProducerRecipe, CLOSE_TIMEOUT};
use watchdog::Watchdog;

use crate::broker::lock::NameLock;
use crate::broker::BrokerSettings;
use crate::entry::{EntryEncoder, MessageProperties, WITHOUT_FILTER_VALUES, WITH_FILTER_VALUES};
use crate::error::{ConnectError, InvError, PublishError, Result};
use crate::model::NumberedUpdate;
use crate::shutdown::StopSignal;

/// Sub-entry batching: many messages in one stream entry, and their compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// Messages per entry; 1 = a simple entry per message.
    pub sub_entry_size: u64,
    pub compression: CompressionType,
}

impl Default for Batching {
    /// One message per entry, as every client reads.
    fn default() -> Self {
        Batching {
            sub_entry_size: 1,
            compression: CompressionType::None,
        }
    }
}

/// How a `Publisher` batches, bounds and names its messages.
#[derive(Debug, Clone)]
pub struct PublisherOptions {
    /// Messages per publish frame (clamped to `max_in_flight`).
    pub batch_size: u64,
    /// Most messages sent and not yet confirmed.
    pub max_in_flight: u64,
    /// Tag every message with its product id as the stream filter value.
    pub filter_values: bool,
    /// The name messages carry (and, with `dedup`, the broker deduplicates under).
    pub producer_name: String,
    /// Let the broker drop messages whose publishing id it already stored for `producer_name`.
    pub dedup: bool,
    /// Sub-entry batching and its compression.
    pub batching: Batching,
    /// Which properties each message carries beside its body.
    pub properties: MessageProperties,
    /// The name messages carry in their `producer` property, where it is not `producer_name`:
    /// a super stream's partition publishers carry the run's name without the partition, so a
    /// message is no longer on a partition than on a stream (every byte is work for the
    /// broker's writer) and `consume --verify` finds one producer across the partitions.
    pub carried_name: Option<String>,
}

/// What happens to a publisher that a person may want to know about; the command renders it.
#[derive(Debug, Clone, PartialEq)]
pub enum PublisherEvent {
    /// The connection dropped; reconnecting for up to `retry_for`.
    ConnectionLost { addr: String, retry_for: Duration },
    /// No confirm arrived within the confirm timeout: the connection is replaced.
    NoConfirmInTime,
    /// Confirms stopped for `stalled_for` and the cluster names another node than ours the
    /// stream's leader (ours hangs, or is cut off): the connection is replaced, there first.
    LeaderMoved {
        from: String,
        to: String,
        stalled_for: Duration,
    },
    /// A new connection is up; `resending` entries not confirmed go out again.
    Reconnected {
        after: Duration,
        resending: u64,
        deduplicated: bool,
    },
}

/// Where a publisher's events go.
pub type EventSink = Arc<dyn Fn(PublisherEvent) + Send + Sync>;

/// Why a frame did not go out, and whether its entries were registered and handed to the
/// client first (then they may be stored).
struct FrameFailed {
    error: InvError,
    handed: bool,
}

/// A producer with a bound on unconfirmed messages that survives lost connections.
pub struct Publisher {
    /// `None` only while a lost connection is being replaced.
    producer: Option<AnyProducer>,
    recipe: ProducerRecipe,
    max_in_flight: u64,
    filtering: bool,
    in_flight: Arc<Semaphore>,
    tracker: Arc<ConfirmTracker>,
    events: EventSink,
    /// Ends the message when reconnecting gives up: how to finish the run.
    recipe_advice: String,
    bytes: u64,
    started: Instant,
    /// Writes entries without a `Message` per update.
    encoder: EntryEncoder,
    /// The name in each message's `producer` property (see `PublisherOptions::carried_name`).
    carried_name: String,
    /// The producer name, held through the broker while this publisher sends (a given name):
    /// taken again whenever its connection is lost, or the run stops.
    name_lock: Option<NameLock>,
    /// The name's lock was lost and another run holds the name now.
    name_taken: bool,
    /// The run's stop (Ctrl-C, SIGTERM): reconnecting gives up at once when it comes.
    stop: Option<StopSignal>,
    /// Moves the publisher off a leader that hangs while another node leads the stream.
    _watchdog: Watchdog,
}

impl Publisher {
    /// Opens a producer. With `filter_values` it tags every message with its product id as the
    /// stream filter value (RabbitMQ 3.13+), so consumers of a few products get only the chunks
    /// holding them; on an older broker it publishes without.
    pub async fn open(
        env: &Environment,
        broker: &BrokerSettings,
        stream: &str,
        options: PublisherOptions,
        events: EventSink,
    ) -> Result<Self> {
        let PublisherOptions {
            batch_size,
            max_in_flight,
            filter_values,
            producer_name,
            dedup,
            batching,
            properties,
            carried_name,
        } = options;
        let carried_name = carried_name.unwrap_or_else(|| producer_name.clone());
        // A frame larger than the in-flight bound could never be admitted.
        let batch_size = batch_size.clamp(1, max_in_flight.max(1));
        let recipe = ProducerRecipe {
            env: env.clone(),
            broker: broker.clone(),
            stream: stream.to_string(),
            batch_size,
            producer_name,
            dedup,
            // Sub-entries carry no filter values.
            filter_values: filter_values && batching.sub_entry_size == 1,
            batching,
        };
        let tracker = Arc::new(ConfirmTracker::default());
        let (producer, filtering) = broker.while_starting(|| recipe.build(&tracker)).await?;
        tracker.note_connected(producer.node(), Instant::now());
        let watchdog = Watchdog::spawn(
            tracker.clone(),
            broker.clone(),
            stream.to_string(),
            events.clone(),
        );
        Ok(Publisher {
            producer: Some(producer),
            recipe,
            max_in_flight,
            filtering,
            in_flight: Arc::new(Semaphore::new(
                max_in_flight.min(Semaphore::MAX_PERMITS as u64) as usize,
            )),
            tracker,
            events,
            recipe_advice: String::new(),
            bytes: 0,
            started: Instant::now(),
            encoder: EntryEncoder::new(properties),
            carried_name,
            name_lock: None,
            name_taken: false,
            stop: None,
            _watchdog: watchdog,
        })
    }

    /// Gives up reconnecting when `stop` comes: a broker away would otherwise hold a run
    /// that was asked to stop for all of `--retry-for`.
    pub fn stop_on(&mut self, stop: StopSignal) {
        self.stop = Some(stop);
    }

    fn is_stopped(&self) -> bool {
        self.stop.as_ref().is_some_and(StopSignal::is_stopped)
    }

    /// Holds `lock` (this publisher's producer name) until `close`, taking it again before
    /// sending whenever its connection was lost.
    pub fn hold_name(&mut self, lock: NameLock) {
        self.name_lock = Some(lock);
    }

    /// Takes the name again if its lock was lost: another run that took it meanwhile would
    /// number updates under it too, and the broker would confirm ours while dropping them as
    /// duplicates of theirs (or theirs as ours).
    async fn keep_name(&mut self) -> Result<()> {
        if self.name_taken {
            return Err(PublishError::NameInUse {
                name: self.recipe.producer_name.clone(),
                stream: self.recipe.stream.clone(),
            }
            .into());
        }
        let Some(lock) = self.name_lock.as_ref().filter(|lock| lock.is_lost()) else {
            return Ok(());
        };
        tracing::info!(producer = %self.recipe.producer_name, "the producer name's lock was lost; taking it again");
        let retaken = self
            .recipe
            .broker
            .retake(&self.recipe.env, lock, Instant::now())
            .await;
        match retaken {
            Ok(lock) => {
                self.name_lock = Some(lock);
                Ok(())
            }
            Err(e) => {
                // Nothing more may go out under the name, through any later reconnect either.
                self.name_taken = true;
                self.tracker.mark_lost();
                Err(e)
            }
        }
    }

    /// What to tell the user when reconnecting gives up, e.g. how to finish the run.
    pub fn set_give_up_advice(&mut self, advice: String) {
        self.recipe_advice = advice;
    }

    pub fn confirmed(&self) -> u64 {
        self.tracker.confirmed.load(Ordering::Relaxed)
    }

    /// Whether the connection is lost and not replaced yet (`recover` replaces it).
    pub fn is_lost(&self) -> bool {
        self.tracker.is_lost()
    }

    /// Resolves when the connection is lost (at once if it already is).
    pub async fn lost(&self) {
        self.stats().lost().await
    }

    /// Counters and latencies that can be read while the publisher works (for `/metrics`).
    pub fn stats(&self) -> PublisherStats {
        PublisherStats {
            tracker: self.tracker.clone(),
            max_in_flight: self.max_in_flight,
            in_flight: self.in_flight.clone(),
        }
    }

    /// Waits until `count` more messages fit under the in-flight bound, the connection is lost,
    /// or `timeout` passes. Unlike `send`, it may be cancelled (raced with Ctrl-C).
    pub async fn wait_for_room(&self, count: u64, timeout: Duration) {
        let room = self
            .in_flight
            .acquire_many(count.min(u64::from(u32::MAX)) as u32);
        tokio::select! {
            _ = tokio::time::timeout(timeout, room) => {}
            _ = self.lost() => {}
        }
    }

    /// Hands updates to the client, in frames of at most `batch_size` messages, each once the
    /// in-flight bound allows it; does not wait for their confirms, but returns a receipt that
    /// resolves when all of them arrived. If the connection drops, it reconnects (see
    /// `recover`); fails if the bound stays full for `stall_timeout` and no new connection
    /// helps, or `--retry-for` runs out.
    /// Run it to completion: cancelled half-way, part of the updates may be neither sent nor
    /// failed.
    pub async fn send(
        &mut self,
        updates: &[NumberedUpdate],
        stall_timeout: Duration,
    ) -> Result<BatchReceipt> {
        let (receipt, waiter) = BatchReceipt::new(updates.len() as u64);
        for frame in updates.chunks(self.recipe.batch_size as usize) {
            self.send_frame(&[(frame, &waiter)], stall_timeout)
                .await
                .map_err(|failed| failed.error)?;
        }
        Ok(receipt)
    }

    /// One frame: runs of updates, each settled through its own waiter (one group of
    /// `send_groups`, or the whole batch of `send`).
    async fn send_frame(
        &mut self,
        segments: &[(&[NumberedUpdate], &Arc<BatchWaiter>)],
        stall_timeout: Duration,
    ) -> std::result::Result<(), FrameFailed> {
        let before = |error| FrameFailed {
            error,
            handed: false,
        };
        if self.tracker.is_lost() {
            self.recover().await.map_err(before)?;
        }
        self.keep_name().await.map_err(before)?;
        // Per segment, so a sub-entry batch never holds updates of two waiters.
        let mut built = Vec::with_capacity(segments.len());
        let mut bytes = 0;
        let mut count = 0u32;
        for (updates, waiter) in segments {
            let (entries, segment_bytes) = self.entries(updates).map_err(before)?;
            bytes += segment_bytes;
            count += updates.len() as u32;
            built.push((entries, *waiter));
        }
        loop {
            let acquire = self.in_flight.clone().acquire_many_owned(count);
            tokio::select! {
                acquired = tokio::time::timeout(stall_timeout, acquire) => match acquired {
                    Ok(permits) => {
                        permits.expect("the semaphore is never closed").forget();
                        break;
                    }
                    // No confirm for a whole timeout: the connection may be dead without
                    // the client noticing. A new one re-sends what is unconfirmed.
                    Err(_) if !self.recipe.broker.retry_for.is_zero() => {
                        self.emit(PublisherEvent::NoConfirmInTime);
                        self.tracker.mark_lost();
                        self.recover().await.map_err(before)?;
                    }
                    Err(_) => return Err(before(self.stalled())),
                },
                _ = self.lost() => self.recover().await.map_err(before)?,
            }
        }
        let sent_at = Instant::now();
        self.tracker.note_sending(sent_at);
        {
            let mut unconfirmed = self.tracker.lock_unconfirmed();
            for (entries, waiter) in &built {
                for numbered in entries {
                    let entry = Unconfirmed {
                        entry: numbered.entry.clone(),
                        count: numbered.count,
                        sent_at,
                        waiter: (*waiter).clone(),
                    };
                    unconfirmed.insert(numbered.publishing_id, entry);
                }
            }
        }
        self.tracker
            .sent
            .fetch_add(u64::from(count), Ordering::Relaxed);
        self.tracker.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
        self.bytes += bytes;
        let entries = built
            .into_iter()
            .flat_map(|(entries, _)| entries)
            .map(|numbered| (numbered.publishing_id, numbered.entry))
            .collect();
        // From here on the entries are registered: if sending fails they may be stored.
        let after = |error| FrameFailed {
            error,
            handed: true,
        };
        // Raced with a loss: towards a node cut off, the socket's buffer fills and the write
        // waits for TCP to give up; the watchdog's verdict must not wait with it. The entries
        // are registered, so the new connection sends them again whatever part went out.
        let handed = tokio::select! {
            handed = self.hand_over(entries) => handed,
            _ = self.lost() => Err(ConnectError::Lost {
                addr: self.recipe.broker.addr(),
                during: "publishing",
            }
            .into()),
        };
        if let Err(e) = handed {
            // Kept as unconfirmed: a new connection sends them again.
            self.tracker.mark_lost();
            if self.recipe.broker.retry_for.is_zero() {
                return Err(after(e));
            }
            self.recover().await.map_err(after)?;
        }
        Ok(())
    }

    /// The stream entries for `updates`, each with its publishing id and message count, and
    /// the bytes of their bodies: a message per update, or sub-entry batches of
    /// `--sub-entry-size` written straight from the updates.
    fn entries(&mut self, updates: &[NumberedUpdate]) -> Result<(Vec<NumberedEntry>, u64)> {
        let producer = self.carried_name.as_str();
        let batching = self.recipe.batching;
        if batching.sub_entry_size <= 1 {
            let version = match self.filtering {
                true => WITH_FILTER_VALUES,
                false => WITHOUT_FILTER_VALUES,
            };
            let mut bytes = 0;
            let entries = updates
                .iter()
                .map(|numbered| {
                    // Sized by the encoder, to the byte.
                    let mut entry = Vec::new();
                    bytes += self
                        .encoder
                        .append_simple_entry(numbered, producer, version, &mut entry)
                        as u64;
                    NumberedEntry {
                        publishing_id: numbered.0,
                        count: 1,
                        entry: Entry::Simple {
                            version,
                            bytes: entry,
                        },
                    }
                })
                .collect();
            return Ok((entries, bytes));
        }
        // The batches are independent, and compressing them is most of the work: they are built
        // on every core (in order, so publishing ids still go out ascending).
        let codec = batching.compression;
        let properties = self.encoder.properties();
        let built: Vec<_> = updates
            .par_chunks(batching.sub_entry_size as usize)
            .map_init(
                || EntryEncoder::new(properties),
                |encoder, group| {
                    encoder
                        .sub_entry_batch(group, producer, codec)
                        .map(|(batch, body_bytes)| (batch, group.len() as u64, body_bytes))
                },
            )
            .collect::<std::io::Result<_>>()
            .map_err(|e| PublishError::Compression(e.to_string()))?;
        let bytes = built.iter().map(|(_, _, body_bytes)| body_bytes).sum();
        let entries = built
            .into_iter()
            .map(|(batch, count, _)| NumberedEntry {
                publishing_id: batch.publishing_id,
                count,
                entry: Entry::Batch(batch),
            })
            .collect();
        Ok((entries, bytes))
    }

    /// Gives entries (with their publishing ids) to the client's producer in one frame; their
    /// confirms settle them in the tracker.
    async fn hand_over(&self, entries: Vec<(u64, Entry)>) -> Result<()> {
        let (tracker, in_flight) = (self.tracker.clone(), self.in_flight.clone());
        let connection = tracker.connection.load(Ordering::Relaxed);
        let on_confirm: BatchConfirmCallback = Arc::new(move |ids, confirmed| match confirmed {
            true => tracker.settle(ids, true, &in_flight),
            false => tracker.reject(ids, connection, &in_flight),
        });
        let producer = self
            .producer
            .as_ref()
            .expect("a producer exists outside recover");
        // A frame has one layout: entries encoded for another one (before a reconnect to a
        // broker without filtering) go in a frame of their own.
        let mut batches = Vec::new();
        let mut frame: Option<(u16, Vec<u64>, Vec<u8>)> = None;
        for (id, entry) in entries {
            match entry {
                Entry::Batch(batch) => batches.push(batch),
                Entry::Simple { version, bytes } => {
                    if frame.as_ref().is_some_and(|(v, ..)| *v != version) {
                        let (v, ids, data) = frame.take().expect("checked above");
                        producer
                            .send_encoded_entries(&ids, data, v, on_confirm.clone())
                            .await
                            .map_err(|e| self.publish_error(e))?;
                        self.tracker.frames.fetch_add(1, Ordering::Relaxed);
                    }
                    let (_, ids, data) = frame.get_or_insert_with(|| (version, vec![], vec![]));
                    ids.push(id);
                    data.extend_from_slice(&bytes);
                }
            }
        }
        if let Some((version, ids, data)) = frame {
            producer
                .send_encoded_entries(&ids, data, version, on_confirm.clone())
                .await
                .map_err(|e| self.publish_error(e))?;
            self.tracker.frames.fetch_add(1, Ordering::Relaxed);
        }
        if !batches.is_empty() {
            producer
                .send_sub_entry_batches(batches, on_confirm)
                .await
                .map_err(|e| self.publish_error(e))?;
            self.tracker.frames.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Waits up to `timeout` for every sent message to be confirmed or rejected, reconnecting
    /// if the connection drops. Messages still unconfirmed then are counted as failed.
    pub async fn finish(&mut self, timeout: Duration) -> Result<PublishOutcome> {
        let mut deadline = pace::deadline_after(timeout);
        let sent = self.tracker.sent();
        while self.tracker.settled() < sent {
            if self.tracker.is_lost() {
                match self.recover().await {
                    Ok(()) => deadline = pace::deadline_after(timeout),
                    // Stopped while reconnecting: what is unconfirmed counts as failed.
                    Err(_) if self.is_stopped() => break,
                    Err(e) => return Err(e),
                }
            }
            let notified = self.tracker.settled.notified();
            if self.tracker.settled() >= sent || self.tracker.is_lost() {
                continue;
            }
            let tick = tokio::time::sleep(Duration::from_millis(100));
            tokio::select! {
                _ = notified => {}
                _ = tick => {}
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        Ok(self.outcome())
    }

    /// Closes the producer; confirms that arrive later are ignored.
    pub async fn close(mut self) {
        self.tracker.connection.fetch_add(1, Ordering::Relaxed);
        if let Some(producer) = self.producer.take() {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, producer.close()).await;
        }
        if let Some(lock) = self.name_lock.take() {
            lock.release().await;
        }
    }

    /// What has been confirmed so far; anything sent and not confirmed counts as failed.
    pub fn outcome(&self) -> PublishOutcome {
        let sent = self.tracker.sent();
        let confirmed = self.confirmed();
        let latency = self
            .tracker
            .latency
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        PublishOutcome {
            sent,
            bytes: self.bytes,
            confirmed,
            failed: sent - confirmed.min(sent),
            reconnects: self.tracker.reconnects.load(Ordering::Relaxed),
            elapsed: self.started.elapsed(),
            latency,
            max_stall: self.tracker.longest_confirm_gap(),
            stalls: self.tracker.stalls(),
        }
    }

    fn stalled(&self) -> InvError {
        ConnectError::Lost {
            addr: self.recipe.broker.addr(),
            during: "waiting for publisher confirms (none arrived within the confirm timeout)",
        }
        .into()
    }

    fn emit(&self, event: PublisherEvent) {
        (self.events)(event)
    }

    fn publish_error(&self, error: ProducerPublishError) -> InvError {
        match error {
            ProducerPublishError::Client(e) => self.recipe.broker.client_error(e, "publishing"),
            ProducerPublishError::Create { status, .. } => {
                self.recipe
                    .broker
                    .refused(&status, "write to", &self.recipe.stream)
            }
            _ => ConnectError::Lost {
                addr: self.recipe.broker.addr(),
                during: "publishing",
            }
            .into(),
        }
    }
}
