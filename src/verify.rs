//! `consume --verify`: checks that each producer's `seq` values arrived once each, with no gap,
//! and each product's updates in the order they were published (their seqs rising).
//! One bit per seq: a million updates in (nearly) increasing order cost 125 KB; a seq far
//! from the others (e.g. near `u64::MAX`) costs one word in a map, not a bitset up to it.

use std::collections::{BTreeMap, HashMap};

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
    /// Bits of the seqs seen, one 64-bit word per 64 seqs, from word number `base` on: the
    /// common case, seqs close together.
    dense: Vec<u64>,
    base: u64,
    /// Words (by word number, seq / 64) too far from `dense` to grow it: a seq near u64::MAX
    /// costs one entry here, not a bitset up to it.
    sparse: BTreeMap<u64, u64>,
    distinct: u64,
    duplicates: u64,
    min: Option<u64>,
    max: u64,
    /// The highest seq read so far of each product (when products are given).
    last_by_product: HashMap<u64, u64>,
    /// New seqs read after a higher seq of the same product: updates stored out of order.
    reordered: u64,
}

/// `dense` grows to a word only while it stays at least about a quarter full (or small).
const DENSE_SLACK_WORDS: u64 = 1 << 10;

impl SeqSet {
    fn word_mut(&mut self, word: u64) -> &mut u64 {
        if self.dense.is_empty() && self.sparse.is_empty() {
            self.base = word;
        }
        if let Some(index) = word.checked_sub(self.base) {
            let len = self.dense.len() as u64;
            let bound = DENSE_SLACK_WORDS + 4 * (self.distinct / 64 + 1);
            if index < len || index < bound {
                if index >= len {
                    self.dense.resize(index as usize + 1, 0);
                }
                return &mut self.dense[index as usize];
            }
        }
        self.sparse.entry(word).or_default()
    }

    /// Records `seq`; false when it was already there (a duplicate).
    fn insert(&mut self, seq: u64) -> bool {
        let bit = 1u64 << (seq % 64);
        let word = self.word_mut(seq / 64);
        if *word & bit != 0 {
            self.duplicates += 1;
            return false;
        }
        *word |= bit;
        self.distinct += 1;
        self.min = Some(self.min.map_or(seq, |m| m.min(seq)));
        self.max = self.max.max(seq);
        true
    }

    /// Records `seq` of `product`, counting it reordered when a higher seq of that product
    /// came first (a duplicate is counted as one, not as reordered too).
    fn insert_ordered(&mut self, product: u64, seq: u64) {
        if !self.insert(seq) {
            return;
        }
        let last = self.last_by_product.entry(product).or_insert(seq);
        if seq < *last {
            self.reordered += 1;
        } else {
            *last = seq;
        }
    }

    /// How many distinct seqs below `seq` were seen (those a later start leaves out).
    fn count_below(&self, seq: u64) -> u64 {
        let (last_word, bit) = (seq / 64, seq % 64);
        let dense = self
            .dense
            .iter()
            .enumerate()
            .map(|(index, bits)| (self.base + index as u64, *bits));
        let sparse = self.sparse.iter().map(|(word, bits)| (*word, *bits));
        dense
            .chain(sparse)
            .map(|(word, bits)| match word.cmp(&last_word) {
                std::cmp::Ordering::Less => u64::from(bits.count_ones()),
                std::cmp::Ordering::Equal => u64::from((bits & ((1u64 << bit) - 1)).count_ones()),
                std::cmp::Ordering::Greater => 0,
            })
            .sum()
    }

    fn contains(&self, seq: u64) -> bool {
        let word = seq / 64;
        let bits = word
            .checked_sub(self.base)
            .and_then(|index| self.dense.get(usize::try_from(index).ok()?))
            .or_else(|| self.sparse.get(&word));
        bits.is_some_and(|bits| bits & (1 << (seq % 64)) != 0)
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
    /// Updates read after a later update of the same product (checked per reader: a super
    /// stream keeps each product in one partition).
    pub reordered: u64,
}

/// The verdict of `--verify`; `ok` is false if any producer has a gap, a duplicate or a
/// product's updates out of order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub producers: Vec<ProducerCheck>,
}

impl SeqCheck {
    pub fn record(&mut self, producer: &str, seq: u64) {
        self.producer_mut(producer).insert(seq);
    }

    /// `record`, and checks that `product`'s updates come in the order they were published.
    pub fn record_update(&mut self, producer: &str, product: u64, seq: u64) {
        self.producer_mut(producer).insert_ordered(product, seq);
    }

    fn producer_mut(&mut self, producer: &str) -> &mut SeqSet {
        if !self.producers.contains_key(producer) {
            self.producers
                .insert(producer.to_string(), SeqSet::default());
        }
        self.producers.get_mut(producer).expect("inserted above")
    }

    /// Adds what another reader saw (a super stream's other partitions).
    pub fn merge(&mut self, other: &SeqCheck) {
        for (producer, set) in &other.producers {
            let dense = set
                .dense
                .iter()
                .enumerate()
                .map(|(index, bits)| (set.base + index as u64, *bits));
            let sparse = set.sparse.iter().map(|(word, bits)| (*word, *bits));
            for (word, bits) in dense.chain(sparse) {
                for bit in 0..64 {
                    if bits & (1 << bit) != 0 {
                        self.record(producer, word * 64 + bit);
                    }
                }
            }
            let mine = self.producer_mut(producer);
            mine.duplicates += set.duplicates;
            // Order was checked by the reader that saw each product (a partition).
            mine.reordered += set.reordered;
        }
    }

    /// With `from_zero` (a read from the start of a stream that retention has not truncated)
    /// every seq from 0 must be there; otherwise from the lowest one seen.
    pub fn report(&self, from_zero: bool) -> VerifyReport {
        Self::report_parts(&[(self, from_zero)])
    }

    /// The one rule for where each producer's seqs must start, for a stream or for a super
    /// stream's partitions read together (`parts`: each part's check, and whether it was read
    /// whole, from offset 0). A part read whole holds a producer's updates from seq 0. A part
    /// that starts later (retention removed its head, or the read began later) holds them only
    /// from the lowest seq seen there, and every seq below that may be missing for a reason
    /// that is not loss: a producer is checked from the highest such start of any part.
    pub fn report_parts(parts: &[(&SeqCheck, bool)]) -> VerifyReport {
        let mut starts: BTreeMap<&str, u64> = BTreeMap::new();
        for (check, _) in parts.iter().filter(|(_, whole)| !whole) {
            for (producer, set) in &check.producers {
                if let Some(min) = set.min {
                    let start = starts.entry(producer.as_str()).or_insert(min);
                    *start = (*start).max(min);
                }
            }
        }
        let merged;
        let all = match parts {
            [(one, _)] => *one,
            _ => {
                let mut all = SeqCheck::default();
                for (check, _) in parts {
                    all.merge(check);
                }
                merged = all;
                &merged
            }
        };
        all.report_from(&starts)
    }

    /// Every producer checked from its seq in `starts` (0 when it has none there).
    fn report_from(&self, starts: &BTreeMap<&str, u64>) -> VerifyReport {
        let producers: Vec<ProducerCheck> = self
            .producers
            .iter()
            .map(|(producer, set)| {
                let first_seq = starts.get(producer.as_str()).copied().unwrap_or(0);
                // Up to 2^64 seqs: as u128, so a seq near u64::MAX does not overflow.
                let expected = u128::from(set.max - first_seq) + 1;
                let first_gaps = (first_seq..=set.max)
                    .filter(|seq| !set.contains(*seq))
                    .take(GAPS_LISTED)
                    .collect();
                ProducerCheck {
                    producer: producer.clone(),
                    distinct: set.distinct,
                    duplicates: set.duplicates,
                    gaps: u64::try_from(
                        expected - u128::from(set.distinct - set.count_below(first_seq)),
                    )
                    .unwrap_or(u64::MAX),
                    first_seq,
                    last_seq: set.max,
                    first_gaps,
                    reordered: set.reordered,
                }
            })
            .collect();
        VerifyReport {
            ok: producers
                .iter()
                .all(|p| p.gaps == 0 && p.duplicates == 0 && p.reordered == 0),
            producers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_truncated_part_moves_the_start_only_to_what_it_can_still_hold() {
        // Seqs 0..100 spread over two parts by parity; the odd part lost its head (seqs < 51).
        let (mut even, mut odd) = (SeqCheck::default(), SeqCheck::default());
        for seq in (0..100).filter(|s| s % 2 == 0) {
            even.record("p", seq);
        }
        for seq in (51..100).filter(|s| s % 2 == 1) {
            odd.record("p", seq);
        }
        let report = SeqCheck::report_parts(&[(&even, true), (&odd, false)]);
        assert!(report.ok, "{report:?}");
        assert_eq!(report.producers[0].first_seq, 51);
        // Read as if whole, the missing head counts as gaps.
        let whole = SeqCheck::report_parts(&[(&even, true), (&odd, true)]);
        assert_eq!(whole.producers[0].gaps, 25);
        // A real gap after the start is still one.
        let mut lossy = SeqCheck::default();
        for seq in (51..100).filter(|s| s % 2 == 1 && *s != 77) {
            lossy.record("p", seq);
        }
        let report = SeqCheck::report_parts(&[(&even, true), (&lossy, false)]);
        assert_eq!(report.producers[0].first_gaps, [77]);
    }

    #[test]
    fn a_product_read_out_of_order_is_reordered_and_not_ok() {
        let mut check = SeqCheck::default();
        // Product 7: seqs 0, 2, 1 (1 after 2); product 8: 3 then 4, in order; a duplicate of 2.
        for (product, seq) in [(7, 0), (7, 2), (7, 1), (8, 3), (8, 4), (7, 2)] {
            check.record_update("p", product, seq);
        }
        let report = check.report(true);
        let p = &report.producers[0];
        assert_eq!((p.reordered, p.duplicates, p.gaps), (1, 1, 0), "{p:?}");
        assert!(!report.ok);
        // Other products' seqs in between are not disorder.
        let mut interleaved = SeqCheck::default();
        for (product, seq) in [(1, 0), (2, 1), (1, 2), (2, 3)] {
            interleaved.record_update("p", product, seq);
        }
        assert!(interleaved.report(true).ok);
        // A super stream's parts: each reader's count adds up.
        let mut merged = SeqCheck::default();
        merged.merge(&check);
        merged.merge(&interleaved);
        assert_eq!(merged.report(true).producers[0].reordered, 1);
    }

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

    #[test]
    fn a_seq_near_u64_max_costs_one_word_and_does_not_overflow() {
        let mut check = SeqCheck::default();
        for seq in [0, 1, u64::MAX - 1, u64::MAX] {
            check.record("p", seq);
        }
        let set = &check.producers["p"];
        assert_eq!(
            set.dense.len() + set.sparse.len(),
            2,
            "one word per 64 seqs that hold one"
        );
        let p = &check.report(true).producers[0];
        assert_eq!((p.distinct, p.last_seq), (4, u64::MAX));
        assert_eq!(p.gaps, u64::MAX - 3);
        assert_eq!(p.first_gaps, (2..12).collect::<Vec<u64>>());
        assert_eq!(check.report(false).producers[0].gaps, u64::MAX - 3);
    }
}
