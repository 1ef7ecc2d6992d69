use std::collections::HashMap;

use rabbitmq_stream_protocol::{commands::metadata::MetadataResponse, ResponseCode};

#[derive(Debug, PartialEq, Eq, Clone)]
pub struct Broker {
    pub host: String,
    pub port: u32,
}

#[derive(Debug, PartialEq, Eq)]
pub struct StreamMetadata {
    pub stream: String,
    pub response_code: ResponseCode,
    pub leader: Broker,
    pub replicas: Vec<Broker>,
}

/// The streams of `response` that have a leader, by name. A stream the broker has no leader
/// for (not available, or no such stream) is left out; [`lookup`] says why.
pub fn from_response(response: MetadataResponse) -> HashMap<String, StreamMetadata> {
    lookup(response)
        .into_iter()
        .filter_map(|(stream, metadata)| metadata.ok().map(|metadata| (stream, metadata)))
        .collect()
}

/// Each stream of `response`, by name: its metadata if it has a leader among the brokers, else
/// the broker's code for it (`StreamDoesNotExist`), or `StreamNotAvailable` where that code is
/// `Ok` (a leader the response does not list). A stream with no leader yet (just declared, or
/// between leaders) comes with `StreamNotAvailable`: it exists and will be back.
pub(crate) fn lookup(
    response: MetadataResponse,
) -> HashMap<String, Result<StreamMetadata, ResponseCode>> {
    let brokers: HashMap<u16, Broker> = response
        .brokers
        .into_iter()
        .map(|broker| {
            (
                broker.reference,
                Broker {
                    host: broker.host,
                    port: broker.port,
                },
            )
        })
        .collect();

    response
        .stream_metadata
        .into_iter()
        .map(|metadata| {
            let found = match brokers.get(&metadata.leader_reference) {
                Some(leader) => Ok(StreamMetadata {
                    stream: metadata.stream_name.clone(),
                    response_code: metadata.code,
                    leader: leader.clone(),
                    replicas: metadata
                        .replicas_references
                        .into_iter()
                        .filter_map(|replica| brokers.get(&replica).cloned())
                        .collect(),
                }),
                None if metadata.code == ResponseCode::Ok => Err(ResponseCode::StreamNotAvailable),
                None => Err(metadata.code),
            };
            (metadata.stream_name, found)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use rabbitmq_stream_protocol::{
        codec::Decoder, commands::metadata::MetadataResponse, ResponseCode,
    };

    use super::{from_response, lookup, Broker};

    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend((s.len() as u16).to_be_bytes());
        out.extend(s.as_bytes());
    }

    /// A metadata response as the broker writes it (after the frame's key and version): two
    /// brokers, and a stream with a leader, one being elected (code 6, leader -1), one that
    /// does not exist (code 2, leader -1) and one whose leader is not among the brokers.
    fn response() -> MetadataResponse {
        let mut out = Vec::new();
        out.extend(7u32.to_be_bytes()); // correlation id
        out.extend(2u32.to_be_bytes());
        for (reference, port) in [(0u16, 5561u32), (1, 5562)] {
            out.extend(reference.to_be_bytes());
            string(&mut out, "localhost");
            out.extend(port.to_be_bytes());
        }
        let streams: [(&str, u16, u16, &[u16]); 4] = [
            ("ok", 1, 0, &[1]),
            ("electing", 6, 0xFFFF, &[]),
            ("gone", 2, 0xFFFF, &[]),
            ("orphan", 1, 9, &[]),
        ];
        out.extend((streams.len() as u32).to_be_bytes());
        for (name, code, leader, replicas) in streams {
            string(&mut out, name);
            out.extend(code.to_be_bytes());
            out.extend(leader.to_be_bytes());
            out.extend((replicas.len() as u32).to_be_bytes());
            for replica in replicas {
                out.extend(replica.to_be_bytes());
            }
        }
        let (rest, response) = MetadataResponse::decode(&out).unwrap();
        assert!(rest.is_empty());
        response
    }

    #[test]
    fn a_leaderless_stream_is_not_available() {
        let found = lookup(response());
        assert_eq!(found.len(), 4);
        let ok = found["ok"].as_ref().unwrap();
        assert_eq!(ok.leader.port, 5561);
        assert_eq!(
            ok.replicas,
            vec![Broker {
                host: "localhost".into(),
                port: 5562
            }]
        );
        assert_eq!(
            found["electing"].as_ref().unwrap_err(),
            &ResponseCode::StreamNotAvailable
        );
        assert_eq!(
            found["gone"].as_ref().unwrap_err(),
            &ResponseCode::StreamDoesNotExist
        );
        assert_eq!(
            found["orphan"].as_ref().unwrap_err(),
            &ResponseCode::StreamNotAvailable
        );
    }

    #[test]
    fn from_response_keeps_the_streams_with_a_leader() {
        let streams = from_response(response());
        assert_eq!(streams.keys().collect::<Vec<_>>(), ["ok"]);
    }
}
