//! `invstream bench --instances N --group NAME`: this process as one of N that run one
//! benchmark together. It joins the group (`engines::group`: they meet on the broker), runs
//! its share of the producers, consumers, `--count` and `--rate` on the stream the leader
//! created, sends its samples and figures to the group, and prints the group's summary, the
//! same in every instance, with each instance's own figures in it. The leader (the group's
//! first instance) shows the group's samples live and writes `--plot` and `--hdr-log` for the
//! whole group; the others show their own samples. Every instance exits with the group's
//! verdict: 1 when a message failed or an instance was lost.

use crate::entry::MessageProperties;
use std::time::{Duration, Instant, SystemTime};

use crate::broker::{BrokerSettings, Retention};
use crate::commands::bench::{self, BenchRun, InstanceLink};
use crate::dashboard::{self, RunPlan};
use crate::engines::feed::{self, IntervalSample, Recorder, SampleView};
use crate::engines::group::{
    self, Channels, Group, GroupEnd, GroupEvents, GroupSpec, InstanceFigures, Share,
};
use crate::error::{Result, StreamError};
use crate::report::{self, thousands, Output, SecondLines};
use crate::settings::{BenchSettings, CommonSettings, GroupSettings};
use crate::shutdown::Shutdown;
use crate::stats::{
    BenchSecond, CommandDetails, CommandName, GroupInstance, LatencyHistogram, LatencyKind,
    RunSummary, Totals,
};
use crate::superstream::{self, PartitionLayout};
use crate::target::Target;

/// `bench --instances`: the group's summary.
pub async fn run(
    common: &CommonSettings,
    settings: &BenchSettings,
    group_settings: &GroupSettings,
    shutdown: &Shutdown,
    out: Output,
) -> Result<RunSummary> {
    let broker = &common.broker;
    let partitions = settings.super_stream_partitions;
    let env = match partitions {
        Some(_) => superstream::connect(broker).await?,
        None => broker.connect().await?,
    };
    let events: GroupEvents = std::sync::Arc::new(move |event| {
        out.status(&report::group_event_line(&event));
    });
    let joined = join(common, settings, group_settings, &env, &events, out).await?;
    // From here the run heeds a stop itself, so the group hears of it.
    let _heeded = shutdown.signal();
    let instances = joined.roster.len() as u64;
    let index = joined.index();
    let is_leader = joined.is_leader();
    let share_of = |i: usize| {
        group::share(
            i as u64,
            instances,
            settings.producers,
            settings.consumers,
            settings.count,
            settings.rate,
        )
    };
    let own = share_settings(settings, share_of(index));
    let target = joined_target(broker, &joined, partitions).await?;
    out.status(&joined_line(&joined, &target, &own));
    let (group_name, roster, start_at) = (
        joined.name().to_string(),
        joined.roster.clone(),
        joined.start_at,
    );
    let started_at = SystemTime::now() + start_at.saturating_duration_since(Instant::now());
    let (channels, task) = joined.start(events);
    let (link, done, feed) = instance_link(channels, start_at, is_leader);
    // The leader's live view shows the group's samples; every instance keeps them.
    let mut recorder = Recorder::default();
    let mut lines = SecondLines(out);
    let mut dashboard = match is_leader {
        true => dashboard::start_if_wanted(
            settings.no_tui,
            group_plan(
                settings,
                &joined_target_title(&target, &group_name),
                start_at,
            ),
            shutdown,
            out,
        ),
        false => None,
    };
    let mut views: Vec<&mut dyn SampleView> = vec![&mut recorder];
    if is_leader {
        match &mut dashboard {
            Some(dashboard) => views.push(dashboard),
            None => views.push(&mut lines),
        }
    }
    let (own_run, ()) = tokio::join!(
        async {
            let run = bench::run_instance(&env, broker, &target, &own, shutdown, out, link).await;
            // Without figures (the run failed) the group counts this instance lost.
            if let Ok(run) = &run {
                let _ = done.send(figures(&own, run));
            }
            run
        },
        feed::show(feed, &mut views),
    );
    drop(views);
    // The screen is restored before anything else is said.
    drop(dashboard);
    let own_run = own_run?;
    let end = task.await.expect("the group's task does not panic")?;
    let summary = group_summary(
        &joined_stream_name(&target),
        &group_name,
        &roster,
        &end,
        &share_of,
        &recorder,
        shutdown.received().is_some() || own_run.summary.interrupted,
    );
    if is_leader {
        write_group_files(settings, out, &recorder, started_at, &summary, &end)?;
        if !settings.keep_stream {
            bench::delete_target(broker, &target, out).await;
        }
    }
    Ok(summary)
}

/// Joins the group the command line names, as the leader creating the benchmark's stream
/// (or super stream) before it says `Start`.
async fn join(
    common: &CommonSettings,
    settings: &BenchSettings,
    group_settings: &GroupSettings,
    env: &rabbitmq_stream_client::Environment,
    events: &GroupEvents,
    out: Output,
) -> Result<Group> {
    let broker = &common.broker;
    let spec = GroupSpec {
        name: group_settings.name.clone(),
        instances: group_settings.instances,
        join_timeout: group_settings.join_timeout,
        plan: plan(settings),
    };
    out.status(&format!(
        "joining group '{}' of {} instances (on stream '{}')",
        spec.name,
        spec.instances,
        group::coordination_stream(&spec.name)
    ));
    let bench_stream = bench::bench_stream_name(&common.stream);
    let partitions = settings.super_stream_partitions;
    Group::join(env, broker, spec, events, || {
        create_target(broker, &bench_stream, partitions, out)
    })
    .await
}

/// The stream (or super stream, with its partitions) the leader created for the group.
async fn joined_target(
    broker: &BrokerSettings,
    joined: &Group,
    partitions: Option<u32>,
) -> Result<Target> {
    Ok(match partitions {
        Some(_) => {
            let super_stream = superstream::existing(broker, &joined.stream).await?;
            Target::super_stream(&super_stream.name, super_stream.partitions)
        }
        None => Target::stream(&joined.stream),
    })
}

/// What the bench run takes of the group's channels (its link), and what the command keeps:
/// where this instance's figures go when it is done, and the group's samples.
fn instance_link(
    channels: Channels,
    start_at: Instant,
    is_leader: bool,
) -> (
    InstanceLink,
    tokio::sync::oneshot::Sender<InstanceFigures>,
    tokio::sync::mpsc::UnboundedReceiver<IntervalSample>,
) {
    let Channels {
        samples,
        published,
        done,
        others_confirmed,
        feed,
    } = channels;
    let link = InstanceLink {
        start_at,
        samples,
        published,
        others_confirmed,
        show_own: !is_leader,
    };
    (link, done, feed)
}

/// The leader creates the group's stream (or super stream, with `--super-stream-partitions`),
/// as a bench creates its own.
async fn create_target(
    broker: &BrokerSettings,
    stream: &str,
    partitions: Option<u32>,
    out: Output,
) -> Result<String> {
    let arguments = Retention::default().arguments();
    if let Some(partitions) = partitions {
        let layout = PartitionLayout::Count(partitions);
        let created = superstream::ensure(broker, stream, Some(&layout), arguments, out).await?;
        return Ok(created.name);
    }
    let created = broker
        .while_starting(|| broker.ensure_stream(stream, arguments.clone()))
        .await?;
    if !created {
        return Err(StreamError::BenchStreamTaken {
            stream: stream.to_string(),
        }
        .into());
    }
    Ok(stream.to_string())
}

/// The options every instance must share, in words (the group refuses an instance that
/// differs: the shares would not add up).
fn plan(s: &BenchSettings) -> String {
    let amount = match s.duration {
        Some(d) => format!("--duration {}", humantime::format_duration(d)),
        None => format!("--count {}", s.count),
    };
    let rate = s.rate.map_or(String::new(), |r| format!(" --rate {r}"));
    let size = s
        .message_size
        .map_or(String::new(), |b| format!(" --message-size {b}"));
    let partitions = s
        .super_stream_partitions
        .map_or(String::new(), |p| format!(" --super-stream-partitions {p}"));
    let publish = &s.publish;
    let filter = match publish.filter_values {
        true => " --filter-values",
        false => "",
    };
    let batching = match publish.batching.sub_entry_size {
        1 => String::new(),
        size => format!(
            " --sub-entry-size {size} --compression {:?}",
            publish.batching.compression
        ),
    };
    let properties = match publish.properties {
        MessageProperties::Lean => "",
        MessageProperties::Full => " --properties full",
    };
    format!(
        "--producers {} --consumers {} {amount}{rate}{size}{partitions} --batch-size {} --max-in-flight {}{filter}{batching}{properties}",
        s.producers, s.consumers, publish.batch_size, publish.max_in_flight
    )
}

/// The group's settings with this instance's share in place of the group's counts.
fn share_settings(settings: &BenchSettings, share: Share) -> BenchSettings {
    BenchSettings {
        producers: share.producers,
        consumers: share.consumers,
        count: share.count,
        rate: share.rate,
        ..settings.clone()
    }
}

/// "instance 2 of 3 of group 'G' (leader: instance 1, HOST pid 123) on stream 'S': 1 producers,
/// 1 consumers, 3,334 messages".
fn joined_line(group: &Group, target: &Target, own: &BenchSettings) -> String {
    let leader = group.leader();
    let role = match group.is_leader() {
        true => "the leader".to_string(),
        false => format!("leader: instance 1, {} pid {}", leader.host, leader.pid),
    };
    let amount = match own.duration {
        Some(d) => format!("for {}", humantime::format_duration(d)),
        None => format!("{} messages", thousands(own.count)),
    };
    format!(
        "instance {} of {} of group '{}' ({role}) on {}: {} producers, {} consumers, {amount}",
        group.index() + 1,
        group.roster.len(),
        group.name(),
        target.describe(),
        own.producers,
        own.consumers,
    )
}

fn joined_target_title(target: &Target, group: &str) -> String {
    format!("group '{group}' on {}", target.describe())
}

fn joined_stream_name(target: &Target) -> String {
    target.name.clone()
}

/// What the leader's dashboard shows of the group's run.
fn group_plan(settings: &BenchSettings, title: &str, started: Instant) -> RunPlan {
    RunPlan {
        title: format!(
            "bench, {title}: {} producers, {} consumers",
            settings.producers, settings.consumers
        ),
        count: settings.duration.is_none().then_some(settings.count),
        duration: settings.duration,
        partitions: 1,
        consumers: settings.consumers,
        started,
    }
}

/// This instance's figures, for the group.
fn figures(own: &BenchSettings, run: &BenchRun) -> InstanceFigures {
    let (confirmed, failed, consumed) = match &run.summary.details {
        CommandDetails::Bench {
            confirmed,
            failed,
            consumed,
            ..
        } => (*confirmed, *failed, *consumed),
        _ => (0, 0, 0),
    };
    InstanceFigures {
        producers: own.producers,
        consumers: own.consumers,
        sent: run.summary.messages,
        bytes: run.summary.bytes,
        confirmed,
        failed,
        consumed,
        reconnects: run.summary.reconnects,
        elapsed_s: run.summary.elapsed_s,
        consume_elapsed_s: run.consume_elapsed_s,
        interrupted: run.summary.interrupted,
        confirm: run.confirm.clone(),
        end_to_end: run.end_to_end.clone(),
    }
}

/// A bench summary of `figures` on `stream`.
fn bench_summary(stream: &str, f: &InstanceFigures, timeline: Vec<BenchSecond>) -> RunSummary {
    let mut summary = RunSummary::new(
        CommandName::Bench,
        stream,
        Totals {
            messages: f.sent,
            bytes: f.bytes,
            elapsed: Duration::from_secs_f64(f.elapsed_s.max(0.0)),
        },
        LatencyKind::PublishToConfirm,
        &f.confirm,
        CommandDetails::Bench {
            producers: f.producers,
            consumers: f.consumers,
            confirmed: f.confirmed,
            failed: f.failed,
            consumed: f.consumed,
            consumed_per_s: (f.consumed as f64 / f.consume_elapsed_s.max(f64::EPSILON) * 100.0)
                .round()
                / 100.0,
            end_to_end_us: f.end_to_end.summary(),
            timeline,
            // A group refuses --consumers-per-group above 1 and --backlog.
            consumers_per_group: 1,
            groups: Vec::new(),
            backlog: None,
        },
    );
    summary.reconnects = f.reconnects;
    summary.interrupted = f.interrupted;
    summary
}

/// The group's summary: the sum of its instances' figures (times: the longest), their
/// latencies merged, the group's timeline; each instance's own summary in it, the lost ones
/// as of their last sample (their shares from the group's order).
fn group_summary(
    stream: &str,
    group: &str,
    roster: &[group::Member],
    end: &GroupEnd,
    share_of: &dyn Fn(usize) -> Share,
    recorder: &Recorder,
    interrupted_here: bool,
) -> RunSummary {
    let mut total = InstanceFigures {
        producers: 0,
        consumers: 0,
        sent: 0,
        bytes: 0,
        confirmed: 0,
        failed: 0,
        consumed: 0,
        reconnects: 0,
        elapsed_s: 0.0,
        consume_elapsed_s: 0.0,
        interrupted: interrupted_here,
        confirm: LatencyHistogram::new(),
        end_to_end: LatencyHistogram::new(),
    };
    let mut instances = Vec::with_capacity(end.members.len());
    for (index, outcome) in end.members.iter().enumerate() {
        let mut f = outcome.figures.clone();
        if outcome.lost_at_s.is_some() {
            let share = share_of(index);
            (f.producers, f.consumers) = (share.producers, share.consumers);
        }
        total.producers += f.producers;
        total.consumers += f.consumers;
        total.sent += f.sent;
        total.bytes += f.bytes;
        total.confirmed += f.confirmed;
        total.failed += f.failed;
        total.consumed += f.consumed;
        total.reconnects += f.reconnects;
        total.elapsed_s = total.elapsed_s.max(f.elapsed_s);
        total.consume_elapsed_s = total.consume_elapsed_s.max(f.consume_elapsed_s);
        total.interrupted |= f.interrupted && outcome.lost_at_s.is_none();
        total.confirm.merge(&f.confirm);
        total.end_to_end.merge(&f.end_to_end);
        let mut summary = bench_summary(stream, &f, Vec::new());
        summary.interrupted = f.interrupted && outcome.lost_at_s.is_none();
        summary.instance = Some(GroupInstance {
            number: index as u32 + 1,
            id: outcome.member.id.clone(),
            host: outcome.member.host.clone(),
            pid: outcome.member.pid,
            lost_at_s: outcome.lost_at_s.map(|s| (s * 10.0).round() / 10.0),
        });
        instances.push(summary);
    }
    let mut summary = bench_summary(stream, &total, recorder.timeline());
    summary.interrupted = total.interrupted;
    summary.group = Some(group.to_string());
    summary.instances = Some(roster.len() as u32);
    summary.instance_summaries = instances;
    summary
}

/// The leader's `--plot` and `--hdr-log`, of the group's samples and latencies.
fn write_group_files(
    settings: &BenchSettings,
    out: Output,
    recorder: &Recorder,
    started_at: SystemTime,
    summary: &RunSummary,
    end: &GroupEnd,
) -> Result<()> {
    let (mut confirm, mut end_to_end) = (LatencyHistogram::new(), LatencyHistogram::new());
    for outcome in &end.members {
        confirm.merge(&outcome.figures.confirm);
        end_to_end.merge(&outcome.figures.end_to_end);
    }
    bench::write_files(
        settings,
        out,
        &recorder.samples,
        started_at,
        &confirm,
        &end_to_end,
        summary.messages,
    )?;
    // The group's run as one bench run, for --export-omb: the group's samples and settings
    // (producers and consumers are the group's), its latencies merged.
    let run = BenchRun {
        summary: summary.clone(),
        confirm,
        end_to_end,
        samples: recorder.samples.clone(),
        consume_elapsed_s: 0.0,
    };
    bench::export_omb(
        settings,
        bench::OMB_WORKLOAD,
        crate::omb::DRIVER.to_string(),
        1,
        std::slice::from_ref(&run),
        out,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::group::{Member, MemberOutcome};

    fn figures(sent: u64, consumed: u64, latency_us: u64) -> InstanceFigures {
        let mut confirm = LatencyHistogram::new();
        confirm.record_n_us(latency_us, sent);
        InstanceFigures {
            producers: 1,
            consumers: 1,
            sent,
            bytes: sent * 100,
            confirmed: sent,
            failed: 0,
            consumed,
            reconnects: 0,
            elapsed_s: sent as f64 / 1_000.0,
            consume_elapsed_s: 2.0,
            interrupted: false,
            confirm,
            end_to_end: LatencyHistogram::new(),
        }
    }

    fn member(id: &str, pid: u32) -> Member {
        Member {
            id: id.into(),
            host: "h".into(),
            pid,
        }
    }

    #[test]
    fn the_group_is_the_sum_of_its_instances() {
        let roster = vec![member("a", 1), member("b", 2), member("c", 3)];
        let end = GroupEnd {
            members: vec![
                MemberOutcome {
                    member: roster[0].clone(),
                    figures: figures(1_000, 3_000, 100),
                    lost_at_s: None,
                },
                MemberOutcome {
                    member: roster[1].clone(),
                    figures: figures(2_000, 3_000, 200),
                    lost_at_s: None,
                },
                MemberOutcome {
                    member: roster[2].clone(),
                    figures: InstanceFigures {
                        producers: 0,
                        consumers: 0,
                        ..figures(500, 100, 900)
                    },
                    lost_at_s: Some(4.04),
                },
            ],
            assumed_lost: Vec::new(),
        };
        let share_of = |i: usize| group::share(i as u64, 3, 3, 3, 9_000, None);
        let summary = group_summary(
            "s",
            "g",
            &roster,
            &end,
            &share_of,
            &Recorder::default(),
            false,
        );
        assert_eq!(summary.messages, 3_500);
        assert_eq!(summary.instances, Some(3));
        assert_eq!(summary.elapsed_s, 2.0, "the longest instance");
        assert_eq!(summary.latency_us.count, 3_500, "every latency, merged");
        let json = serde_json::to_value(&summary).unwrap();
        assert_eq!(json["instances"], 3);
        assert_eq!(json["group"], "g");
        assert_eq!(json["confirmed"], 3_500);
        assert_eq!(json["consumed"], 6_100);
        assert_eq!(json["consumers"], 3, "the lost one's share counted");
        let each = json["instance_summaries"].as_array().unwrap();
        assert_eq!(each.len(), 3);
        let sum = |key: &str| each.iter().map(|s| s[key].as_u64().unwrap()).sum::<u64>();
        assert_eq!(sum("messages"), 3_500);
        assert_eq!(sum("consumed"), 6_100);
        assert_eq!(each[2]["instance"]["lost_at_s"], 4.0);
        assert_eq!(each[2]["instance"]["pid"], 3);
        assert!(each[0]["instance"].get("lost_at_s").is_none());
        let text = report::render_text(&summary);
        assert!(text.contains("(group 'g', 3 instances)"), "{text}");
        assert!(text.contains("LOST after 4.0 s"), "{text}");
    }

    #[test]
    fn the_plan_names_what_every_instance_must_share() {
        let cli = crate::cli::Cli::try_parse_command_line([
            "invstream",
            "bench",
            "--instances",
            "3",
            "--group",
            "g",
            "--producers",
            "3",
            "--count",
            "30000",
            "--rate",
            "900",
        ])
        .unwrap();
        let (_, command) = crate::settings::from_cli(&cli).unwrap();
        let crate::settings::CommandSettings::Bench(settings) = command else {
            panic!("a bench");
        };
        assert_eq!(
            plan(&settings),
            "--producers 3 --consumers 1 --count 30000 --rate 900 --batch-size 1000 --max-in-flight 20000"
        );
        let group = settings.group.clone().unwrap();
        assert_eq!((group.name.as_str(), group.instances), ("g", 3));
        assert_eq!(group.join_timeout, Duration::from_secs(60));
        let second = share_settings(&settings, group::share(1, 3, 3, 1, 30_000, Some(900)));
        assert_eq!((second.producers, second.consumers), (1, 0));
        assert_eq!((second.count, second.rate), (10_000, Some(300)));
    }
}
