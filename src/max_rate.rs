//! `bench --find-max-rate`: the highest publish rate a broker sustains, found by a search over
//! bench runs (each at a fixed `--rate` for a settling window). What "sustained" means, and
//! which rate to try next, live here, apart from the runs ([`crate::commands::max_rate`]) and
//! the rendering ([`crate::report::max_rate`]), so both can be checked without a broker.
//!
//! Sustained, over the second half of the window (the first is ramp-up: connections, the
//! consumers' first chunks): the producers published at the rate asked (within 5%), every
//! update was confirmed (over the whole try), the confirm p99 of every second stayed under the
//! bound, and the consumers
//! kept up (their lag behind the confirms grew by no more than 5% of what was published then).

use serde::Serialize;

use crate::stats::BenchSecond;

/// How close to the asked rate the producers must publish (5% under is still "at the rate").
const RATE_TOLERANCE: f64 = 0.05;

/// How much the consumers' lag may grow over the settled half, as a share of what was published
/// in it (reading comes in chunks, so a little lag comes and goes at any rate).
const LAG_TOLERANCE: f64 = 0.05;

/// Below this no rate is tried: a broker that cannot take 100 updates a second is down, and
/// the search ends saying no rate was sustained.
pub const LOWEST_RATE: u64 = 100;

/// What the search needs of one run at a fixed rate.
#[derive(Debug, Clone)]
pub struct TrialFigures {
    pub rate: u64,
    /// The settling window (the run's `--duration`), in seconds.
    pub window_s: f64,
    /// Consumers (consumer groups) reading every message.
    pub consumers: u64,
    pub published: u64,
    pub confirmed: u64,
    pub failed: u64,
    /// The whole try's (what the judged seconds' p99 are is in the timeline).
    pub confirm_p50_us: u64,
    pub end_to_end_p99_us: u64,
    pub timeline: Vec<BenchSecond>,
}

/// Why a rate was not sustained, or that it was.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Sustained,
    /// Updates sent and not confirmed, or rejected.
    Unconfirmed {
        unconfirmed: u64,
    },
    /// The producers could not publish at the rate (the client or the broker's intake).
    BehindRate {
        published_per_s: f64,
    },
    /// Confirms came, but too slowly.
    SlowConfirms {
        confirm_p99_us: u64,
    },
    /// The consumers read slower than the producers published: their lag kept growing.
    ConsumersBehind {
        lag_growth: u64,
    },
}

impl Verdict {
    pub fn sustained(&self) -> bool {
        matches!(self, Verdict::Sustained)
    }
}

/// Whether `trial` sustained its rate; the first failed condition in the order of the verdicts.
pub fn judge(trial: &TrialFigures, max_p99_us: u64) -> Verdict {
    let unconfirmed = trial.failed + trial.published.saturating_sub(trial.confirmed);
    if unconfirmed > 0 {
        return Verdict::Unconfirmed { unconfirmed };
    }
    let settled = settled_half(&trial.timeline, trial.window_s);
    let published_per_s = mean(settled, |s| s.published_per_s);
    if published_per_s < trial.rate as f64 * (1.0 - RATE_TOLERANCE) {
        return Verdict::BehindRate { published_per_s };
    }
    let confirm_p99_us = worst_confirm_p99(settled);
    if confirm_p99_us > max_p99_us {
        return Verdict::SlowConfirms { confirm_p99_us };
    }
    let lag_growth = lag_growth(settled, trial.consumers);
    let published: f64 = settled.iter().map(|s| s.published_per_s).sum();
    let allowed = LAG_TOLERANCE * published * trial.consumers as f64;
    if lag_growth > allowed {
        return Verdict::ConsumersBehind {
            lag_growth: lag_growth.round() as u64,
        };
    }
    Verdict::Sustained
}

/// The samples of the window's second half (the drain after it left out).
fn settled_half(timeline: &[BenchSecond], window_s: f64) -> &[BenchSecond] {
    // A sample ends at `second` (whole seconds from the start, then a last partial one and the
    // drain's): those ending after the window's middle, up to its end.
    let start = timeline
        .iter()
        .position(|s| s.second > window_s / 2.0)
        .unwrap_or(timeline.len());
    let end = timeline
        .iter()
        .position(|s| s.second > window_s + 0.05)
        .unwrap_or(timeline.len());
    &timeline[start..end.max(start)]
}

/// The highest of the seconds' confirm p99: the bound must hold in every settled second.
fn worst_confirm_p99(samples: &[BenchSecond]) -> u64 {
    samples.iter().map(|s| s.confirm_p99_us).max().unwrap_or(0)
}

fn mean(samples: &[BenchSecond], value: fn(&BenchSecond) -> f64) -> f64 {
    match samples.len() {
        0 => 0.0,
        n => samples.iter().map(value).sum::<f64>() / n as f64,
    }
}

/// How far the consumers, together, fell further behind the confirms over `samples` (each
/// consumer reads every message): what every consumer should have read less what they read.
fn lag_growth(samples: &[BenchSecond], consumers: u64) -> f64 {
    let confirmed: f64 = samples.iter().map(|s| s.confirmed_per_s).sum();
    let consumed: f64 = samples.iter().map(|s| s.consumed_per_s).sum();
    (confirmed * consumers as f64 - consumed).max(0.0)
}

/// One tried rate: its verdict and what the run measured (rates over the settled half).
#[derive(Debug, Clone, Serialize)]
pub struct Try {
    pub rate: u64,
    #[serde(flatten)]
    pub verdict: Verdict,
    pub published_per_s: f64,
    /// Per consumer.
    pub consumed_per_s: f64,
    /// The whole try's.
    pub confirm_p50_us: u64,
    /// The worst of the judged seconds' (what the bound applies to).
    pub confirm_p99_us: u64,
    /// The whole try's.
    pub end_to_end_p99_us: u64,
}

impl Try {
    pub fn new(trial: &TrialFigures, max_p99_us: u64) -> Try {
        let settled = settled_half(&trial.timeline, trial.window_s);
        Try {
            rate: trial.rate,
            verdict: judge(trial, max_p99_us),
            published_per_s: mean(settled, |s| s.published_per_s).round(),
            consumed_per_s: match trial.consumers {
                0 => 0.0,
                n => (mean(settled, |s| s.consumed_per_s) / n as f64).round(),
            },
            confirm_p50_us: trial.confirm_p50_us,
            confirm_p99_us: worst_confirm_p99(settled),
            end_to_end_p99_us: trial.end_to_end_p99_us,
        }
    }
}

/// What `bench --find-max-rate` found (its `--json`).
#[derive(Debug, Clone, Serialize)]
pub struct SearchOutcome {
    pub command: &'static str,
    /// The highest rate sustained; `None` when not even the lowest was.
    pub max_sustainable_rate: Option<u64>,
    /// The lowest rate that was not: the answer lies between the two.
    pub lowest_failed_rate: Option<u64>,
    /// The search's precision, in percent.
    pub precision_pct: f64,
    pub max_p99_ms: f64,
    pub settle_s: f64,
    pub producers: u64,
    pub consumers: u64,
    /// Every try in the order run.
    pub tries: Vec<Try>,
    pub elapsed_s: f64,
    /// A signal ended the search early: the rate is the best found so far.
    pub interrupted: bool,
    /// The broker the runs went to, e.g. "RabbitMQ 4.0.5 at localhost:5552".
    pub broker: String,
}

impl SearchOutcome {
    /// The try at the rate found.
    pub fn at_max(&self) -> Option<&Try> {
        let rate = self.max_sustainable_rate?;
        self.tries
            .iter()
            .find(|t| t.rate == rate && t.verdict.sustained())
    }
}

/// The search: double the rate from `start` while it is sustained (halve it while it is not,
/// down to [`LOWEST_RATE`]), then bisect between the highest sustained and the lowest failed
/// rate until they are within `precision` of each other.
#[derive(Debug, Clone)]
pub struct RateSearch {
    start: u64,
    /// A fraction: 0.05 ends when the failed rate is within 5% above the sustained one.
    precision: f64,
    sustained: Option<u64>,
    failed: Option<u64>,
}

impl RateSearch {
    pub fn new(start: u64, precision: f64) -> RateSearch {
        RateSearch {
            start: start.max(LOWEST_RATE),
            precision,
            sustained: None,
            failed: None,
        }
    }

    /// The next rate to try; `None` when the search is over.
    pub fn next_rate(&self) -> Option<u64> {
        match (self.sustained, self.failed) {
            (None, None) => Some(self.start),
            (Some(sustained), None) => Some(sustained.saturating_mul(2)),
            (None, Some(failed)) => (failed / 2 >= LOWEST_RATE).then_some(failed / 2),
            (Some(sustained), Some(failed)) => {
                let gap = failed.saturating_sub(sustained);
                if gap as f64 <= sustained as f64 * self.precision || gap <= 1 {
                    None
                } else {
                    Some(round_rate(sustained + gap / 2))
                        .filter(|r| *r > sustained && *r < failed)
                        .or(Some(sustained + gap / 2))
                }
            }
        }
    }

    pub fn record(&mut self, rate: u64, sustained: bool) {
        match sustained {
            true => self.sustained = Some(self.sustained.map_or(rate, |s| s.max(rate))),
            false => self.failed = Some(self.failed.map_or(rate, |f| f.min(rate))),
        }
    }

    /// The highest rate sustained so far.
    pub fn found(&self) -> Option<u64> {
        self.sustained
    }

    /// The lowest rate that failed so far: the highest sustainable rate is below it.
    pub fn ceiling(&self) -> Option<u64> {
        self.failed
    }
}

/// A rate with three significant digits (123,456 → 123,000), so the tried rates read well.
fn round_rate(rate: u64) -> u64 {
    let mut unit = 1;
    while rate / unit >= 1000 {
        unit *= 10;
    }
    rate / unit * unit
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second(at: f64, published: f64, consumed: f64) -> BenchSecond {
        BenchSecond {
            second: at,
            published_per_s: published,
            confirmed_per_s: published,
            consumed_per_s: consumed,
            confirm_p50_us: 1_000,
            confirm_p99_us: 5_000,
            end_to_end_p50_us: 2_000,
            end_to_end_p99_us: 9_000,
        }
    }

    fn trial(rate: u64, consumers: u64, per_second: &[(f64, f64)]) -> TrialFigures {
        let timeline: Vec<BenchSecond> = per_second
            .iter()
            .enumerate()
            .map(|(i, (p, c))| second(i as f64 + 1.0, *p, *c))
            .collect();
        let published = timeline.iter().map(|s| s.published_per_s as u64).sum();
        TrialFigures {
            rate,
            window_s: 10.0,
            consumers,
            published,
            confirmed: published,
            failed: 0,
            confirm_p50_us: 1_000,
            end_to_end_p99_us: 30_000,
            timeline,
        }
    }

    fn steady(rate: u64, consumers: u64, consumed_each: f64) -> TrialFigures {
        let r = rate as f64;
        trial(
            rate,
            consumers,
            &[(r, consumed_each * consumers as f64); 10],
        )
    }

    #[test]
    fn a_rate_published_confirmed_and_read_in_time_is_sustained() {
        assert_eq!(
            judge(&steady(50_000, 2, 50_000.0), 100_000),
            Verdict::Sustained
        );
    }

    #[test]
    fn each_failed_condition_is_the_verdict() {
        let mut unconfirmed = steady(50_000, 1, 50_000.0);
        unconfirmed.confirmed -= 7;
        assert_eq!(
            judge(&unconfirmed, 100_000),
            Verdict::Unconfirmed { unconfirmed: 7 }
        );
        let behind = steady(50_000, 1, 40_000.0);
        let behind = TrialFigures {
            rate: 60_000,
            ..behind
        };
        assert!(matches!(
            judge(&behind, 100_000),
            Verdict::BehindRate { published_per_s } if published_per_s == 50_000.0
        ));
        let mut slow = steady(50_000, 1, 50_000.0);
        slow.timeline[8].confirm_p99_us = 150_000;
        assert_eq!(
            judge(&slow, 100_000),
            Verdict::SlowConfirms {
                confirm_p99_us: 150_000
            }
        );
        // Two consumers reading 45,000 each of 50,000 a second: 10,000 a second further behind,
        // 5 settled seconds.
        assert_eq!(
            judge(&steady(50_000, 2, 45_000.0), 100_000),
            Verdict::ConsumersBehind { lag_growth: 50_000 }
        );
    }

    #[test]
    fn only_the_settled_half_counts() {
        // Slow to start (connections, first chunks), then at the rate and read in time.
        let mut seconds = vec![(10_000.0, 0.0); 5];
        seconds.extend(vec![(50_000.0, 50_000.0); 5]);
        let mut slow_start = trial(50_000, 1, &seconds);
        // And after the window a partial sample (0.3 s), then the drain: read, not published.
        for (at, published) in [(10.3, 400.0), (11.3, 0.0)] {
            slow_start.timeline.push(second(at, published, 30_000.0));
        }
        // Slow confirms while connecting are not judged either.
        slow_start.timeline[1].confirm_p99_us = 900_000;
        assert_eq!(judge(&slow_start, 100_000), Verdict::Sustained);
        // A little lag in the settled half is chunks arriving, not falling behind.
        let mut seconds = vec![(50_000.0, 50_000.0); 5];
        seconds.extend(vec![(50_000.0, 48_500.0); 5]);
        assert_eq!(
            judge(&trial(50_000, 1, &seconds), 100_000),
            Verdict::Sustained
        );
    }

    #[test]
    fn the_search_doubles_then_bisects_to_its_precision() {
        // A broker that sustains up to 170,000 a second.
        let mut search = RateSearch::new(10_000, 0.05);
        let mut tried = Vec::new();
        while let Some(rate) = search.next_rate() {
            tried.push(rate);
            search.record(rate, rate <= 170_000);
            assert!(tried.len() < 30, "{tried:?}");
        }
        assert_eq!(
            &tried[..6],
            [10_000, 20_000, 40_000, 80_000, 160_000, 320_000]
        );
        let found = search.found().unwrap();
        let ceiling = search.ceiling().unwrap();
        assert!(found <= 170_000 && ceiling > 170_000, "{tried:?}");
        assert!((ceiling - found) as f64 <= found as f64 * 0.05, "{tried:?}");
    }

    #[test]
    fn the_search_halves_when_the_start_fails_and_ends_at_the_lowest_rate() {
        let mut search = RateSearch::new(10_000, 0.05);
        let mut tried = Vec::new();
        while let Some(rate) = search.next_rate() {
            tried.push(rate);
            search.record(rate, rate <= 3_000);
        }
        assert_eq!(&tried[..3], [10_000, 5_000, 2_500]);
        assert!(search.found().unwrap() <= 3_000);
        let mut dead = RateSearch::new(10_000, 0.05);
        while let Some(rate) = dead.next_rate() {
            dead.record(rate, false);
        }
        assert_eq!(dead.found(), None);
        assert!(dead.ceiling().unwrap() >= LOWEST_RATE);
    }

    #[test]
    fn tried_rates_have_three_significant_digits() {
        assert_eq!(round_rate(123_456), 123_000);
        assert_eq!(round_rate(999), 999);
        assert_eq!(round_rate(240_000), 240_000);
    }
}
