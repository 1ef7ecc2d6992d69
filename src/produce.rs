//! `invstream produce`: generate `--count` updates (or read `--input`), publish them through the
//! publishing engine, wait for every confirm, and render the summary. Every run publishes new
//! updates under a producer name of its own unless `--producer-name` is given; `--resume`
//! finishes an interrupted run exactly once, and a run that stops early says how.

use crate::broker::{BrokerSettings, Retention};
use crate::error::{InvError, Result};
use crate::input::{spawn_reader, InputEvent, NumberedUpdate};
use crate::model::{now_us, UpdateGenerator};
use crate::publisher::{PublishOutcome, Publisher, PublisherOptions};

use crate::report::Output;
use crate::settings::{CommonSettings, ProduceSettings, UpdateSourceSettings};
use crate::shutdown::Shutdown;
use crate::stats::{CommandDetails, LatencyKind, RunSummary, Totals};
use rabbitmq_stream_client::Environment;

mod drive;
pub(crate) use drive::{drive, Driven, Publishing};

/// Where the updates of a produce run come from.
pub(crate) enum UpdateSource {
    /// The generator; `remaining` updates still to make.
    Generated {
        generator: UpdateGenerator,
        remaining: u64,
        batch_size: u64,
    },
    /// The user's NDJSON, read on another thread.
    Input {
        events: tokio::sync::mpsc::Receiver<InputEvent>,
        strict: bool,
    },
}

/// A bad input line is reported on stderr; past this many, they are only counted.
pub(crate) const INVALID_LINES_SHOWN: u64 = 20;

impl UpdateSource {
    /// The next batch of (publishing id, update), or `None` when the source is exhausted.
    /// Invalid input lines are counted in `invalid` and reported (or fatal with --strict).
    pub(crate) async fn next_batch(
        &mut self,
        invalid: &mut u64,
        out: Output,
    ) -> Result<Option<Vec<NumberedUpdate>>> {
        match self {
            UpdateSource::Generated {
                generator,
                remaining,
                batch_size,
            } => {
                let size = (*remaining).min(*batch_size);
                *remaining -= size;
                Ok((size > 0).then(|| generated_batch(generator, size)))
            }
            UpdateSource::Input { events, strict } => loop {
                match events.recv().await {
                    None => return Ok(None),
                    Some(InputEvent::Batch(batch)) => return Ok(Some(batch)),
                    Some(InputEvent::Failed(message)) => return Err(InvError::Input(message)),
                    Some(InputEvent::Invalid { line, reason }) => {
                        if *strict {
                            return Err(InvError::Input(format!(
                                "line {line} is not a valid inventory update: {reason} (--strict)"
                            )));
                        }
                        *invalid += 1;
                        if *invalid <= INVALID_LINES_SHOWN {
                            out.status(&format!(
                                "line {line} skipped, not a valid inventory update: {reason}"
                            ));
                        }
                    }
                }
            },
        }
    }
}

/// The next `size` generated updates, each under its publishing id `seq + 1`, stamped with
/// one production time (they are made, and sent, together; one clock read per batch).
pub fn generated_batch(generator: &mut UpdateGenerator, size: u64) -> Vec<NumberedUpdate> {
    let produced_at_us = now_us();
    (0..size)
        .map(|_| {
            let update = generator.next_update(produced_at_us);
            (update.seq + 1, update)
        })
        .collect()
}

/// A producer name no other run uses: the stream, the time and the process.
pub(crate) fn unique_producer_name(stream: &str) -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("invstream-{stream}-{millis}-{}", std::process::id())
}

/// The command that finishes this run exactly once: the same arguments, under this run's
/// producer name, with `--resume` (and `--count` as the name's total for generated updates).
/// A password in `--uri` is shown as `***`.
pub fn resume_command(args: &[String], producer_name: &str, total: Option<u64>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut args = args.iter().peekable();
    let mut uri_next = false;
    while let Some(arg) = args.next() {
        if std::mem::take(&mut uri_next) || arg.starts_with("--uri=") {
            out.push(crate::broker::settings::redact_uri(arg));
            continue;
        }
        uri_next = arg == "--uri";
        let (flag, inline_value) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value)),
            _ => (arg.as_str(), None),
        };
        match flag {
            "--producer-name" | "--count" => {
                if inline_value.is_none() {
                    args.next();
                }
            }
            "--resume" => {}
            _ => out.push(arg.clone()),
        }
    }
    out.push("--producer-name".into());
    out.push(producer_name.to_string());
    if let Some(total) = total {
        out.push("--count".into());
        out.push(total.to_string());
    }
    out.push("--resume".into());
    out.iter()
        .map(|arg| shell_quote(arg))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `arg` as a POSIX shell reads it back.
fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
    match plain {
        true => arg.to_string(),
        false => format!("'{}'", arg.replace('\'', "'\\''")),
    }
}

/// Connects and creates the stream if it is missing: the start of every command that publishes.
pub async fn connect_and_ensure_stream(
    broker: &BrokerSettings,
    stream: &str,
    retention: &Retention,
    out: Output,
) -> Result<Environment> {
    let env = broker.connect().await?;
    let arguments = retention.arguments();
    let created = broker
        .while_starting(|| broker.ensure_stream(stream, arguments.clone()))
        .await?;
    if created {
        out.status(&format!("created stream '{stream}'"));
    } else if let Some(owner) = crate::superstream::owner_of_partition(broker, stream).await {
        return Err(InvError::usage(format!(
            "stream '{stream}' is a partition of super stream '{owner}': publish with --super-stream {owner}, so each update goes to its product's partition"
        )));
    }
    Ok(env)
}

/// The updates of a run that goes on after the `after` the broker holds for the name: generated
/// ones continue `seq` after them (`to_send` of them), input resumes after line `after`.
pub(crate) fn update_source(settings: &ProduceSettings, after: u64, to_send: u64) -> UpdateSource {
    match &settings.source {
        UpdateSourceSettings::Generated { products, seed, .. } => {
            let mut generator = UpdateGenerator::new(*products, *seed);
            // The same seed regenerates the same updates, so a resumed run sends exactly the
            // missing ones.
            for _ in 0..after {
                generator.next_update(0);
            }
            UpdateSource::Generated {
                generator,
                remaining: to_send,
                batch_size: settings.publish.batch_size,
            }
        }
        UpdateSourceSettings::Input { source, strict } => UpdateSource::Input {
            events: spawn_reader(source.clone(), after, settings.publish.batch_size as usize),
            strict: *strict,
        },
    }
}

/// What a run is about to send, worked out from what the broker holds for the name.
struct RunPlan {
    producer_name: String,
    source: UpdateSource,
    /// Updates not sent because the broker holds them (`--resume`).
    skipped: u64,
    /// Updates to send, when known (generated).
    to_send: Option<u64>,
    /// The name's total after this run, for the resume command (generated).
    total: Option<u64>,
    /// The highest publishing id the broker held for the name before this run.
    stored_before: u64,
}

async fn plan(
    broker: &BrokerSettings,
    stream: &str,
    settings: &ProduceSettings,
    out: Output,
) -> Result<RunPlan> {
    let batch_size = settings.publish.batch_size;
    let producer_name = match (&settings.producer_name, &settings.source) {
        (Some(name), _) => name.clone(),
        (None, _) => unique_producer_name(stream),
    };
    // A new name holds nothing yet; a given one may.
    let stored_before = match (settings.dedup, settings.producer_name.is_some()) {
        (true, true) => {
            broker
                .while_starting(|| broker.last_publishing_id(&producer_name, stream))
                .await?
        }
        _ => 0,
    };
    let plan = match &settings.source {
        UpdateSourceSettings::Generated {
            count,
            products,
            seed,
        } => {
            let mut generator = UpdateGenerator::new(*products, *seed);
            // seq continues after what the name holds (the same seed regenerates the same
            // updates, so a resumed run sends exactly the missing ones).
            for _ in 0..stored_before {
                generator.next_update(0);
            }
            let (skipped, to_send, total) = match settings.resume {
                true => {
                    let skipped = stored_before.min(*count);
                    (skipped, count - skipped, *count)
                }
                false => (0, *count, stored_before + count),
            };
            if settings.resume && skipped > 0 {
                out.status(&format!(
                    "producer '{producer_name}' already stored {stored_before} updates in '{stream}': sending {to_send} more"
                ));
            }
            RunPlan {
                source: UpdateSource::Generated {
                    generator,
                    remaining: to_send,
                    batch_size,
                },
                skipped,
                to_send: Some(to_send),
                total: Some(total),
                producer_name,
                stored_before,
            }
        }
        UpdateSourceSettings::Input { source, strict } => {
            if stored_before > 0 && !settings.resume {
                return Err(InvError::usage(format!(
                    "producer '{producer_name}' already stored {stored_before} lines in '{stream}': add --resume to go on after line {stored_before}, or leave out --producer-name to publish {source} again as new updates"
                )));
            }
            if stored_before > 0 {
                out.status(&format!(
                    "producer '{producer_name}' already stored {stored_before} lines in '{stream}': resuming {source} after line {stored_before}"
                ));
            }
            RunPlan {
                source: UpdateSource::Input {
                    events: spawn_reader(source.clone(), stored_before, batch_size as usize),
                    strict: *strict,
                },
                skipped: stored_before,
                to_send: None,
                total: None,
                producer_name,
                stored_before,
            }
        }
    };
    Ok(plan)
}

/// `invstream produce`.
pub async fn run(
    common: &CommonSettings,
    settings: &ProduceSettings,
    shutdown: &Shutdown,
    out: Output,
) -> Result<RunSummary> {
    let (broker, stream) = (&common.broker, common.stream.as_str());
    let env = connect_and_ensure_stream(broker, stream, &settings.retention, out).await?;
    // A given name is held by one run at a time (a default name is this run's alone). It is
    // taken before the broker is asked what the name holds: a run that read the name's last id
    // and then waited for the holder to finish would re-send ids the holder stored, and the
    // broker confirms those duplicates while dropping them.
    let name_lock = match (settings.dedup, &settings.producer_name) {
        (true, Some(name)) => Some(
            broker
                .while_starting(|| broker.lock_producer_name(&env, stream, name))
                .await?,
        ),
        _ => None,
    };
    let plan = match plan(broker, stream, settings, out).await {
        Ok(plan) => plan,
        Err(e) => {
            if let Some(lock) = name_lock {
                lock.release().await;
            }
            return Err(e);
        }
    };
    let options = PublisherOptions {
        batch_size: settings.publish.batch_size,
        max_in_flight: settings.publish.max_in_flight,
        filter_values: settings.publish.filter_values,
        producer_name: plan.producer_name.clone(),
        dedup: settings.dedup,
        batching: settings.publish.batching,
    };
    let events = move |event| out.publisher_event(&event);
    match Publisher::open(&env, broker, stream, options, std::sync::Arc::new(events)).await {
        Ok(mut publisher) => {
            // Held by the publisher from now on (taken again if its connection is lost), and
            // released when it closes.
            if let Some(lock) = name_lock {
                publisher.hold_name(lock);
            }
            publisher.stop_on(shutdown.signal());
            publish(broker, stream, settings, shutdown, out, publisher, plan).await
        }
        Err(e) => {
            if let Some(lock) = name_lock {
                lock.release().await;
            }
            Err(e)
        }
    }
}

/// The publishing part of a produce run, once the publisher is open.
async fn publish(
    broker: &BrokerSettings,
    stream: &str,
    settings: &ProduceSettings,
    shutdown: &Shutdown,
    out: Output,
    mut publisher: Publisher,
    plan: RunPlan,
) -> Result<RunSummary> {
    let RunPlan {
        producer_name,
        mut source,
        skipped,
        to_send,
        total,
        stored_before,
    } = plan;
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let finish_with = settings
        .dedup
        .then(|| format!("invstream {}", resume_command(&argv, &producer_name, total)));
    if let Some(command) = &finish_with {
        publisher.set_give_up_advice(format!(": to send the rest exactly once, run: {command}"));
    }
    let what = match &settings.source {
        UpdateSourceSettings::Generated { .. } => format!("{} updates", to_send.unwrap_or(0)),
        UpdateSourceSettings::Input { source, .. } => format!("the updates in {source}"),
    };
    out.status(&format!(
        "publishing {what} to stream '{stream}' as producer '{producer_name}'"
    ));
    let drive = drive(
        &mut publisher,
        &mut source,
        settings,
        shutdown,
        out,
        to_send,
        finish_with.as_deref(),
    )
    .await;
    // Checked while the name is still held: once released, a run that takes it may publish.
    let checked = match (&drive, settings.dedup && settings.producer_name.is_some()) {
        (Ok(driven), true) => {
            check_no_one_else_published(
                broker,
                stream,
                &producer_name,
                stored_before,
                &driven.outcome,
                out,
            )
            .await
        }
        _ => Ok(()),
    };
    publisher.close().await;
    let Driven {
        outcome,
        interrupted,
        invalid_lines,
    } = drive?;
    checked?;
    if let (Some(command), true) = (&finish_with, interrupted || outcome.failed > 0) {
        out.status(&format!("to send the rest exactly once, run: {command}"));
    }
    let mut summary = summary(stream, &producer_name, outcome, skipped, invalid_lines);
    summary.interrupted = interrupted;
    Ok(summary)
}

/// Two runs publishing under one given name at once drop each other's updates as duplicates
/// (the broker confirms them all the same). Afterwards the broker's last id for the name tells:
/// it must be exactly this run's last one.
async fn check_no_one_else_published(
    broker: &BrokerSettings,
    stream: &str,
    name: &str,
    stored_before: u64,
    outcome: &PublishOutcome,
    out: Output,
) -> Result<()> {
    if outcome.confirmed == 0 || outcome.failed > 0 {
        return Ok(());
    }
    let last = broker.last_publishing_id(name, stream).await?;
    let ours = stored_before + outcome.confirmed;
    if last > ours {
        out.status(&format!(
            "the broker's last publishing id for '{name}' is {last}, this run's was {ours}: another run published under the same name meanwhile"
        ));
        return Err(crate::error::PublishError::NameInUse {
            name: name.to_string(),
            stream: stream.to_string(),
        }
        .into());
    }
    Ok(())
}

/// The run's summary from what the publisher achieved.
pub fn summary(
    stream: &str,
    producer: &str,
    outcome: PublishOutcome,
    skipped: u64,
    invalid_lines: u64,
) -> RunSummary {
    let mut summary = RunSummary::new(
        "produce",
        stream,
        Totals {
            messages: outcome.sent,
            bytes: outcome.bytes,
            elapsed: outcome.elapsed,
        },
        LatencyKind::PublishToConfirm,
        &outcome.latency,
        CommandDetails::Produce {
            producer: producer.to_string(),
            max_stall_s: (outcome.max_stall.as_secs_f64() * 1000.0).round() / 1000.0,
            confirmed: outcome.confirmed,
            failed: outcome.failed,
            skipped,
            invalid_lines,
        },
    );
    summary.reconnects = outcome.reconnects;
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn the_resume_command_names_the_run_and_its_total() {
        let cmd = resume_command(
            &args("--stream s produce --count 1000 --rate 500"),
            "p-1",
            Some(3000),
        );
        assert_eq!(
            cmd,
            "--stream s produce --rate 500 --producer-name p-1 --count 3000 --resume"
        );
        let cmd = resume_command(
            &args("produce --producer-name=old --resume --count=5 --input my file.ndjson"),
            "it's",
            None,
        );
        assert_eq!(
            cmd,
            "produce --input my file.ndjson --producer-name 'it'\\''s' --resume"
        );
    }

    #[test]
    fn every_run_gets_its_own_name() {
        let a = unique_producer_name("s");
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert_ne!(a, unique_producer_name("s"));
        assert!(a.starts_with("invstream-s-"));
    }
}
