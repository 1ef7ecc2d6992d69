use bytes::{Buf, BufMut, BytesMut};
use rabbitmq_stream_protocol::{error::DecodeError, Request, Response};
use tokio_util::codec::{Decoder as TokioDecoder, Encoder as TokioEncoder};

use rabbitmq_stream_protocol::codec::{Decoder, Encoder};

use crate::error::ClientError;

#[derive(Debug)]
pub(crate) struct RabbitMqStreamCodec {}

impl TokioDecoder for RabbitMqStreamCodec {
    type Item = Response;
    type Error = ClientError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Response>, ClientError> {
        match Response::decode(buf) {
            Ok((remaining, response)) => {
                let len = remaining.len();
                buf.advance(buf.len() - len);
                Ok(Some(response))
            }
            Err(DecodeError::Incomplete(missing)) => {
                // Room for exactly the rest of the frame: left to grow by doubling, the buffer
                // ratchets up to several times the largest chunk the broker delivers and keeps
                // that for the life of the connection. The frames already read make room first
                // (the rest moves to the front): a new buffer per chunk faults in every page.
                let needed = buf.len() + missing.0;
                if buf.capacity() < needed && !buf.try_reclaim(missing.0) {
                    let mut exact = BytesMut::with_capacity(needed);
                    exact.extend_from_slice(buf);
                    *buf = exact;
                }
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl TokioEncoder<Request> for RabbitMqStreamCodec {
    type Error = ClientError;

    fn encode(&mut self, req: Request, buf: &mut BytesMut) -> Result<(), ClientError> {
        let len = req.encoded_size();
        buf.reserve(len as usize);
        let mut writer = buf.writer();
        req.encode(&mut writer)?;

        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A heartbeat frame: size 4, key 23, version 1.
    const HEARTBEAT: [u8; 8] = [0, 0, 0, 4, 0, 23, 0, 1];

    #[test]
    fn a_frame_split_across_reads_reuses_the_buffer_of_the_frames_before_it() {
        let mut codec = RabbitMqStreamCodec {};
        let mut buf = BytesMut::with_capacity(12);
        buf.extend_from_slice(&HEARTBEAT);
        buf.extend_from_slice(&HEARTBEAT[..4]);
        let start = buf.as_ptr();
        assert!(codec.decode(&mut buf).unwrap().is_some());
        assert!(codec.decode(&mut buf).unwrap().is_none());
        // The half frame moved to the front of the same allocation, with room for the rest.
        assert_eq!(buf.as_ptr(), start);
        assert_eq!(&buf[..], &HEARTBEAT[..4]);
        assert!(buf.capacity() >= HEARTBEAT.len());
        buf.extend_from_slice(&HEARTBEAT[4..]);
        assert_eq!(buf.as_ptr(), start);
        assert!(codec.decode(&mut buf).unwrap().is_some());
    }

    #[test]
    fn a_frame_larger_than_the_buffer_gets_exactly_its_size() {
        let mut codec = RabbitMqStreamCodec {};
        let mut buf = BytesMut::with_capacity(4);
        buf.extend_from_slice(&[0, 0, 0, 100]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        assert_eq!(buf.capacity(), 104);
        assert_eq!(&buf[..], &[0, 0, 0, 100]);
    }
}
