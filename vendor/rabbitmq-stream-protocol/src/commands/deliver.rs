use std::io::Write;

use super::Command;
use crate::message::Message;
use crate::sub_entry::ChunkMessages;
use crate::{
    codec::{Decoder, Encoder},
    error::{DecodeError, EncodeError},
    protocol::commands::COMMAND_DELIVER,
};
use byteorder::{BigEndian, WriteBytesExt};

#[derive(PartialEq, Eq, Debug, Clone)]
pub struct DeliverCommand {
    pub subscription_id: u8,
    magic_version: i8,
    chunk_type: u8,
    num_entries: u16,
    timestamp: u64,
    epoch: u64,
    pub chunk_first_offset: u64,
    chunk_crc: i32,
    trailer_length: u32,
    reserved: u32,
    /// Still encoded: see [`ChunkMessages::decode`].
    pub messages: ChunkMessages,
}

#[allow(clippy::too_many_arguments)]
impl DeliverCommand {
    pub fn new(
        subscription_id: u8,
        magic_version: i8,
        chunk_type: u8,
        num_entries: u16,
        timestamp: u64,
        epoch: u64,
        chunk_first_offset: u64,
        chunk_crc: i32,
        trailer_length: u32,
        reserved: u32,
        messages: Vec<Message>,
    ) -> Self {
        Self {
            subscription_id,
            magic_version,
            chunk_type,
            num_entries,
            timestamp,
            epoch,
            chunk_first_offset,
            chunk_crc,
            trailer_length,
            reserved,
            messages: ChunkMessages::from_messages(&messages),
        }
    }
}

impl Encoder for DeliverCommand {
    fn encoded_size(&self) -> u32 {
        self.subscription_id.encoded_size()
            + self.magic_version.encoded_size()
            + self.chunk_type.encoded_size()
            + self.num_entries.encoded_size()
            + 4 // num records
            + self.timestamp.encoded_size()
            + self.epoch.encoded_size()
            + self.chunk_first_offset.encoded_size()
            + self.chunk_crc.encoded_size()
            + self.trailer_length.encoded_size()
            + self.reserved.encoded_size()
            + 4 // data length
            + self.data_length()
    }

    fn encode(&self, writer: &mut impl Write) -> Result<(), EncodeError> {
        self.subscription_id.encode(writer)?;
        self.magic_version.encode(writer)?;
        self.chunk_type.encode(writer)?;
        self.num_entries.encode(writer)?;
        u32::encode(&(self.messages.len() as u32), writer)?;
        self.timestamp.encode(writer)?;
        self.epoch.encode(writer)?;
        self.chunk_first_offset.encode(writer)?;
        self.chunk_crc.encode(writer)?;
        writer.write_u32::<BigEndian>(self.data_length())?;
        self.trailer_length.encode(writer)?;
        self.reserved.encode(writer)?;
        // Every message as a simple entry.
        for message in self.messages.iter() {
            writer.write_u32::<BigEndian>(message.len() as u32)?;
            writer.write_all(message)?;
        }
        Ok(())
    }
}

impl DeliverCommand {
    /// The size of the entries when written as simple entries.
    fn data_length(&self) -> u32 {
        self.messages
            .iter()
            .map(|message| 4 + message.len() as u32)
            .sum()
    }
}

impl Decoder for DeliverCommand {
    fn decode(input: &[u8]) -> Result<(&[u8], Self), DecodeError> {
        let (input, subscription_id) = u8::decode(input)?;
        let (input, magic_version) = i8::decode(input)?;
        let (input, chunk_type) = u8::decode(input)?;
        let (input, num_entries) = u16::decode(input)?;
        let (input, _num_records) = u32::decode(input)?;
        let (input, timestamp) = u64::decode(input)?;
        let (input, epoch) = u64::decode(input)?;
        let (input, chunk_first_offset) = u64::decode(input)?;
        let (input, chunk_crc) = i32::decode(input)?;
        let (input, _data_length) = u32::decode(input)?;
        let (input, trailer_length) = u32::decode(input)?;
        let (input, reserved) = u32::decode(input)?;

        // Entries may be simple (one message) or sub-entry batches (many, maybe compressed).
        let (input, messages) = ChunkMessages::read_entries(input, num_entries)?;
        Ok((
            input,
            DeliverCommand {
                subscription_id,
                magic_version,
                chunk_type,
                num_entries,
                timestamp,
                epoch,
                chunk_first_offset,
                chunk_crc,
                trailer_length,
                reserved,
                messages,
            },
        ))
    }
}

impl Command for DeliverCommand {
    fn key(&self) -> u16 {
        COMMAND_DELIVER
    }
}

#[cfg(test)]
mod tests {

    use fake::{Dummy, Faker};

    use crate::message::InternalMessage;

    use super::{DeliverCommand, Message};
    impl Dummy<Faker> for Message {
        fn dummy_with_rng<R: fake::rand::Rng + ?Sized>(_config: &Faker, _rng: &mut R) -> Self {
            Message::new(InternalMessage::default())
        }
    }

    /// A chunk of simple entries: `num_entries` must match the messages for it to decode.
    impl Dummy<Faker> for DeliverCommand {
        fn dummy_with_rng<R: fake::rand::Rng + ?Sized>(config: &Faker, rng: &mut R) -> Self {
            let count = (u8::dummy_with_rng(config, rng) % 5) as usize;
            let messages = (0..count)
                .map(|_| Message::dummy_with_rng(config, rng))
                .collect();
            DeliverCommand::new(
                u8::dummy_with_rng(config, rng),
                1,
                0,
                count as u16,
                u64::dummy_with_rng(config, rng),
                u64::dummy_with_rng(config, rng),
                u64::dummy_with_rng(config, rng),
                0,
                0,
                0,
                messages,
            )
        }
    }

    #[test]
    fn deliver_request_test() {
        // A chunk of simple entries: one entry per message, as the encoder writes them.
        let messages = (0..3)
            .map(|_| Message::new(InternalMessage::default()))
            .collect::<Vec<_>>();
        let command = DeliverCommand::new(1, 1, 0, 3, 7, 1, 100, 0, 0, 0, messages);
        let mut buffer = Vec::new();
        crate::codec::Encoder::encode(&command, &mut buffer).unwrap();
        let (rest, decoded) = <DeliverCommand as crate::codec::Decoder>::decode(&buffer).unwrap();
        assert!(rest.is_empty());
        assert_eq!(decoded, command);
    }
}
