//! The produce loop: batches from the update source, paced, admitted under the in-flight bound,
//! handed to the publisher (one per partition of the target), then the confirms awaited.

use std::time::Duration;

use indicatif::ProgressBar;

use super::{UpdateSource, INVALID_LINES_SHOWN};
use crate::engines::publisher::{Pace, PartitionedPublisher, PublishOutcome};
use crate::error::{InvError, Result};
use crate::report::Output;
use crate::settings::ProduceSettings;
use crate::shutdown::{Shutdown, StopSignal};

/// After a stop, the confirms of what was sent get this long, so the summary counts what was
/// stored without keeping the user waiting.
const CONFIRM_WAIT_AFTER_STOP: Duration = Duration::from_secs(5);

/// How a drive ended (the publisher still open: the caller closes it).
pub(super) struct Driven {
    /// Each partition's.
    pub outcome: Vec<PublishOutcome>,
    pub interrupted: bool,
    pub invalid_lines: u64,
}

/// The produce loop: until the source is exhausted or the stop signal, takes the next batch,
/// paces it (`--rate`), waits for room under the in-flight bound and hands it to the publisher;
/// then waits for the confirms (briefly after a stop). A failure says how to finish the run
/// (`finish_with`) unless the error already does.
pub(super) async fn drive(
    publisher: &mut PartitionedPublisher,
    source: &mut UpdateSource,
    settings: &ProduceSettings,
    shutdown: &Shutdown,
    out: Output,
    to_send: Option<u64>,
    finish_with: Option<&str>,
) -> Result<Driven> {
    let progress = out.progress(to_send, "produce");
    let mut stop = shutdown.signal();
    let sent = send_all(publisher, source, settings, &mut stop, out, &progress).await;
    if let Some(failure) = sent.failure {
        progress.finish_and_clear();
        if let (Some(command), true) = (finish_with, resuming_helps(&failure)) {
            out.notice(&format!("to send the rest exactly once, run: {command}"));
        }
        return Err(failure);
    }
    let invalid_lines = sent.invalid_lines;
    if invalid_lines > INVALID_LINES_SHOWN {
        out.status(&format!("{invalid_lines} invalid lines in all"));
    }
    if sent.read == 0 && invalid_lines > 0 && !sent.interrupted {
        progress.finish_and_clear();
        return Err(InvError::Input(format!(
            "no valid update in the input: all {invalid_lines} lines read were invalid (the first are shown above); see the README's input format"
        )));
    }
    let (outcome, interrupted) =
        wait_for_confirms(publisher, settings, &mut stop, sent.interrupted, &progress).await;
    progress.finish_and_clear();
    Ok(Driven {
        outcome: outcome?,
        interrupted,
        invalid_lines,
    })
}

/// How sending ended.
struct Sent {
    interrupted: bool,
    failure: Option<InvError>,
    /// Valid updates the source gave: an input of only invalid lines is an error, not "0 sent".
    read: u64,
    invalid_lines: u64,
}

/// Hands the source's batches to the publisher until it is exhausted, the stop comes, or a
/// send fails.
async fn send_all(
    publisher: &mut PartitionedPublisher,
    source: &mut UpdateSource,
    settings: &ProduceSettings,
    stop: &mut StopSignal,
    out: Output,
    progress: &ProgressBar,
) -> Sent {
    let confirmed = publisher.progress_counter();
    let mut sent = Sent {
        interrupted: false,
        failure: None,
        read: 0,
        invalid_lines: 0,
    };
    let mut pace = settings.rate.map(|rate| Pace::new(rate as f64));
    let confirm_timeout = settings.confirm_timeout;
    loop {
        let batch = tokio::select! {
            biased;
            _ = stop.stopped() => {
                sent.interrupted = true;
                return sent;
            }
            batch = source.next_batch(&mut sent.invalid_lines, out) => batch,
        };
        let mut rest = match batch {
            Ok(Some(batch)) => {
                sent.read += batch.len() as u64;
                batch
            }
            Ok(None) => return sent,
            Err(e) => {
                sent.failure = Some(e);
                return sent;
            }
        };
        // Paced, a batch goes out in pieces of at most 10 ms of messages.
        let piece = pace
            .as_ref()
            .map_or(usize::MAX, |p| p.most_at_once() as usize);
        while !rest.is_empty() {
            let batch = match rest.len() > piece {
                true => {
                    let tail = rest.split_off(piece);
                    std::mem::replace(&mut rest, tail)
                }
                false => std::mem::take(&mut rest),
            };
            tokio::select! {
                biased;
                _ = stop.stopped() => {
                    sent.interrupted = true;
                    return sent;
                }
                _ = async {
                    if let Some(pace) = &mut pace {
                        pace.wait_for(batch.len() as u64).await;
                    }
                    publisher.wait_for_room(batch.len() as u64, confirm_timeout).await
                } => {}
            }
            // Not raced with the stop: a send cut short would leave its batch half handed over.
            // A send that failed because the stop came while reconnecting is an interruption.
            if let Err(e) = publisher.send(batch, confirm_timeout).await {
                match stop.is_stopped() {
                    true => sent.interrupted = true,
                    false => sent.failure = Some(e),
                }
                return sent;
            }
            progress.set_position(confirmed());
        }
    }
}

/// Waits for the confirms of everything sent (at most a few seconds after a stop), showing
/// progress; a stop while waiting ends the wait with what was confirmed. The outcome, and
/// whether the run was interrupted.
async fn wait_for_confirms(
    publisher: &mut PartitionedPublisher,
    settings: &ProduceSettings,
    stop: &mut StopSignal,
    interrupted: bool,
    progress: &ProgressBar,
) -> (Result<Vec<PublishOutcome>>, bool) {
    let confirmed = publisher.progress_counter();
    let wait_for_confirms = match interrupted {
        true => settings.confirm_timeout.min(CONFIRM_WAIT_AFTER_STOP),
        false => settings.confirm_timeout,
    };
    tokio::select! {
        outcome = publisher.finish(wait_for_confirms) => (outcome, interrupted),
        _ = async {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                progress.set_position(confirmed());
            }
        } => unreachable!("the progress loop never ends"),
        _ = async { if interrupted { std::future::pending().await } else { stop.stopped().await } } => {
            (Ok(publisher.outcomes()), true)
        }
    }
}

/// Whether the command that finishes the run is worth printing after `error`: not when the
/// error already carries it (reconnecting gave up), nor when the input itself is at fault (the
/// same command would stop at the same line).
fn resuming_helps(error: &InvError) -> bool {
    !matches!(
        error,
        InvError::Connect(crate::error::ConnectError::RetryWindowEnded { .. }) | InvError::Input(_)
    )
}
