//! What a given producer name published: generated updates or the lines of an input file. The
//! two number their publishing ids differently (an update's `seq + 1`, a line number), so a
//! `--resume` of one kind under a name that published the other would pass over updates it never
//! sent and say they were already stored. The kind is kept on the stream beside the name, as an
//! offset the broker tracks for the reference `invstream-origin:NAME`.

use crate::broker::BrokerSettings;
use crate::error::{InvError, Result};
use crate::settings::UpdateSourceSettings;

/// The prefix of the tracking reference that holds a name's origin.
pub(crate) const ORIGIN_REFERENCE: &str = "invstream-origin:";

/// How a name numbers what it publishes; the value is what the broker keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    Generated = 1,
    InputLines = 2,
}

impl Origin {
    pub(crate) fn of(source: &UpdateSourceSettings) -> Self {
        match source {
            UpdateSourceSettings::Generated { .. } => Origin::Generated,
            UpdateSourceSettings::Input { .. } => Origin::InputLines,
        }
    }

    fn from_stored(value: u64) -> Option<Self> {
        match value {
            1 => Some(Origin::Generated),
            2 => Some(Origin::InputLines),
            _ => None,
        }
    }
}

/// Fails when `name` published the other kind of updates on `stream`; records `origin` for a
/// name that holds nothing yet. A name that holds updates from before origins were recorded is
/// taken as it is (the input reader still refuses a file shorter than what the name holds).
pub(crate) async fn check_origin(
    broker: &BrokerSettings,
    name: &str,
    stream: &str,
    origin: Origin,
    stored_before: u64,
) -> Result<()> {
    let reference = format!("{ORIGIN_REFERENCE}{name}");
    let held = broker.stored_offset(&reference, stream).await?;
    match held.and_then(Origin::from_stored) {
        Some(held) if held != origin => Err(mismatch(name, stream, held)),
        Some(_) => Ok(()),
        None if stored_before == 0 => broker.store_offset(&reference, stream, origin as u64).await,
        None => Ok(()),
    }
}

fn mismatch(name: &str, stream: &str, held: Origin) -> InvError {
    let (published, give) = match held {
        Origin::Generated => (
            "generated updates (its publishing ids are update numbers, not line numbers)",
            "this input",
        ),
        Origin::InputLines => (
            "the lines of an input file (its publishing ids are line numbers)",
            "the generated updates",
        ),
    };
    InvError::usage(format!(
        "producer '{name}' published {published} to stream '{stream}': give {give} a --producer-name of its own"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_origin_reads_back_and_anything_else_is_unknown() {
        for origin in [Origin::Generated, Origin::InputLines] {
            assert_eq!(Origin::from_stored(origin as u64), Some(origin));
        }
        assert_eq!(Origin::from_stored(0), None);
        assert_eq!(Origin::from_stored(7), None);
    }

    #[test]
    fn a_mismatch_names_the_producer_and_what_it_published() {
        let e = mismatch("shop", "s", Origin::Generated).to_string();
        assert!(
            e.contains("'shop'") && e.contains("generated updates"),
            "{e}"
        );
        assert!(!e.contains('\n'));
        let e = mismatch("shop", "s", Origin::InputLines).to_string();
        assert!(e.contains("lines of an input file"), "{e}");
    }
}
