//! The confirm-stall watchdog. A leader that hangs (its VM paused, its node cut off from the
//! other nodes) keeps our connection open and silent: nothing closes it and no metadata update
//! comes, so without a watchdog a publisher waits for the confirm timeout, or until the node is
//! back. When no confirm has come for `STALL_BOUND` while entries are outstanding, the watchdog
//! asks every node, at once and with a timeout, which node leads the stream; when one names
//! another node than ours, the connection counts as lost and the reconnect tries that node first.
//! Everything unconfirmed is sent again under its publishing id, so deduplication drops what
//! the old leader had already stored. A leader that is only slow (the same node named) is left
//! alone.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::confirms::ConfirmTracker;
use super::{EventSink, PublisherEvent};
use crate::broker::BrokerSettings;

/// How long confirms may stop, with entries outstanding, before the watchdog asks where the
/// leader is. A cluster takes longer than this to elect a new leader (its failure detection),
/// so the first questions usually find the old one; the watchdog asks again every `TICK`.
pub(super) const STALL_BOUND: Duration = Duration::from_secs(5);

/// How often the watchdog looks at the confirms (and, during a stall, asks again).
const TICK: Duration = Duration::from_secs(1);

/// The watchdog's task; it stops when the publisher is dropped.
pub(super) struct Watchdog(tokio::task::JoinHandle<()>);

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Watchdog {
    pub(super) fn spawn(
        tracker: Arc<ConfirmTracker>,
        broker: BrokerSettings,
        stream: String,
        events: EventSink,
    ) -> Self {
        Watchdog(tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let connection = tracker.connection.load(Ordering::Relaxed);
                let stalled_for = match tracker.stalled_for(Instant::now()) {
                    Some(stalled_for) if stalled_for >= STALL_BOUND && !tracker.is_lost() => {
                        stalled_for
                    }
                    _ => continue,
                };
                let Some(ours) = tracker.node() else { continue };
                let named = broker.leaders_named(&stream).await;
                let Some(leader) = moved_leader(&ours, named.iter().map(|n| n.leader.as_str()))
                else {
                    tracing::debug!(%stream, node = %ours, stalled_ms = stalled_for.as_millis() as u64, answers = named.len(), "confirms stalled; no other leader named");
                    continue;
                };
                tracing::info!(%stream, from = %ours, to = %leader, stalled_ms = stalled_for.as_millis() as u64, "confirms stalled and another node leads the stream");
                if tracker.move_to(leader.clone(), connection) {
                    events(PublisherEvent::LeaderMoved {
                        from: ours,
                        to: leader,
                        stalled_for,
                    });
                }
            }
        }))
    }
}

/// The leader to move to: the first one named that is not `ours`. A node cut off from the
/// others may still name itself; the others, once they have elected a new leader, name it.
fn moved_leader<'a>(ours: &str, named: impl IntoIterator<Item = &'a str>) -> Option<String> {
    named
        .into_iter()
        .find(|leader| *leader != ours)
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_another_leader_is_a_move() {
        assert_eq!(moved_leader("n1:5552", ["n1:5552", "n1:5552"]), None);
        assert_eq!(moved_leader("n1:5552", []), None);
        assert_eq!(
            moved_leader("n1:5552", ["n1:5552", "n3:5552"]),
            Some("n3:5552".to_string())
        );
    }
}
