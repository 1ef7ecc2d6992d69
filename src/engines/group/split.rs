//! How a group's instances share one benchmark: the producers and consumers asked for are the
//! group's, dealt out like cards (the first instances take one more when they do not divide
//! evenly); `--count` and `--rate` are split per producer, as one bench splits them, and each
//! instance takes its producers' parts, so the shares always add up to what was asked.

/// What one instance of a group runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    pub producers: u64,
    pub consumers: u64,
    /// Messages its producers publish (with `--count`).
    pub count: u64,
    /// Messages per second its producers publish together (with `--rate`); at least 1 when it
    /// has producers, none when it has none.
    pub rate: Option<u64>,
}

/// `total` dealt out to `parts`: part `index`'s (the first `total % parts` take one more).
pub fn part(total: u64, parts: u64, index: u64) -> u64 {
    match parts {
        0 => 0,
        _ => total / parts + u64::from(index < total % parts),
    }
}

/// The share of instance `index` (0-based, in the group's order) of `instances` in a bench of
/// `producers` and `consumers` publishing `count` messages at `rate`.
pub fn share(
    index: u64,
    instances: u64,
    producers: u64,
    consumers: u64,
    count: u64,
    rate: Option<u64>,
) -> Share {
    let own = part(producers, instances, index);
    let first: u64 = (0..index).map(|i| part(producers, instances, i)).sum();
    let of_producers = |total: u64| -> u64 {
        (first..first + own)
            .map(|producer| part(total, producers, producer))
            .sum()
    };
    Share {
        producers: own,
        consumers: part(consumers, instances, index),
        count: of_producers(count),
        rate: match own {
            0 => None,
            _ => rate.map(|rate| of_producers(rate).max(1)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_to_what_was_asked() {
        for instances in 1..=5 {
            for producers in 1..=7 {
                for count in [1, 2, 10, 1_000, 1_000_003] {
                    let shares: Vec<Share> = (0..instances)
                        .map(|i| share(i, instances, producers, 3, count, Some(10_007)))
                        .collect();
                    let sum = |f: fn(&Share) -> u64| shares.iter().map(f).sum::<u64>();
                    assert_eq!(sum(|s| s.producers), producers);
                    assert_eq!(sum(|s| s.consumers), 3);
                    assert_eq!(sum(|s| s.count), count, "{instances} {producers} {count}");
                    assert_eq!(sum(|s| s.rate.unwrap_or(0)), 10_007);
                }
            }
        }
    }

    #[test]
    fn the_first_instances_take_the_remainder() {
        let shares: Vec<Share> = (0..3).map(|i| share(i, 3, 4, 2, 10, None)).collect();
        assert_eq!(
            shares,
            vec![
                Share {
                    producers: 2,
                    consumers: 1,
                    count: 6, // producers 0 and 1 of 4: 3 + 3
                    rate: None
                },
                Share {
                    producers: 1,
                    consumers: 1,
                    count: 2,
                    rate: None
                },
                Share {
                    producers: 1,
                    consumers: 0,
                    count: 2,
                    rate: None
                },
            ]
        );
    }

    #[test]
    fn an_instance_without_producers_publishes_nothing() {
        let last = share(2, 3, 1, 1, 100, Some(50));
        assert_eq!((last.producers, last.count, last.rate), (0, 0, None));
        assert_eq!(share(0, 3, 1, 1, 100, Some(50)).rate, Some(50));
    }
}
