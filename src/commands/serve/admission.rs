//! Which requests the gateway admits while earlier ones wait for confirms, and how its
//! publisher (one per partition of its target) takes the coalescer's groups.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::select_all;

use super::coalesce::{GroupPublisher, Handed, Hold};
use crate::engines::publisher::{OnHandedBy, PartitionedPublisher, PublisherStats};
use crate::error::InvError;
use crate::model::NumberedUpdate;
use crate::routing::partition_of_product;

impl GroupPublisher for PartitionedPublisher {
    async fn send_groups(
        &mut self,
        groups: Vec<Vec<NumberedUpdate>>,
        stall_timeout: Duration,
        on_handed: OnHandedBy<'_>,
    ) -> (Vec<Handed>, Option<InvError>) {
        let (fates, error) =
            PartitionedPublisher::send_groups(self, groups, stall_timeout, on_handed).await;
        (fates.into_iter().map(Handed::from_parts).collect(), error)
    }
}

/// How a request's updates spread over the publishers.
enum Routing {
    /// One publisher (a stream).
    One,
    /// A super stream's partitions, by a hash of the product id.
    ByProduct,
    /// Not known before sending: every partition must have room for all of them.
    Unknown,
}

/// Admits a request only if its updates fit under the in-flight bound of each publisher they go
/// to, counting the updates admitted and not yet handed over (queued for the coalescer). So the
/// queue never holds more than the bound, what it hands over finds in-flight room, and past the
/// bound requests get 503 at once, as they did before requests were queued.
#[derive(Clone)]
pub struct Admission(Arc<AdmissionState>);

struct AdmissionState {
    stats: Vec<PublisherStats>,
    /// Per publisher: updates admitted and not yet handed over.
    queued: Mutex<Vec<u64>>,
    routing: Routing,
}

/// A request's place under the bound, until it is handed over (or given up): dropping it gives
/// the place back.
pub struct Admitted {
    state: Arc<AdmissionState>,
    parts: Vec<u64>,
}

impl Admission {
    /// Admits requests against `publisher`'s in-flight bounds.
    pub fn of(publisher: &PartitionedPublisher) -> Admission {
        let stats = publisher.stats();
        let routing = match (stats.len(), publisher.routes_by_product()) {
            (1, _) => Routing::One,
            (_, true) => Routing::ByProduct,
            (_, false) => Routing::Unknown,
        };
        Admission(Arc::new(AdmissionState {
            queued: Mutex::new(vec![0; stats.len()]),
            stats,
            routing,
        }))
    }

    /// Reserves room for updates of `products` (one entry per update), or `None` if they do not
    /// fit now.
    pub fn try_admit(&self, products: &[u64]) -> Option<Admitted> {
        let state = &self.0;
        let publishers = state.stats.len();
        let mut parts = vec![0u64; publishers];
        match state.routing {
            Routing::ByProduct => {
                for product in products {
                    parts[partition_of_product(*product, publishers as u32) as usize] += 1;
                }
            }
            Routing::One | Routing::Unknown => parts.fill(products.len() as u64),
        }
        let mut queued = state.lock();
        let fits =
            state
                .stats
                .iter()
                .zip(queued.iter())
                .zip(&parts)
                .all(|((stats, queued), part)| {
                    *part == 0 || stats.in_flight() + queued + part <= stats.max_in_flight()
                });
        if !fits {
            return None;
        }
        for (queued, part) in queued.iter_mut().zip(&parts) {
            *queued += part;
        }
        drop(queued);
        Some(Admitted {
            state: state.clone(),
            parts,
        })
    }

    /// Updates admitted and not yet handed over, all publishers together.
    pub fn queued(&self) -> u64 {
        self.0.lock().iter().sum()
    }
}

impl AdmissionState {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u64>> {
        self.queued.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Hold for Admitted {
    /// The updates went out and hold in-flight permits now: their queued place goes back.
    fn handed(&mut self, publisher: usize, count: u64) {
        let Some(part) = self.parts.get_mut(publisher) else {
            return;
        };
        let count = count.min(*part);
        *part -= count;
        let mut queued = self.state.lock();
        queued[publisher] = queued[publisher].saturating_sub(count);
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut queued = self.state.lock();
        for (queued, part) in queued.iter_mut().zip(&self.parts) {
            *queued = queued.saturating_sub(*part);
        }
    }
}

/// Resolves when any of the publishers' connections is lost.
pub async fn any_lost(stats: &[PublisherStats]) {
    if stats.is_empty() {
        return std::future::pending().await;
    }
    select_all(stats.iter().map(|s| Box::pin(s.lost()))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(stats: Vec<PublisherStats>, routing: Routing) -> Admission {
        Admission(Arc::new(AdmissionState {
            queued: Mutex::new(vec![0; stats.len()]),
            stats,
            routing,
        }))
    }

    #[test]
    fn queued_updates_count_against_the_bound_until_they_go_out() {
        let admission = admission(vec![PublisherStats::for_tests(10, 0)], Routing::One);
        let mut first = admission.try_admit(&[1; 6]).expect("6 of 10 fit");
        assert!(admission.try_admit(&[1; 5]).is_none(), "6 queued + 5 > 10");
        // 4 of the 6 went out: they count as in flight now (the stand-in's permits stay
        // untaken), no longer as queued, so 8 more fit.
        first.handed(0, 4);
        assert_eq!(admission.queued(), 2);
        let second = admission.try_admit(&[1; 8]).expect("2 queued + 8 fit");
        drop(first);
        assert_eq!(
            admission.queued(),
            8,
            "dropping gives back only what is left"
        );
        drop(second);
        assert_eq!(admission.queued(), 0);
    }

    #[test]
    fn in_flight_updates_count_against_the_bound() {
        let admission = admission(vec![PublisherStats::for_tests(10, 7)], Routing::One);
        assert!(
            admission.try_admit(&[1; 4]).is_none(),
            "7 in flight + 4 > 10"
        );
        assert!(admission.try_admit(&[1; 3]).is_some());
    }

    #[test]
    fn a_super_stream_request_is_counted_per_partition() {
        let stats = vec![
            PublisherStats::for_tests(4, 0),
            PublisherStats::for_tests(4, 0),
        ];
        let admission = admission(stats, Routing::ByProduct);
        let products: Vec<u64> = (1..=6).collect();
        let per_partition = |p: u32| {
            products
                .iter()
                .filter(|id| partition_of_product(**id, 2) == p)
                .count() as u64
        };
        let mut admitted = admission.try_admit(&products).expect("fits");
        assert_eq!(admission.queued(), 6);
        admitted.handed(1, per_partition(1));
        assert_eq!(admission.queued(), per_partition(0));
        // More than a partition holds is capped at what the request had there.
        admitted.handed(0, 100);
        assert_eq!(admission.queued(), 0);
    }
}
