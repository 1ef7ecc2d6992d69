//! A generator of believable inventory updates: per-product stock that never goes negative,
//! reproducible from a seed, so benchmarks and tests can replay the same run.

use super::{InventoryEvent, InventoryUpdate, StockStatus};

const WAREHOUSES: [&str; 5] = ["AMS-1", "BER-2", "LYS-3", "MAD-4", "WAW-5"];

/// Produces a stream of consistent updates: each product keeps its own stock level, which every
/// event moves by its `quantity_delta` and which never drops below zero.
pub struct UpdateGenerator {
    rng: SplitMix64,
    stock_levels: Vec<u64>,
    next_seq: u64,
}

impl UpdateGenerator {
    /// `products` distinct products (at least 1), each starting with a random stock level;
    /// the same `seed` gives the same sequence of updates (timestamps aside).
    pub fn new(products: u64, seed: u64) -> Self {
        let mut rng = SplitMix64(seed);
        let stock_levels = (0..products.max(1)).map(|_| 20 + rng.below(181)).collect();
        UpdateGenerator {
            rng,
            stock_levels,
            next_seq: 0,
        }
    }

    /// The next update, stamped with `now_us` as its production time.
    pub fn next_update(&mut self, now_us: u64) -> InventoryUpdate {
        let index = self.rng.below(self.stock_levels.len() as u64) as usize;
        let stock = self.stock_levels[index];
        let roll = self.rng.below(100);
        let (event, delta) = if stock == 0 || roll < 20 {
            (InventoryEvent::Restocked, 10 + self.rng.below(91) as i64)
        } else if roll < 70 {
            (
                InventoryEvent::Sold,
                -((1 + self.rng.below(stock.min(5))) as i64),
            )
        } else if roll < 85 {
            (
                InventoryEvent::Reserved,
                -((1 + self.rng.below(stock.min(3))) as i64),
            )
        } else {
            // A stock count correction: anything from losing every unit to finding ten more.
            let delta = self.rng.below(stock + 11) as i64 - stock as i64;
            (InventoryEvent::Adjusted, delta)
        };
        let stock_level = stock
            .checked_add_signed(delta)
            .expect("delta never exceeds the stock");
        self.stock_levels[index] = stock_level;
        let product_id = index as u64 + 1;
        let seq = self.next_seq;
        self.next_seq += 1;
        InventoryUpdate {
            seq,
            product_id,
            sku: sku_of(product_id),
            warehouse: WAREHOUSES[index % WAREHOUSES.len()].to_string(),
            event,
            quantity_delta: delta,
            stock_level,
            status: StockStatus::from_stock_level(stock_level),
            produced_at_us: now_us,
        }
    }
}

/// `SKU-` and the product id, zero-padded to six digits: what `format!("SKU-{id:06}")` gives,
/// without `core::fmt` (which was ~5% of a compressed produce's CPU).
fn sku_of(product_id: u64) -> String {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(product_id);
    let mut sku = String::with_capacity(4 + digits.len().max(6));
    sku.push_str("SKU-");
    sku.extend(std::iter::repeat_n(
        '0',
        6usize.saturating_sub(digits.len()),
    ));
    sku.push_str(digits);
    sku
}

/// A tiny, well-known PRNG (Steele et al.'s SplitMix64): reproducible across platforms and
/// versions, which a seeded benchmark needs more than statistical perfection.
pub(super) struct SplitMix64(pub(super) u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (`bound` > 0).
    pub(super) fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skus_are_what_format_gives() {
        for id in [0, 1, 42, 999_999, 1_000_000, 123_456_789, u64::MAX] {
            assert_eq!(sku_of(id), format!("SKU-{id:06}"));
        }
    }

    #[test]
    fn stock_never_negative_and_deltas_add_up() {
        let mut generator = UpdateGenerator::new(7, 42);
        let mut levels = generator.stock_levels.clone();
        for expected_seq in 0..200_000 {
            let update = generator.next_update(1);
            assert_eq!(update.seq, expected_seq);
            let before = &mut levels[update.product_id as usize - 1];
            let after = before.checked_add_signed(update.quantity_delta).unwrap();
            assert_eq!(after, update.stock_level, "delta must move the stock level");
            assert_eq!(update.status, StockStatus::from_stock_level(after));
            *before = after;
        }
    }

    #[test]
    fn every_status_and_event_occurs() {
        let mut generator = UpdateGenerator::new(3, 1);
        let updates: Vec<_> = (0..50_000).map(|_| generator.next_update(0)).collect();
        for status in [
            StockStatus::InStock,
            StockStatus::LowStock,
            StockStatus::OutOfStock,
        ] {
            assert!(updates.iter().any(|u| u.status == status), "{status:?}");
        }
        for event in [
            InventoryEvent::Restocked,
            InventoryEvent::Sold,
            InventoryEvent::Reserved,
            InventoryEvent::Adjusted,
        ] {
            assert!(updates.iter().any(|u| u.event == event), "{event:?}");
        }
    }

    #[test]
    fn same_seed_same_updates() {
        let run = |seed| {
            let mut generator = UpdateGenerator::new(100, seed);
            (0..1000)
                .map(|_| generator.next_update(5))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(9), run(9));
        assert_ne!(run(9), run(10));
    }
}
