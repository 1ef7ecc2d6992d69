use byteorder::{BigEndian, WriteBytesExt};

use crate::message::amqp::codec::constants::TypeCode;
use crate::message::amqp::codec::constants::MESSAGE_PROPERTIES;
use crate::message::amqp::types::list_decoder;
use crate::message::amqp::types::Binary;
use crate::message::amqp::types::Descriptor;
use crate::message::amqp::types::List;
use crate::message::amqp::types::Str;
use crate::message::amqp::AmqpDecodeError;

use super::AmqpDecoder;
use super::{
    types::{Address, MessageId, SequenceNo, Symbol, Timestamp},
    AmqpEncodeError, AmqpEncoder,
};

/// Properties of the message
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(fake::Dummy))]
pub struct Properties {
    pub message_id: Option<MessageId>,
    pub user_id: Option<Vec<u8>>,
    pub to: Option<Address>,
    pub subject: Option<String>,
    pub reply_to: Option<Address>,
    pub correlation_id: Option<MessageId>,
    pub content_type: Option<Symbol>,
    pub content_encoding: Option<Symbol>,
    pub absolute_expiry_time: Option<Timestamp>,
    pub creation_time: Option<Timestamp>,
    pub group_id: Option<String>,
    pub group_sequence: Option<SequenceNo>,
    pub reply_to_group_id: Option<String>,
}

impl Properties {
    /// How many fields are written: trailing absent fields are left out of the list, as AMQP
    /// 1.0 allows (most messages set one or two of the thirteen).
    fn field_count(&self) -> u32 {
        let present = [
            self.message_id.is_some(),
            self.user_id.is_some(),
            self.to.is_some(),
            self.subject.is_some(),
            self.reply_to.is_some(),
            self.correlation_id.is_some(),
            self.content_type.is_some(),
            self.content_encoding.is_some(),
            self.absolute_expiry_time.is_some(),
            self.creation_time.is_some(),
            self.group_id.is_some(),
            self.group_sequence.is_some(),
            self.reply_to_group_id.is_some(),
        ];
        present
            .iter()
            .rposition(|p| *p)
            .map_or(0, |last| last as u32 + 1)
    }

    /// Calls `field` with each of the first `field_count` fields, in order.
    fn for_each_field(
        &self,
        mut field: impl FnMut(&dyn ErasedField) -> Result<(), AmqpEncodeError>,
    ) -> Result<(), AmqpEncodeError> {
        let fields: [&dyn ErasedField; 13] = [
            &self.message_id,
            &self.user_id,
            &self.to,
            &self.subject,
            &self.reply_to,
            &self.correlation_id,
            &self.content_type,
            &self.content_encoding,
            &self.absolute_expiry_time,
            &self.creation_time,
            &self.group_id,
            &self.group_sequence,
            &self.reply_to_group_id,
        ];
        for f in &fields[..self.field_count() as usize] {
            field(*f)?;
        }
        Ok(())
    }

    fn content_size(&self) -> u32 {
        let mut size = 0;
        let _ = self.for_each_field(|f| {
            size += f.size();
            Ok(())
        });
        size
    }
}

/// One field of the list, whatever its type.
trait ErasedField {
    fn size(&self) -> u32;
    fn write(&self, writer: &mut dyn std::io::Write) -> Result<(), AmqpEncodeError>;
}

impl<T: AmqpEncoder> ErasedField for T {
    fn size(&self) -> u32 {
        self.encoded_size()
    }

    fn write(&self, mut writer: &mut dyn std::io::Write) -> Result<(), AmqpEncodeError> {
        self.encode(&mut writer)
    }
}

impl AmqpEncoder for Properties {
    fn encoded_size(&self) -> u32 {
        let content_size = self.content_size();
        // The list's header: List0 alone, or List8/List32 with size and count.
        let header = match (self.field_count(), content_size + 1 > u8::MAX as u32) {
            (0, _) => 1,
            (_, false) => 3,
            (_, true) => 9,
        };
        MESSAGE_PROPERTIES.encoded_size() + header + content_size
    }

    fn encode(&self, writer: &mut impl std::io::Write) -> Result<(), AmqpEncodeError> {
        MESSAGE_PROPERTIES.encode(writer)?;

        let content_size = self.content_size();
        let count = self.field_count();

        if count == 0 {
            TypeCode::List0.encode(writer)?;
            return Ok(());
        }
        if content_size + 1 > u8::MAX as u32 {
            // (0.11 wrote List8 here, then 32-bit sizes: unreadable for any decoder.)
            TypeCode::List32.encode(writer)?;
            writer.write_u32::<BigEndian>(content_size + 4)?;
            writer.write_u32::<BigEndian>(count)?;
        } else {
            TypeCode::List8.encode(writer)?;
            writer.write_u8((content_size + 1) as u8)?;
            writer.write_u8(count as u8)?;
        }
        self.for_each_field(|f| f.write(writer))
    }
}
impl AmqpDecoder for Properties {
    fn decode(input: &[u8]) -> Result<(&[u8], Self), super::AmqpDecodeError> {
        match Descriptor::decode(input)? {
            (input, MESSAGE_PROPERTIES) => {
                let properties = Properties::default();
                List::decode_with_fields(input, list_decoder_properties, properties)
            }
            (_, descriptor) => Err(AmqpDecodeError::MessageParse(format!(
                "Invalid descriptor for properties {:?}",
                descriptor
            ))),
        }
    }
}

list_decoder!(Properties, list_decoder_properties,
    {
     0 => { message_id, MessageId, None, true},
     1 => { user_id, Binary, None, true},
     2 => { to, Address, None, true},
     3 => { subject, Str, None, true},
     4 => { reply_to, Address, None, true},
     5 => { correlation_id, MessageId, None, true},
     6 => { content_type, Symbol, None, true},
     7 => { content_encoding, Symbol, None, true},
     8 => { absolute_expiry_time, Timestamp, None, true},
     9 => { creation_time, Timestamp, None, true},
     10 => { group_id, Str, None, true},
     11 => { group_sequence, SequenceNo, None, true},
     12 => { reply_to_group_id, Str, None, true}
    }
);

#[cfg(test)]
mod tests {
    use crate::message::amqp::tests::type_encode_decode_test_fuzzy;

    use super::Properties;

    #[test]
    fn test_properties_encode_decode() {
        type_encode_decode_test_fuzzy::<Properties>()
    }

    fn round_trip(properties: &Properties) -> usize {
        use crate::message::amqp::{AmqpDecoder, AmqpEncoder};
        let mut buffer = Vec::new();
        properties.encode(&mut buffer).unwrap();
        assert_eq!(buffer.len() as u32, properties.encoded_size());
        let (rest, decoded) = Properties::decode(&buffer).unwrap();
        assert!(rest.is_empty());
        assert_eq!(&decoded, properties);
        buffer.len()
    }

    #[test]
    fn trailing_absent_fields_are_left_out() {
        let all_absent = round_trip(&Properties::default());
        let content_type = round_trip(&Properties {
            content_type: Some("application/json".into()),
            ..Properties::default()
        });
        // Six nulls before the content type, none after it.
        assert_eq!(
            content_type,
            all_absent + 2 + 6 + 1 + 1 + "application/json".len()
        );
    }

    #[test]
    fn long_properties_use_a_32_bit_list() {
        round_trip(&Properties {
            subject: Some("s".repeat(300)),
            reply_to_group_id: Some("r".repeat(10)),
            ..Properties::default()
        });
        // Around the List8/List32 boundary.
        for len in 240..260 {
            round_trip(&Properties {
                subject: Some("s".repeat(len)),
                ..Properties::default()
            });
        }
    }
}
