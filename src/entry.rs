//! Inventory updates written straight into stream entry bytes, in exactly the AMQP 1.0 layout
//! that [`produce::to_message`](crate::produce::to_message) and the client's encoder give, but
//! without building a `Message` (a body, a properties struct, a map of three strings) per
//! update. The sub-entry publish path spends most of its time per message, so this is where
//! a copy or an allocation per message counts.

use std::io::Write;

use rabbitmq_stream_client::types::{CompressionType, SubEntryBatch};
use rabbitmq_stream_protocol::commands::publish::append_entry;

use crate::input::NumberedUpdate;
use crate::model::{InventoryUpdate, CONTENT_TYPE};
use crate::produce::PRODUCER_PROPERTY;

/// AMQP 1.0 section descriptors (`0x00 0x53 code`: a small-ulong described type).
const PROPERTIES: [u8; 3] = [0x00, 0x53, 0x73];
const APPLICATION_PROPERTIES: [u8; 3] = [0x00, 0x53, 0x74];
const DATA: [u8; 3] = [0x00, 0x53, 0x75];
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
    body: Vec<u8>,
    digits: Vec<u8>,
    message: Vec<u8>,
}

/// Publish frame layout with a filter value per entry (RabbitMQ 3.13+).
pub const WITH_FILTER_VALUES: u16 = 2;
/// Publish frame layout without.
pub const WITHOUT_FILTER_VALUES: u16 = 1;

impl EntryEncoder {
    /// Appends `update` as one AMQP message (properties, application properties, JSON body).
    /// Returns the body's length.
    pub fn append_message(
        &mut self,
        update: &InventoryUpdate,
        producer: &str,
        out: &mut Vec<u8>,
    ) -> usize {
        self.body.clear();
        update.append_json(&mut self.body);
        self.digits.clear();
        write!(self.digits, "{}", update.product_id).expect("writing to a Vec cannot fail");

        out.extend_from_slice(&PROPERTIES);
        let list_size = 1 + FIELDS_BEFORE_CONTENT_TYPE + 2 + CONTENT_TYPE.len();
        out.extend_from_slice(&[LIST8, list_size as u8, 7]);
        out.extend_from_slice(&[NULL; FIELDS_BEFORE_CONTENT_TYPE]);
        out.extend_from_slice(&[SYM8, CONTENT_TYPE.len() as u8]);
        out.extend_from_slice(CONTENT_TYPE.as_bytes());

        let entries: [(&str, &[u8]); 3] = [
            ("product_id", &self.digits),
            ("event", update.event.as_str().as_bytes()),
            (PRODUCER_PROPERTY, producer.as_bytes()),
        ];
        let content: usize = entries
            .iter()
            .map(|(k, v)| string_size(k.len()) + string_size(v.len()))
            .sum();
        out.extend_from_slice(&APPLICATION_PROPERTIES);
        if content + 1 > u8::MAX as usize {
            out.push(MAP32);
            out.extend_from_slice(&(content as u32 + 4).to_be_bytes());
            out.extend_from_slice(&(entries.len() as u32 * 2).to_be_bytes());
        } else {
            out.extend_from_slice(&[MAP8, content as u8 + 1, entries.len() as u8 * 2]);
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
        let body = self.append_message(update, producer, out);
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
        let body = self.append_message(update, producer, &mut message);
        // `append_message` left the product id's digits in `self.digits`.
        let filter = std::str::from_utf8(&self.digits).expect("digits are ASCII");
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
        let mut framed = Vec::with_capacity(updates.len() * 320);
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

#[cfg(test)]
mod tests {
    use rabbitmq_stream_protocol::codec::{Decoder, Encoder};
    use rabbitmq_stream_protocol::message::Message;

    use super::*;
    use crate::model::UpdateGenerator;
    use crate::produce::to_message;

    fn reference(update: &InventoryUpdate, producer: &str, id: u64) -> Vec<u8> {
        let message = to_message(update, producer, id);
        let mut bytes = Vec::new();
        message.encode(&mut bytes).unwrap();
        bytes
    }

    #[test]
    fn writes_what_the_client_writes() {
        let mut generator = UpdateGenerator::new(1000, 7);
        let mut encoder = EntryEncoder::default();
        for producer in ["invstream-x", &"p".repeat(300)] {
            for seq in 0..50 {
                let update = generator.next_update(seq);
                let mut ours = Vec::new();
                encoder.append_message(&update, producer, &mut ours);
                let expected = reference(&update, producer, seq + 1);
                assert_eq!(ours.len(), expected.len(), "producer of {}", producer.len());
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
    fn simple_entries_carry_the_product_id_as_filter_value() {
        let update = UpdateGenerator::new(1000, 5).next_update(0);
        let mut message = Vec::new();
        let mut encoder = EntryEncoder::default();
        encoder.append_message(&update, "p", &mut message);
        for version in [WITHOUT_FILTER_VALUES, WITH_FILTER_VALUES] {
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
        EntryEncoder::default().append_message(&update, "p", &mut ours);
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
}
