//! The message format. Inventory updates written straight into stream entry bytes, in exactly
//! the AMQP 1.0 layout that [`to_message`] and the client's encoder give, but
//! without building a `Message` (a body, a properties struct, a map of three strings) per
//! update; and read back the same way ([`MessageView`]: the body and one property, without
//! decoding the rest). Publishing and reading spend most of their time per message, so this is
//! where a copy or an allocation per message counts.

use rabbitmq_stream_client::types::{CompressionType, Message, SimpleValue, SubEntryBatch};
use rabbitmq_stream_protocol::commands::publish::append_entry;

use crate::model::NumberedUpdate;
use crate::model::{InventoryUpdate, CONTENT_TYPE};

/// Which properties a message carries beside its JSON body (the body holds the whole update
/// either way). Every byte of a message is work for the stream's one writer process on the
/// broker: at 1,000,000 updates the lean layout published ~6% faster than the full one
/// (docs/BENCHMARKS.md, "The message layout").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum MessageProperties {
    /// The `producer` application property (`consume --verify` checks `seq` per producer); with
    /// --filter-values also `product_id`, for other clients' post-filters
    ///
    /// The default.
    #[default]
    Lean,
    /// Also content type application/json and the application properties `product_id` and
    /// `event` on every message, for readers that route on them without parsing the body
    Full,
}

/// Builds the stream message for an update: JSON body and `properties` (with `filter_values`,
/// the product id a post-filter reads), through the client's own encoder.
/// Publishing ids start at 1 (the broker reads 0 as "nothing stored yet"): `seq + 1` for
/// generated updates, the line number for input, so a named producer's last stored id is also
/// how many updates (or lines) it has stored.
pub fn to_message(
    update: &InventoryUpdate,
    producer: &str,
    publishing_id: u64,
    properties: MessageProperties,
    filter_values: bool,
) -> Message {
    let mut body = Vec::with_capacity(256);
    update.encode_into(&mut body);
    let mut builder = Message::builder().body(body).publishing_id(publishing_id);
    let full = properties == MessageProperties::Full;
    if full {
        builder = builder
            .properties()
            .content_type(CONTENT_TYPE)
            .message_builder();
    }
    let product_id = update.product_id.to_string();
    let carried = properties.application(
        filter_values,
        [product_id.as_str(), update.event.as_str(), producer],
    );
    carried
        .fold(
            builder.application_properties(),
            |application, (key, value)| application.insert(key, value),
        )
        .message_builder()
        .build()
}

impl MessageProperties {
    /// The application properties a message carries, in the order they are written, from the
    /// values of `[product_id, event, producer]`: the product id with `Full` or filter values
    /// (a post-filter reads it), the event with `Full`, the producer always. One rule for the
    /// client's encoder ([`to_message`]) and ours ([`EntryEncoder`]).
    fn application<T: Copy>(
        self,
        filter_values: bool,
        [product_id, event, producer]: [T; 3],
    ) -> impl Iterator<Item = (&'static str, T)> + Clone {
        let full = self == MessageProperties::Full;
        [
            (full || filter_values, "product_id", product_id),
            (full, "event", event),
            (true, PRODUCER_PROPERTY, producer),
        ]
        .into_iter()
        .filter(|(carried, _, _)| *carried)
        .map(|(_, key, value)| (key, value))
    }
}

/// The application property naming the producer of a message: `consume --verify` checks `seq`
/// per producer.
pub const PRODUCER_PROPERTY: &str = "producer";

/// The stream filter value of a message: its `product_id` application property.
pub fn product_filter_value(message: &Message) -> String {
    match message
        .application_properties()
        .and_then(|properties| properties.get("product_id"))
    {
        Some(SimpleValue::String(product_id)) => product_id.clone(),
        _ => String::new(),
    }
}

/// AMQP 1.0 section descriptors (`0x00 0x53 code`: a small-ulong described type).
const PROPERTIES: [u8; 3] = [0x00, 0x53, 0x73];
const APPLICATION_PROPERTIES: [u8; 3] = [0x00, 0x53, 0x74];
const DATA: [u8; 3] = [0x00, 0x53, 0x75];
const DESCRIBED: u8 = 0x00;
const SMALL_ULONG: u8 = 0x53;
const ULONG: u8 = 0x80;
const SYM32: u8 = 0xb3;
const NULL: u8 = 0x40;
const LIST8: u8 = 0xc0;
const MAP8: u8 = 0xc1;
const MAP32: u8 = 0xd1;
const VBIN8: u8 = 0xa0;
const VBIN32: u8 = 0xb0;
const STR8: u8 = 0xa1;
const STR32: u8 = 0xb1;
const SYM8: u8 = 0xa3;
/// `content-type` is the 7th field of the properties list; the six before it are absent.
const FIELDS_BEFORE_CONTENT_TYPE: usize = 6;

/// Writes updates as AMQP messages; keeps its scratch buffers between calls.
#[derive(Default)]
pub struct EntryEncoder {
    properties: MessageProperties,
    body: Vec<u8>,
    digits: Vec<u8>,
    message: Vec<u8>,
}

/// Publish frame layout with a filter value per entry (RabbitMQ 3.13+).
pub const WITH_FILTER_VALUES: u16 = 2;
/// Publish frame layout without.
pub const WITHOUT_FILTER_VALUES: u16 = 1;

impl EntryEncoder {
    /// An encoder of messages with `properties`.
    pub fn new(properties: MessageProperties) -> Self {
        EntryEncoder {
            properties,
            ..EntryEncoder::default()
        }
    }

    /// The properties its messages carry.
    pub fn properties(&self) -> MessageProperties {
        self.properties
    }

    /// Appends `update` as one AMQP message (properties, application properties, JSON body),
    /// as [`to_message`] lays it out. Returns the body's length.
    pub fn append_message(
        &mut self,
        update: &InventoryUpdate,
        producer: &str,
        filter_values: bool,
        out: &mut Vec<u8>,
    ) -> usize {
        self.body.clear();
        update.append_json(&mut self.body);
        self.digits.clear();
        self.digits
            .extend_from_slice(itoa::Buffer::new().format(update.product_id).as_bytes());

        let full = self.properties == MessageProperties::Full;
        if full {
            out.extend_from_slice(&PROPERTIES);
            let list_size = 1 + FIELDS_BEFORE_CONTENT_TYPE + 2 + CONTENT_TYPE.len();
            out.extend_from_slice(&[LIST8, list_size as u8, 7]);
            out.extend_from_slice(&[NULL; FIELDS_BEFORE_CONTENT_TYPE]);
            out.extend_from_slice(&[SYM8, CONTENT_TYPE.len() as u8]);
            out.extend_from_slice(CONTENT_TYPE.as_bytes());
        }

        let entries = self.properties.application(
            filter_values,
            [
                self.digits.as_slice(),
                update.event.as_str().as_bytes(),
                producer.as_bytes(),
            ],
        );
        let (content, count) = entries.clone().fold((0, 0), |(size, count), (k, v)| {
            (
                size + string_size(k.len()) + string_size(v.len()),
                count + 2,
            )
        });
        out.extend_from_slice(&APPLICATION_PROPERTIES);
        if content + 1 > u8::MAX as usize {
            out.push(MAP32);
            out.extend_from_slice(&(content as u32 + 4).to_be_bytes());
            out.extend_from_slice(&(count as u32).to_be_bytes());
        } else {
            out.extend_from_slice(&[MAP8, content as u8 + 1, count as u8]);
        }
        for (key, value) in entries {
            put_string(out, key.as_bytes());
            put_string(out, value);
        }

        out.extend_from_slice(&DATA);
        let len = self.body.len();
        if len > u8::MAX as usize {
            out.push(VBIN32);
            out.extend_from_slice(&(len as u32).to_be_bytes());
        } else {
            out.extend_from_slice(&[VBIN8, len as u8]);
        }
        out.extend_from_slice(&self.body);
        len
    }

    /// Appends `update` as a sub-entry member: its size (u32) then the message.
    pub fn append_framed(
        &mut self,
        update: &InventoryUpdate,
        producer: &str,
        out: &mut Vec<u8>,
    ) -> usize {
        let at = out.len();
        out.extend_from_slice(&[0; 4]);
        // Sub-entries carry no filter values, so no post-filter needs the product id.
        let body = self.append_message(update, producer, false, out);
        let size = (out.len() - at - 4) as u32;
        out[at..at + 4].copy_from_slice(&size.to_be_bytes());
        body
    }

    /// Appends `update` as one simple entry of a publish frame (publishing id, with
    /// `WITH_FILTER_VALUES` its product id as filter value, size, message). Returns the body's
    /// length.
    pub fn append_simple_entry(
        &mut self,
        (publishing_id, update): &NumberedUpdate,
        producer: &str,
        version: u16,
        out: &mut Vec<u8>,
    ) -> usize {
        let mut message = std::mem::take(&mut self.message);
        message.clear();
        let body = self.append_message(
            update,
            producer,
            version == WITH_FILTER_VALUES,
            &mut message,
        );
        // `append_message` left the product id's digits in `self.digits`.
        let filter = std::str::from_utf8(&self.digits).expect("digits are ASCII");
        // Exactly the entry's size (id, filter value, size, message): a guessed capacity is
        // outgrown by a long producer name, and a realloc per message cost ~10% of produce's CPU.
        let filter_size = match version {
            WITH_FILTER_VALUES => 2 + filter.len(),
            _ => 0,
        };
        out.reserve_exact(8 + filter_size + 4 + message.len());
        append_entry(out, *publishing_id, Some(filter), &message, version);
        self.message = message;
        body
    }

    /// One sub-entry batch of `updates` (at most 65,535), under the last one's publishing id,
    /// and the bytes of its bodies.
    pub fn sub_entry_batch(
        &mut self,
        updates: &[NumberedUpdate],
        producer: &str,
        compression: CompressionType,
    ) -> std::io::Result<(SubEntryBatch, u64)> {
        let (last_id, _) = updates.last().expect("a batch is never empty");
        // A member is ~270 bytes plus the producer name (a property of every message): room for
        // all of them at once, so the batch is not copied as it grows.
        let mut framed = Vec::with_capacity(updates.len() * (320 + producer.len()));
        let mut bytes = 0;
        for (_, update) in updates {
            bytes += self.append_framed(update, producer, &mut framed) as u64;
        }
        let count = u16::try_from(updates.len()).expect("at most 65,535 updates per batch");
        let batch = SubEntryBatch::from_framed(*last_id, count, framed, compression)
            .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        Ok((batch, bytes))
    }
}

/// Encoded size of a string of `len` bytes.
fn string_size(len: usize) -> usize {
    if len > u8::MAX as usize {
        5 + len
    } else {
        2 + len
    }
}

fn put_string(out: &mut Vec<u8>, value: &[u8]) {
    if value.len() > u8::MAX as usize {
        out.push(STR32);
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
    } else {
        out.extend_from_slice(&[STR8, value.len() as u8]);
    }
    out.extend_from_slice(value);
}

/// What a reader needs of an AMQP 1.0 message, found by skipping over the sections it does not
/// need: decoding a whole message (properties, a map of strings) costs several times more than
/// parsing invstream's JSON body.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MessageView<'a> {
    body: Option<&'a [u8]>,
    /// The application-properties map, encoded (constructor included).
    application_properties: Option<&'a [u8]>,
}

/// Section codes of AMQP 1.0 (the descriptor's ulong).
const SECTION_APPLICATION_PROPERTIES: u64 = 0x74;
const SECTION_DATA: u64 = 0x75;
/// Deeper nesting of described types than this is malformed for our purposes.
const MAX_DESCRIBED_DEPTH: u32 = 8;

impl<'a> MessageView<'a> {
    /// `None` if `message` is not a sequence of AMQP 1.0 sections.
    pub fn parse(message: &'a [u8]) -> Option<Self> {
        let mut view = MessageView::default();
        let mut rest = message;
        while !rest.is_empty() {
            if rest[0] != DESCRIBED {
                return None;
            }
            let descriptor_len = value_len(&rest[1..], 0)?;
            let descriptor = &rest[1..1 + descriptor_len];
            let code = match descriptor {
                [SMALL_ULONG, code] => Some(u64::from(*code)),
                [ULONG, code @ ..] => Some(u64::from_be_bytes(code.try_into().ok()?)),
                _ => None, // a symbolic descriptor: no section we read
            };
            let value_at = 1 + descriptor_len;
            let value = &rest[value_at..value_at + value_len(&rest[value_at..], 0)?];
            match code {
                Some(SECTION_DATA) if view.body.is_none() => view.body = Some(payload(value)?),
                Some(SECTION_APPLICATION_PROPERTIES) => view.application_properties = Some(value),
                _ => {}
            }
            rest = &rest[value_at + value.len()..];
        }
        Some(view)
    }

    /// The first data section's bytes.
    pub fn body(&self) -> Option<&'a [u8]> {
        self.body
    }

    /// The body of `message`, empty if it has none or is not AMQP.
    pub fn body_of(message: &'a [u8]) -> &'a [u8] {
        Self::parse(message)
            .and_then(|view| view.body())
            .unwrap_or_default()
    }

    /// The application property `key`, if it is a string.
    pub fn string_property(&self, key: &str) -> Option<&'a str> {
        let map = self.application_properties?;
        let (count, mut items) = match *map.first()? {
            MAP8 => (usize::from(*map.get(2)?), map.get(3..)?),
            MAP32 => (
                u32::from_be_bytes(map.get(5..9)?.try_into().ok()?) as usize,
                map.get(9..)?,
            ),
            _ => return None,
        };
        for _ in 0..count / 2 {
            let key_len = value_len(items, 0)?;
            let value_len = value_len(&items[key_len..], 0)?;
            let (found, value) = (&items[..key_len], &items[key_len..key_len + value_len]);
            if matches!(found[0], STR8 | STR32 | SYM8 | SYM32) && payload(found)? == key.as_bytes()
            {
                return match value[0] {
                    STR8 | STR32 => std::str::from_utf8(payload(value)?).ok(),
                    _ => None,
                };
            }
            items = &items[key_len + value_len..];
        }
        None
    }
}

/// The length of the AMQP 1.0 value at the start of `input`, constructor included: the high
/// nibble of a type code gives its width (fixed, or a 1- or 4-byte size that follows).
fn value_len(input: &[u8], depth: u32) -> Option<usize> {
    let code = *input.first()?;
    let len = match code >> 4 {
        0x0 if code == DESCRIBED && depth < MAX_DESCRIBED_DEPTH => {
            let descriptor = value_len(&input[1..], depth + 1)?;
            1 + descriptor + value_len(&input[1 + descriptor..], depth + 1)?
        }
        0x4 => 1,
        0x5 => 2,
        0x6 => 3,
        0x7 => 5,
        0x8 => 9,
        0x9 => 17,
        0xa | 0xc | 0xe => 2 + usize::from(*input.get(1)?),
        0xb | 0xd | 0xf => 5 + u32::from_be_bytes(input.get(1..5)?.try_into().ok()?) as usize,
        _ => return None,
    };
    (len <= input.len()).then_some(len)
}

/// The bytes of a binary, string or symbol value (constructor included in `value`).
fn payload(value: &[u8]) -> Option<&[u8]> {
    match *value.first()? {
        VBIN8 | STR8 | SYM8 => value.get(2..),
        VBIN32 | STR32 | SYM32 => value.get(5..),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use rabbitmq_stream_protocol::codec::{Decoder, Encoder};
    use rabbitmq_stream_protocol::message::Message;

    use super::*;
    use crate::model::UpdateGenerator;

    const LAYOUTS: [MessageProperties; 2] = [MessageProperties::Lean, MessageProperties::Full];

    #[test]
    fn writes_what_the_client_writes() {
        let mut generator = UpdateGenerator::new(1000, 7);
        for (properties, filter, producer) in LAYOUTS.into_iter().flat_map(|properties| {
            [false, true].into_iter().flat_map(move |filter| {
                ["invstream-x".to_string(), "p".repeat(300)]
                    .map(|producer| (properties, filter, producer))
            })
        }) {
            let mut encoder = EntryEncoder::new(properties);
            for seq in 0..50 {
                let update = generator.next_update(seq);
                let mut ours = Vec::new();
                encoder.append_message(&update, &producer, filter, &mut ours);
                let expected =
                    encoded(&to_message(&update, &producer, seq + 1, properties, filter));
                assert_eq!(
                    ours.len(),
                    expected.len(),
                    "{properties:?}, filter {filter}, producer of {}",
                    producer.len()
                );
                let (rest, decoded) = Message::decode(&ours).unwrap();
                assert!(rest.is_empty());
                let (_, expected) = Message::decode(&expected).unwrap();
                assert_eq!(decoded.data(), expected.data());
                assert_eq!(decoded.properties(), expected.properties());
                assert_eq!(
                    decoded.application_properties(),
                    expected.application_properties()
                );
            }
        }
    }

    #[test]
    fn the_lean_layout_carries_the_producer_and_with_filter_values_the_product_id() {
        let update = UpdateGenerator::new(1000, 3).next_update(0);
        let properties_of = |properties, filter| {
            let mut bytes = Vec::new();
            EntryEncoder::new(properties).append_message(&update, "p", filter, &mut bytes);
            let (_, message) = Message::decode(&bytes).unwrap();
            let mut keys: Vec<String> = message
                .application_properties()
                .map(|map| map.keys().cloned().collect())
                .unwrap_or_default();
            keys.sort();
            let content_type = message.properties().and_then(|p| p.content_type.clone());
            (content_type.map(|t| t.to_string()), keys)
        };
        assert_eq!(
            properties_of(MessageProperties::Lean, false),
            (None, vec!["producer".to_string()])
        );
        assert_eq!(
            properties_of(MessageProperties::Lean, true),
            (None, vec!["producer".to_string(), "product_id".to_string()])
        );
        let all = ["event", "producer", "product_id"]
            .map(String::from)
            .to_vec();
        for filter in [false, true] {
            assert_eq!(
                properties_of(MessageProperties::Full, filter),
                (Some(CONTENT_TYPE.to_string()), all.clone())
            );
        }
    }

    #[test]
    fn a_simple_entry_reserves_exactly_its_size_whatever_the_producer_name() {
        let mut generator = UpdateGenerator::new(1000, 3);
        let mut encoder = EntryEncoder::default();
        // The default name is ~50 characters (`invstream-STREAM-<ms>-<pid>`): entries outgrew
        // the publisher's 320-byte guess and were reallocated to 640, for every message.
        for producer in [
            "p",
            "invstream-inventory_updates-1795514400250-123456",
            &"n".repeat(200),
        ] {
            for version in [WITHOUT_FILTER_VALUES, WITH_FILTER_VALUES] {
                // Two entries in one buffer: growing by doubling would leave room over.
                let mut out = Vec::new();
                for id in 1..=2 {
                    let update = generator.next_update(0);
                    encoder.append_simple_entry(&(id, update), producer, version, &mut out);
                    assert_eq!(
                        out.capacity(),
                        out.len(),
                        "producer of {}, version {version}",
                        producer.len()
                    );
                }
            }
        }
    }

    #[test]
    fn simple_entries_carry_the_product_id_as_filter_value() {
        let update = UpdateGenerator::new(1000, 5).next_update(0);
        let mut encoder = EntryEncoder::default();
        for version in [WITHOUT_FILTER_VALUES, WITH_FILTER_VALUES] {
            let mut message = Vec::new();
            encoder.append_message(&update, "p", version == WITH_FILTER_VALUES, &mut message);
            let mut entry = Vec::new();
            encoder.append_simple_entry(&(42, update.clone()), "p", version, &mut entry);
            let mut expected = 42u64.to_be_bytes().to_vec();
            if version == WITH_FILTER_VALUES {
                let id = update.product_id.to_string();
                expected.extend_from_slice(&(id.len() as i16).to_be_bytes());
                expected.extend_from_slice(id.as_bytes());
            }
            expected.extend_from_slice(&(message.len() as u32).to_be_bytes());
            expected.extend_from_slice(&message);
            assert_eq!(entry, expected, "version {version}");
        }
    }

    #[test]
    fn long_bodies_use_32_bit_sizes() {
        let mut update = UpdateGenerator::new(1000, 1).next_update(0);
        update.sku = "s".repeat(400);
        let mut ours = Vec::new();
        EntryEncoder::default().append_message(&update, "p", false, &mut ours);
        let (_, decoded) = Message::decode(&ours).unwrap();
        let body = decoded.data().unwrap();
        assert_eq!(InventoryUpdate::decode(body).unwrap(), update);
    }

    #[test]
    fn a_sub_entry_batch_holds_every_update_under_the_last_id() {
        let mut generator = UpdateGenerator::new(1000, 3);
        let updates: Vec<NumberedUpdate> =
            (0..10).map(|s| (s + 1, generator.next_update(s))).collect();
        let (batch, bytes) = EntryEncoder::default()
            .sub_entry_batch(&updates, "p", CompressionType::None)
            .unwrap();
        assert_eq!((batch.publishing_id, batch.count), (10, 10));
        let mut input = &batch.data[..];
        let mut body_bytes = 0;
        for (_, update) in &updates {
            let size = u32::from_be_bytes(input[..4].try_into().unwrap()) as usize;
            let (_, message) = Message::decode(&input[4..4 + size]).unwrap();
            let body = message.data().unwrap();
            body_bytes += body.len() as u64;
            assert_eq!(&InventoryUpdate::decode(body).unwrap(), update);
            input = &input[4 + size..];
        }
        assert!(input.is_empty());
        assert_eq!(bytes, body_bytes);
    }

    fn encoded(message: &Message) -> Vec<u8> {
        let mut bytes = Vec::new();
        message.encode(&mut bytes).unwrap();
        bytes
    }

    #[test]
    fn the_view_reads_what_the_client_decodes_from_our_messages() {
        let mut generator = UpdateGenerator::new(1000, 11);
        let mut encoder = EntryEncoder::new(MessageProperties::Full);
        for producer in ["invstream-x", &"p".repeat(300)] {
            for seq in 0..20 {
                let mut update = generator.next_update(seq);
                if seq % 2 == 1 {
                    update.sku = "s".repeat(300); // a body over 255 bytes
                }
                let mut ours = Vec::new();
                encoder.append_message(&update, producer, false, &mut ours);
                let view = MessageView::parse(&ours).unwrap();
                let (_, decoded) = Message::decode(&ours).unwrap();
                assert_eq!(view.body(), decoded.data());
                assert_eq!(view.string_property(PRODUCER_PROPERTY), Some(producer));
                assert_eq!(view.string_property("event"), Some(update.event.as_str()));
                assert_eq!(view.string_property("nope"), None);
            }
        }
    }

    #[test]
    fn the_view_skips_sections_and_values_of_every_width() {
        let message = Message::builder()
            .body(b"hello".to_vec())
            .message_annotations()
            .insert("x-opt-a", 1i64)
            .insert("x-opt-b", "annotation")
            .message_builder()
            .properties()
            .message_id(7u64)
            .subject("s".repeat(300))
            .content_type("application/json")
            .group_sequence(7)
            .message_builder()
            .application_properties()
            .insert("count", 42i32)
            .insert("flag", true)
            .insert("big", u64::MAX)
            .insert("long", "v".repeat(300).as_str())
            .insert("producer", "someone")
            .message_builder()
            .build();
        let bytes = encoded(&message);
        let view = MessageView::parse(&bytes).unwrap();
        assert_eq!(view.body(), Some(&b"hello"[..]));
        assert_eq!(view.string_property("producer"), Some("someone"));
        assert_eq!(view.string_property("long"), Some("v".repeat(300).as_str()));
        assert_eq!(view.string_property("count"), None, "not a string");
        assert_eq!(view.string_property("absent"), None);
    }

    #[test]
    fn malformed_or_cut_messages_give_none_never_a_panic() {
        let update = UpdateGenerator::new(1000, 2).next_update(0);
        let mut bytes = Vec::new();
        EntryEncoder::default().append_message(&update, "p", false, &mut bytes);
        for cut in 0..bytes.len() {
            // A cut between sections is a shorter valid message; anywhere else, malformed.
            if let Some(view) = MessageView::parse(&bytes[..cut]) {
                assert!(view.body().is_none());
            }
        }
        assert_eq!(MessageView::parse(b"{\"not\":\"amqp\"}"), None);
        assert_eq!(MessageView::parse(&[DESCRIBED; 4096]), None, "deep nesting");
        assert_eq!(MessageView::parse(&[]).unwrap().body(), None);
    }

    #[test]
    fn a_body_that_is_not_a_data_section_has_no_bytes() {
        // amqp-value holding a string, as some clients send text.
        let bytes = [&[DESCRIBED, SMALL_ULONG, 0x77, STR8, 2][..], b"hi"].concat();
        let view = MessageView::parse(&bytes).unwrap();
        assert_eq!(view.body(), None);
    }
}
