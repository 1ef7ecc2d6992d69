//! `invstream produce`: generate `--count` updates (or read `--input`), publish them through the
//! publishing engine, wait for every confirm, and render the summary. Every run publishes new
//! updates under a producer name of its own unless `--producer-name` is given; `--resume`
//! finishes an interrupted run exactly once, and a run that stops early says how.

use rabbitmq_stream_client::Environment;

use crate::broker::lock::{release_all, NameLock};
use crate::broker::BrokerSettings;
use crate::engines::publisher::{PartitionedPublisher, PublishOutcome};
use crate::error::{InvError, Result};
use crate::input::{spawn_reader, InputEvent};
use crate::model::{now_us, NumberedUpdate, UpdateGenerator};
use crate::report::Output;
use crate::settings::{CommonSettings, ProduceSettings, UpdateSourceSettings};
use crate::shutdown::Shutdown;
use crate::stats::{CommandName, RunSummary};
use crate::superstream::{connect_and_ensure, take_producer_name, Asked};
use crate::target::Target;

mod drive;
use drive::{drive, Driven};

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

/// A producer name no other run uses: the time and the process. Not the stream's name (the
/// broker keeps names per stream): the broker hashes and compares the name for every message it
/// deduplicates, and a long one cost a super stream's partitions ~10% of their rate
/// (docs/BENCHMARKS.md, "The message layout").
pub(crate) fn unique_producer_name() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("invstream-{millis}-{}", std::process::id())
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

/// What a produce run sends, worked out from what each partition holds for the producer name
/// (a stream is the one-partition case).
struct Plan {
    /// Updates (or input lines) up to this publishing id are not generated (read) at all.
    after: u64,
    /// Of those, the ones this run counts as skipped: all of them when resuming, none when a
    /// new run goes on after the name's highest id.
    skipped: u64,
    /// Generated updates to make from there.
    to_send: Option<u64>,
    /// The name's total after this run (generated), for the resume command.
    total: Option<u64>,
    /// `--resume` where partitions hold different amounts: the last id each one holds, passed
    /// over per partition.
    resume_after: Option<Vec<u64>>,
}

/// The partitions of one name hold different amounts when a run stops. A new run goes on after
/// the highest id; `--resume` starts after the lowest and passes over, per partition, what that
/// partition already holds. `stored` is empty for a name of this run's own.
fn plan(
    settings: &ProduceSettings,
    stored: &[u64],
    producer_name: &str,
    target: &Target,
    out: Output,
) -> Result<Plan> {
    let lowest = stored.iter().copied().min().unwrap_or(0);
    let highest = stored.iter().copied().max().unwrap_or(0);
    let holds = format!(
        "producer '{producer_name}' already stored up to publishing id {highest} in {}",
        target.describe()
    );
    let each = match target.is_super_stream {
        true => " (each partition after its own last id)",
        false => "",
    };
    let resume_after = (settings.resume && lowest < highest).then(|| stored.to_vec());
    match &settings.source {
        UpdateSourceSettings::Generated { count, .. } if settings.resume => {
            let after = lowest.min(*count);
            if highest > 0 {
                out.status(&format!("{holds}: sending the rest of {count}{each}"));
            }
            Ok(Plan {
                after,
                skipped: after,
                to_send: Some(count - after),
                total: Some(*count),
                resume_after,
            })
        }
        UpdateSourceSettings::Generated { count, .. } => Ok(Plan {
            after: highest,
            skipped: 0,
            to_send: Some(*count),
            total: Some(highest + count),
            resume_after: None,
        }),
        UpdateSourceSettings::Input { source, .. } => {
            if highest > 0 && !settings.resume {
                return Err(InvError::usage(format!(
                    "{holds}: add --resume to go on after the lines it holds, or leave out --producer-name to publish {source} again as new updates"
                )));
            }
            if highest > 0 {
                out.status(&format!("{holds}: resuming {source}{each}"));
            }
            Ok(Plan {
                after: lowest,
                skipped: lowest,
                to_send: None,
                total: None,
                resume_after,
            })
        }
    }
}

/// `invstream produce`, to a stream or a super stream.
pub async fn run(
    common: &CommonSettings,
    settings: &ProduceSettings,
    shutdown: &Shutdown,
    out: Output,
) -> Result<RunSummary> {
    let broker = &common.broker;
    let asked = match &settings.super_stream {
        Some(asked) => Asked::SuperStream {
            name: &asked.name,
            layout: asked.layout.as_ref(),
        },
        None => Asked::Stream(&common.stream),
    };
    let (env, mut target) = connect_and_ensure(broker, asked, &settings.retention, out).await?;
    let producer_name = settings
        .producer_name
        .clone()
        .unwrap_or_else(unique_producer_name);
    let (locks, stored) =
        hold_given_name(&env, broker, settings, &mut target, &producer_name, out).await?;
    let opened = match plan(settings, &stored, &producer_name, &target, out) {
        Ok(plan) => open(&env, broker, settings, &target, &producer_name, out)
            .await
            .map(|publisher| (plan, publisher)),
        Err(e) => Err(e),
    };
    let (plan, mut publisher) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            release_all(locks).await;
            return Err(e);
        }
    };
    // Each partition's publisher holds its name from now on (taken again if its connection is
    // lost), and releases it when it closes.
    publisher.hold_names(locks);
    publisher.stop_on(&shutdown.signal());
    let run = Run {
        broker,
        settings,
        target: &target,
        producer_name: &producer_name,
        stored: &stored,
        shutdown,
        out,
    };
    run.publish(publisher, plan).await
}

/// A given name is held by one run at a time (a default name is this run's alone), partition by
/// partition. It is taken before the broker is asked what the name holds: a run that read the
/// name's last id and then waited for the holder to finish would re-send ids the holder stored,
/// and the broker confirms those duplicates while dropping them. The locks, and the last id each
/// partition holds (none for a name of this run's own). A super stream's partitions may go on
/// under their older names (`superstream::take_producer_name`).
async fn hold_given_name(
    env: &Environment,
    broker: &BrokerSettings,
    settings: &ProduceSettings,
    target: &mut Target,
    producer_name: &str,
    out: Output,
) -> Result<(Vec<NameLock>, Vec<u64>)> {
    if !(settings.dedup && settings.producer_name.is_some()) {
        return Ok((Vec::new(), Vec::new()));
    }
    take_producer_name(broker, env, target, producer_name, out).await
}

/// Opens the run's publisher: one per partition, routed as the super stream was asked.
async fn open(
    env: &Environment,
    broker: &BrokerSettings,
    settings: &ProduceSettings,
    target: &Target,
    producer_name: &str,
    out: Output,
) -> Result<PartitionedPublisher> {
    let options = settings
        .publish
        .publisher_options(producer_name.to_string(), settings.dedup);
    let by_warehouse = settings
        .super_stream
        .as_ref()
        .is_some_and(|asked| asked.by_warehouse());
    let events = move |event| out.publisher_event(&event);
    PartitionedPublisher::open(
        env,
        broker,
        target,
        options,
        by_warehouse,
        std::sync::Arc::new(events),
    )
    .await
}

/// What one produce run works with once its publisher is open.
struct Run<'a> {
    broker: &'a BrokerSettings,
    settings: &'a ProduceSettings,
    target: &'a Target,
    producer_name: &'a str,
    /// What each partition held for a given name before this run.
    stored: &'a [u64],
    shutdown: &'a Shutdown,
    out: Output,
}

impl Run<'_> {
    /// Drives the publisher through the updates the plan names, then closes it and sums up.
    async fn publish(&self, mut publisher: PartitionedPublisher, plan: Plan) -> Result<RunSummary> {
        let (settings, out) = (self.settings, self.out);
        let mut source = update_source(settings, plan.after, plan.to_send.unwrap_or(0));
        if let Some(stored) = plan.resume_after {
            publisher.resume_after(stored);
        }
        let argv: Vec<String> = std::env::args().skip(1).collect();
        let finish_with = settings.dedup.then(|| {
            format!(
                "invstream {}",
                resume_command(&argv, self.producer_name, plan.total)
            )
        });
        if let Some(command) = &finish_with {
            publisher
                .set_give_up_advice(format!(": to send the rest exactly once, run: {command}"));
        }
        out.status(&self.publishing_line(&plan.to_send, &publisher));
        let drive = drive(
            &mut publisher,
            &mut source,
            settings,
            self.shutdown,
            out,
            plan.to_send,
            finish_with.as_deref(),
        )
        .await;
        // Checked while the name is still held: once released, a run that takes it may publish.
        let checked = match (&drive, settings.dedup && settings.producer_name.is_some()) {
            (Ok(driven), true) => {
                self.check_no_one_else_published(&publisher, &driven.outcome)
                    .await
            }
            _ => Ok(()),
        };
        let passed_over = publisher.passed_over();
        publisher.close().await;
        let Driven {
            outcome: outcomes,
            interrupted,
            invalid_lines,
        } = drive?;
        checked?;
        let total = PublishOutcome::sum(&outcomes);
        if let (Some(command), true) = (&finish_with, interrupted || total.failed > 0) {
            out.notice(&format!("to send the rest exactly once, run: {command}"));
        }
        let skipped = plan.skipped + passed_over;
        let mut summary = RunSummary::published(
            CommandName::Produce,
            &self.target.name,
            self.producer_name,
            total,
            skipped,
            invalid_lines,
        );
        summary.interrupted = interrupted;
        if self.target.is_super_stream {
            summary.partitions = self.partition_summaries(outcomes);
        }
        Ok(summary)
    }

    /// "publishing N updates to stream 'S' as producer 'P'" (with the partitions and the routing
    /// on a super stream).
    fn publishing_line(&self, to_send: &Option<u64>, publisher: &PartitionedPublisher) -> String {
        let what = match &self.settings.source {
            UpdateSourceSettings::Generated { .. } => format!("{} updates", to_send.unwrap_or(0)),
            UpdateSourceSettings::Input { source, .. } => format!("the updates in {source}"),
        };
        let partitions = match self.target.is_super_stream {
            true => format!(
                " ({} partitions: {}, routed by {})",
                self.target.partitions.len(),
                self.target.partitions.join(", "),
                match publisher.routes_by_product() {
                    true => "product id",
                    false => "warehouse",
                }
            ),
            false => String::new(),
        };
        format!(
            "publishing {what} to {}{partitions} as producer '{}'",
            self.target.describe(),
            self.producer_name
        )
    }

    fn partition_summaries(&self, outcomes: Vec<PublishOutcome>) -> Vec<RunSummary> {
        self.target
            .producer_names(self.producer_name)
            .into_iter()
            .zip(outcomes)
            .map(|((producer, partition), outcome)| {
                RunSummary::published(CommandName::Produce, &partition, &producer, outcome, 0, 0)
            })
            .collect()
    }

    /// Two runs publishing under one given name at once drop each other's updates as duplicates
    /// (the broker confirms them all the same). Afterwards the broker's last id for the name on
    /// each partition tells: it must be exactly the last one this run handed to it.
    async fn check_no_one_else_published(
        &self,
        publisher: &PartitionedPublisher,
        outcomes: &[PublishOutcome],
    ) -> Result<()> {
        if outcomes.iter().any(|outcome| outcome.failed > 0) {
            return Ok(());
        }
        let names = self.target.producer_names(self.producer_name);
        for (index, (producer, partition)) in names.iter().enumerate() {
            let ours = publisher.last_sent()[index];
            if outcomes[index].confirmed == 0 || ours == 0 {
                continue;
            }
            let last = self.broker.last_publishing_id(producer, partition).await?;
            if last > ours.max(self.stored.get(index).copied().unwrap_or(0)) {
                self.out.status(&format!(
                    "the broker's last publishing id for '{producer}' is {last}, this run's was {ours}: another run published under the same name meanwhile"
                ));
                return Err(crate::error::PublishError::NameInUse {
                    name: producer.clone(),
                    stream: partition.clone(),
                }
                .into());
            }
        }
        Ok(())
    }
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
        let a = unique_producer_name();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert_ne!(a, unique_producer_name());
        assert!(a.starts_with("invstream-"));
        assert!(a.len() <= "invstream-1796459048455-4194304".len(), "{a}");
    }
}
