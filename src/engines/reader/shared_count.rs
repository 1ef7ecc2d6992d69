//! A count shared by several readers: one consumer's readers of a super stream's partitions
//! read `--count` messages among them, and not one more. Each message a reader is about to hand
//! to its sink first takes a place under the count ([`SharedCount::claim`]), kept if the sink
//! counts the message and given back if it passes it over (another product); once every place
//! is taken by a counted message, every reader sharing the count stops, also those waiting for
//! a delivery ([`SharedCount::reached`]).

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;

/// `limit` messages to read among the readers that share this.
#[derive(Debug)]
pub struct SharedCount {
    limit: u64,
    /// Places taken: messages counted, and those a sink is deciding on right now.
    taken: AtomicU64,
    /// Messages the sinks counted.
    counted: AtomicU64,
    reached: Notify,
}

/// What a reader may do with the message it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Claim {
    /// Hand it to the sink, then [`SharedCount::settle`] the place.
    Got,
    /// The count is read: stop.
    Reached,
    /// Every place is taken, but not every one counted yet (another reader's sink is deciding
    /// on its message, which takes no time): ask again.
    Busy,
}

impl SharedCount {
    pub fn new(limit: u64) -> Self {
        SharedCount {
            limit,
            taken: AtomicU64::new(0),
            counted: AtomicU64::new(0),
            reached: Notify::new(),
        }
    }

    /// Takes a place for one message, if one is left.
    pub(super) fn claim(&self) -> Claim {
        let mut taken = self.taken.load(Ordering::Acquire);
        loop {
            if taken >= self.limit {
                return match self.is_reached() {
                    true => Claim::Reached,
                    false => Claim::Busy,
                };
            }
            match self.taken.compare_exchange_weak(
                taken,
                taken + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Claim::Got,
                Err(now) => taken = now,
            }
        }
    }

    /// The sink's answer for a message whose place was [`Claim::Got`]: counted, the place is
    /// kept (and the last place wakes every reader); passed over, it is given back.
    pub(super) fn settle(&self, counted: bool) {
        match counted {
            true => {
                if self.counted.fetch_add(1, Ordering::AcqRel) + 1 >= self.limit {
                    self.reached.notify_waiters();
                }
            }
            false => {
                self.taken.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }

    /// Whether the readers read the count among them.
    pub fn is_reached(&self) -> bool {
        self.counted.load(Ordering::Acquire) >= self.limit
    }

    /// Resolves once the count is read (at once if it is).
    pub(super) async fn reached(&self) {
        loop {
            let notified = self.reached.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the check: a count reached in between still wakes us.
            notified.as_mut().enable();
            if self.is_reached() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn places_are_kept_when_counted_and_given_back_when_passed_over() {
        let count = SharedCount::new(2);
        assert_eq!(count.claim(), Claim::Got);
        count.settle(false);
        assert_eq!(count.claim(), Claim::Got);
        count.settle(true);
        assert_eq!(count.claim(), Claim::Got);
        // The last place is taken and its message not yet counted: another reader waits.
        assert_eq!(count.claim(), Claim::Busy);
        assert!(!count.is_reached());
        count.settle(true);
        assert!(count.is_reached());
        assert_eq!(count.claim(), Claim::Reached);
    }

    /// Readers on several threads race for the places: exactly the count is read among them.
    #[test]
    fn racing_readers_count_exactly_the_limit() {
        let count = Arc::new(SharedCount::new(10_000));
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let count = count.clone();
                std::thread::spawn(move || {
                    let mut counted = 0u64;
                    let mut message = 0u64;
                    loop {
                        match count.claim() {
                            Claim::Reached => return counted,
                            Claim::Busy => std::thread::yield_now(),
                            Claim::Got => {
                                // Every third message is another product's.
                                message += 1;
                                let counts = !message.is_multiple_of(3);
                                count.settle(counts);
                                counted += u64::from(counts);
                            }
                        }
                    }
                })
            })
            .collect();
        let read: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
        assert_eq!(read, 10_000);
    }

    #[tokio::test]
    async fn a_waiting_reader_wakes_when_the_count_is_read() {
        let count = Arc::new(SharedCount::new(1));
        let waiting = tokio::spawn({
            let count = count.clone();
            async move { count.reached().await }
        });
        tokio::task::yield_now().await;
        assert_eq!(count.claim(), Claim::Got);
        count.settle(true);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("woken")
            .unwrap();
    }
}
