//! Where a reader starts: the offset specifications as the user wrote them, and as the broker
//! takes them.

use std::time::Duration;

use futures::StreamExt;
use rabbitmq_stream_client::error::ConsumerCreateError;
use rabbitmq_stream_client::types::OffsetSpecification;
use rabbitmq_stream_client::Environment;

/// How long a subscription at a timestamp stays silent before we believe nothing is stored from
/// it on (the broker then waits for new messages, as at `next`); one with messages from the
/// timestamp on gets its first chunk at once.
const TIMESTAMP_SILENCE: Duration = Duration::from_secs(2);

/// How long closing the probe's subscription may take.
const PROBE_CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// The broker's offset specifications, as the user wrote them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartOffset {
    First,
    Last,
    Next,
    Offset(u64),
    /// Milliseconds since the Unix epoch, with the text the user gave.
    Timestamp {
        millis: i64,
        text: String,
    },
    /// Right after the offset the broker stored for the consumer's name.
    Stored,
}

impl std::fmt::Display for StartOffset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartOffset::First => f.write_str("first"),
            StartOffset::Last => f.write_str("last"),
            StartOffset::Next => f.write_str("next"),
            StartOffset::Offset(n) => write!(f, "{n}"),
            StartOffset::Timestamp { text, .. } => f.write_str(text),
            StartOffset::Stored => f.write_str("stored"),
        }
    }
}

/// The broker's offset specification for a start offset; `stored` is the offset the broker keeps
/// for the reader's name (`None`: nothing stored, start from the first).
pub fn offset_specification(offset: &StartOffset, stored: Option<u64>) -> OffsetSpecification {
    match (offset, stored) {
        (StartOffset::First, _) => OffsetSpecification::First,
        (StartOffset::Last, _) => OffsetSpecification::Last,
        (StartOffset::Next, _) => OffsetSpecification::Next,
        (StartOffset::Offset(n), _) => OffsetSpecification::Offset(*n),
        (StartOffset::Timestamp { millis, .. }, _) => OffsetSpecification::Timestamp(*millis),
        (StartOffset::Stored, Some(stored)) => OffsetSpecification::Offset(stored + 1),
        (StartOffset::Stored, None) => OffsetSpecification::First,
    }
}

/// The first offset of the first chunk the broker delivers from timestamp `millis` on `stream`,
/// or `None` when it delivers nothing: nothing stored is that recent. Chunk timestamps are the
/// broker's and the client has no request for them, so a subscription asks.
pub async fn first_offset_from_timestamp(
    env: &Environment,
    stream: &str,
    millis: i64,
) -> std::result::Result<Option<u64>, ConsumerCreateError> {
    let mut consumer = env
        .consumer()
        .offset(OffsetSpecification::Timestamp(millis))
        .client_provided_name("invstream-timestamp-probe")
        .build_chunked(stream)
        .await?;
    let first = match tokio::time::timeout(TIMESTAMP_SILENCE, consumer.next()).await {
        Ok(Some(Ok(chunk))) => Some(chunk.first_offset()),
        _ => None,
    };
    let _ = tokio::time::timeout(PROBE_CLOSE_TIMEOUT, consumer.handle().close()).await;
    Ok(first)
}

impl StartOffset {
    /// Whether reading from here replays what is stored (and so may stop at the stream's end),
    /// rather than waiting for what is published from now on.
    pub fn is_replay(&self) -> bool {
        !matches!(self, StartOffset::Last | StartOffset::Next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_start_offset_asks_the_broker_for_its_specification() {
        use OffsetSpecification as O;
        let cases = [
            (StartOffset::First, None, O::First),
            (StartOffset::Last, None, O::Last),
            (StartOffset::Next, Some(9), O::Next),
            (StartOffset::Offset(42), None, O::Offset(42)),
            (StartOffset::Stored, Some(41), O::Offset(42)),
            (StartOffset::Stored, None, O::First),
        ];
        for (start, stored, expected) in cases {
            let got = offset_specification(&start, stored);
            assert_eq!(format!("{got:?}"), format!("{expected:?}"), "{start}");
        }
        let at = StartOffset::Timestamp {
            millis: 1_700_000_000_000,
            text: "2023-11-14T22:13:20Z".into(),
        };
        assert_eq!(
            format!("{:?}", offset_specification(&at, None)),
            format!("{:?}", O::Timestamp(1_700_000_000_000))
        );
        assert_eq!(at.to_string(), "2023-11-14T22:13:20Z");
        assert!(StartOffset::First.is_replay() && !StartOffset::Next.is_replay());
    }
}
