//! Pacing (`--rate`): spaces messages so a run publishes at most so many a second, from the
//! first second on: a batch larger than 10 ms of messages goes out in pieces.

use std::time::Duration;

use tokio::time::Instant;

/// Spaces batches so that at most `per_second` messages go out a second, on average since the
/// first: a batch waits until the messages before it are due.
pub struct Pace {
    started: Instant,
    per_second: f64,
    sent: u64,
}

impl Pace {
    pub fn new(per_second: f64) -> Self {
        Pace {
            started: Instant::now(),
            per_second,
            sent: 0,
        }
    }

    /// The most messages that may go out together: 10 ms of them at this rate (at least one),
    /// so a batch of 1,000 at `--rate 2` is not sent in one burst.
    pub fn most_at_once(&self) -> u64 {
        ((self.per_second / 100.0) as u64).max(1)
    }

    /// Waits until a batch of `count` may go out (`count` at most [`Pace::most_at_once`] for
    /// per-message pacing: the batch goes when its first message is due).
    pub async fn wait_for(&mut self, count: u64) {
        let since_start = Duration::try_from_secs_f64(self.sent as f64 / self.per_second)
            .unwrap_or(Duration::MAX);
        self.sent += count;
        tokio::time::sleep_until(deadline_from(self.started, since_start)).await;
    }
}

/// `timeout` from now, for `sleep_until`.
pub fn deadline_after(timeout: Duration) -> Instant {
    deadline_from(Instant::now(), timeout)
}

/// `start + wait`; a wait past what an `Instant` holds (a user's `--confirm-timeout
/// 18446744073709551615s`) is a century, forever in effect, where `Instant + Duration` panics.
fn deadline_from(start: Instant, wait: Duration) -> Instant {
    start
        .checked_add(wait)
        .or_else(|| start.checked_add(CENTURY))
        .unwrap_or(start)
}

const CENTURY: Duration = Duration::from_secs(100 * 365 * 86_400);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_past_what_an_instant_holds_is_far_not_a_panic() {
        let now = Instant::now();
        for huge in [Duration::MAX, Duration::from_secs(u64::MAX / 2)] {
            let deadline = deadline_from(now, huge);
            assert!(
                deadline >= now + Duration::from_secs(365 * 86_400),
                "{huge:?}"
            );
        }
        let second = deadline_from(now, Duration::from_secs(1));
        assert_eq!(second, now + Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn ten_messages_at_two_a_second_take_four_and_a_half_seconds() {
        let mut pace = Pace::new(2.0);
        assert_eq!(pace.most_at_once(), 1);
        let start = tokio::time::Instant::now();
        let mut sent_at = Vec::new();
        for _ in 0..10 {
            pace.wait_for(pace.most_at_once()).await;
            sent_at.push(start.elapsed().as_millis());
        }
        assert_eq!(sent_at, (0..10).map(|i| i * 500).collect::<Vec<u128>>());
        assert_eq!(Pace::new(100_000.0).most_at_once(), 1_000);
    }

    #[tokio::test(start_paused = true)]
    async fn batches_go_out_when_the_messages_before_them_are_due() {
        let mut pace = Pace::new(1_000.0);
        let start = tokio::time::Instant::now();
        pace.wait_for(500).await; // the first batch is due at once
        assert_eq!(start.elapsed(), Duration::ZERO);
        pace.wait_for(500).await; // due after the first 500 at 1,000/s
        assert!(
            start.elapsed() >= Duration::from_millis(499),
            "{:?}",
            start.elapsed()
        );
        pace.wait_for(1).await; // after 1,000 messages: one second
        assert!(
            start.elapsed() >= Duration::from_millis(999),
            "{:?}",
            start.elapsed()
        );
        assert!(
            start.elapsed() < Duration::from_millis(1_100),
            "{:?}",
            start.elapsed()
        );
    }
}
