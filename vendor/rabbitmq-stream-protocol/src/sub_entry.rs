//! Sub-entry batching: many messages, optionally compressed, in the slot of one stream entry.
//!
//! The entry format (the same in the Java, Go, .NET and Python clients):
//!
//! ```text
//! simple entry:    size:u32 (top bit 0) | message
//! sub-entry batch: type:u8 (0x80 | codec << 4) | count:u16 | uncompressed size:u32
//!                  | size:u32 | data, where the uncompressed data is count × (size:u32 | message)
//! ```
//!
//! In a publish frame each entry is preceded by its publishing id (u64); in a deliver chunk,
//! entries follow one another and every message of a batch gets its own offset.

use std::io::{Read, Write};
use std::sync::{Mutex, PoisonError};

use byteorder::{BigEndian, ByteOrder, WriteBytesExt};

use crate::codec::{Decoder, Encoder};
use crate::error::{DecodeError, EncodeError, IncompleteError};
use crate::message::Message;

/// zstd's fastest positive level: batches are small and the point is throughput.
const ZSTD_LEVEL: i32 = 1;

thread_local! {
    static ZSTD: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// The compression codecs of the stream protocol, with their wire codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CompressionType {
    #[default]
    None = 0,
    Gzip = 1,
    Snappy = 2,
    Lz4 = 3,
    Zstd = 4,
}

impl CompressionType {
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => CompressionType::None,
            1 => CompressionType::Gzip,
            2 => CompressionType::Snappy,
            3 => CompressionType::Lz4,
            4 => CompressionType::Zstd,
            _ => return None,
        })
    }

    /// Compresses `data` the way the other stream clients do (gzip stream, snappy framed,
    /// LZ4 frame, zstd frame), so each can read what the others wrote.
    pub fn compress(self, data: Vec<u8>) -> std::io::Result<Vec<u8>> {
        match self {
            CompressionType::None => Ok(data),
            CompressionType::Gzip => {
                let mut encoder = flate2::write::GzEncoder::new(
                    Vec::with_capacity(data.len() / 4),
                    flate2::Compression::fast(),
                );
                encoder.write_all(&data)?;
                encoder.finish()
            }
            CompressionType::Snappy => {
                let mut encoder =
                    snap::write::FrameEncoder::new(Vec::with_capacity(data.len() / 2));
                encoder.write_all(&data)?;
                encoder.into_inner().map_err(|e| e.into_error())
            }
            CompressionType::Lz4 => {
                let mut encoder =
                    lz4_flex::frame::FrameEncoder::new(Vec::with_capacity(data.len() / 2));
                encoder.write_all(&data)?;
                encoder.finish().map_err(std::io::Error::other)
            }
            CompressionType::Zstd => ZSTD.with(|compressor| {
                // A context per thread, reused: making one per batch (tables of several hundred
                // KB, zeroed) cost about as much as compressing a batch of 100 messages.
                let mut compressor = compressor.borrow_mut();
                let compressor = match &mut *compressor {
                    Some(compressor) => compressor,
                    none => none.insert(zstd::bulk::Compressor::new(ZSTD_LEVEL)?),
                };
                compressor.compress(&data)
            }),
        }
    }

    /// Decompresses `data`, which must give `uncompressed_size` bytes.
    pub fn decompress(self, data: &[u8], uncompressed_size: usize) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.decompress_into(data, uncompressed_size, &mut out)?;
        Ok(out)
    }

    /// Appends the decompressed `data` to `out` (a buffer the caller reuses).
    pub fn decompress_into(
        self,
        data: &[u8],
        uncompressed_size: usize,
        out: &mut Vec<u8>,
    ) -> std::io::Result<()> {
        // The size comes from the wire: trust it for a reservation only up to a sane bound.
        out.reserve(uncompressed_size.min(64 << 20));
        match self {
            CompressionType::None => out.extend_from_slice(data),
            CompressionType::Gzip => {
                flate2::read::GzDecoder::new(data).read_to_end(out)?;
            }
            CompressionType::Snappy => {
                snap::read::FrameDecoder::new(data).read_to_end(out)?;
            }
            CompressionType::Lz4 => {
                lz4_flex::frame::FrameDecoder::new(data).read_to_end(out)?;
            }
            CompressionType::Zstd => {
                zstd::stream::read::Decoder::new(data)?.read_to_end(out)?;
            }
        }
        Ok(())
    }
}

/// One sub-entry batch of a publish frame, ready to encode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubEntryBatch {
    /// The batch's publishing id: the broker confirms (and deduplicates) the batch under it.
    pub publishing_id: u64,
    pub compression: CompressionType,
    pub count: u16,
    pub uncompressed_size: u32,
    /// The messages, each as size:u32 | message, compressed with `compression`.
    pub data: Vec<u8>,
}

impl SubEntryBatch {
    /// Encodes and compresses `messages` (at most 65,535) as one batch.
    pub fn new(
        publishing_id: u64,
        messages: &[Message],
        compression: CompressionType,
    ) -> Result<Self, EncodeError> {
        if messages.len() > u16::MAX as usize {
            return Err(EncodeError::MaxSizeError(messages.len()));
        }
        let size: u32 = messages.iter().map(|m| 4 + m.encoded_size()).sum();
        let mut raw = Vec::with_capacity(size as usize);
        for message in messages {
            raw.write_u32::<BigEndian>(message.encoded_size())?;
            message.encode(&mut raw)?;
        }
        Self::from_framed(publishing_id, messages.len() as u16, raw, compression)
    }

    /// A batch of `count` messages already encoded as `size:u32 | message` each, back to back:
    /// for callers that write their messages straight into one buffer instead of building a
    /// `Message` for each.
    pub fn from_framed(
        publishing_id: u64,
        count: u16,
        framed: Vec<u8>,
        compression: CompressionType,
    ) -> Result<Self, EncodeError> {
        Ok(SubEntryBatch {
            publishing_id,
            compression,
            count,
            uncompressed_size: framed.len() as u32,
            data: compression.compress(framed)?,
        })
    }
}

impl Encoder for SubEntryBatch {
    fn encoded_size(&self) -> u32 {
        8 + 1 + 2 + 4 + 4 + self.data.len() as u32
    }

    fn encode(&self, writer: &mut impl Write) -> Result<(), EncodeError> {
        writer.write_u64::<BigEndian>(self.publishing_id)?;
        writer.write_u8(0x80 | (self.compression.code() << 4))?;
        writer.write_u16::<BigEndian>(self.count)?;
        writer.write_u32::<BigEndian>(self.uncompressed_size)?;
        writer.write_u32::<BigEndian>(self.data.len() as u32)?;
        writer.write_all(&self.data)?;
        Ok(())
    }
}

fn take(input: &[u8], n: usize) -> Result<(&[u8], &[u8]), DecodeError> {
    if input.len() < n {
        return Err(DecodeError::Incomplete(IncompleteError(n - input.len())));
    }
    Ok((&input[n..], &input[..n]))
}

/// A chunk's messages, still AMQP-encoded, in offset order: simple entries as they came,
/// sub-entry batches decompressed. Decoding every [`Message`] costs far more than reading the
/// few bytes a consumer may need, so that is left to [`ChunkMessages::decode`] or the caller.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChunkMessages {
    data: Vec<u8>,
    /// Where each message ends in `data`.
    ends: Vec<u32>,
}

/// Data buffers of dropped [`ChunkMessages`], for the next chunks: a fresh buffer per chunk
/// (hundreds of KB, every few milliseconds) page-faults in every page once the allocator has
/// given the last one back to the OS. A reader holds up to 6 chunks (4 waiting in its channel,
/// the one read, the one being decoded).
static SPARE_BUFFERS: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// At most this many spare buffers are kept (each as large as the largest chunk it held): fewer
/// than a reader holds, and some are freed and faulted in again after every burst.
const SPARE_BUFFERS_MAX: usize = 8;

/// An empty buffer of at least `capacity` bytes, a spare one if there is one.
fn chunk_buffer(capacity: usize) -> Vec<u8> {
    let spare = SPARE_BUFFERS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .pop();
    let mut buffer = spare.unwrap_or_default();
    buffer.reserve_exact(capacity);
    buffer
}

impl Drop for ChunkMessages {
    fn drop(&mut self) {
        if self.data.capacity() == 0 {
            return;
        }
        let mut buffer = std::mem::take(&mut self.data);
        buffer.clear();
        let mut spare = SPARE_BUFFERS.lock().unwrap_or_else(PoisonError::into_inner);
        if spare.len() < SPARE_BUFFERS_MAX {
            spare.push(buffer);
        }
    }
}

impl ChunkMessages {
    /// Reads the `entries` entries of a chunk (simple or sub-entry batches, mixed). Returns the
    /// rest of the input.
    pub fn read_entries(mut input: &[u8], entries: u16) -> Result<(&[u8], Self), DecodeError> {
        let mut chunk = ChunkMessages {
            data: chunk_buffer(input.len()),
            ends: Vec::with_capacity(entries as usize),
        };
        let mut scratch = Vec::new();
        for _ in 0..entries {
            let (_, first) = take(input, 1)?;
            if first[0] & 0x80 == 0 {
                input = chunk.push_sized(input, 1)?;
                continue;
            }
            let codec = (first[0] & 0x70) >> 4;
            let compression = CompressionType::from_code(codec)
                .ok_or(DecodeError::InvalidFormatCode(first[0]))?;
            let (rest, header) = take(&input[1..], 2 + 4 + 4)?;
            let count = BigEndian::read_u16(&header[0..2]) as usize;
            let uncompressed_size = BigEndian::read_u32(&header[2..6]) as usize;
            let size = BigEndian::read_u32(&header[6..10]) as usize;
            let (rest, data) = take(rest, size)?;
            match compression {
                CompressionType::None => {
                    chunk.push_sized(data, count)?;
                }
                other => {
                    scratch.clear();
                    other
                        .decompress_into(data, uncompressed_size, &mut scratch)
                        .map_err(|e| {
                            DecodeError::MessageParse(format!("sub-entry {other:?}: {e}"))
                        })?;
                    chunk.push_sized(&scratch, count)?;
                }
            }
            input = rest;
        }
        Ok((input, chunk))
    }

    /// The messages encoded, as a broker would deliver them.
    pub fn from_messages(messages: &[Message]) -> Self {
        let mut chunk = ChunkMessages::default();
        for message in messages {
            message
                .encode(&mut chunk.data)
                .expect("encoding into a Vec cannot fail");
            chunk.ends.push(chunk.data.len() as u32);
        }
        chunk
    }

    fn push(&mut self, message: &[u8]) {
        self.data.extend_from_slice(message);
        self.ends.push(self.data.len() as u32);
    }

    /// Appends `count` messages each written as size:u32 | message (a simple entry is one).
    /// Returns the rest of the input.
    fn push_sized<'a>(
        &mut self,
        mut input: &'a [u8],
        count: usize,
    ) -> Result<&'a [u8], DecodeError> {
        for _ in 0..count {
            let (rest, size) = take(input, 4)?;
            let (rest, message) = take(rest, BigEndian::read_u32(size) as usize)?;
            self.push(message);
            input = rest;
        }
        Ok(input)
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Each message's AMQP 1.0 encoding, in offset order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        (0..self.ends.len()).map(move |i| {
            let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
            &self.data[start..self.ends[i] as usize]
        })
    }

    /// Every message decoded.
    pub fn decode(&self) -> Result<Vec<Message>, DecodeError> {
        self.iter()
            .map(|message| Message::decode(message).map(|(_, message)| message))
            .collect()
    }
}

/// Decodes the `entries` entries of a chunk (simple or sub-entry batches, mixed) into
/// `messages`, in offset order. Returns the rest of the input.
pub fn decode_chunk_entries<'a>(
    input: &'a [u8],
    entries: u16,
    messages: &mut Vec<Message>,
) -> Result<&'a [u8], DecodeError> {
    let (rest, chunk) = ChunkMessages::read_entries(input, entries)?;
    messages.extend(chunk.decode()?);
    Ok(rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    fn message(body: &str) -> Message {
        Message::builder().body(body.as_bytes().to_vec()).build()
    }

    fn simple_entry(message: &Message) -> Vec<u8> {
        let mut out = Vec::new();
        out.write_u32::<BigEndian>(message.encoded_size()).unwrap();
        message.encode(&mut out).unwrap();
        out
    }

    /// A batch as it sits in a chunk: its publish encoding without the publishing id.
    fn batch_entry(batch: &SubEntryBatch) -> Vec<u8> {
        let mut out = Vec::new();
        batch.encode(&mut out).unwrap();
        out.split_off(8)
    }

    const ALL: [CompressionType; 5] = [
        CompressionType::None,
        CompressionType::Gzip,
        CompressionType::Snappy,
        CompressionType::Lz4,
        CompressionType::Zstd,
    ];

    #[test]
    fn batch_header_has_the_protocol_layout() {
        let messages = vec![message("a"), message("bc")];
        let batch = SubEntryBatch::new(42, &messages, CompressionType::None).unwrap();
        let mut out = Vec::new();
        batch.encode(&mut out).unwrap();
        assert_eq!(out.len() as u32, batch.encoded_size());
        assert_eq!(BigEndian::read_u64(&out[0..8]), 42);
        assert_eq!(out[8], 0x80);
        assert_eq!(BigEndian::read_u16(&out[9..11]), 2);
        let raw_size = messages.iter().map(|m| 4 + m.encoded_size()).sum::<u32>();
        assert_eq!(BigEndian::read_u32(&out[11..15]), raw_size);
        assert_eq!(BigEndian::read_u32(&out[15..19]), raw_size);
        let gzip = SubEntryBatch::new(1, &messages, CompressionType::Gzip).unwrap();
        let mut out = Vec::new();
        gzip.encode(&mut out).unwrap();
        assert_eq!(out[8], 0x90);
    }

    #[test]
    fn every_codec_round_trips_in_a_mixed_chunk() {
        for codec in ALL {
            let batch_messages: Vec<Message> =
                (0..100).map(|i| message(&format!("update {i}"))).collect();
            let batch = SubEntryBatch::new(7, &batch_messages, codec).unwrap();
            let mut chunk = simple_entry(&message("before"));
            chunk.extend(batch_entry(&batch));
            chunk.extend(simple_entry(&message("after")));
            chunk.extend_from_slice(b"trailing");
            let mut messages = Vec::new();
            let rest = decode_chunk_entries(&chunk, 3, &mut messages).unwrap();
            assert_eq!(rest, b"trailing", "{codec:?}");
            let bodies: Vec<String> = messages
                .iter()
                .map(|m| String::from_utf8(m.data().unwrap().to_vec()).unwrap())
                .collect();
            assert_eq!(bodies.len(), 102, "{codec:?}");
            assert_eq!(bodies[0], "before");
            assert_eq!(bodies[1], "update 0");
            assert_eq!(bodies[100], "update 99");
            assert_eq!(bodies[101], "after");
        }
    }

    #[test]
    fn chunk_messages_keep_each_message_encoded_in_offset_order() {
        let batch_messages: Vec<Message> = (0..3).map(|i| message(&format!("b{i}"))).collect();
        let batch = SubEntryBatch::new(7, &batch_messages, CompressionType::Zstd).unwrap();
        let first = message("first");
        let mut chunk = simple_entry(&first);
        chunk.extend(batch_entry(&batch));
        let (rest, messages) = ChunkMessages::read_entries(&chunk, 2).unwrap();
        assert!(rest.is_empty());
        assert_eq!(messages.len(), 4);
        let mut expected = vec![&first];
        expected.extend(&batch_messages);
        for (raw, message) in messages.iter().zip(expected) {
            let mut encoded = Vec::new();
            message.encode(&mut encoded).unwrap();
            assert_eq!(raw, &encoded[..]);
        }
        assert_eq!(messages.decode().unwrap()[3].data(), Some(&b"b2"[..]));
        assert_eq!(
            ChunkMessages::from_messages(&messages.decode().unwrap()),
            messages
        );
    }

    #[test]
    fn a_chunk_read_after_a_larger_one_was_dropped_holds_only_its_own_messages() {
        let long = message(&"x".repeat(4096));
        let (_, larger) = ChunkMessages::read_entries(&simple_entry(&long), 1).unwrap();
        drop(larger);
        let short = message("y");
        let (_, chunk) = ChunkMessages::read_entries(&simple_entry(&short), 1).unwrap();
        assert_eq!(chunk.len(), 1);
        let mut encoded = Vec::new();
        short.encode(&mut encoded).unwrap();
        assert_eq!(chunk.iter().next().unwrap(), &encoded[..]);
        assert_eq!(chunk, ChunkMessages::from_messages(&[short]));
    }

    #[test]
    fn truncated_or_unknown_entries_are_errors_not_panics() {
        let batch = SubEntryBatch::new(1, &[message("x")], CompressionType::Gzip).unwrap();
        let entry = batch_entry(&batch);
        for cut in 0..entry.len() {
            assert!(decode_chunk_entries(&entry[..cut], 1, &mut Vec::new()).is_err());
        }
        let mut unknown = entry.clone();
        unknown[0] = 0x80 | (7 << 4);
        assert!(decode_chunk_entries(&unknown, 1, &mut Vec::new()).is_err());
        let mut corrupt = entry;
        let last = corrupt.len() - 3;
        corrupt[last] ^= 0xff;
        assert!(decode_chunk_entries(&corrupt, 1, &mut Vec::new()).is_err());
    }
}
