//! `bench --find-max-rate`: the rate found, every tried rate with its verdict, and the run at
//! the rate found; or one JSON object.

use super::ms;
use super::streams::table;
use super::thousands;
use crate::max_rate::{SearchOutcome, Verdict};

/// "sustained", or what failed.
pub fn verdict(verdict: &Verdict, max_p99_us: u64) -> String {
    match verdict {
        Verdict::Sustained => "sustained".into(),
        Verdict::Unconfirmed { unconfirmed } => {
            format!("{} update(s) not confirmed", thousands(*unconfirmed))
        }
        Verdict::BehindRate { published_per_s } => format!(
            "published only {} msg/s",
            thousands(published_per_s.round() as u64)
        ),
        Verdict::SlowConfirms { confirm_p99_us } => format!(
            "confirm p99 {} over the {} bound",
            ms(*confirm_p99_us),
            ms(max_p99_us)
        ),
        Verdict::ConsumersBehind { lag_growth } => {
            format!("consumers fell {} behind", thousands(*lag_growth))
        }
    }
}

pub fn json(outcome: &SearchOutcome) -> serde_json::Result<String> {
    super::json_line(outcome)
}

pub fn text(outcome: &SearchOutcome) -> String {
    let max_p99_us = (outcome.max_p99_ms * 1000.0).round() as u64;
    let mut text = match (outcome.max_sustainable_rate, outcome.lowest_failed_rate) {
        (Some(rate), Some(ceiling)) => format!(
            "highest sustainable rate: {} msg/s (below {} msg/s, which was not; precision {}%)\n",
            thousands(rate),
            thousands(ceiling),
            outcome.precision_pct
        ),
        (Some(rate), None) => format!(
            "highest sustainable rate: at least {} msg/s (the search ended before a rate failed)\n",
            thousands(rate)
        ),
        (None, Some(ceiling)) => format!(
            "no rate was sustained, not even {} msg/s: see the verdicts below\n",
            thousands(ceiling)
        ),
        (None, None) => "no rate was tried\n".to_string(),
    };
    text.push_str(&format!(
        "  {}, {} producer(s), {} consumer(s); sustained = every update confirmed, confirm p99 under {} ms in every second and consumers keeping up over the second half of {} s a try; {} tries in {:.0} s{}\n\n",
        outcome.broker,
        outcome.producers,
        outcome.consumers,
        outcome.max_p99_ms,
        outcome.settle_s,
        outcome.tries.len(),
        outcome.elapsed_s,
        match outcome.interrupted {
            true => " (stopped early: the best found so far)",
            false => "",
        }
    ));
    let mut rows = vec![[
        "rate msg/s",
        "verdict",
        "published/s",
        "each consumer/s",
        "confirm p50",
        "confirm p99 (worst s)",
        "end-to-end p99",
    ]
    .map(String::from)
    .to_vec()];
    for tried in &outcome.tries {
        rows.push(vec![
            thousands(tried.rate),
            verdict(&tried.verdict, max_p99_us),
            thousands(tried.published_per_s as u64),
            thousands(tried.consumed_per_s as u64),
            ms(tried.confirm_p50_us),
            ms(tried.confirm_p99_us),
            ms(tried.end_to_end_p99_us),
        ]);
    }
    text.push_str(&table(&rows, &[0, 2, 3, 4, 5, 6]));
    if let Some(at) = outcome.at_max() {
        text.push_str(&format!(
            "\nat {} msg/s: published {} msg/s, each consumer read {} msg/s, confirm p50 {} p99 {}, end-to-end p99 {}\n",
            thousands(at.rate),
            thousands(at.published_per_s as u64),
            thousands(at.consumed_per_s as u64),
            ms(at.confirm_p50_us),
            ms(at.confirm_p99_us),
            ms(at.end_to_end_p99_us)
        ));
    }
    text
}
