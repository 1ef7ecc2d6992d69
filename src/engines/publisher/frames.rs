//! Frames shared by several groups of updates (`Publisher::send_groups`): the HTTP gateway
//! gathers concurrent requests and sends them together, and each request must still learn what
//! became of its own updates. A frame may hold many groups and a group may span frames; each
//! group settles through its own receipt, so updates the broker rejects fail only their group.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use super::confirms::{BatchOutcome, BatchReceipt, BatchWaiter};
use super::{FrameFailed, Publisher};
use crate::error::InvError;
use crate::model::NumberedUpdate;

/// What became of one group of [`Publisher::send_groups`].
pub enum GroupSent {
    /// Every update of it was handed over (or kept to go out again on a new connection): the
    /// receipt resolves once each is confirmed or rejected.
    Sent(BatchReceipt),
    /// None of it went out (sending stopped at an earlier frame): nothing of it is stored.
    Unsent,
    /// Sending stopped in one of its frames: part of it went out and may be stored.
    Partly,
}

/// [`Publisher::send_groups`]'s answer: each group's fate, in order, and why sending stopped
/// early if it did.
pub struct SentGroups {
    pub groups: Vec<GroupSent>,
    pub error: Option<InvError>,
}

/// Told after each frame that went out: which group, how many of its updates. The gateway
/// gives a request's admission room back as its updates take in-flight room, so for a moment
/// they do not count twice against the bound.
pub type OnHanded<'a> = &'a mut (dyn FnMut(usize, usize) + Send);

/// [`OnHanded`] across several publishers (a super stream's partitions): which publisher, which
/// group, how many of its updates.
pub type OnHandedBy<'a> = &'a mut (dyn FnMut(usize, usize, usize) + Send);

/// A run of one group's updates inside a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Segment {
    pub(super) group: usize,
    pub(super) range: Range<usize>,
}

/// Cuts groups (their sizes, in order) into frames of at most `batch_size` updates, each frame
/// filled before the next starts: a group larger than the room left goes on in the next frame,
/// so updates leave in the order they were given (publishing ids stay ascending).
pub(super) fn plan_frames(sizes: &[usize], batch_size: usize) -> Vec<Vec<Segment>> {
    let batch_size = batch_size.max(1);
    let mut frames = Vec::new();
    let mut frame = Vec::new();
    let mut room = batch_size;
    for (group, &size) in sizes.iter().enumerate() {
        let mut start = 0;
        while start < size {
            let end = size.min(start + room);
            frame.push(Segment {
                group,
                range: start..end,
            });
            room -= end - start;
            start = end;
            if room == 0 {
                frames.push(std::mem::take(&mut frame));
                room = batch_size;
            }
        }
    }
    if !frame.is_empty() {
        frames.push(frame);
    }
    frames
}

/// Sends one frame made of segments, each settled through its own waiter: the publisher, or a
/// stand-in in tests.
pub(super) trait FrameSink {
    async fn frame(
        &mut self,
        segments: &[(&[NumberedUpdate], &Arc<BatchWaiter>)],
        stall_timeout: Duration,
    ) -> Result<(), FrameFailed>;
}

impl FrameSink for Publisher {
    async fn frame(
        &mut self,
        segments: &[(&[NumberedUpdate], &Arc<BatchWaiter>)],
        stall_timeout: Duration,
    ) -> Result<(), FrameFailed> {
        self.send_frame(segments, stall_timeout).await
    }
}

impl Publisher {
    /// Sends several groups of updates (their publishing ids ascending across all of them) in
    /// shared frames of at most `batch_size` updates, and tells each group what became of it.
    /// Like `send` it does not wait for confirms, reconnects when the connection drops, and
    /// stops at the first frame that cannot go out (the groups after it are `Unsent`).
    /// Run it to completion (see `send`). `on_handed` hears of each frame that went out.
    pub async fn send_groups(
        &mut self,
        groups: &[Vec<NumberedUpdate>],
        stall_timeout: Duration,
        on_handed: OnHanded<'_>,
    ) -> SentGroups {
        let batch_size = self.recipe.batch_size as usize;
        send_in_frames(self, groups, batch_size, stall_timeout, on_handed).await
    }
}

/// `send_groups` over any frame sink.
pub(super) async fn send_in_frames<S: FrameSink>(
    sink: &mut S,
    groups: &[Vec<NumberedUpdate>],
    batch_size: usize,
    stall_timeout: Duration,
    on_handed: OnHanded<'_>,
) -> SentGroups {
    let sizes: Vec<usize> = groups.iter().map(Vec::len).collect();
    let (receipts, waiters): (Vec<BatchReceipt>, Vec<Arc<BatchWaiter>>) = sizes
        .iter()
        .map(|size| BatchReceipt::new(*size as u64))
        .unzip();
    // Per group: updates in frames that went out, and whether a failed frame held some of it.
    let mut handed = vec![0usize; groups.len()];
    let mut doubtful = vec![false; groups.len()];
    let mut error = None;
    for frame in plan_frames(&sizes, batch_size) {
        let segments: Vec<(&[NumberedUpdate], &Arc<BatchWaiter>)> = frame
            .iter()
            .map(|s| (&groups[s.group][s.range.clone()], &waiters[s.group]))
            .collect();
        match sink.frame(&segments, stall_timeout).await {
            Ok(()) => {
                for segment in &frame {
                    handed[segment.group] += segment.range.len();
                    on_handed(segment.group, segment.range.len());
                }
            }
            Err(failed) => {
                if failed.handed {
                    for segment in &frame {
                        doubtful[segment.group] = true;
                    }
                }
                error = Some(failed.error);
                break;
            }
        }
    }
    let groups = receipts
        .into_iter()
        .enumerate()
        .map(|(group, receipt)| match (sizes[group], handed[group]) {
            (0, _) => GroupSent::Sent(BatchReceipt::ready(BatchOutcome {
                confirmed: 0,
                failed: 0,
            })),
            _ if doubtful[group] => GroupSent::Partly,
            (size, handed) if handed == size => GroupSent::Sent(receipt),
            (_, 0) => GroupSent::Unsent,
            _ => GroupSent::Partly,
        })
        .collect();
    SentGroups { groups, error }
}

#[cfg(test)]
mod tests {
    use super::super::confirms::{ConfirmTracker, Entry, Unconfirmed};
    use super::*;
    use crate::error::ConnectError;
    use crate::model::UpdateGenerator;
    use std::time::Instant;
    use tokio::sync::Semaphore;

    fn segment(group: usize, range: Range<usize>) -> Segment {
        Segment { group, range }
    }

    #[test]
    fn small_groups_share_a_frame_and_large_ones_span_frames_in_order() {
        assert_eq!(
            plan_frames(&[1, 1, 1], 10),
            vec![vec![segment(0, 0..1), segment(1, 0..1), segment(2, 0..1)]]
        );
        assert_eq!(
            plan_frames(&[3, 4, 5], 5),
            vec![
                vec![segment(0, 0..3), segment(1, 0..2)],
                vec![segment(1, 2..4), segment(2, 0..3)],
                vec![segment(2, 3..5)],
            ]
        );
        assert_eq!(
            plan_frames(&[12], 5),
            vec![
                vec![segment(0, 0..5)],
                vec![segment(0, 5..10)],
                vec![segment(0, 10..12)]
            ]
        );
        // 200 one-update groups with frames of 1,000: one frame.
        assert_eq!(plan_frames(&[1; 200], 1_000).len(), 1);
        assert_eq!(plan_frames(&[1; 200], 64).len(), 4);
        assert!(plan_frames(&[0, 0], 5).is_empty());
    }

    fn numbered(ids: Range<u64>) -> Vec<NumberedUpdate> {
        let mut generator = UpdateGenerator::new(10, 1);
        ids.map(|id| (id, generator.next_update(0))).collect()
    }

    /// Records frames (the publishing ids of each segment), settles each update through its
    /// segment's waiter (rejecting those in `reject`), and fails at frame `fail_at`.
    #[derive(Default)]
    struct FakeSink {
        frames: Vec<Vec<Vec<u64>>>,
        reject: Vec<u64>,
        fail_at: Option<(usize, bool)>,
    }

    impl FrameSink for FakeSink {
        async fn frame(
            &mut self,
            segments: &[(&[NumberedUpdate], &Arc<BatchWaiter>)],
            _: Duration,
        ) -> Result<(), FrameFailed> {
            if let Some((at, handed)) = self.fail_at {
                if self.frames.len() == at {
                    self.frames.push(vec![]);
                    return Err(FrameFailed {
                        error: ConnectError::Lost {
                            addr: "localhost:5552".to_string(),
                            during: "publishing",
                        }
                        .into(),
                        handed,
                    });
                }
            }
            let mut frame = Vec::new();
            for (updates, waiter) in segments {
                frame.push(updates.iter().map(|(id, _)| *id).collect());
                for (id, _) in *updates {
                    waiter.settle(!self.reject.contains(id), 1);
                }
            }
            self.frames.push(frame);
            Ok(())
        }
    }

    async fn outcome(sent: GroupSent) -> Option<BatchOutcome> {
        match sent {
            GroupSent::Sent(receipt) => receipt.settled().await,
            GroupSent::Unsent | GroupSent::Partly => None,
        }
    }

    #[tokio::test]
    async fn each_group_gets_its_own_outcome_from_shared_frames() {
        let groups = vec![numbered(1..2), numbered(2..5), numbered(5..6)];
        let mut sink = FakeSink {
            reject: vec![3],
            ..FakeSink::default()
        };
        let sent = send_in_frames(
            &mut sink,
            &groups,
            10,
            Duration::from_secs(1),
            &mut |_, _| {},
        )
        .await;
        assert!(sent.error.is_none());
        // One frame, the groups in order.
        assert_eq!(sink.frames, vec![vec![vec![1], vec![2, 3, 4], vec![5]]]);
        let mut outcomes = Vec::new();
        for group in sent.groups {
            outcomes.push(outcome(group).await);
        }
        let ok = |confirmed| {
            Some(BatchOutcome {
                confirmed,
                failed: 0,
            })
        };
        // Only the group holding the rejected update fails.
        assert_eq!(
            outcomes,
            vec![
                ok(1),
                Some(BatchOutcome {
                    confirmed: 2,
                    failed: 1
                }),
                ok(1)
            ]
        );
    }

    #[tokio::test]
    async fn a_failed_frame_fails_only_the_groups_it_held_or_never_reached() {
        // Frames of 2: [1 | 2], [3 4], [5 | 6], ...; the third frame fails.
        let groups = vec![
            numbered(1..2),
            numbered(2..5),
            numbered(5..6),
            numbered(6..7),
        ];
        for handed in [false, true] {
            let mut sink = FakeSink {
                fail_at: Some((2, handed)),
                ..FakeSink::default()
            };
            let sent = send_in_frames(
                &mut sink,
                &groups,
                2,
                Duration::from_secs(1),
                &mut |_, _| {},
            )
            .await;
            assert!(sent.error.is_some());
            assert_eq!(sink.frames.len(), 3, "nothing is sent after a failed frame");
            let mut groups = sent.groups.into_iter();
            assert_eq!(
                outcome(groups.next().unwrap()).await,
                Some(BatchOutcome {
                    confirmed: 1,
                    failed: 0
                })
            );
            assert!(matches!(groups.next(), Some(GroupSent::Sent(_))));
            // Group 2 was all in the failed frame, group 3 partly; group 4 never went out.
            match handed {
                true => assert!(matches!(groups.next(), Some(GroupSent::Partly))),
                false => assert!(matches!(groups.next(), Some(GroupSent::Unsent))),
            }
            match handed {
                true => assert!(matches!(groups.next(), Some(GroupSent::Partly))),
                false => assert!(matches!(groups.next(), Some(GroupSent::Unsent))),
            }
        }
        // A group cut by the failure after its first frame went out: partly sent.
        let mut sink = FakeSink {
            fail_at: Some((1, false)),
            ..FakeSink::default()
        };
        let sent = send_in_frames(
            &mut sink,
            &[numbered(1..5)],
            2,
            Duration::ZERO,
            &mut |_, _| {},
        )
        .await;
        assert!(matches!(sent.groups[..], [GroupSent::Partly]));
    }

    /// The real confirm path: the tracker settles entries of two groups from one confirm
    /// frame, and a rejected entry fails only its own group's receipt.
    #[tokio::test]
    async fn the_tracker_settles_each_group_through_its_own_waiter() {
        let tracker = ConfirmTracker::default();
        let in_flight = Semaphore::new(0);
        let (first, first_waiter) = BatchReceipt::new(2);
        let (second, second_waiter) = BatchReceipt::new(1);
        {
            let mut unconfirmed = tracker.lock_unconfirmed();
            for (id, waiter) in [(1, &first_waiter), (2, &first_waiter), (3, &second_waiter)] {
                let entry = Entry::Simple {
                    version: 1,
                    bytes: vec![],
                };
                unconfirmed.insert(
                    id,
                    Unconfirmed {
                        entry,
                        count: 1,
                        sent_at: Instant::now(),
                        waiter: waiter.clone(),
                    },
                );
            }
        }
        tracker.settle(&[1, 3], true, &in_flight);
        tracker.settle(&[2], false, &in_flight);
        assert_eq!(
            first.settled().await,
            Some(BatchOutcome {
                confirmed: 1,
                failed: 1
            })
        );
        assert_eq!(
            second.settled().await,
            Some(BatchOutcome {
                confirmed: 1,
                failed: 0
            })
        );
        assert_eq!(in_flight.available_permits(), 3);
    }
}
