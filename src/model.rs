//! The inventory update: what the retailer's inventory service emits, its message body (written
//! and read by hand, checked against serde_json), and the clock that stamps it; the generator of
//! believable ones is in [`generate`].

use serde::{Deserialize, Serialize};

mod generate;
pub use generate::UpdateGenerator;

/// At or below this many units a product is `low_stock`.
pub const LOW_STOCK_THRESHOLD: u64 = 10;

/// The MIME type every update is published with, so any consumer knows how to read the body.
pub const CONTENT_TYPE: &str = "application/json";

/// An update and its publishing id, the unit every engine works in: the id is the update's
/// `seq + 1` when generated and its 1-based line number when read from input, so a re-run that
/// makes or reads the same updates gives them the same ids and the broker drops what it has.
pub type NumberedUpdate = (u64, InventoryUpdate);

/// One change to one product's stock, as it travels through the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryUpdate {
    /// Position of this update in the run that produced it, from 0: lets readers check for gaps.
    pub seq: u64,
    pub product_id: u64,
    pub sku: String,
    pub warehouse: String,
    pub event: InventoryEvent,
    /// Units added (positive) or removed (negative) by this event.
    pub quantity_delta: i64,
    /// Units in stock after this event.
    pub stock_level: u64,
    pub status: StockStatus,
    /// Wall-clock time of creation, microseconds since the Unix epoch: readers derive
    /// end-to-end latency (or, on a replay, the message's age) from it.
    pub produced_at_us: u64,
}

/// What happened to the stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InventoryEvent {
    Restocked,
    Sold,
    Reserved,
    Adjusted,
}

impl InventoryEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            InventoryEvent::Restocked => "restocked",
            InventoryEvent::Sold => "sold",
            InventoryEvent::Reserved => "reserved",
            InventoryEvent::Adjusted => "adjusted",
        }
    }
}

/// Availability as shoppers see it, always derived from the stock level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StockStatus {
    InStock,
    LowStock,
    OutOfStock,
}

impl StockStatus {
    /// Reads a status as people write it: `in stock`, `in-stock`, `IN_STOCK`, ...
    pub fn parse_loose(text: &str) -> Option<Self> {
        match text
            .trim()
            .to_ascii_lowercase()
            .replace([' ', '-'], "_")
            .as_str()
        {
            "in_stock" => Some(StockStatus::InStock),
            "low_stock" => Some(StockStatus::LowStock),
            "out_of_stock" => Some(StockStatus::OutOfStock),
            _ => None,
        }
    }

    /// The lowest stock level that has this status: what a status-only notification records.
    pub fn representative_stock_level(self) -> u64 {
        match self {
            StockStatus::OutOfStock => 0,
            StockStatus::LowStock => 1,
            StockStatus::InStock => LOW_STOCK_THRESHOLD + 1,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StockStatus::InStock => "in_stock",
            StockStatus::LowStock => "low_stock",
            StockStatus::OutOfStock => "out_of_stock",
        }
    }

    pub fn from_stock_level(stock_level: u64) -> Self {
        match stock_level {
            0 => StockStatus::OutOfStock,
            n if n <= LOW_STOCK_THRESHOLD => StockStatus::LowStock,
            _ => StockStatus::InStock,
        }
    }
}

impl InventoryUpdate {
    /// Serializes the update as the JSON body of a stream message, reusing `buf`'s allocation.
    pub fn encode_into(&self, buf: &mut Vec<u8>) {
        buf.clear();
        self.append_json(buf);
    }

    /// Appends the JSON body to what `buf` holds: the bytes `serde_json` writes, written by
    /// hand because this runs once per message published and serde's generic path (every
    /// string escaped byte by byte) was a third of the publisher's time.
    pub fn append_json(&self, buf: &mut Vec<u8>) {
        let mut numbers = itoa::Buffer::new();
        buf.extend_from_slice(b"{\"seq\":");
        buf.extend_from_slice(numbers.format(self.seq).as_bytes());
        buf.extend_from_slice(b",\"product_id\":");
        buf.extend_from_slice(numbers.format(self.product_id).as_bytes());
        buf.extend_from_slice(b",\"sku\":");
        append_json_string(buf, &self.sku);
        buf.extend_from_slice(b",\"warehouse\":");
        append_json_string(buf, &self.warehouse);
        buf.extend_from_slice(b",\"event\":\"");
        buf.extend_from_slice(self.event.as_str().as_bytes());
        buf.extend_from_slice(b"\",\"quantity_delta\":");
        buf.extend_from_slice(numbers.format(self.quantity_delta).as_bytes());
        buf.extend_from_slice(b",\"stock_level\":");
        buf.extend_from_slice(numbers.format(self.stock_level).as_bytes());
        buf.extend_from_slice(b",\"status\":\"");
        buf.extend_from_slice(self.status.as_str().as_bytes());
        buf.extend_from_slice(b"\",\"produced_at_us\":");
        buf.extend_from_slice(numbers.format(self.produced_at_us).as_bytes());
        buf.push(b'}');
    }

    /// Parses a message body; `None` when the body is not an inventory update. Bodies laid out
    /// exactly as `append_json` writes them (every invstream message) take a direct path,
    /// several times faster than serde's; anything else goes through `serde_json`.
    pub fn decode(body: &[u8]) -> Option<Self> {
        decode_own_layout(body).or_else(|| serde_json::from_slice(body).ok())
    }
}

/// Reads a body with `append_json`'s field order and no escapes or whitespace; `None` at the
/// first difference (the caller then asks serde_json, which accepts any valid layout).
fn decode_own_layout(body: &[u8]) -> Option<InventoryUpdate> {
    let mut cursor = JsonCursor { rest: body };
    cursor.literal(b"{\"seq\":")?;
    let seq = cursor.unsigned()?;
    cursor.literal(b",\"product_id\":")?;
    let product_id = cursor.unsigned()?;
    cursor.literal(b",\"sku\":")?;
    let sku = cursor.plain_string()?.to_string();
    cursor.literal(b",\"warehouse\":")?;
    let warehouse = cursor.plain_string()?.to_string();
    cursor.literal(b",\"event\":")?;
    let event = match cursor.plain_string()? {
        "restocked" => InventoryEvent::Restocked,
        "sold" => InventoryEvent::Sold,
        "reserved" => InventoryEvent::Reserved,
        "adjusted" => InventoryEvent::Adjusted,
        _ => return None,
    };
    cursor.literal(b",\"quantity_delta\":")?;
    let quantity_delta = cursor.signed()?;
    cursor.literal(b",\"stock_level\":")?;
    let stock_level = cursor.unsigned()?;
    cursor.literal(b",\"status\":")?;
    let status = match cursor.plain_string()? {
        "in_stock" => StockStatus::InStock,
        "low_stock" => StockStatus::LowStock,
        "out_of_stock" => StockStatus::OutOfStock,
        _ => return None,
    };
    cursor.literal(b",\"produced_at_us\":")?;
    let produced_at_us = cursor.unsigned()?;
    cursor.literal(b"}")?;
    cursor.rest.is_empty().then_some(InventoryUpdate {
        seq,
        product_id,
        sku,
        warehouse,
        event,
        quantity_delta,
        stock_level,
        status,
        produced_at_us,
    })
}

struct JsonCursor<'a> {
    rest: &'a [u8],
}

impl<'a> JsonCursor<'a> {
    fn literal(&mut self, expected: &[u8]) -> Option<()> {
        self.rest = self.rest.strip_prefix(expected)?;
        Some(())
    }

    /// Digits without a leading zero (JSON's rule), within u64.
    fn unsigned(&mut self) -> Option<u64> {
        let digits = self.rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let (number, rest) = self.rest.split_at(digits);
        if digits == 0 || (digits > 1 && number[0] == b'0') {
            return None;
        }
        let value = number.iter().try_fold(0u64, |acc, d| {
            acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })?;
        self.rest = rest;
        Some(value)
    }

    fn signed(&mut self) -> Option<i64> {
        match self.rest.strip_prefix(b"-") {
            Some(rest) => {
                self.rest = rest;
                // serde_json reads "-0" as a float, not an integer: leave it to serde.
                let magnitude = self.unsigned().filter(|m| *m != 0)?;
                0i64.checked_sub_unsigned(magnitude)
            }
            None => i64::try_from(self.unsigned()?).ok(),
        }
    }

    /// A string without escapes or control characters, borrowed.
    fn plain_string(&mut self) -> Option<&'a str> {
        let rest = self.rest.strip_prefix(b"\"")?;
        let end = rest.iter().position(|b| *b == b'"')?;
        let (text, rest) = rest.split_at(end);
        if text.iter().any(|b| *b == b'\\' || *b < 0x20) {
            return None;
        }
        self.rest = &rest[1..];
        std::str::from_utf8(text).ok()
    }
}

/// A JSON string: copied as it is when nothing in it needs escaping (the usual case),
/// otherwise escaped by `serde_json`.
fn append_json_string(buf: &mut Vec<u8>, value: &str) {
    if value.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        serde_json::to_writer(&mut *buf, value).expect("a string always serializes");
    } else {
        buf.push(b'"');
        buf.extend_from_slice(value.as_bytes());
        buf.push(b'"');
    }
}

/// Why a line or array element that is not a JSON object is not an update.
const NOT_AN_OBJECT: &str = "not a JSON object: an update is {\"product_id\": …, \"sku\": …, \"warehouse\": …, \"event\": …, \"quantity_delta\": …, \"stock_level\": …}";

/// serde's message in the user's words: no Rust type names, and a number out of range says the
/// range.
fn plain_serde_message(message: &str) -> String {
    message
        .replace("struct InputUpdate", "an inventory update object")
        .replace(
            "expected u64",
            "expected a whole number from 0 to 18446744073709551615",
        )
        .replace(
            "expected i64",
            "expected a whole number from -9223372036854775808 to 9223372036854775807",
        )
}

/// An update as users hand it over (a line of NDJSON): `seq`, `status` and `produced_at_us`
/// may be left out and are then filled in. Unknown fields are rejected rather than dropped.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputUpdate {
    seq: Option<u64>,
    product_id: u64,
    sku: String,
    warehouse: String,
    event: InventoryEvent,
    quantity_delta: i64,
    stock_level: u64,
    status: Option<StockStatus>,
    produced_at_us: Option<u64>,
}

impl InventoryUpdate {
    /// Parses and checks one line of user input. `default_seq` is used when the line has no
    /// `seq`; `now_us` when it has no `produced_at_us`. The error says what is wrong.
    pub fn from_input(line: &str, default_seq: u64, now_us: u64) -> Result<Self, String> {
        // serde reads a struct from an array by position too: an update must be an object.
        if line.trim_start().starts_with('[') {
            return Err(NOT_AN_OBJECT.to_string());
        }
        let input: InputUpdate = serde_json::from_str(line).map_err(|e| {
            // serde_json counts lines within this one line: the column is what helps.
            let message = plain_serde_message(&e.to_string());
            match message.rfind(" at line 1 column ") {
                Some(at) => format!("{} (column {})", &message[..at], &message[at + 18..]),
                None => message,
            }
        })?;
        Self::complete(input, default_seq, now_us)
    }

    /// Like `from_input`, for an update already parsed as JSON (an element of an array);
    /// also says whether it carried its own `seq`.
    pub fn from_input_value(
        value: serde_json::Value,
        default_seq: u64,
        now_us: u64,
    ) -> Result<(Self, bool), String> {
        if !value.is_object() {
            return Err(NOT_AN_OBJECT.to_string());
        }
        let input: InputUpdate =
            serde_json::from_value(value).map_err(|e| plain_serde_message(&e.to_string()))?;
        let had_seq = input.seq.is_some();
        Self::complete(input, default_seq, now_us).map(|update| (update, had_seq))
    }

    fn complete(input: InputUpdate, default_seq: u64, now_us: u64) -> Result<Self, String> {
        let derived = StockStatus::from_stock_level(input.stock_level);
        if let Some(status) = input.status {
            if status != derived {
                return Err(format!(
                    "status {} does not match stock_level {} ({})",
                    status.as_str(),
                    input.stock_level,
                    derived.as_str()
                ));
            }
        }
        if input.sku.is_empty() || input.warehouse.is_empty() {
            return Err("sku and warehouse must not be empty".to_string());
        }
        Ok(InventoryUpdate {
            seq: input.seq.unwrap_or(default_seq),
            product_id: input.product_id,
            sku: input.sku,
            warehouse: input.warehouse,
            event: input.event,
            quantity_delta: input.quantity_delta,
            stock_level: input.stock_level,
            status: derived,
            produced_at_us: input.produced_at_us.unwrap_or(now_us),
        })
    }
}

/// Microseconds since the Unix epoch, the unit of `produced_at_us`.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The wall clock for stamping messages read in a burst: read once per `READS_PER_CLOCK` uses
/// (a clock read per message was ~10% of consume's CPU). At millions of messages a second the
/// stamp is off by under 100 µs; call `refresh` after anything that takes time.
#[derive(Debug, Default)]
pub struct BurstClock {
    now_us: u64,
    uses_left: u32,
}

const READS_PER_CLOCK: u32 = 256;

impl BurstClock {
    pub fn now_us(&mut self) -> u64 {
        if self.uses_left == 0 {
            self.now_us = now_us();
            self.uses_left = READS_PER_CLOCK;
        }
        self.uses_left -= 1;
        self.now_us
    }

    /// The next `now_us` reads the clock.
    pub fn refresh(&mut self) {
        self.uses_left = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_errors_speak_json_not_rust_and_arrays_are_not_updates() {
        let array = r#"[1, "S", "W", "sold", -1, 3]"#;
        let e = InventoryUpdate::from_input(array, 0, 1).unwrap_err();
        assert!(e.starts_with("not a JSON object"), "{e}");
        let e = InventoryUpdate::from_input_value(serde_json::json!([1, "S"]), 0, 1).unwrap_err();
        assert!(e.starts_with("not a JSON object"), "{e}");
        let e = InventoryUpdate::from_input(r#""just a string""#, 0, 1).unwrap_err();
        assert!(e.contains("expected an inventory update object"), "{e}");
        let huge = r#"{"product_id":123456789012345678901,"sku":"S","warehouse":"W","event":"sold","quantity_delta":-1,"stock_level":3}"#;
        let e = InventoryUpdate::from_input(huge, 0, 1).unwrap_err();
        assert!(e.contains("18446744073709551615"), "{e}");
        let e = InventoryUpdate::from_input_value(serde_json::json!({"product_id": 1}), 0, 1)
            .unwrap_err();
        assert!(!e.contains("InputUpdate") && !e.contains("struct"), "{e}");
        for text in ["{}", r#"{"product_id":"x"}"#] {
            let e = InventoryUpdate::from_input(text, 0, 1).unwrap_err();
            assert!(!e.contains("InputUpdate") && !e.contains("u64"), "{e}");
        }
    }

    #[test]
    fn a_burst_clock_reads_the_clock_once_per_burst_and_after_refresh() {
        let mut clock = BurstClock::default();
        let first = clock.now_us();
        assert!(first > 0);
        std::thread::sleep(std::time::Duration::from_millis(2));
        for _ in 1..READS_PER_CLOCK {
            assert_eq!(clock.now_us(), first);
        }
        let second = clock.now_us();
        assert!(second > first, "a new burst reads the clock");
        std::thread::sleep(std::time::Duration::from_millis(2));
        clock.refresh();
        assert!(clock.now_us() > second);
    }

    #[test]
    fn status_follows_stock_level() {
        assert_eq!(StockStatus::from_stock_level(0), StockStatus::OutOfStock);
        assert_eq!(StockStatus::from_stock_level(1), StockStatus::LowStock);
        assert_eq!(
            StockStatus::from_stock_level(LOW_STOCK_THRESHOLD),
            StockStatus::LowStock
        );
        assert_eq!(
            StockStatus::from_stock_level(LOW_STOCK_THRESHOLD + 1),
            StockStatus::InStock
        );
    }

    #[test]
    fn hand_written_json_is_what_serde_json_writes() {
        let mut generator = UpdateGenerator::new(1_000, 11);
        let mut updates: Vec<InventoryUpdate> = (0..1_000)
            .map(|_| generator.next_update(now_us()))
            .collect();
        let mut odd = updates[0].clone();
        odd.sku = "quote\" back\\slash \u{1} tab\t nl\n \u{7f} é 漢字 🦀".to_string();
        odd.warehouse = String::new();
        odd.quantity_delta = i64::MIN;
        odd.stock_level = u64::MAX;
        odd.seq = u64::MAX;
        updates.push(odd);
        for update in &updates {
            let mut ours = Vec::new();
            update.append_json(&mut ours);
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(update).unwrap()
            );
        }
    }

    #[test]
    fn the_direct_decoder_agrees_with_serde_json() {
        let mut generator = UpdateGenerator::new(1_000, 13);
        let mut bodies: Vec<Vec<u8>> = (0..500)
            .map(|_| serde_json::to_vec(&generator.next_update(now_us())).unwrap())
            .collect();
        let mut extreme = generator.next_update(u64::MAX);
        (extreme.quantity_delta, extreme.seq) = (i64::MIN, u64::MAX);
        bodies.push(serde_json::to_vec(&extreme).unwrap());
        extreme.sku = "needs \"escaping\"".to_string();
        bodies.push(serde_json::to_vec(&extreme).unwrap());
        for body in &bodies {
            let expected: InventoryUpdate = serde_json::from_slice(body).unwrap();
            assert_eq!(InventoryUpdate::decode(body), Some(expected));
        }
        // invstream's own layout takes the fast path (decode() alone would pass through the
        // serde_json fallback even if the fast path refused everything); only the body with
        // escapes is left to serde_json.
        let (escaped, own_layout) = bodies.split_last().unwrap();
        assert_eq!(decode_own_layout(escaped), None);
        for body in own_layout {
            let expected: InventoryUpdate = serde_json::from_slice(body).unwrap();
            assert_eq!(
                decode_own_layout(body),
                Some(expected),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        // Every body with one byte changed: whatever the direct path accepts, serde_json reads
        // the same way; what it refuses still gets serde's answer.
        let mut rng = super::generate::SplitMix64(99);
        for body in bodies.iter().take(100) {
            for _ in 0..200 {
                let mut mutated = body.clone();
                let at = rng.below(mutated.len() as u64) as usize;
                let replacements = b" 0-9\"\\,:{}aeZ\x01\xff";
                mutated[at] = replacements[rng.below(replacements.len() as u64) as usize];
                let serde: Option<InventoryUpdate> = serde_json::from_slice(&mutated).ok();
                if let Some(direct) = decode_own_layout(&mutated) {
                    assert_eq!(Some(direct), serde, "{}", String::from_utf8_lossy(&mutated));
                }
                assert_eq!(InventoryUpdate::decode(&mutated), serde);
            }
        }
    }

    #[test]
    fn json_round_trip_and_field_names() {
        let update = UpdateGenerator::new(10, 3).next_update(1_700_000_000_000_000);
        let mut body = Vec::new();
        update.encode_into(&mut body);
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        for key in [
            "seq",
            "product_id",
            "sku",
            "warehouse",
            "event",
            "quantity_delta",
            "stock_level",
            "status",
            "produced_at_us",
        ] {
            assert!(value.get(key).is_some(), "missing {key}");
        }
        assert_eq!(InventoryUpdate::decode(&body), Some(update));
    }

    #[test]
    fn input_lines_are_checked_and_completed() {
        let line = r#"{"product_id":7,"sku":"SKU-7","warehouse":"AMS-1","event":"sold","quantity_delta":-1,"stock_level":3}"#;
        let update = InventoryUpdate::from_input(line, 41, 99).unwrap();
        assert_eq!((update.seq, update.produced_at_us), (41, 99));
        assert_eq!(update.status, StockStatus::LowStock);
        let with_seq = line.replace("{", r#"{"seq":5,"status":"low_stock","#);
        assert_eq!(
            InventoryUpdate::from_input(&with_seq, 41, 99).unwrap().seq,
            5
        );
        for (bad, reason) in [
            ("not json", "expected"),
            (r#"{"product_id":7}"#, "missing field"),
            (&line.replace("sold", "stolen"), "unknown variant"),
            (&line.replace("{", r#"{"colour":"red","#), "unknown field"),
            (
                &line.replace("{", r#"{"status":"in_stock","#),
                "does not match",
            ),
            (
                &line.replace(r#""quantity_delta":-1"#, r#""quantity_delta":"minus one""#),
                "invalid type",
            ),
        ] {
            let err = InventoryUpdate::from_input(bad, 0, 0).unwrap_err();
            assert!(err.contains(reason), "{bad}: {err}");
        }
    }

    #[test]
    fn foreign_bodies_are_not_updates() {
        assert_eq!(InventoryUpdate::decode(b"hello"), None);
        assert_eq!(InventoryUpdate::decode(br#"{"product_id": "1"}"#), None);
    }
}
