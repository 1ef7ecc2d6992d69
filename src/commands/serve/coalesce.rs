//! Concurrent requests share publish frames: handlers queue their checked updates here, and one
//! task takes everything queued, numbers it (publishing ids in queue order, so they only grow),
//! sends it as shared frames (`send_groups`), and tells each request what became of its own
//! updates. A request that waited too long in the queue is withdrawn before anything of it is
//! sent, so "nothing stored" stays true for it.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, Notify};

use crate::engines::publisher::{BatchReceipt, GroupSent, OnHandedBy};
use crate::error::InvError;
use crate::model::InventoryUpdate;
use crate::model::NumberedUpdate;

/// What the coalescer sends through: the gateway's publisher, or a stand-in in tests.
pub trait GroupPublisher: Send {
    /// Sends `groups` (ids ascending across them) in shared frames; what became of each, in
    /// order, and why sending stopped early if it did. `on_handed(publisher, group, count)` is
    /// called as each frame goes out (`publisher`: the partition, 0 for a stream).
    fn send_groups(
        &mut self,
        groups: Vec<Vec<NumberedUpdate>>,
        stall_timeout: Duration,
        on_handed: OnHandedBy<'_>,
    ) -> impl Future<Output = (Vec<Handed>, Option<InvError>)> + Send;
}

/// What a queued request holds until its updates are handed over: its admission, given back
/// per publisher as its updates go out (the rest when it is dropped).
pub trait Hold: Send {
    /// `count` of its updates for `publisher` went out.
    fn handed(&mut self, publisher: usize, count: u64);
}

/// What became of one request's updates when they were handed over.
pub enum Handed {
    /// All went out: stored once every receipt (one per partition it touched) settled with
    /// nothing failed.
    Sent(Vec<BatchReceipt>),
    /// None went out.
    Unsent,
    /// Some went out (and may be stored), the rest did not.
    Partly,
}

impl Handed {
    /// One request's fate from those of its parts (one per partition it touched).
    pub fn from_parts(parts: Vec<GroupSent>) -> Handed {
        let (mut receipts, mut unsent, mut partly) = (Vec::new(), 0, false);
        for part in parts {
            match part {
                GroupSent::Sent(receipt) => receipts.push(receipt),
                GroupSent::Unsent => unsent += 1,
                GroupSent::Partly => partly = true,
            }
        }
        match (receipts.is_empty(), unsent, partly) {
            (_, _, true) => Handed::Partly,
            (false, 0, false) => Handed::Sent(receipts),
            (true, _, false) => Handed::Unsent,
            (false, _, false) => Handed::Partly,
        }
    }
}

/// A request's answer from the coalescer.
pub enum HandOff {
    /// Handed over under publishing ids `first_id..`, the updates' `seqs` in order.
    Sent {
        receipts: Vec<BatchReceipt>,
        first_id: u64,
        seqs: Vec<u64>,
    },
    /// Nothing of it went out; why.
    Unsent(String),
    /// Part of it went out before sending failed (that part may be stored); why.
    Partly(String),
}

/// How waiting for the hand-off ended.
pub enum Waited {
    Answer(HandOff),
    /// Still queued when the wait ran out: taken back, nothing of it sent.
    Withdrawn,
    /// Taken, but no answer came (the coalescer went away): it may or may not be stored.
    NoAnswer,
}

const QUEUED: u8 = 0;
const TAKEN: u8 = 1;
const WITHDRAWN: u8 = 2;

/// A queued request: its updates (with whether each had its own `seq`), and whatever it holds
/// until handed over (its admission).
struct Queued {
    updates: Vec<(InventoryUpdate, bool)>,
    state: Arc<AtomicU8>,
    answer: oneshot::Sender<HandOff>,
    hold: Box<dyn Hold>,
}

/// The queue between the HTTP handlers and the one task that publishes.
#[derive(Default)]
pub struct Coalescer {
    queue: Mutex<VecDeque<Queued>>,
    wake: Notify,
}

/// A queued request's claim on its answer.
pub struct Ticket {
    state: Arc<AtomicU8>,
    answer: oneshot::Receiver<HandOff>,
}

impl Coalescer {
    /// Queues a request's updates; `hold` is dropped once they are handed over (or given up).
    pub fn submit(
        &self,
        updates: Vec<(InventoryUpdate, bool)>,
        hold: impl Hold + 'static,
    ) -> Ticket {
        let state = Arc::new(AtomicU8::new(QUEUED));
        let (tx, rx) = oneshot::channel();
        self.lock().push_back(Queued {
            updates,
            state: state.clone(),
            answer: tx,
            hold: Box::new(hold),
        });
        self.wake.notify_one();
        Ticket { state, answer: rx }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Queued>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Everything queued that was not withdrawn, marked taken (it can no longer be withdrawn).
    fn take_all(&self) -> Vec<Queued> {
        let queued: Vec<Queued> = self.lock().drain(..).collect();
        queued
            .into_iter()
            .filter(|q| {
                q.state
                    .compare_exchange(QUEUED, TAKEN, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            })
            .collect()
    }

    /// Resolves once something is queued.
    async fn queued(&self) {
        loop {
            let notified = self.wake.notified();
            if !self.lock().is_empty() {
                return;
            }
            notified.await;
        }
    }

    /// The publishing task: runs until aborted. Each round takes the publisher (waiting while a
    /// lost connection is replaced), takes everything queued, numbers it from `next_id`, sends
    /// it and answers each request. With the publisher gone (shutting down) requests are
    /// answered unsent.
    pub async fn run<P: GroupPublisher>(
        self: Arc<Self>,
        publisher: Arc<tokio::sync::Mutex<Option<P>>>,
        mut next_id: u64,
        stall_timeout: Duration,
    ) {
        loop {
            self.queued().await;
            let mut guard = publisher.lock().await;
            let taken = self.take_all();
            if taken.is_empty() {
                continue;
            }
            let Some(publisher) = guard.as_mut() else {
                for queued in taken {
                    let _ = queued
                        .answer
                        .send(HandOff::Unsent("shutting down".to_string()));
                }
                continue;
            };
            let mut groups = Vec::with_capacity(taken.len());
            let mut answers = Vec::with_capacity(taken.len());
            let mut holds = Vec::with_capacity(taken.len());
            for queued in taken {
                let first_id = next_id;
                next_id += queued.updates.len() as u64;
                let numbered: Vec<NumberedUpdate> = queued
                    .updates
                    .into_iter()
                    .enumerate()
                    .map(|(i, (mut update, had_seq))| {
                        let id = first_id + i as u64;
                        if !had_seq {
                            update.seq = id - 1;
                        }
                        (id, update)
                    })
                    .collect();
                let seqs = numbered.iter().map(|(_, u)| u.seq).collect();
                groups.push(numbered);
                answers.push((queued.answer, first_id, seqs));
                holds.push(queued.hold);
            }
            let mut on_handed = |publisher: usize, group: usize, count: usize| {
                holds[group].handed(publisher, count as u64);
            };
            let (handed, error) = publisher
                .send_groups(groups, stall_timeout, &mut on_handed)
                .await;
            drop(guard);
            debug_assert_eq!(handed.len(), answers.len());
            let why = error.map_or_else(|| "not sent".to_string(), |e| e.to_string());
            for (((answer, first_id, seqs), hold), handed) in
                answers.into_iter().zip(holds).zip(handed)
            {
                let hand_off = match handed {
                    Handed::Sent(receipts) => HandOff::Sent {
                        receipts,
                        first_id,
                        seqs,
                    },
                    Handed::Unsent => HandOff::Unsent(why.clone()),
                    Handed::Partly => HandOff::Partly(why.clone()),
                };
                // Handed over: its updates now hold in-flight permits, not the admission.
                drop(hold);
                let _ = answer.send(hand_off);
            }
        }
    }
}

impl Ticket {
    /// Waits up to `timeout` for the hand-off. A request still queued then is withdrawn; one
    /// already taken is being sent, which is bounded, so it waits up to another `timeout`.
    pub async fn handed(mut self, timeout: Duration) -> Waited {
        match tokio::time::timeout(timeout, &mut self.answer).await {
            Ok(Ok(hand_off)) => return Waited::Answer(hand_off),
            Ok(Err(_)) => return Waited::NoAnswer,
            Err(_) => {}
        }
        let withdrawn = self
            .state
            .compare_exchange(QUEUED, WITHDRAWN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if withdrawn {
            return Waited::Withdrawn;
        }
        match tokio::time::timeout(timeout, self.answer).await {
            Ok(Ok(hand_off)) => Waited::Answer(hand_off),
            _ => Waited::NoAnswer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::publisher::BatchOutcome;
    use crate::model::UpdateGenerator;

    /// Records each round's groups (their ids); answers each group from `fate` (by its first
    /// id), settled at once.
    struct FakePublisher {
        rounds: Arc<Mutex<Vec<Vec<Vec<u64>>>>>,
        fate: fn(u64) -> Handed,
    }

    impl GroupPublisher for FakePublisher {
        /// One frame per group, each told to `on_handed` (publisher 0).
        async fn send_groups(
            &mut self,
            groups: Vec<Vec<NumberedUpdate>>,
            _: Duration,
            on_handed: OnHandedBy<'_>,
        ) -> (Vec<Handed>, Option<InvError>) {
            for (group, updates) in groups.iter().enumerate() {
                on_handed(0, group, updates.len());
            }
            let ids: Vec<Vec<u64>> = groups
                .iter()
                .map(|g| g.iter().map(|(id, _)| *id).collect())
                .collect();
            let handed = ids.iter().map(|g| (self.fate)(g[0])).collect();
            self.rounds.lock().unwrap().push(ids);
            (handed, Some(InvError::usage("broker gone")))
        }
    }

    /// A hold with nothing to give back.
    impl Hold for () {
        fn handed(&mut self, _: usize, _: u64) {}
    }

    impl Hold for Arc<()> {
        fn handed(&mut self, _: usize, _: u64) {}
    }

    /// Writes down what it is told, and when it is dropped.
    struct Recorded(Arc<Mutex<Vec<String>>>);

    impl Hold for Recorded {
        fn handed(&mut self, publisher: usize, count: u64) {
            self.0
                .lock()
                .unwrap()
                .push(format!("handed {count} to {publisher}"));
        }
    }

    impl Drop for Recorded {
        fn drop(&mut self) {
            self.0.lock().unwrap().push("dropped".to_string());
        }
    }

    #[tokio::test]
    async fn a_hold_hears_of_its_updates_going_out_before_it_is_dropped() {
        let (coalescer, _, gate) = start(stored);
        let (first, second) = (Arc::default(), Arc::default());
        let one = coalescer.submit(updates(3, false), Recorded(Arc::clone(&first)));
        let two = coalescer.submit(updates(2, false), Recorded(Arc::clone(&second)));
        drop(gate);
        for ticket in [one, two] {
            assert!(matches!(ticket.handed(WAIT).await, Waited::Answer(_)));
        }
        assert_eq!(*first.lock().unwrap(), ["handed 3 to 0", "dropped"]);
        assert_eq!(*second.lock().unwrap(), ["handed 2 to 0", "dropped"]);
    }

    fn stored(count: u64) -> Handed {
        Handed::Sent(vec![BatchReceipt::ready(BatchOutcome {
            confirmed: count,
            failed: 0,
        })])
    }

    fn updates(count: usize, with_seq: bool) -> Vec<(InventoryUpdate, bool)> {
        let mut generator = UpdateGenerator::new(10, 7);
        (0..count)
            .map(|_| (generator.next_update(0), with_seq))
            .collect()
    }

    /// Each round's groups, by publishing id.
    type Rounds = Arc<Mutex<Vec<Vec<Vec<u64>>>>>;
    /// Held, keeps the coalescer's task from its next round.
    type Gate = tokio::sync::OwnedMutexGuard<Option<FakePublisher>>;

    /// A coalescer whose task waits for `gate` before its first round, so that everything
    /// submitted meanwhile shares one.
    fn start(fate: fn(u64) -> Handed) -> (Arc<Coalescer>, Rounds, Gate) {
        let rounds = Arc::new(Mutex::new(Vec::new()));
        let publisher = Arc::new(tokio::sync::Mutex::new(Some(FakePublisher {
            rounds: rounds.clone(),
            fate,
        })));
        let gate = publisher.clone().try_lock_owned().unwrap();
        let coalescer = Arc::new(Coalescer::default());
        tokio::spawn(
            coalescer
                .clone()
                .run(publisher, 100, Duration::from_secs(1)),
        );
        (coalescer, rounds, gate)
    }

    const WAIT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn queued_requests_share_one_round_numbered_in_queue_order() {
        let (coalescer, rounds, gate) = start(|_| stored(1));
        let tickets: Vec<Ticket> = (0..3)
            .map(|_| coalescer.submit(updates(2, false), ()))
            .collect();
        drop(gate);
        let mut answers = Vec::new();
        for ticket in tickets {
            match ticket.handed(WAIT).await {
                Waited::Answer(HandOff::Sent { first_id, seqs, .. }) => {
                    answers.push((first_id, seqs))
                }
                _ => panic!("every request is sent"),
            }
        }
        // One round, three groups, ids ascending in the order the requests came.
        assert_eq!(
            *rounds.lock().unwrap(),
            vec![vec![vec![100, 101], vec![102, 103], vec![104, 105]]]
        );
        // A missing seq is the publishing id - 1.
        assert_eq!(
            answers,
            vec![
                (100, vec![99, 100]),
                (102, vec![101, 102]),
                (104, vec![103, 104])
            ]
        );
    }

    #[tokio::test]
    async fn a_failed_group_fails_only_its_own_request() {
        let (coalescer, _rounds, gate) = start(|first| match first {
            101 => Handed::Unsent,
            102 => Handed::Partly,
            _ => stored(1),
        });
        let tickets: Vec<Ticket> = (0..4)
            .map(|_| coalescer.submit(updates(1, true), ()))
            .collect();
        drop(gate);
        let mut kinds = Vec::new();
        for ticket in tickets {
            kinds.push(match ticket.handed(WAIT).await {
                Waited::Answer(HandOff::Sent { .. }) => "sent".to_string(),
                Waited::Answer(HandOff::Unsent(why)) => format!("unsent: {why}"),
                Waited::Answer(HandOff::Partly(why)) => format!("partly: {why}"),
                Waited::Withdrawn => "withdrawn".to_string(),
                Waited::NoAnswer => "no answer".to_string(),
            });
        }
        assert_eq!(
            kinds,
            ["sent", "unsent: broker gone", "partly: broker gone", "sent"]
        );
    }

    #[tokio::test]
    async fn a_request_still_queued_when_its_wait_ends_is_withdrawn_and_never_sent() {
        let (coalescer, rounds, gate) = start(|_| stored(1));
        let held = Arc::new(());
        let ticket = coalescer.submit(updates(1, false), held.clone());
        assert!(matches!(
            ticket.handed(Duration::from_millis(20)).await,
            Waited::Withdrawn
        ));
        let later = coalescer.submit(updates(1, false), ());
        drop(gate);
        assert!(matches!(
            later.handed(WAIT).await,
            Waited::Answer(HandOff::Sent { first_id: 100, .. })
        ));
        assert_eq!(*rounds.lock().unwrap(), vec![vec![vec![100]]]);
        // The withdrawn request's admission was given back.
        assert_eq!(Arc::strong_count(&held), 1);
    }

    #[tokio::test]
    async fn with_the_publisher_gone_requests_are_answered_unsent() {
        let (coalescer, rounds, mut gate) = start(|_| stored(1));
        gate.take();
        let ticket = coalescer.submit(updates(1, false), ());
        drop(gate);
        assert!(matches!(
            ticket.handed(WAIT).await,
            Waited::Answer(HandOff::Unsent(why)) if why == "shutting down"
        ));
        assert!(rounds.lock().unwrap().is_empty());
    }

    #[test]
    fn a_request_is_sent_only_if_every_part_was() {
        let ready = || {
            GroupSent::Sent(BatchReceipt::ready(BatchOutcome {
                confirmed: 1,
                failed: 0,
            }))
        };
        assert!(matches!(
            Handed::from_parts(vec![ready(), ready()]),
            Handed::Sent(r) if r.len() == 2
        ));
        assert!(matches!(
            Handed::from_parts(vec![ready(), GroupSent::Unsent]),
            Handed::Partly
        ));
        assert!(matches!(
            Handed::from_parts(vec![GroupSent::Unsent, GroupSent::Unsent]),
            Handed::Unsent
        ));
        assert!(matches!(
            Handed::from_parts(vec![GroupSent::Unsent, GroupSent::Partly]),
            Handed::Partly
        ));
    }
}
