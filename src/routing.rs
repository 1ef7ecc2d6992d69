//! Super-stream routing, compatible with the Java and the official Rust clients: the partition
//! of an update is MurmurHash3 (x86, 32-bit) of its routing key's UTF-8 bytes (the `product_id`
//! written as a decimal string), seed 104729, taken unsigned, modulo the partition count. So
//! every update of one product lands in one partition, in order, whoever wrote it.

/// The seed the Java client (`HashRoutingStrategy`) and the Rust client use.
const SEED: u32 = 104_729;

/// MurmurHash3 x86 32-bit, from the `murmur3` crate the official Rust client uses too. (It
/// costs ~4.5 ns an update more than a hand-written copy did, 20.3 against 15.8 ns with the
/// decimal formatting: docs/BENCHMARKS.md, "Routing".)
pub fn murmur3_32(key: &[u8], seed: u32) -> u32 {
    // The crate reads the key through `io::Read`; reading from memory cannot fail.
    murmur3::murmur3_32(&mut std::io::Cursor::new(key), seed)
        .expect("reading a byte slice never fails")
}

/// The partition (0-based, in the super stream's partition order) a routing key goes to.
/// `partitions` must be at least 1.
pub fn partition_of(routing_key: &str, partitions: u32) -> u32 {
    murmur3_32(routing_key.as_bytes(), SEED) % partitions.max(1)
}

/// The partition of a product's updates.
pub fn partition_of_product(product_id: u64, partitions: u32) -> u32 {
    let mut digits = itoa::Buffer::new();
    partition_of(digits.format(product_id), partitions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_the_java_client_and_mmh3() {
        // Java's HashUtilsTest vectors, and Python mmh3.hash(key, 104729, signed=False).
        for (key, hash) in [
            ("hello", 1_321_743_225),
            ("brave", 3_825_276_426),
            ("new", 2_970_740_106),
            ("world", 2_453_398_188),
            ("1", 2_446_297_838),
            ("42", 3_939_580_941),
            ("1000", 3_023_327_377),
            ("123456", 3_486_497_238),
            ("", 3_329_588_566),
        ] {
            assert_eq!(murmur3_32(key.as_bytes(), SEED), hash, "{key}");
        }
    }

    #[test]
    fn products_route_like_the_reference() {
        for (product, partition) in [(1, 2), (42, 0), (1000, 1), (123_456, 0)] {
            assert_eq!(partition_of_product(product, 3), partition, "{product}");
        }
        assert_eq!(partition_of("anything", 1), 0);
    }
}
