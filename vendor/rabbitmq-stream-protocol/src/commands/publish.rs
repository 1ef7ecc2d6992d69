use std::io::Write;

use crate::{
    codec::{Decoder, Encoder},
    error::{DecodeError, EncodeError},
    protocol::commands::COMMAND_PUBLISH,
    protocol::version::PROTOCOL_VERSION_2,
};

use super::Command;

use crate::sub_entry::SubEntryBatch;
use crate::types::PublishedMessage;

#[cfg_attr(test, derive(fake::Dummy))]
#[derive(PartialEq, Eq, Debug)]
pub struct PublishCommand {
    publisher_id: u8,
    published_messages: Vec<PublishedMessage>,
    /// When not empty, the frame carries these sub-entry batches instead of
    /// `published_messages` (protocol version 1: no filter values).
    #[cfg_attr(test, dummy(expr = "Vec::new()"))]
    sub_entries: Vec<SubEntryBatch>,
    /// When set, the frame carries these entries, already laid out (see `append_entry`), and
    /// how many there are.
    #[cfg_attr(test, dummy(expr = "None"))]
    encoded: Option<(u32, Vec<u8>)>,
    #[cfg_attr(test, dummy(faker = "1"))]
    version: u16,
}

impl PublishCommand {
    pub fn new(publisher_id: u8, published_messages: Vec<PublishedMessage>, version: u16) -> Self {
        Self {
            publisher_id,
            published_messages,
            sub_entries: Vec::new(),
            encoded: None,
            version,
        }
    }

    /// A publish frame of `count` entries the caller already laid out with `append_entry`
    /// (for `version`): no `Message` per entry.
    pub fn with_encoded_entries(
        publisher_id: u8,
        count: u32,
        entries: Vec<u8>,
        version: u16,
    ) -> Self {
        Self {
            publisher_id,
            published_messages: Vec::new(),
            sub_entries: Vec::new(),
            encoded: Some((count, entries)),
            version,
        }
    }

    /// A publish frame of sub-entry batches.
    pub fn with_sub_entries(publisher_id: u8, sub_entries: Vec<SubEntryBatch>) -> Self {
        Self {
            publisher_id,
            published_messages: Vec::new(),
            sub_entries,
            encoded: None,
            version: 1,
        }
    }
}

/// Appends one simple entry of a publish frame: publishing id, for protocol version 2 the
/// filter value (`None` writes an empty one), the message's size, and the encoded AMQP
/// message.
pub fn append_entry(
    out: &mut Vec<u8>,
    publishing_id: u64,
    filter_value: Option<&str>,
    message: &[u8],
    version: u16,
) {
    out.extend_from_slice(&publishing_id.to_be_bytes());
    if version == PROTOCOL_VERSION_2 {
        let filter = filter_value.unwrap_or_default();
        out.extend_from_slice(&(filter.len() as i16).to_be_bytes());
        out.extend_from_slice(filter.as_bytes());
    }
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
}

impl Encoder for PublishCommand {
    fn encoded_size(&self) -> u32 {
        if let Some((_, entries)) = &self.encoded {
            return self.publisher_id.encoded_size() + 4 + entries.len() as u32;
        }
        if !self.sub_entries.is_empty() {
            return self.publisher_id.encoded_size()
                + 4
                + self
                    .sub_entries
                    .iter()
                    .map(Encoder::encoded_size)
                    .sum::<u32>();
        }
        if self.version == PROTOCOL_VERSION_2 {
            self.publisher_id.encoded_size() + self.published_messages.encoded_size_version_2()
        } else {
            self.publisher_id.encoded_size() + self.published_messages.encoded_size()
        }
    }

    fn encode(&self, writer: &mut impl Write) -> Result<(), EncodeError> {
        self.publisher_id.encode(writer)?;
        if let Some((count, entries)) = &self.encoded {
            count.encode(writer)?;
            writer.write_all(entries)?;
            return Ok(());
        }
        if !self.sub_entries.is_empty() {
            (self.sub_entries.len() as u32).encode(writer)?;
            for batch in &self.sub_entries {
                batch.encode(writer)?;
            }
            return Ok(());
        }
        if self.version == PROTOCOL_VERSION_2 {
            self.published_messages.encode_version_2(writer)?;
        } else {
            self.published_messages.encode(writer)?;
        }
        Ok(())
    }
}

impl Command for PublishCommand {
    fn key(&self) -> u16 {
        COMMAND_PUBLISH
    }

    fn version(&self) -> u16 {
        self.version
    }
}

impl Decoder for PublishCommand {
    fn decode(input: &[u8]) -> Result<(&[u8], Self), DecodeError> {
        let (input, publisher_id) = u8::decode(input)?;
        let (input, published_messages) = Vec::decode(input)?;

        Ok((
            input,
            PublishCommand {
                publisher_id,
                published_messages,
                sub_entries: Vec::new(),
                encoded: None,
                version: 1,
            },
        ))
    }
}

#[cfg(test)]
mod tests {

    use crate::commands::tests::command_encode_decode_test;

    use super::PublishCommand;

    #[test]
    fn publish_request_test() {
        command_encode_decode_test::<PublishCommand>();
    }

    /// Entries laid out with `append_entry` make the same frame as `PublishedMessage`s do.
    #[test]
    fn encoded_entries_make_the_same_frame() {
        use crate::codec::Encoder;
        use crate::message::Message;
        use crate::types::PublishedMessage;

        for version in [1, 2] {
            let mut messages = Vec::new();
            let mut entries = Vec::new();
            for id in 0..3u64 {
                let message = Message::builder().body(format!("body {id}")).build();
                let mut bytes = Vec::new();
                message.encode(&mut bytes).unwrap();
                let filter = (id != 1).then(|| format!("f{id}"));
                super::append_entry(&mut entries, id, filter.as_deref(), &bytes, version);
                messages.push(PublishedMessage::new(id, message, filter));
            }
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            PublishCommand::with_encoded_entries(7, 3, entries, version)
                .encode(&mut ours)
                .unwrap();
            let reference = PublishCommand::new(7, messages, version);
            reference.encode(&mut theirs).unwrap();
            assert_eq!(ours, theirs, "version {version}");
            assert_eq!(
                PublishCommand::with_encoded_entries(7, 0, ours[5..].to_vec(), version)
                    .encoded_size(),
                reference.encoded_size()
            );
        }
    }
}
