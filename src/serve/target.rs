//! Where the gateway publishes: its stream through one `Publisher`, or a super stream's
//! partitions through the `PartitionedPublisher` (each update routed by its product id).

use std::time::Duration;

use futures::future::select_all;

use crate::error::Result;
use crate::input::NumberedUpdate;
use crate::publisher::{BatchReceipt, PublishOutcome, Publisher, PublisherStats};
use crate::superstream::publish::{total, PartitionedPublisher};

pub enum GatewayPublisher {
    Stream(Box<Publisher>),
    SuperStream(PartitionedPublisher),
}

impl GatewayPublisher {
    /// Every publisher's counters (one per partition of a super stream).
    pub fn stats(&self) -> Vec<PublisherStats> {
        match self {
            GatewayPublisher::Stream(publisher) => vec![publisher.stats()],
            GatewayPublisher::SuperStream(publisher) => publisher.stats(),
        }
    }

    /// Whether updates of `products` (one entry per update) fit under the in-flight bound (of
    /// the partitions they go to) now.
    pub fn has_room_for(&self, products: &[u64]) -> bool {
        match self {
            GatewayPublisher::Stream(publisher) => publisher.has_room(products.len() as u64),
            GatewayPublisher::SuperStream(publisher) => publisher.has_room_for(products),
        }
    }

    /// Hands `updates` over; the request is stored once every receipt settled.
    pub async fn send(
        &mut self,
        updates: Vec<NumberedUpdate>,
        stall_timeout: Duration,
    ) -> Result<Vec<BatchReceipt>> {
        match self {
            GatewayPublisher::Stream(publisher) => {
                Ok(vec![publisher.send(&updates, stall_timeout).await?])
            }
            GatewayPublisher::SuperStream(publisher) => {
                publisher.send_with_receipts(updates, stall_timeout).await
            }
        }
    }

    /// Replaces whichever connections were lost.
    pub async fn recover(&mut self) -> Result<()> {
        match self {
            GatewayPublisher::Stream(publisher) => publisher.recover().await,
            GatewayPublisher::SuperStream(publisher) => publisher.recover().await,
        }
    }

    /// Waits for the confirms; every publisher's outcome as one.
    pub async fn finish(&mut self, timeout: Duration) -> Result<PublishOutcome> {
        match self {
            GatewayPublisher::Stream(publisher) => publisher.finish(timeout).await,
            GatewayPublisher::SuperStream(publisher) => {
                Ok(total(&publisher.finish(timeout).await?))
            }
        }
    }

    pub async fn close(self) {
        match self {
            GatewayPublisher::Stream(publisher) => (*publisher).close().await,
            GatewayPublisher::SuperStream(publisher) => publisher.close().await,
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
