//! Confirms: which publishing ids await the broker's answer, what each stands for (so it can be
//! sent again after a lost connection), and who waits for them (a batch receipt, the in-flight
//! bound). Everything here is shared with the client's confirm callbacks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rabbitmq_stream_client::types::SubEntryBatch;
use rustc_hash::FxBuildHasher;
use tokio::sync::{Notify, Semaphore};

use crate::stats::{LatencyHistogram, Stall};

/// Resolves when every message of one `Publisher::send` was confirmed or rejected: how a
/// caller (an HTTP request) learns that its updates are stored.
pub struct BatchReceipt(tokio::sync::oneshot::Receiver<BatchOutcome>);

/// How one batch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOutcome {
    pub confirmed: u64,
    pub failed: u64,
}

pub(super) struct BatchWaiter {
    count: u64,
    remaining: AtomicU64,
    pub(super) failed: AtomicU64,
    done: Mutex<Option<tokio::sync::oneshot::Sender<BatchOutcome>>>,
}

impl BatchReceipt {
    pub(super) fn new(count: u64) -> (Self, Arc<BatchWaiter>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let waiter = BatchWaiter {
            count,
            remaining: AtomicU64::new(count),
            failed: AtomicU64::new(0),
            done: Mutex::new(Some(tx)),
        };
        (BatchReceipt(rx), Arc::new(waiter))
    }

    /// A receipt that has already settled: for a batch with nothing to send, or a stand-in.
    pub fn ready(outcome: BatchOutcome) -> Self {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let _ = tx.send(outcome);
        BatchReceipt(rx)
    }

    /// The batch's outcome, or `None` if the producer went away before it settled.
    pub async fn settled(self) -> Option<BatchOutcome> {
        self.0.await.ok()
    }
}

impl BatchWaiter {
    /// Counts the broker's answer for `count` of the batch's messages.
    pub(super) fn settle(&self, confirmed: bool, count: u64) {
        if !confirmed {
            self.failed.fetch_add(count, Ordering::Relaxed);
        }
        if self.remaining.fetch_sub(count, Ordering::AcqRel) == count {
            let failed = self.failed.load(Ordering::Relaxed);
            let outcome = BatchOutcome {
                confirmed: self.count - failed,
                failed,
            };
            if let Some(tx) = self.done.lock().unwrap_or_else(|p| p.into_inner()).take() {
                let _ = tx.send(outcome);
            }
        }
    }
}

/// A read-only view of a publisher's counters, usable while it works.
#[derive(Clone)]
pub struct PublisherStats {
    pub(super) tracker: Arc<ConfirmTracker>,
    pub(super) in_flight: Arc<Semaphore>,
    pub(super) max_in_flight: u64,
}

impl PublisherStats {
    /// The counters of a publisher that has sent nothing, with `in_flight` of `max_in_flight`
    /// permits taken: for the tests of whoever reads them.
    #[cfg(test)]
    pub fn for_tests(max_in_flight: u64, in_flight: u64) -> Self {
        PublisherStats {
            tracker: Arc::default(),
            in_flight: Arc::new(Semaphore::new((max_in_flight - in_flight) as usize)),
            max_in_flight,
        }
    }

    /// Messages handed to the broker.
    pub fn sent(&self) -> u64 {
        self.tracker.sent()
    }

    /// The bodies' bytes of the messages handed to the broker.
    pub fn bytes_sent(&self) -> u64 {
        self.tracker.bytes_sent.load(Ordering::Relaxed)
    }

    pub fn confirmed(&self) -> u64 {
        self.tracker.confirmed.load(Ordering::Relaxed)
    }

    pub fn failed(&self) -> u64 {
        self.tracker.failed.load(Ordering::Relaxed)
    }

    /// Publish frames handed to the client (re-sent ones included): with many small batches
    /// (HTTP requests), how well they share frames.
    pub fn frames(&self) -> u64 {
        self.tracker.frames.load(Ordering::Relaxed)
    }

    /// The most messages that may be sent and not yet settled.
    pub fn max_in_flight(&self) -> u64 {
        self.max_in_flight
    }

    /// Times the connection was lost and made again.
    pub fn reconnects(&self) -> u64 {
        self.tracker.reconnects.load(Ordering::Relaxed)
    }

    /// Whether the publisher's connection is lost now (and not yet replaced).
    pub fn is_lost(&self) -> bool {
        self.tracker.is_lost()
    }

    /// Resolves when the publisher's connection is lost (at once if it is now).
    pub async fn lost(&self) {
        let notified = self.tracker.lost_signal.notified();
        if !self.tracker.is_lost() {
            notified.await;
        }
    }

    /// Messages sent and not yet settled.
    pub fn in_flight(&self) -> u64 {
        self.max_in_flight
            .saturating_sub(self.in_flight.available_permits() as u64)
    }

    /// A copy of the publish-to-confirm latencies so far.
    pub fn latency(&self) -> LatencyHistogram {
        self.tracker
            .latency
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// What one publishing id stands for until the broker confirms it: kept so it can be sent
/// again, under the same id, on a new connection.
pub(super) struct Unconfirmed {
    pub(super) entry: Entry,
    /// Messages in `entry` (a sub-entry batch counts all of them).
    pub(super) count: u64,
    pub(super) sent_at: Instant,
    pub(super) waiter: Arc<BatchWaiter>,
}

/// One stream entry as handed to the client, written by the publisher itself (no `Message`
/// per update): a simple entry laid out for its publish frame, or a sub-entry batch (one
/// confirm, one map entry and one callback for the whole batch).
#[derive(Clone)]
pub(super) enum Entry {
    /// Publishing id, filter value (with `version` 2), size and AMQP message.
    Simple {
        version: u16,
        bytes: Vec<u8>,
    },
    Batch(SubEntryBatch),
}

/// An entry about to be sent, with the publishing id it is confirmed under and how many
/// messages it holds.
pub(super) struct NumberedEntry {
    pub(super) publishing_id: u64,
    pub(super) count: u64,
    pub(super) entry: Entry,
}

/// When the last confirm frame came, the longest wait for one, and each wait of
/// `STALL_REPORTED` or more (when it began, how long it lasted).
#[derive(Default)]
struct ConfirmGaps {
    last: Option<Instant>,
    /// When entries went out while none was outstanding: a wait for a confirm starts there
    /// if it is later than the last confirm (an idle publisher is not a stalled one).
    window_opened: Option<Instant>,
    /// When the connection was last replaced: the watchdog's wait starts anew there.
    reconnected: Option<Instant>,
    longest: Duration,
    stalls: Vec<Stall>,
}

/// A wait for a confirm this long or longer is listed in the outcome's `stalls`.
const STALL_REPORTED: Duration = Duration::from_secs(1);

/// At most this many stalls are listed (the longest is kept in `longest` whatever happens).
const STALLS_LISTED: usize = 1000;

impl ConfirmGaps {
    /// Since when confirms are awaited: the last confirm, or the last time entries went out
    /// while none was outstanding, whichever came later.
    fn waiting_since(&self) -> Option<Instant> {
        self.last.max(self.window_opened)
    }
}

/// Confirms as they arrive, shared with the client's confirm callbacks.
#[derive(Default)]
pub(super) struct ConfirmTracker {
    /// Messages handed to the client (each counted once, however often it is re-sent).
    pub(super) sent: AtomicU64,
    /// The bodies' bytes of the messages counted in `sent`.
    pub(super) bytes_sent: AtomicU64,
    pub(super) confirmed: AtomicU64,
    failed: AtomicU64,
    pub(super) reconnects: AtomicU64,
    /// Publish frames handed to the client.
    pub(super) frames: AtomicU64,
    pub(super) latency: Mutex<LatencyHistogram>,
    confirm_gaps: Mutex<ConfirmGaps>,
    pub(super) settled: Notify,
    /// By publishing id (FxHash: ids are mostly sequential, and SipHash costs more on this
    /// per-message path). A confirm settles a message only if it is still here, so a confirm
    /// from a connection given up on cannot count twice.
    pub(super) unconfirmed: Mutex<HashMap<u64, Unconfirmed, FxBuildHasher>>,
    /// Set when the producer's connection closed; cleared by a reconnect.
    pub(super) lost: AtomicBool,
    pub(super) lost_signal: Notify,
    /// Numbers the producer's connections; only the current one may report a loss.
    pub(super) connection: AtomicU64,
    /// The node (`host:port`) the current producer publishes through.
    node: Mutex<Option<String>>,
    /// The node the watchdog found leading the stream instead: the next reconnect tries it
    /// first.
    moved_to: Mutex<Option<String>>,
    /// How often the broker refused each publishing id still unconfirmed (see `reject`).
    rejections: Mutex<HashMap<u64, u32>>,
}

/// A publishing id the broker refused this often is failed; until then it is sent again on a
/// new connection. A leader move refuses what was in flight (the old writer stops), and a
/// stream deleted meanwhile ends the reconnect, so a real refusal repeats at most this often.
const MOST_REJECTIONS: u32 = 3;

impl ConfirmTracker {
    /// Records the broker's answer for publishing ids (each a message, or a whole sub-entry
    /// batch), all those of one confirm frame at once; anything not ours (already settled) is
    /// ignored.
    pub(super) fn settle(&self, publishing_ids: &[u64], confirmed: bool, in_flight: &Semaphore) {
        let entries: Vec<Unconfirmed> = {
            let mut unconfirmed = self.lock_unconfirmed();
            publishing_ids
                .iter()
                .filter_map(|id| unconfirmed.remove(id))
                .collect()
        };
        if entries.is_empty() {
            return;
        }
        let count: u64 = entries.iter().map(|entry| entry.count).sum();
        if confirmed {
            let mut rejections = self.rejections.lock().unwrap_or_else(|p| p.into_inner());
            if !rejections.is_empty() {
                for id in publishing_ids {
                    rejections.remove(id);
                }
            }
            drop(rejections);
            let now = Instant::now();
            let mut latency = self
                .latency
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for entry in &entries {
                let latency_us = now.duration_since(entry.sent_at).as_micros() as u64;
                latency.record_n_us(latency_us, entry.count);
            }
            drop(latency);
            self.note_confirm_gap(now);
            self.confirmed.fetch_add(count, Ordering::Relaxed);
        } else {
            self.failed.fetch_add(count, Ordering::Relaxed);
        }
        in_flight.add_permits(count as usize);
        for entry in entries {
            entry.waiter.settle(confirmed, entry.count);
        }
        self.settled.notify_one();
    }

    /// The broker refused `publishing_ids` (a negative confirm) on connection number
    /// `connection`. During a leader move the old writer refuses what it had not written,
    /// which is not stored anywhere: those ids stay unconfirmed and the connection counts as
    /// lost, so the reconnect sends them again (deduplicated) on the new leader. Ids refused
    /// `MOST_REJECTIONS` times are failed.
    pub(super) fn reject(&self, publishing_ids: &[u64], connection: u64, in_flight: &Semaphore) {
        let mut given_up = Vec::new();
        let mut kept = false;
        {
            let unconfirmed = self.lock_unconfirmed();
            let mut rejections = self.rejections.lock().unwrap_or_else(|p| p.into_inner());
            for id in publishing_ids
                .iter()
                .filter(|id| unconfirmed.contains_key(id))
            {
                let times = rejections.entry(*id).or_default();
                *times += 1;
                if *times >= MOST_REJECTIONS {
                    rejections.remove(id);
                    given_up.push(*id);
                } else {
                    kept = true;
                }
            }
        }
        if !given_up.is_empty() {
            self.settle(&given_up, false, in_flight);
        }
        if kept && self.connection.load(Ordering::Relaxed) == connection {
            tracing::info!(
                refused = publishing_ids.len(),
                "the broker refused entries (a leader move?): reconnecting to send them again"
            );
            self.mark_lost();
        }
    }

    fn lock_gaps(&self) -> std::sync::MutexGuard<'_, ConfirmGaps> {
        self.confirm_gaps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps the longest wait for a confirm frame, and lists the long ones: how long
    /// publishing stalled (a failover, a stuck broker), and when.
    fn note_confirm_gap(&self, now: Instant) {
        let mut gaps = self.lock_gaps();
        if let Some(since) = gaps.waiting_since() {
            let gap = now.saturating_duration_since(since);
            gaps.longest = gaps.longest.max(gap);
            if gap >= STALL_REPORTED && gaps.stalls.len() < STALLS_LISTED {
                let started = SystemTime::now() - gap;
                gaps.stalls.push(Stall {
                    started,
                    length: gap,
                });
            }
        }
        gaps.last = Some(now);
    }

    /// Called before entries go out: when none was outstanding, a wait for a confirm starts
    /// now, not at the last confirm.
    pub(super) fn note_sending(&self, now: Instant) {
        if self.settled() >= self.sent() {
            self.lock_gaps().window_opened = Some(now);
        }
    }

    /// A new connection (after a loss), on `node`: the watchdog's wait starts anew.
    pub(super) fn note_connected(&self, node: String, now: Instant) {
        self.lock_gaps().reconnected = Some(now);
        *self.node.lock().unwrap_or_else(|p| p.into_inner()) = Some(node);
    }

    /// How long confirms have been awaited in vain while entries are outstanding (counted
    /// from the last confirm, the last reconnect, or the first of the entries outstanding);
    /// `None` when nothing is outstanding.
    pub(super) fn stalled_for(&self, now: Instant) -> Option<Duration> {
        if self.settled() >= self.sent() {
            return None;
        }
        let gaps = self.lock_gaps();
        let since = gaps.waiting_since().max(gaps.reconnected)?;
        Some(now.saturating_duration_since(since))
    }

    /// The longest wait for a confirm so far.
    pub(super) fn longest_confirm_gap(&self) -> Duration {
        self.lock_gaps().longest
    }

    /// Every wait for a confirm of `STALL_REPORTED` or more, in order.
    pub(super) fn stalls(&self) -> Vec<Stall> {
        self.lock_gaps().stalls.clone()
    }

    /// The node the current producer publishes through.
    pub(super) fn node(&self) -> Option<String> {
        self.node.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The watchdog found `leader` leading the stream, not our node: the connection counts as
    /// lost (if it is still connection number `connection`) and the next one goes there first.
    pub(super) fn move_to(&self, leader: String, connection: u64) -> bool {
        if self.connection.load(Ordering::Relaxed) != connection || self.is_lost() {
            return false;
        }
        *self.moved_to.lock().unwrap_or_else(|p| p.into_inner()) = Some(leader);
        self.mark_lost();
        true
    }

    /// Where the watchdog said the leader went, once.
    pub(super) fn take_moved_to(&self) -> Option<String> {
        self.moved_to
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    pub(super) fn lock_unconfirmed(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<u64, Unconfirmed, FxBuildHasher>> {
        self.unconfirmed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn mark_lost(&self) {
        self.lost.store(true, Ordering::Relaxed);
        self.lost_signal.notify_waiters();
        self.settled.notify_one();
    }

    pub(super) fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }

    pub(super) fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    pub(super) fn settled(&self) -> u64 {
        self.confirmed.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tracker with `count` entries registered under ids 0.. and sent at `at`.
    fn sending(tracker: &ConfirmTracker, count: u64, at: Instant) {
        tracker.note_sending(at);
        let (_, waiter) = BatchReceipt::new(count);
        let mut unconfirmed = tracker.lock_unconfirmed();
        for id in 0..count {
            let entry = Entry::Simple {
                version: 1,
                bytes: Vec::new(),
            };
            let (count, sent_at, waiter) = (1, at, waiter.clone());
            unconfirmed.insert(
                id,
                Unconfirmed {
                    entry,
                    count,
                    sent_at,
                    waiter,
                },
            );
        }
        tracker.sent.fetch_add(count, Ordering::Relaxed);
    }

    #[test]
    fn a_stall_counts_from_the_first_outstanding_send_not_from_an_idle_time() {
        let tracker = ConfirmTracker::default();
        let start = Instant::now();
        assert_eq!(tracker.stalled_for(start), None);
        tracker.note_confirm_gap(start);
        // Idle for a minute, then a send: the wait starts at the send.
        let sent_at = start + Duration::from_secs(60);
        sending(&tracker, 2, sent_at);
        assert_eq!(
            tracker.stalled_for(sent_at + Duration::from_secs(6)),
            Some(Duration::from_secs(6))
        );
        // A reconnect starts the watchdog's wait anew.
        tracker.note_connected("n2:5552".into(), sent_at + Duration::from_secs(8));
        assert_eq!(
            tracker.stalled_for(sent_at + Duration::from_secs(9)),
            Some(Duration::from_secs(1))
        );
        assert_eq!(tracker.node().as_deref(), Some("n2:5552"));
        // Both confirmed: nothing outstanding, no stall; the 60 s idle is not a stall either.
        tracker.settle(&[0, 1], true, &Semaphore::new(0));
        assert_eq!(tracker.stalled_for(sent_at + Duration::from_secs(20)), None);
        // (The confirm came "now", before the simulated send: a gap of nothing.)
        assert!(tracker.stalls().is_empty(), "{:?}", tracker.stalls());
        assert!(tracker.longest_confirm_gap() < Duration::from_secs(60));
    }

    #[test]
    fn a_refused_entry_is_sent_again_and_failed_only_when_refused_again_and_again() {
        let tracker = ConfirmTracker::default();
        let in_flight = Semaphore::new(0);
        sending(&tracker, 2, Instant::now());
        tracker.reject(&[0], 0, &in_flight);
        assert!(tracker.is_lost(), "a refusal means a reconnect");
        assert_eq!(tracker.failed.load(Ordering::Relaxed), 0);
        assert!(
            tracker.lock_unconfirmed().contains_key(&0),
            "kept to be sent again"
        );
        // A refusal from a connection already replaced does not cost the new one.
        tracker.lost.store(false, Ordering::Relaxed);
        tracker.connection.fetch_add(1, Ordering::Relaxed);
        tracker.reject(&[0], 0, &in_flight);
        assert!(!tracker.is_lost());
        // The third refusal fails it; the other entry is untouched.
        tracker.reject(&[0], 1, &in_flight);
        assert_eq!(tracker.failed.load(Ordering::Relaxed), 1);
        assert!(!tracker.lock_unconfirmed().contains_key(&0));
        assert!(tracker.lock_unconfirmed().contains_key(&1));
        // Confirmed after one refusal: counted once, as confirmed.
        tracker.reject(&[1], 1, &in_flight);
        tracker.settle(&[1], true, &in_flight);
        assert_eq!(tracker.confirmed.load(Ordering::Relaxed), 1);
        assert!(tracker.rejections.lock().unwrap().is_empty());
    }

    #[test]
    fn a_move_is_taken_once_and_only_on_the_connection_it_was_found_on() {
        let tracker = ConfirmTracker::default();
        assert!(!tracker.move_to("n3:5552".into(), 7), "not connection 7");
        assert!(tracker.move_to("n3:5552".into(), 0));
        assert!(tracker.is_lost());
        assert!(!tracker.move_to("n2:5552".into(), 0), "already lost");
        assert_eq!(tracker.take_moved_to().as_deref(), Some("n3:5552"));
        assert_eq!(tracker.take_moved_to(), None);
    }
}
