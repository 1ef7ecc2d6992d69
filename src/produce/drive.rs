//! The produce loop: batches from the update source, paced, admitted under the in-flight bound,
//! handed to the publisher (one per partition of the target), then the confirms awaited.

use std::time::Duration;

use super::{UpdateSource, INVALID_LINES_SHOWN};
use crate::error::{InvError, Result};
use crate::publisher::{Pace, PartitionedPublisher, PublishOutcome};
use crate::report::Output;
use crate::settings::ProduceSettings;
use crate::shutdown::Shutdown;

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
    let confirmed = publisher.progress_counter();
    let mut stop = shutdown.signal();
    let mut interrupted = false;
    let mut invalid_lines = 0;
    let mut failure = None;
    let mut pace = settings.rate.map(|rate| Pace::new(rate as f64));
    // Valid updates the source gave: an input of only invalid lines is an error, not "0 sent".
    let mut read = 0u64;
    let confirm_timeout = settings.confirm_timeout;

    loop {
        let batch = tokio::select! {
            biased;
            _ = stop.stopped() => {
                interrupted = true;
                break;
            }
            batch = source.next_batch(&mut invalid_lines, out) => batch,
        };
        let batch = match batch {
            Ok(Some(batch)) => {
                read += batch.len() as u64;
                batch
            }
            Ok(None) => break,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        // Paced, a batch goes out in pieces of at most 10 ms of messages.
        let piece = pace
            .as_ref()
            .map_or(usize::MAX, |p| p.most_at_once() as usize);
        let mut rest = batch;
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
                    interrupted = true;
                    break;
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
                    true => interrupted = true,
                    false => failure = Some(e),
                }
                break;
            }
            progress.set_position(confirmed());
        }
        if interrupted || failure.is_some() {
            break;
        }
    }
    if let Some(failure) = failure {
        progress.finish_and_clear();
        if let (Some(command), true) = (finish_with, resuming_helps(&failure)) {
            out.status(&format!("to send the rest exactly once, run: {command}"));
        }
        return Err(failure);
    }
    if invalid_lines > INVALID_LINES_SHOWN {
        out.status(&format!("{invalid_lines} invalid lines in all"));
    }
    if read == 0 && invalid_lines > 0 && !interrupted {
        progress.finish_and_clear();
        return Err(InvError::Input(format!(
            "no valid update in the input: all {invalid_lines} lines read were invalid (the first are shown above); see the README's input format"
        )));
    }

    let wait_for_confirms = match interrupted {
        true => confirm_timeout.min(Duration::from_secs(5)),
        false => confirm_timeout,
    };
    let outcome = tokio::select! {
        outcome = publisher.finish(wait_for_confirms) => outcome,
        _ = async {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                progress.set_position(confirmed());
            }
        } => unreachable!("the progress loop never ends"),
        _ = async { if interrupted { std::future::pending().await } else { stop.stopped().await } } => {
            interrupted = true;
            Ok(publisher.outcomes())
        }
    };
    progress.finish_and_clear();
    Ok(Driven {
        outcome: outcome?,
        interrupted,
        invalid_lines,
    })
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
