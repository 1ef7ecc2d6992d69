//! The messages a group's instances write on their coordination stream, one JSON object each
//! (`"type"` says which). Latency histograms travel whole (HdrHistogram V2, base64), so the
//! group's percentiles are exact.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::engines::feed::IntervalSample;
use crate::stats::{BenchSecond, LatencyHistogram};

/// One process of a group, as it introduces itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Random, chosen at start: two processes on one host (even with one pid, in containers)
    /// never share it. The group's order, and so its leader, follow it.
    pub id: String,
    pub host: String,
    pub pid: u32,
}

impl Member {
    /// This process, under a new random id.
    pub fn this_process() -> Member {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        Member {
            id: format!("{:016x}", hasher.finish()),
            host: host_name(),
            pid: std::process::id(),
        }
    }
}

/// This machine's name, or "unknown".
fn host_name() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: gethostname writes at most `len` bytes into the buffer it is given.
    let done = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) } == 0;
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    match (done, end) {
        (true, 1..) => String::from_utf8_lossy(&buffer[..end]).into_owned(),
        _ => "unknown".to_string(),
    }
}

/// A message on the coordination stream. Every instance reads them all, in the stream's order,
/// from the moment it subscribed ("next"): what it reads was written by a live process.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Control {
    /// Every half second while the group forms: "I am here, for a group of `instances`, to run
    /// `plan`" (the options every instance must share, in words).
    Hello {
        member: Member,
        instances: u32,
        plan: String,
    },
    /// The leader's, once `instances` are here: the group is `roster` (in order), benches
    /// `stream`, and starts `delay_ms` after each instance reads this. The first `Start` in
    /// the stream is the one that counts.
    Start {
        run: String,
        roster: Vec<Member>,
        stream: String,
        delay_ms: u64,
    },
    /// An instance's sample number `index` (1, 2, …) of its run.
    Sample {
        run: String,
        id: String,
        index: u64,
        sample: Box<WireSample>,
    },
    /// An instance's producers are all done: they confirmed `confirmed` messages.
    Published {
        run: String,
        id: String,
        confirmed: u64,
    },
    /// An instance's run is over: its figures.
    Done {
        run: String,
        id: String,
        figures: Box<InstanceFigures>,
    },
    /// The leader's: instance `id` sent nothing for too long; the group goes on without it.
    Lost { run: String, id: String },
    /// "Still here": an instance that sent nothing else for a second (opening its producers,
    /// closing them) says so, so silence means it is gone.
    Alive { run: String, id: String },
}

impl Control {
    /// The message's body on the stream.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a control message always serializes")
    }

    /// A body read from the stream; `None` for anything else (a stream shared by mistake).
    pub fn decode(body: &[u8]) -> Option<Control> {
        serde_json::from_slice(body).ok()
    }

    /// The run a message of a running group belongs to (none for `Hello`).
    pub fn run(&self) -> Option<&str> {
        match self {
            Control::Hello { .. } => None,
            Control::Start { run, .. }
            | Control::Sample { run, .. }
            | Control::Published { run, .. }
            | Control::Done { run, .. }
            | Control::Lost { run, .. }
            | Control::Alive { run, .. } => Some(run),
        }
    }
}

/// `serde(with)` for a histogram as base64 text.
mod histogram_text {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::stats::LatencyHistogram;

    pub fn serialize<S: Serializer>(h: &LatencyHistogram, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&h.to_base64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<LatencyHistogram, D::Error> {
        let text = String::deserialize(d)?;
        LatencyHistogram::from_base64(&text)
            .ok_or_else(|| serde::de::Error::custom("not an HdrHistogram in base64"))
    }
}

/// An [`IntervalSample`] as it travels.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireSample {
    pub start_ms: u64,
    pub length_ms: u64,
    pub second: BenchSecond,
    #[serde(with = "histogram_text")]
    pub confirm: LatencyHistogram,
    #[serde(with = "histogram_text")]
    pub end_to_end: LatencyHistogram,
    #[serde(with = "histogram_text")]
    pub chunk_messages: LatencyHistogram,
    pub in_flight: u64,
    pub reconnects: u64,
    pub confirmed_by_partition: Vec<u64>,
    pub sent_total: u64,
    pub consumed_total: u64,
    pub failed_total: u64,
    pub reader_positions: Vec<u64>,
    pub last: bool,
}

impl From<&IntervalSample> for WireSample {
    fn from(s: &IntervalSample) -> Self {
        WireSample {
            start_ms: s.start.as_millis() as u64,
            length_ms: s.length.as_millis() as u64,
            second: s.second.clone(),
            confirm: s.confirm.clone(),
            end_to_end: s.end_to_end.clone(),
            chunk_messages: s.chunk_messages.clone(),
            in_flight: s.in_flight,
            reconnects: s.reconnects,
            confirmed_by_partition: s.confirmed_by_partition.clone(),
            sent_total: s.sent_total,
            consumed_total: s.consumed_total,
            failed_total: s.failed_total,
            reader_positions: s.reader_positions.clone(),
            last: s.last,
        }
    }
}

impl From<WireSample> for IntervalSample {
    fn from(s: WireSample) -> Self {
        IntervalSample {
            start: Duration::from_millis(s.start_ms),
            length: Duration::from_millis(s.length_ms),
            second: s.second,
            confirm: s.confirm,
            end_to_end: s.end_to_end,
            in_flight: s.in_flight,
            reconnects: s.reconnects,
            confirmed_by_partition: s.confirmed_by_partition,
            sent_total: s.sent_total,
            consumed_total: s.consumed_total,
            failed_total: s.failed_total,
            chunk_messages: s.chunk_messages,
            reader_positions: s.reader_positions,
            last: s.last,
        }
    }
}

/// What one instance's run came to: what its own summary says, with its whole run's latency
/// histograms, so the group's summary is the sum of its instances'.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstanceFigures {
    pub producers: u64,
    pub consumers: u64,
    pub sent: u64,
    pub bytes: u64,
    pub confirmed: u64,
    pub failed: u64,
    pub consumed: u64,
    pub reconnects: u64,
    /// From its producers' start to their last confirm.
    pub elapsed_s: f64,
    /// From its start to the sample at which its consumers caught up.
    pub consume_elapsed_s: f64,
    pub interrupted: bool,
    #[serde(with = "histogram_text")]
    pub confirm: LatencyHistogram,
    #[serde(with = "histogram_text")]
    pub end_to_end: LatencyHistogram,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_survives_the_stream() {
        let member = Member::this_process();
        assert_eq!(member.id.len(), 16);
        assert_ne!(member.id, Member::this_process().id, "random ids");
        let mut histogram = LatencyHistogram::new();
        histogram.record_us(1_500);
        let sample = WireSample {
            start_ms: 1_000,
            length_ms: 1_000,
            second: BenchSecond {
                second: 2.0,
                published_per_s: 10.0,
                confirmed_per_s: 10.0,
                consumed_per_s: 20.0,
                confirm_p50_us: 1_500,
                confirm_p99_us: 1_500,
                end_to_end_p50_us: 0,
                end_to_end_p99_us: 0,
            },
            confirm: histogram.clone(),
            end_to_end: LatencyHistogram::new(),
            chunk_messages: LatencyHistogram::new(),
            in_flight: 3,
            reconnects: 0,
            confirmed_by_partition: vec![20],
            sent_total: 23,
            consumed_total: 40,
            failed_total: 0,
            reader_positions: vec![20, 20],
            last: false,
        };
        let messages = [
            Control::Hello {
                member: member.clone(),
                instances: 3,
                plan: "p".into(),
            },
            Control::Start {
                run: "r".into(),
                roster: vec![member.clone()],
                stream: "s".into(),
                delay_ms: 2_000,
            },
            Control::Sample {
                run: "r".into(),
                id: member.id.clone(),
                index: 2,
                sample: Box::new(sample),
            },
            Control::Lost {
                run: "r".into(),
                id: member.id.clone(),
            },
        ];
        for message in messages {
            let back = Control::decode(&message.encode()).expect("decodes");
            // Histograms have no equality of their own: compare their encodings.
            assert_eq!(
                serde_json::to_value(&back).unwrap(),
                serde_json::to_value(&message).unwrap()
            );
        }
        assert!(Control::decode(b"{\"sku\":\"not ours\"}").is_none());
    }
}
