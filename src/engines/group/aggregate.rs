//! The state of a running group, a pure function of the coordination stream's messages in the
//! stream's order: every instance applies the same messages in the same order, so each comes
//! to the same group samples and the same verdict. Whether an instance is lost is decided by
//! one instance (the leader, with a `Lost` message), never by each on its own clock.
//!
//! The group's sample number k is complete when every instance has sent its k-th sample, or
//! will send no more (its last sample came earlier, or it was lost): its rates add up, its
//! histograms merge, and the running totals are each instance's latest.

use std::collections::BTreeMap;
use std::time::Duration;

use super::protocol::{Control, InstanceFigures, Member};
use crate::engines::feed::IntervalSample;
use crate::stats::{BenchSecond, LatencyHistogram};

/// What one instance has said so far.
#[derive(Default)]
struct MemberState {
    /// Samples received and not yet part of a group sample, by number.
    pending: BTreeMap<u64, IntervalSample>,
    /// The number of its sample marked last.
    last_index: Option<u64>,
    /// Its running totals, as of its latest sample in a group sample.
    totals: Totals,
    /// Its running totals as of the latest sample received (a lost instance's figures).
    received: Totals,
    /// All its samples' latencies (a lost instance's figures).
    confirm: LatencyHistogram,
    end_to_end: LatencyHistogram,
    /// Its producers are done: what they confirmed.
    published: Option<u64>,
    done: Option<InstanceFigures>,
    lost: bool,
}

impl MemberState {
    /// It sends no more samples after number `k`.
    fn finished_before(&self, k: u64) -> bool {
        self.lost || self.done.is_some() || self.last_index.is_some_and(|last| last < k)
    }

    fn finished(&self) -> bool {
        self.lost || self.done.is_some()
    }
}

/// An instance's running counts at one sample.
#[derive(Debug, Clone, Default)]
struct Totals {
    sent: u64,
    consumed: u64,
    failed: u64,
    reconnects: u64,
    in_flight: u64,
    confirmed_by_partition: Vec<u64>,
    reader_positions: Vec<u64>,
    /// Seconds into its run at the end of that sample.
    end_s: f64,
}

impl Totals {
    fn of(sample: &IntervalSample) -> Totals {
        Totals {
            sent: sample.sent_total,
            consumed: sample.consumed_total,
            failed: sample.failed_total,
            reconnects: sample.reconnects,
            in_flight: sample.in_flight,
            confirmed_by_partition: sample.confirmed_by_partition.clone(),
            reader_positions: sample.reader_positions.clone(),
            end_s: (sample.start + sample.length).as_secs_f64(),
        }
    }

    fn confirmed(&self) -> u64 {
        self.confirmed_by_partition.iter().sum()
    }
}

/// One instance at the end of a group's run.
#[derive(Debug, Clone)]
pub struct MemberOutcome {
    pub member: Member,
    /// Its own figures, or for a lost instance what its last sample said (bytes unknown: 0).
    pub figures: InstanceFigures,
    /// Seconds into its run of its last sample, when it was lost.
    pub lost_at_s: Option<f64>,
}

/// A running group, as its messages tell it.
pub struct GroupState {
    run: String,
    roster: Vec<Member>,
    members: Vec<MemberState>,
    /// The number of the next group sample.
    next: u64,
}

impl GroupState {
    pub fn new(run: &str, roster: Vec<Member>) -> GroupState {
        GroupState {
            run: run.to_string(),
            members: roster.iter().map(|_| MemberState::default()).collect(),
            roster,
            next: 1,
        }
    }

    pub fn roster(&self) -> &[Member] {
        &self.roster
    }

    fn index_of(&self, id: &str) -> Option<usize> {
        self.roster.iter().position(|m| m.id == id)
    }

    /// Takes one message of the stream (others' runs and unknown instances are passed over);
    /// returns the group samples it completed, in order.
    pub fn apply(&mut self, message: Control) -> Vec<IntervalSample> {
        if message.run() != Some(self.run.as_str()) {
            return Vec::new();
        }
        let id = match &message {
            Control::Sample { id, .. }
            | Control::Published { id, .. }
            | Control::Done { id, .. }
            | Control::Lost { id, .. } => id.clone(),
            Control::Hello { .. } | Control::Start { .. } | Control::Alive { .. } => {
                return Vec::new()
            }
        };
        let Some(index) = self.index_of(&id) else {
            return Vec::new();
        };
        let member = &mut self.members[index];
        // A lost instance's later messages change nothing: every instance read the `Lost` at
        // the same place in the stream.
        if member.lost {
            return Vec::new();
        }
        match message {
            Control::Sample { index, sample, .. } => {
                if member.done.is_none() {
                    let sample = IntervalSample::from(*sample);
                    member.confirm.merge(&sample.confirm);
                    member.end_to_end.merge(&sample.end_to_end);
                    member.received = Totals::of(&sample);
                    if sample.last {
                        member.last_index = Some(index);
                    }
                    member.pending.insert(index, sample);
                }
            }
            Control::Published { confirmed, .. } => member.published = Some(confirmed),
            Control::Done { figures, .. } => member.done = Some(*figures),
            Control::Lost { .. } => {
                if member.done.is_none() {
                    member.lost = true;
                }
            }
            Control::Hello { .. } | Control::Start { .. } | Control::Alive { .. } => {}
        }
        self.complete_samples()
    }

    /// Marks `id` lost without a `Lost` message: for an instance that no longer hears its
    /// leader, which alone sends them. Returns the group samples that completes.
    pub fn assume_lost(&mut self, id: &str) -> Vec<IntervalSample> {
        if let Some(index) = self.index_of(id) {
            let member = &mut self.members[index];
            if member.done.is_none() {
                member.lost = true;
            }
        }
        self.complete_samples()
    }

    /// The group samples now complete.
    fn complete_samples(&mut self) -> Vec<IntervalSample> {
        let mut out = Vec::new();
        loop {
            let k = self.next;
            let waiting = self
                .members
                .iter()
                .any(|m| !m.pending.contains_key(&k) && !m.finished_before(k));
            if waiting {
                break;
            }
            let any = self.members.iter().any(|m| m.pending.contains_key(&k));
            if !any {
                // Nobody sent a k-th sample and nobody will: skip to the next one sent (a lost
                // instance's), or stop.
                match self
                    .members
                    .iter()
                    .filter_map(|m| m.pending.keys().next().copied())
                    .min()
                {
                    Some(next) if next > k => {
                        self.next = next;
                        continue;
                    }
                    _ => break,
                }
            }
            let mut parts = Vec::new();
            for member in &mut self.members {
                if let Some(sample) = member.pending.remove(&k) {
                    member.totals = Totals::of(&sample);
                    parts.push(sample);
                }
            }
            let last = self
                .members
                .iter()
                .all(|m| m.finished() || m.last_index.is_some_and(|last| last <= k));
            let totals: Vec<&Totals> = self.members.iter().map(|m| &m.totals).collect();
            out.push(merge(&parts, &totals, last));
            self.next = k + 1;
        }
        out
    }

    /// What the other instances confirmed in all, once every one of them is done publishing
    /// (or lost: then what its last sample said); `None` while one still publishes.
    pub fn others_confirmed(&self, me: &str) -> Option<u64> {
        self.roster
            .iter()
            .zip(&self.members)
            .filter(|(member, _)| member.id != me)
            .map(
                |(_, state)| match (&state.done, state.published, state.lost) {
                    (Some(done), _, _) => Some(done.confirmed),
                    (None, Some(confirmed), _) => Some(confirmed),
                    (None, None, true) => Some(state.received.confirmed()),
                    (None, None, false) => None,
                },
            )
            .sum()
    }

    /// Every instance is done or lost.
    pub fn complete(&self) -> bool {
        self.members.iter().all(MemberState::finished)
    }

    /// The instances neither done nor lost.
    pub fn running(&self) -> Vec<&Member> {
        self.roster
            .iter()
            .zip(&self.members)
            .filter(|(_, state)| !state.finished())
            .map(|(member, _)| member)
            .collect()
    }

    /// Whether `id` is lost.
    pub fn is_lost(&self, id: &str) -> bool {
        self.index_of(id).is_some_and(|i| self.members[i].lost)
    }

    /// Seconds into its run of `id`'s latest sample (0 before its first).
    pub fn last_sample_s(&self, id: &str) -> f64 {
        self.index_of(id)
            .map_or(0.0, |i| self.members[i].received.end_s)
    }

    /// Every instance's figures, in the group's order; an instance neither done nor lost is
    /// counted as lost (the group ended without it).
    pub fn outcome(self) -> Vec<MemberOutcome> {
        self.roster
            .into_iter()
            .zip(self.members)
            .map(|(member, state)| match state.done {
                Some(figures) => MemberOutcome {
                    member,
                    figures,
                    lost_at_s: None,
                },
                None => MemberOutcome {
                    member,
                    lost_at_s: Some(state.received.end_s),
                    figures: lost_figures(&state),
                },
            })
            .collect()
    }
}

/// What a lost instance had done by its last sample: its counts then, and the latencies of
/// all its samples. Its bytes, producers and consumers are not in its samples (0).
fn lost_figures(state: &MemberState) -> InstanceFigures {
    let totals = &state.received;
    InstanceFigures {
        producers: 0,
        consumers: 0,
        sent: totals.sent,
        bytes: 0,
        confirmed: totals.confirmed(),
        failed: totals.failed,
        consumed: totals.consumed,
        reconnects: totals.reconnects,
        elapsed_s: totals.end_s,
        consume_elapsed_s: totals.end_s,
        interrupted: true,
        confirm: state.confirm.clone(),
        end_to_end: state.end_to_end.clone(),
    }
}

/// The group's sample from its instances' `parts` of one number: rates add up, latencies merge;
/// running totals from every instance's latest (`totals`, those without a part included).
fn merge(parts: &[IntervalSample], totals: &[&Totals], last: bool) -> IntervalSample {
    let mut confirm = LatencyHistogram::new();
    let mut end_to_end = LatencyHistogram::new();
    let mut chunk_messages = LatencyHistogram::new();
    for part in parts {
        confirm.merge(&part.confirm);
        end_to_end.merge(&part.end_to_end);
        chunk_messages.merge(&part.chunk_messages);
    }
    let sum = |f: fn(&IntervalSample) -> f64| parts.iter().map(f).sum::<f64>();
    let (confirm_summary, end_to_end_summary) = (confirm.summary(), end_to_end.summary());
    let partitions = totals
        .iter()
        .map(|t| t.confirmed_by_partition.len())
        .max()
        .unwrap_or(0);
    let mut confirmed_by_partition = vec![0; partitions];
    for t in totals {
        for (sum, confirmed) in confirmed_by_partition
            .iter_mut()
            .zip(&t.confirmed_by_partition)
        {
            *sum += confirmed;
        }
    }
    IntervalSample {
        start: parts.iter().map(|p| p.start).min().unwrap_or_default(),
        length: parts
            .iter()
            .map(|p| p.length)
            .max()
            .unwrap_or(Duration::ZERO),
        second: BenchSecond {
            second: parts.iter().map(|p| p.second.second).fold(0.0, f64::max),
            published_per_s: sum(|p| p.second.published_per_s),
            confirmed_per_s: sum(|p| p.second.confirmed_per_s),
            consumed_per_s: sum(|p| p.second.consumed_per_s),
            confirm_p50_us: confirm_summary.p50,
            confirm_p99_us: confirm_summary.p99,
            end_to_end_p50_us: end_to_end_summary.p50,
            end_to_end_p99_us: end_to_end_summary.p99,
        },
        confirm,
        end_to_end,
        in_flight: totals.iter().map(|t| t.in_flight).sum(),
        reconnects: totals.iter().map(|t| t.reconnects).sum(),
        confirmed_by_partition,
        sent_total: totals.iter().map(|t| t.sent).sum(),
        consumed_total: totals.iter().map(|t| t.consumed).sum(),
        failed_total: totals.iter().map(|t| t.failed).sum(),
        chunk_messages,
        reader_positions: totals
            .iter()
            .flat_map(|t| t.reader_positions.iter().copied())
            .collect(),
        last,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::group::protocol::WireSample;

    fn member(id: &str) -> Member {
        Member {
            id: id.to_string(),
            host: "h".to_string(),
            pid: 1,
        }
    }

    /// Instance `id`'s sample number `k`: `sent` messages so far (all confirmed, each read
    /// once), `per_s` in this second, one latency of `latency_us`.
    fn sample(id: &str, k: u64, sent: u64, per_s: f64, latency_us: u64, last: bool) -> Control {
        let mut confirm = LatencyHistogram::new();
        confirm.record_us(latency_us);
        let sample = IntervalSample {
            start: Duration::from_secs(k - 1),
            length: Duration::from_secs(1),
            second: BenchSecond {
                second: k as f64,
                published_per_s: per_s,
                confirmed_per_s: per_s,
                consumed_per_s: per_s,
                confirm_p50_us: latency_us,
                confirm_p99_us: latency_us,
                end_to_end_p50_us: 0,
                end_to_end_p99_us: 0,
            },
            confirm,
            end_to_end: LatencyHistogram::new(),
            in_flight: 0,
            reconnects: 0,
            confirmed_by_partition: vec![sent],
            sent_total: sent,
            consumed_total: sent,
            failed_total: 0,
            chunk_messages: LatencyHistogram::new(),
            reader_positions: vec![sent],
            last,
        };
        Control::Sample {
            run: "r".into(),
            id: id.into(),
            index: k,
            sample: Box::new(WireSample::from(&sample)),
        }
    }

    fn group() -> GroupState {
        GroupState::new("r", vec![member("a"), member("b"), member("c")])
    }

    #[test]
    fn a_second_is_complete_when_every_instance_sent_it() {
        let mut state = group();
        assert!(state.apply(sample("a", 1, 10, 10.0, 100, false)).is_empty());
        assert!(state.apply(sample("b", 1, 20, 20.0, 200, false)).is_empty());
        let done = state.apply(sample("c", 1, 30, 30.0, 300, false));
        assert_eq!(done.len(), 1);
        let second = &done[0];
        assert_eq!(second.sent_total, 60, "the sum of the instances'");
        assert_eq!(second.second.published_per_s, 60.0);
        assert_eq!(second.confirm.count(), 3, "histograms merge");
        assert_eq!(second.second.confirm_p99_us, 300);
        assert_eq!(second.confirmed_by_partition, vec![60]);
        assert_eq!(second.reader_positions, vec![10, 20, 30]);
        assert!(!second.last);
    }

    #[test]
    fn an_instance_that_finished_keeps_its_totals_in_later_seconds() {
        let mut state = group();
        state.apply(sample("a", 1, 10, 10.0, 100, true));
        state.apply(sample("b", 1, 20, 20.0, 200, false));
        state.apply(sample("c", 1, 30, 30.0, 300, false));
        state.apply(sample("b", 2, 25, 5.0, 200, true));
        let done = state.apply(sample("c", 2, 40, 10.0, 300, true));
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].sent_total, 10 + 25 + 40);
        assert_eq!(
            done[0].second.published_per_s, 15.0,
            "only this second's rates"
        );
        assert!(done[0].last);
    }

    #[test]
    fn a_lost_instance_is_waited_for_no_more_and_counted_as_of_its_last_sample() {
        let mut state = group();
        state.apply(sample("a", 1, 10, 10.0, 100, false));
        state.apply(sample("b", 1, 20, 20.0, 200, false));
        state.apply(sample("c", 1, 30, 30.0, 300, false));
        state.apply(sample("a", 2, 20, 10.0, 100, false));
        state.apply(sample("b", 2, 40, 20.0, 200, false));
        assert_eq!(state.others_confirmed("a"), None, "b and c still publish");
        let lost = state.apply(Control::Lost {
            run: "r".into(),
            id: "c".into(),
        });
        assert_eq!(lost.len(), 1, "second 2 no longer waits for c");
        assert_eq!(lost[0].sent_total, 20 + 40 + 30);
        // A lost instance's late sample changes nothing.
        assert!(state.apply(sample("c", 2, 99, 1.0, 1, false)).is_empty());
        state.apply(Control::Published {
            run: "r".into(),
            id: "b".into(),
            confirmed: 40,
        });
        assert_eq!(state.others_confirmed("a"), Some(40 + 30));
        assert!(state.is_lost("c"));
        assert!(!state.complete());
        assert_eq!(state.running().len(), 2);
    }

    #[test]
    fn the_outcome_holds_each_instance_and_names_the_lost_one() {
        let mut state = GroupState::new("r", vec![member("a"), member("c")]);
        state.apply(sample("c", 1, 30, 30.0, 300, false));
        state.apply(sample("c", 2, 45, 15.0, 500, false));
        state.apply(Control::Lost {
            run: "r".into(),
            id: "c".into(),
        });
        let figures = InstanceFigures {
            producers: 1,
            consumers: 1,
            sent: 7,
            bytes: 700,
            confirmed: 7,
            failed: 0,
            consumed: 52,
            reconnects: 0,
            elapsed_s: 3.0,
            consume_elapsed_s: 3.0,
            interrupted: false,
            confirm: LatencyHistogram::new(),
            end_to_end: LatencyHistogram::new(),
        };
        state.apply(Control::Done {
            run: "r".into(),
            id: "a".into(),
            figures: Box::new(figures),
        });
        // Another run's message is passed over.
        state.apply(Control::Lost {
            run: "other".into(),
            id: "a".into(),
        });
        assert!(state.complete());
        let outcome = state.outcome();
        assert_eq!(outcome[0].lost_at_s, None);
        assert_eq!(outcome[0].figures.sent, 7);
        assert_eq!(outcome[1].lost_at_s, Some(2.0));
        assert_eq!(outcome[1].figures.sent, 45);
        assert_eq!(outcome[1].figures.confirmed, 45);
        assert_eq!(
            outcome[1].figures.confirm.count(),
            2,
            "all its samples' latencies"
        );
    }
}
