use crate::{
    codec::Decoder, error::DecodeError, protocol::commands::COMMAND_METADATA_UPDATE, ResponseCode,
};

use super::Command;

use crate::codec::Encoder;

/// The broker's notice that a stream this connection publishes to or consumes from changed
/// (its leader moved, or it was deleted): it has removed the connection's publishers and
/// subscriptions on that stream.
#[cfg_attr(test, derive(fake::Dummy))]
#[derive(PartialEq, Eq, Debug, Clone)]
pub struct MetadataUpdateCommand {
    code: ResponseCode,
    stream: String,
}

impl MetadataUpdateCommand {
    pub fn new(code: ResponseCode, stream: String) -> Self {
        Self { code, stream }
    }

    /// Why: `StreamNotAvailable` (its leader moved or is being elected; RabbitMQ 4.0 sends it
    /// for a deleted stream too) or `StreamDoesNotExist`.
    pub fn code(&self) -> &ResponseCode {
        &self.code
    }

    /// The stream concerned.
    pub fn stream(&self) -> &str {
        &self.stream
    }
}

impl Decoder for MetadataUpdateCommand {
    fn decode(input: &[u8]) -> Result<(&[u8], Self), DecodeError> {
        let (input, code) = ResponseCode::decode(input)?;
        let (input, stream) = Option::decode(input)?;

        Ok((
            input,
            MetadataUpdateCommand {
                code,
                stream: stream.unwrap_or_default(),
            },
        ))
    }
}

impl Encoder for MetadataUpdateCommand {
    fn encoded_size(&self) -> u32 {
        self.code.encoded_size() + self.stream.as_str().encoded_size()
    }

    fn encode(&self, writer: &mut impl std::io::Write) -> Result<(), crate::error::EncodeError> {
        self.code.encode(writer)?;
        self.stream.as_str().encode(writer)?;
        Ok(())
    }
}

impl Command for MetadataUpdateCommand {
    fn key(&self) -> u16 {
        COMMAND_METADATA_UPDATE
    }
}

#[cfg(test)]
mod tests {

    use crate::{
        codec::{Decoder, Encoder},
        commands::tests::command_encode_decode_test,
        Response, ResponseCode, ResponseKind,
    };

    use super::MetadataUpdateCommand;

    #[test]
    fn metadata_update_test() {
        command_encode_decode_test::<MetadataUpdateCommand>()
    }

    /// A metadata update frame as the broker writes it: size, key 0x0010, version 1, code
    /// 0x0006 (stream not available), then the stream as a string.
    #[test]
    fn metadata_update_frame_gives_stream_and_code() {
        let frame = [
            0, 0, 0, 13, // size
            0x00, 0x10, 0, 1, // key, version
            0, 6, // stream_not_available
            0, 5, b'o', b'r', b'd', b'e', b'r', // "order"
            0xAA, // the next frame
        ];
        let (rest, response) = Response::decode(&frame).unwrap();
        assert_eq!(rest, &[0xAA]);
        let ResponseKind::MetadataUpdate(update) = response.kind_ref() else {
            panic!("not a metadata update: {:?}", response.kind_ref());
        };
        assert_eq!(update.stream(), "order");
        assert_eq!(update.code(), &ResponseCode::StreamNotAvailable);

        let update = MetadataUpdateCommand::new(ResponseCode::StreamDoesNotExist, "s".into());
        let mut written = Vec::new();
        update.encode(&mut written).unwrap();
        assert_eq!(written, [0, 2, 0, 1, b's']);
        assert_eq!(update.encoded_size(), written.len() as u32);
        assert_eq!(update.code(), &ResponseCode::StreamDoesNotExist);
    }

    /// A null stream (length -1) is read as "" rather than a panic.
    #[test]
    fn metadata_update_null_stream_is_empty() {
        let (rest, update) = MetadataUpdateCommand::decode(&[0, 6, 0xFF, 0xFF]).unwrap();
        assert!(rest.is_empty());
        assert_eq!(update.stream(), "");
        assert_eq!(update.code(), &ResponseCode::StreamNotAvailable);

        // A string longer than what is left is incomplete, not a panic.
        assert!(matches!(
            MetadataUpdateCommand::decode(&[0, 6, 0, 5, b'o']),
            Err(crate::error::DecodeError::Incomplete(_))
        ));
    }
}
