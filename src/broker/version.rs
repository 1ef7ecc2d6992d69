//! The broker's version, asked for with a bare PeerProperties request (the first step of every
//! handshake, which every broker version answers), so a broker too old for the client can be
//! named as such. The frames are the protocol crate's own.

use std::collections::HashMap;
use std::time::Duration;

use rabbitmq_stream_protocol::codec::{Decoder, Encoder};
use rabbitmq_stream_protocol::commands::peer_properties::PeerPropertiesCommand;
use rabbitmq_stream_protocol::{Request, Response, ResponseKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest PeerProperties answer we read: a few properties, far below this.
const MAX_FRAME: usize = 1 << 20;

/// Whether a RabbitMQ version string such as `3.10.8` or `4.0.5` is at least `major.minor`.
pub fn version_at_least(version: &str, major: u32, minor: u32) -> bool {
    let mut parts = version
        .split(['.', '-', '+'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (v_major, v_minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (v_major, v_minor) >= (major, minor)
}

/// Asks a stream port for the broker's version. `None` if it does not answer in time, or not
/// as a stream port would.
pub async fn probe_server_version(host: &str, port: u16) -> Option<String> {
    let exchange = async {
        let mut socket = TcpStream::connect((host, port)).await.ok()?;
        socket.write_all(&peer_properties_request()).await.ok()?;
        let size = socket.read_u32().await.ok()? as usize;
        if size > MAX_FRAME {
            return None;
        }
        let mut frame = Vec::with_capacity(size + 4);
        frame.extend_from_slice(&(size as u32).to_be_bytes());
        frame.resize(size + 4, 0);
        socket.read_exact(&mut frame[4..]).await.ok()?;
        server_properties(&frame).and_then(|props| props.get("version").cloned())
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .ok()
        .flatten()
}

/// A PeerProperties request (correlation id 1) with no client properties, size prefix included.
fn peer_properties_request() -> Vec<u8> {
    let request: Request = PeerPropertiesCommand::new(1, HashMap::new()).into();
    let mut frame = Vec::with_capacity(request.encoded_size() as usize + 4);
    request
        .encode(&mut frame)
        .expect("writing to a Vec does not fail");
    frame
}

/// The server properties of a PeerProperties response frame (size prefix included).
fn server_properties(frame: &[u8]) -> Option<HashMap<String, String>> {
    match Response::decode(frame).ok()?.1.kind() {
        ResponseKind::PeerProperties(response) => Some(response.server_properties().clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_major_and_minor() {
        assert!(!version_at_least("3.10.8", 3, 11));
        assert!(version_at_least("3.11.0", 3, 11));
        assert!(version_at_least("3.13.7", 3, 11));
        assert!(version_at_least("4.0.5", 3, 11));
        assert!(version_at_least("4.1.0-rc.1", 3, 11));
        assert!(!version_at_least("garbage", 3, 11));
    }

    #[test]
    fn peer_properties_frames() {
        let request = peer_properties_request();
        assert_eq!(request.len(), 16);
        assert_eq!(&request[4..6], &[0x00, 0x11]);
        // The answer RabbitMQ 3.10.8 gives, as bytes on the wire.
        let mut response = vec![0x80, 0x11, 0, 1, 0, 0, 0, 1, 0, 1];
        response.extend_from_slice(&2i32.to_be_bytes());
        for s in ["product", "RabbitMQ", "version", "3.10.8"] {
            response.extend_from_slice(&(s.len() as i16).to_be_bytes());
            response.extend_from_slice(s.as_bytes());
        }
        let mut frame = (response.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&response);
        let props = server_properties(&frame).unwrap();
        assert_eq!(props["version"], "3.10.8");
        assert_eq!(server_properties(&frame[..16]), None);
    }
}
