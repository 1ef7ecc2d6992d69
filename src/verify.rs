//! `consume --verify`: checks that each producer's `seq` values arrived once each, with no gap.
//! One bit per seq, so a million updates cost 125 KB, whatever their order.

use std::collections::BTreeMap;

use serde::Serialize;

/// How many gaps a report lists by number (all are counted).
const GAPS_LISTED: usize = 10;

/// The `seq` values seen so far, per producer name.
#[derive(Debug, Default)]
pub struct SeqCheck {
    producers: BTreeMap<String, SeqSet>,
}

#[derive(Debug, Default)]
struct SeqSet {
    seen: Vec<u64>,
    distinct: u64,
    duplicates: u64,
    min: Option<u64>,
    max: u64,
}

impl SeqSet {
    fn insert(&mut self, seq: u64) {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if word >= self.seen.len() {
            self.seen.resize(word + 1, 0);
        }
        if self.seen[word] & (1 << bit) != 0 {
            self.duplicates += 1;
            return;
        }
        self.seen[word] |= 1 << bit;
        self.distinct += 1;
        self.min = Some(self.min.map_or(seq, |m| m.min(seq)));
        self.max = self.max.max(seq);
    }

    fn contains(&self, seq: u64) -> bool {
        self.seen
            .get((seq / 64) as usize)
            .is_some_and(|word| word & (1 << (seq % 64)) != 0)
    }
}

/// The verdict for one producer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProducerCheck {
    pub producer: String,
    pub distinct: u64,
    pub duplicates: u64,
    /// Seq values missing between the first expected and the highest seen.
    pub gaps: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// The first few missing seq values.
    pub first_gaps: Vec<u64>,
}

/// The verdict of `--verify`; `ok` is false if any producer has a gap or a duplicate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub producers: Vec<ProducerCheck>,
}

impl SeqCheck {
    pub fn record(&mut self, producer: &str, seq: u64) {
        match self.producers.get_mut(producer) {
            Some(set) => set.insert(seq),
            None => {
                let mut set = SeqSet::default();
                set.insert(seq);
                self.producers.insert(producer.to_string(), set);
            }
        }
    }

    /// Adds what another reader saw (a super stream's other partitions).
    pub fn merge(&mut self, other: &SeqCheck) {
        for (producer, set) in &other.producers {
            for (word, bits) in set.seen.iter().enumerate() {
                for bit in 0..64 {
                    if bits & (1 << bit) != 0 {
                        self.record(producer, word as u64 * 64 + bit);
                    }
                }
            }
            if let Some(mine) = self.producers.get_mut(producer) {
                mine.duplicates += set.duplicates;
            } else if set.duplicates > 0 {
                self.producers
                    .entry(producer.clone())
                    .or_default()
                    .duplicates += set.duplicates;
            }
        }
    }

    /// With `from_zero` (a read from the start of the stream) every seq from 0 must be there;
    /// otherwise from the lowest one seen.
    pub fn report(&self, from_zero: bool) -> VerifyReport {
        let producers: Vec<ProducerCheck> = self
            .producers
            .iter()
            .map(|(producer, set)| {
                let first_seq = if from_zero { 0 } else { set.min.unwrap_or(0) };
                let expected = set.max - first_seq + 1;
                let first_gaps = (first_seq..=set.max)
                    .filter(|seq| !set.contains(*seq))
                    .take(GAPS_LISTED)
                    .collect();
                ProducerCheck {
                    producer: producer.clone(),
                    distinct: set.distinct,
                    duplicates: set.duplicates,
                    gaps: expected - set.distinct.min(expected),
                    first_seq,
                    last_seq: set.max,
                    first_gaps,
                }
            })
            .collect();
        VerifyReport {
            ok: producers.iter().all(|p| p.gaps == 0 && p.duplicates == 0),
            producers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_sequences_pass_in_any_order() {
        let mut check = SeqCheck::default();
        for seq in (0..1_000).rev() {
            check.record("a", seq);
        }
        for seq in 0..10 {
            check.record("b", seq);
        }
        let report = check.report(true);
        assert!(report.ok, "{report:?}");
        assert_eq!(report.producers[0].distinct, 1_000);
        assert_eq!(report.producers[1].producer, "b");
    }

    #[test]
    fn gaps_and_duplicates_are_counted_and_listed() {
        let mut check = SeqCheck::default();
        for seq in [0, 1, 1, 2, 5, 6, 6, 6, 9] {
            check.record("p", seq);
        }
        let report = check.report(true);
        assert!(!report.ok);
        let p = &report.producers[0];
        assert_eq!((p.distinct, p.duplicates, p.gaps), (6, 3, 4));
        assert_eq!(p.first_gaps, vec![3, 4, 7, 8]);
    }

    #[test]
    fn merged_checks_verify_together() {
        let (mut even, mut odd) = (SeqCheck::default(), SeqCheck::default());
        for seq in 0..100 {
            match seq % 2 {
                0 => even.record("p", seq),
                _ => odd.record("p", seq),
            }
        }
        odd.record("p", 1);
        assert!(!even.report(true).ok);
        even.merge(&odd);
        let report = even.report(true);
        assert_eq!(report.producers[0].gaps, 0);
        assert_eq!(report.producers[0].duplicates, 1);
        even.merge(&SeqCheck::default());
        assert_eq!(even.report(true).producers[0].distinct, 100);
    }

    #[test]
    fn a_missing_start_counts_only_from_zero() {
        let mut check = SeqCheck::default();
        for seq in 100..200 {
            check.record("p", seq);
        }
        assert!(!check.report(true).ok);
        assert_eq!(check.report(true).producers[0].gaps, 100);
        assert!(check.report(false).ok);
    }
}
