//! `invstream bench`: producers and consumers at once on a stream of their own, the way
//! RabbitMQ's stream-perf-test works: a line per second on stderr (published, confirmed and
//! consumed per second, confirm and end-to-end latency), or on a terminal the live dashboard
//! (`crate::dashboard`), then one summary. Producers are the
//! publishing engine, consumers the reading engine, as in `produce` and `consume`. Ctrl-C or
//! SIGTERM ends the run early; its stream is deleted either way (unless `--keep-stream`).
//! With `--super-stream-partitions N` it runs on a super stream of its own instead: each producer
//! is a `PartitionedPublisher` (hash routing by product), each consumer one reader per partition;
//! the lines and the summary are the partitions' totals.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rabbitmq_stream_client::Environment;

use crate::broker::{BrokerSettings, Retention};
use crate::commands::produce::generated_batch;
use crate::dashboard::{self, RunPlan};
use crate::engines::feed::{
    self, ConsumerCounters, FeedSender, IntervalSample, Recorder, SampleView, Sampler,
};
use crate::engines::publisher::{Pace, PartitionedPublisher, PublishOutcome, PublisherStats};
use crate::engines::reader::{self, MessageSink, ReadPlan, ReaderSpec, Take};
use crate::entry::MessageView;
use crate::error::{Result, StreamError};
use crate::live_metrics::{self, BenchMetrics};
use crate::model::{now_us, BurstClock, InventoryUpdate, UpdateGenerator};
use crate::omb::{self, OmbRun, TestResult, TopicRun};
use crate::plot::{write_hdr_log, write_plot, LoggedInterval};
use crate::report::{thousands, Output, SecondLines};
use crate::settings::{BacklogSettings, BenchSettings, CommonSettings};
use crate::shutdown::{Shutdown, Signal};
use crate::stats::{
    BacklogDrain, BenchSecond, CommandDetails, CommandName, GroupConsumerReads, GroupReads,
    LatencyHistogram, LatencyKind, RunSummary, Totals,
};
use crate::superstream::{self, PartitionLayout};
use crate::target::Target;

/// After the producers finish, consumers get this long to read what is left.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a benchmark producer waits for a confirm (a stall) or for its last confirms before
/// it gives up: a broker that confirms nothing for this long is no benchmark.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

/// After the user's stop, the confirms of what was sent get this long, so the numbers count
/// what was stored without keeping the user waiting.
const CONFIRM_WAIT_AFTER_STOP: Duration = Duration::from_secs(5);

/// How often the reporter checks whether the run is over between its once-a-second lines.
const FINISH_POLL: Duration = Duration::from_millis(50);

/// A consumer folds its latencies into the shared histograms every this many messages.
const CONSUMER_FLUSH: u64 = 512;

/// `invstream bench`.
pub async fn run(
    common: &CommonSettings,
    settings: &BenchSettings,
    shutdown: &Shutdown,
    out: Output,
) -> Result<RunSummary> {
    let run = run_measured(common, settings, shutdown, out).await?;
    let driver = omb::DRIVER.to_string();
    export_omb(
        settings,
        OMB_WORKLOAD,
        driver,
        1,
        std::slice::from_ref(&run),
        out,
    )?;
    Ok(run.summary)
}

/// The workload name of a bench run without a workload file, in its OMB results.
pub const OMB_WORKLOAD: &str = "invstream-bench";

/// What one bench run measured: its summary, the whole run's latency histograms (the
/// workbench draws their percentile curves) and its samples (the OMB results' intervals).
pub struct BenchRun {
    pub summary: RunSummary,
    pub confirm: LatencyHistogram,
    pub end_to_end: LatencyHistogram,
    pub samples: Vec<IntervalSample>,
    /// From the start to the sample at which the consumers caught up.
    pub consume_elapsed_s: f64,
}

/// With `--export-omb DIR`: `runs` (one per topic of `workload`, run at once) as one result in
/// OMB's format, in DIR; said on stderr. Nothing without the flag or without a run.
pub fn export_omb(
    settings: &BenchSettings,
    workload: &str,
    driver: String,
    topics: u32,
    runs: &[BenchRun],
    out: Output,
) -> Result<()> {
    let (Some(dir), false) = (&settings.export_omb, runs.is_empty()) else {
        return Ok(());
    };
    let (bytes, messages) = runs.iter().fold((0, 0), |(b, m), run| {
        (b + run.summary.bytes, m + run.summary.messages)
    });
    let run = OmbRun {
        workload: workload.to_string(),
        driver,
        // Without --message-size, the updates' mean body size.
        message_size: settings
            .message_size
            .unwrap_or_else(|| bytes.checked_div(messages).unwrap_or(0)),
        topics,
        partitions: settings.super_stream_partitions.unwrap_or(1),
        producers_per_topic: settings.producers,
        consumers_per_topic: settings.consumers_per_group,
        subscriptions_per_topic: settings.groups(),
    };
    let topics: Vec<TopicRun> = runs
        .iter()
        .map(|run| TopicRun {
            samples: &run.samples,
            confirm: &run.confirm,
            end_to_end: &run.end_to_end,
        })
        .collect();
    let path = omb::write(dir, &TestResult::new(&run, &topics))?;
    out.status(&format!("wrote {}", path.display()));
    Ok(())
}

/// One bench run, on a stream or super stream of its own, deleted after it.
pub async fn run_measured(
    common: &CommonSettings,
    settings: &BenchSettings,
    shutdown: &Shutdown,
    out: Output,
) -> Result<BenchRun> {
    let (broker, stream) = (&common.broker, common.stream.as_str());
    // A taken --prometheus port is said before anything is created.
    let metrics_listener = match settings.prometheus {
        Some(addr) => Some(live_metrics::bind(addr).await?),
        None => None,
    };
    let bench_stream = bench_stream_name(stream);
    let (env, target) = open_target(broker, &bench_stream, settings, out).await?;
    // From here bench heeds a stop itself, so its stream is deleted on the way out.
    let _heeded = shutdown.signal();
    let outcome = bench(
        &env,
        broker,
        &target,
        settings,
        shutdown,
        out,
        metrics_listener,
        None,
    )
    .await;
    if !settings.keep_stream {
        delete_target(broker, &target, out).await;
    }
    outcome
}

/// Deletes a benchmark's stream or super stream; a failure is said, not an error (the run's
/// figures stand).
pub(crate) async fn delete_target(broker: &BrokerSettings, target: &Target, out: Output) {
    let deleted = match target.is_super_stream {
        true => superstream::delete(broker, &target.name).await,
        false => broker.delete_stream(&target.name).await,
    };
    if let Err(e) = deleted {
        out.status(&format!(
            "could not delete the benchmark's {}: {e}",
            kind(target)
        ));
    }
}

/// "stream" or "super stream".
fn kind(target: &Target) -> &'static str {
    match target.is_super_stream {
        true => "super stream",
        false => "stream",
    }
}

/// Creates the run's own stream, or super stream with `--super-stream-partitions`, and
/// connects to it.
async fn open_target(
    broker: &BrokerSettings,
    bench_stream: &str,
    settings: &BenchSettings,
    out: Output,
) -> Result<(Environment, Target)> {
    let Some(partitions) = settings.super_stream_partitions else {
        let env = broker.connect().await?;
        let arguments = Retention::default().arguments();
        let created = broker
            .while_starting(|| broker.ensure_stream(bench_stream, arguments.clone()))
            .await?;
        // Its consumers count everything in the stream as this run's: a stream someone else
        // writes to would count their messages too.
        if !created {
            return Err(StreamError::BenchStreamTaken {
                stream: bench_stream.to_string(),
            }
            .into());
        }
        out.status(&format!("created stream '{bench_stream}'"));
        return Ok((env, Target::stream(bench_stream)));
    };
    let env = superstream::connect(broker).await?;
    let super_stream = superstream::ensure(
        broker,
        bench_stream,
        Some(&PartitionLayout::Count(partitions)),
        Retention::default().arguments(),
        out,
    )
    .await?;
    let target = Target::super_stream(&super_stream.name, super_stream.partitions);
    Ok((env, target))
}

/// A stream name for one bench run: `STREAM-bench-` and the time in milliseconds and the process
/// id, so two runs started at once (on one machine) never share a stream.
pub(crate) fn bench_stream_name(stream: &str) -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("{stream}-bench-{millis}-{}", std::process::id())
}

/// One benchmark run on its target, once the target exists.
struct Bench<'a> {
    env: &'a Environment,
    broker: &'a BrokerSettings,
    target: &'a Target,
    args: &'a BenchSettings,
    out: Output,
}

/// What the producers achieved, together, and what the consumers read.
struct Results {
    published: PublishOutcome,
    consumed: u64,
    /// From the consumers' start to the sample at which they caught up.
    consume_elapsed: f64,
    end_to_end: LatencyHistogram,
    /// Each reader's reads, by its index (consumer after consumer, a partition each).
    reads: Vec<ReaderReads>,
    backlog: Option<BacklogDrain>,
}

/// What one reader read: counted, and passed over as read already by its group.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct ReaderReads {
    counted: u64,
    read_again: u64,
}

impl Results {
    /// The producers' outcomes and the stopped consumers' counts, once every task ended.
    async fn collect(
        producers: Vec<tokio::task::JoinHandle<Result<PublishOutcome>>>,
        watched: Watched,
        counters: &ConsumerCounters,
        consume_elapsed: f64,
    ) -> Result<Results> {
        let mut outcomes = Vec::with_capacity(producers.len());
        for producer in producers {
            // A producer task returns its outcome or its error; it has no panicking path.
            outcomes.push(producer.await.expect("a producer task does not panic")?);
        }
        let mut reads = vec![ReaderReads::default(); counters.positions().len()];
        if let Some(consumers) = watched.consumers {
            for (_, mut outcome) in consumers.join(|_| {}).await {
                outcome.sink.flush();
                let sink = &outcome.sink;
                if let Some(read) = reads.get_mut(sink.reader) {
                    *read = ReaderReads {
                        counted: sink.counted,
                        read_again: sink.read_again,
                    };
                }
            }
        }
        Ok(Results {
            published: PublishOutcome::sum(&outcomes),
            consumed: counters.consumed(),
            consume_elapsed,
            end_to_end: counters.end_to_end(),
            reads,
            backlog: watched.backlog,
        })
    }
}

/// What a run that is one instance of a group (`bench --instances`) adds to a bench run: the
/// group's common start, its samples sent to the group too, and what the group's other
/// instances published (the run is over when they are done and this one's consumers read what
/// they confirmed too). The live view is the group's, on the leader (the `bench_group`
/// command, which drives this), not this instance's; files are written for the whole group,
/// there too.
pub struct InstanceLink {
    /// When the producers start.
    pub start_at: Instant,
    /// Every sample goes to the group as well.
    pub samples: FeedSender,
    /// Told once, when this instance's producers are done: what they confirmed.
    pub published: tokio::sync::mpsc::UnboundedSender<u64>,
    /// What the other instances confirmed, once each is done publishing (or lost).
    pub others_confirmed: tokio::sync::watch::Receiver<Option<u64>>,
    /// Whether this instance shows its own samples (a follower) or not (the leader shows the
    /// group's).
    pub show_own: bool,
}

impl InstanceLink {
    /// What the run's views and its watch each take of a group's link.
    fn split(link: Option<Self>) -> (Option<ToGroup>, Option<GroupWatch>) {
        match link {
            Some(link) => (
                Some(ToGroup(link.samples)),
                Some(GroupWatch {
                    published: link.published,
                    others_confirmed: link.others_confirmed,
                }),
            ),
            None => (None, None),
        }
    }
}

/// `--prometheus`: the live samples served until the run is over.
struct MetricsServer {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl MetricsServer {
    fn start(metrics: &BenchMetrics, listener: tokio::net::TcpListener, out: Output) -> Self {
        if let Ok(addr) = listener.local_addr() {
            out.status(&format!("serving live metrics on http://{addr}/metrics"));
        }
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = metrics.serve(listener, async {
            let _ = stopped.await;
        });
        MetricsServer { stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Sends each sample on to the group.
struct ToGroup(FeedSender);

impl SampleView for ToGroup {
    fn on_sample(&mut self, sample: &IntervalSample) {
        // The group's task ends only after this run: a closed channel means it failed, and
        // the command says why.
        let _ = self.0.send(sample.clone());
    }
}

/// One instance's run in a group: on the group's `target` (the leader created it), with
/// `settings` its share of the group's benchmark; no files (the leader writes the group's).
pub async fn run_instance(
    env: &Environment,
    broker: &BrokerSettings,
    target: &Target,
    settings: &BenchSettings,
    shutdown: &Shutdown,
    out: Output,
    link: InstanceLink,
) -> Result<BenchRun> {
    bench(
        env,
        broker,
        target,
        settings,
        shutdown,
        out,
        None,
        Some(link),
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn bench(
    env: &Environment,
    broker: &BrokerSettings,
    target: &Target,
    args: &BenchSettings,
    shutdown: &Shutdown,
    out: Output,
    metrics_listener: Option<tokio::net::TcpListener>,
    link: Option<InstanceLink>,
) -> Result<BenchRun> {
    let bench = Bench {
        env,
        broker,
        target,
        args,
        out,
    };
    let Launched {
        counters,
        readers_stop,
        consumers,
        producers,
        stats,
        started,
        deadline,
        waited,
    } = bench
        .launch(link.as_ref().map(|link| link.start_at), shutdown)
        .await?;

    // The feed's samples go to the per-second lines and to the recorder (the timeline, the
    // plot and the HDR log), until the producers are done and the consumers caught up.
    let started_at = std::time::SystemTime::now();
    let sampler = Sampler::new(stats, target.partitions.len(), counters.clone());
    let (feed, samples) = feed::channel();
    let (mut lines, mut recorder) = (SecondLines(out), Recorder::default());
    let show_own = link.as_ref().is_none_or(|link| link.show_own);
    let in_group = link.is_some();
    // On a terminal the dashboard instead of the lines; it owns the screen until it drops.
    let mut dashboard = match show_own {
        true => dashboard::start_if_wanted(args.no_tui, bench.run_plan(started), shutdown, out),
        false => None,
    };
    let live: &mut dyn SampleView = match &mut dashboard {
        Some(dashboard) => dashboard,
        None => &mut lines,
    };
    let (mut group_samples, group) = InstanceLink::split(link);
    let watch = RunWatch {
        producers: &producers,
        groups: args.groups(),
        active_readers: args.groups() * target.partitions.len() as u64,
        backlog: args.backlog,
        duration: args.duration,
        deadline: &deadline,
        shutdown,
        started,
        group,
        out,
    };
    let start_consumers = || bench.start_consumers(&counters, &readers_stop);
    let mut views: Vec<&mut dyn SampleView> = Vec::new();
    if show_own {
        views.push(live);
    }
    views.push(&mut recorder);
    if let Some(to_group) = &mut group_samples {
        views.push(to_group);
    }
    let mut metrics = BenchMetrics::new(target.partitions.clone());
    let metrics_server = metrics_listener.map(|l| MetricsServer::start(&metrics, l, out));
    if metrics_server.is_some() {
        views.push(&mut metrics);
    }
    let (watched, ()) = tokio::join!(
        watch.sample_until_over(sampler, feed, consumers, start_consumers),
        feed::show(samples, &mut views),
    );
    drop(views);
    drop(group_samples);
    if let Some(server) = metrics_server {
        server.stop().await;
    }
    // The screen is restored before anything else is said (and before the summary).
    drop(dashboard);
    readers_stop.trigger(Signal::Interrupt);
    let ended = Ended {
        producers,
        watched,
        counters,
        waited,
        recorder,
        started_at,
        write_files: !in_group,
    };
    bench.finish(ended, shutdown).await
}

/// A run's parts once its producers started (and its consumers, unless a backlog comes
/// first).
struct Launched {
    counters: Arc<ConsumerCounters>,
    /// Stops the readers when the run is over (or at the user's signal).
    readers_stop: Shutdown,
    consumers: Option<reader::Running<BenchSink>>,
    producers: Vec<tokio::task::JoinHandle<Result<PublishOutcome>>>,
    stats: Vec<PublisherStats>,
    started: Instant,
    /// The producers' end with `--duration` (set later when a backlog comes first).
    deadline: Arc<OnceLock<Instant>>,
    /// How long this instance waited for its group's start: no publishing time.
    waited: Duration,
}

/// A run's parts once it is over, for its results.
struct Ended {
    producers: Vec<tokio::task::JoinHandle<Result<PublishOutcome>>>,
    /// The watch's end, or why it failed (the producers are then stopped).
    watched: Result<Watched>,
    counters: Arc<ConsumerCounters>,
    waited: Duration,
    recorder: Recorder,
    started_at: std::time::SystemTime,
    /// A group's instance writes no files: its leader writes the group's.
    write_files: bool,
}

impl Bench<'_> {
    /// Subscribes the consumers (unless a backlog comes first: `RunWatch` starts them once
    /// the producers built it), opens the publishers, waits for the group's start if there
    /// is one (`start_at`), and starts the producers.
    async fn launch(&self, start_at: Option<Instant>, shutdown: &Shutdown) -> Result<Launched> {
        let readers = self.args.consumers as usize * self.target.partitions.len();
        let counters = Arc::new(ConsumerCounters::for_readers(readers));
        let readers_stop = Shutdown::new();
        let consumers = match self.args.backlog {
            None => Some(self.start_consumers(&counters, &readers_stop).await?),
            Some(_) => None,
        };
        let publishers = self.open_publishers().await?;
        let stats: Vec<_> = publishers
            .iter()
            .flat_map(PartitionedPublisher::stats)
            .collect();
        // In a group, every instance starts at the group's moment.
        let waited = match start_at {
            Some(start_at) => {
                let waited = start_at.saturating_duration_since(Instant::now());
                tokio::time::sleep_until(start_at.into()).await;
                waited
            }
            None => Duration::ZERO,
        };
        let started = Instant::now();
        self.out.status(&self.start_line());
        // `--duration` counts from the consumers' start: after the backlog, if one comes first.
        let deadline = Arc::new(OnceLock::new());
        if let (Some(duration), None) = (self.args.duration, self.args.backlog) {
            let _ = deadline.set(started + duration);
        }
        let producers = self.start_producers(publishers, deadline.clone(), shutdown);
        Ok(Launched {
            counters,
            readers_stop,
            consumers,
            producers,
            stats,
            started,
            deadline,
            waited,
        })
    }

    /// The run's results once it is over: the producers' outcomes, the consumers' counts,
    /// the files asked for, the summary.
    async fn finish(&self, ended: Ended, shutdown: &Shutdown) -> Result<BenchRun> {
        let Ended {
            producers,
            watched,
            counters,
            waited,
            recorder,
            started_at,
            write_files,
        } = ended;
        let watched = match watched {
            Ok(watched) => watched,
            Err(e) => {
                for producer in &producers {
                    producer.abort();
                }
                return Err(e);
            }
        };
        // Consumers are done when they caught up, at the latest at this sample.
        let consume_elapsed = watched
            .reading_since
            .map_or(0.0, |since| since.elapsed().as_secs_f64())
            .max(f64::EPSILON);
        let mut results = Results::collect(producers, watched, &counters, consume_elapsed).await?;
        results.published.elapsed = results.published.elapsed.saturating_sub(waited);
        if write_files {
            self.write_files(&recorder, started_at, &results)?;
        }
        let (confirm, end_to_end) = (
            results.published.latency.clone(),
            results.end_to_end.clone(),
        );
        let mut summary = self.summary(recorder.timeline(), results);
        summary.interrupted = shutdown.received().is_some();
        Ok(BenchRun {
            summary,
            confirm,
            end_to_end,
            samples: recorder.samples,
            consume_elapsed_s: consume_elapsed,
        })
    }

    /// `--consumers` readers of every partition from the first offset, each folding what it
    /// reads into `counters`. In groups (`--consumers-per-group`), a group's consumers share a
    /// name as single active consumers (on a super stream the broker spreads the partitions
    /// over them) and one position per partition, so the group counts each message once.
    async fn start_consumers(
        &self,
        counters: &Arc<ConsumerCounters>,
        stop: &Shutdown,
    ) -> Result<reader::Running<BenchSink>> {
        let (broker, out, args) = (self.broker, self.out, self.args);
        let grouped = args.consumers_per_group > 1;
        // One plan per stream a consumer reads (each partition of a super stream).
        let plans: Vec<Arc<ReadPlan>> = self
            .target
            .partitions
            .iter()
            .map(|stream| {
                let mut plan = ReadPlan::whole_stream(stream, broker);
                plan.single_active = grouped;
                plan.super_stream =
                    (grouped && self.target.is_super_stream).then(|| self.target.name.clone());
                Arc::new(plan)
            })
            .collect();
        let positions: Vec<Vec<Arc<AtomicU64>>> = (0..args.groups())
            .map(|_| plans.iter().map(|_| Arc::default()).collect())
            .collect();
        let events: reader::ReaderEvents = Arc::new(move |event| out.reader_event(&event));
        let mut starts = Vec::new();
        for index in 0..args.consumers {
            let group = (index / args.consumers_per_group) as usize;
            for (partition, plan) in plans.iter().enumerate() {
                let label = match self.target.is_super_stream {
                    false => format!("bench-consumer-{index}"),
                    true => format!("bench-consumer-{index}-{}", plan.stream),
                };
                let spec = ReaderSpec {
                    label,
                    tracking_name: grouped.then(|| group_name(group as u64)),
                    slow: None,
                    stored: None,
                };
                let subscription = reader::subscribe(self.env, plan, &spec, None)
                    .await
                    .map_err(|e| e.into_error(broker, &plan.stream))?;
                starts.push(reader::Start {
                    plan: plan.clone(),
                    spec,
                    subscription,
                    sink: BenchSink::new(
                        counters.clone(),
                        starts.len(),
                        grouped.then(|| positions[group][partition].clone()),
                    ),
                    shared_count: None,
                });
            }
        }
        Ok(reader::spawn_all(starts, stop, &events))
    }

    /// `--producers` publishers, each one per partition of the target, without deduplication
    /// (a benchmark measures the broker, and never resumes).
    async fn open_publishers(&self) -> Result<Vec<PartitionedPublisher>> {
        let (args, out) = (self.args, self.out);
        let mut publishers = Vec::new();
        for index in 0..args.producers {
            let options = args
                .publish
                .publisher_options(format!("invstream-bench-{index}"), false);
            let events = Arc::new(move |event| out.publisher_event(&event));
            let opened = PartitionedPublisher::open(
                self.env,
                self.broker,
                self.target,
                options,
                false,
                events,
            )
            .await;
            match opened {
                Ok(publisher) => publishers.push(publisher),
                Err(e) => {
                    for publisher in publishers {
                        publisher.close().await;
                    }
                    return Err(e);
                }
            }
        }
        Ok(publishers)
    }

    /// "bench on stream 'S': 2 producers, 1 consumers, 100,000 messages".
    fn start_line(&self) -> String {
        let (target, args) = (self.target, self.args);
        let routed = match target.is_super_stream {
            true => format!(
                " ({} partitions, routed by product id)",
                target.partitions.len()
            ),
            false => String::new(),
        };
        let groups = match args.consumers_per_group {
            1 => String::new(),
            each => format!(" ({} groups of {each})", args.groups()),
        };
        let backlog = match args.backlog {
            Some(backlog) => format!(", after a backlog of {}", megabytes(backlog.bytes)),
            None => String::new(),
        };
        format!(
            "bench on {}{routed}: {} producers, {} consumers{groups}, {}{backlog}",
            target.describe(),
            args.producers,
            args.consumers,
            match args.duration {
                Some(d) => format!("for {}", humantime::format_duration(d)),
                None => format!("{} messages", thousands(args.count)),
            }
        )
    }

    /// What the dashboard shows of the run's plan.
    fn run_plan(&self, started: Instant) -> RunPlan {
        RunPlan {
            title: self.start_line(),
            count: self.args.duration.is_none().then_some(self.args.count),
            duration: self.args.duration,
            partitions: self.target.partitions.len(),
            consumers: self.args.consumers,
            started,
        }
    }

    /// One task per producer: `--count` split evenly (the first take the remainder), or until
    /// `deadline` (set once the `--duration` starts); `--rate` split evenly.
    fn start_producers(
        &self,
        publishers: Vec<PartitionedPublisher>,
        deadline: Arc<OnceLock<Instant>>,
        shutdown: &Shutdown,
    ) -> Vec<tokio::task::JoinHandle<Result<PublishOutcome>>> {
        let args = self.args;
        let per_producer_rate = args
            .rate
            .map(|r| (r as f64 / args.producers as f64).max(1.0));
        publishers
            .into_iter()
            .enumerate()
            .map(|(index, publisher)| {
                let index = index as u64;
                let count =
                    args.count / args.producers + u64::from(index < args.count % args.producers);
                let plan = ProducerPlan {
                    count,
                    timed: args.duration.is_some(),
                    deadline: deadline.clone(),
                    rate: per_producer_rate,
                    batch_size: args.publish.batch_size,
                    pad: padding(args.message_size),
                    seed: index + 1,
                    stop: shutdown.signal(),
                };
                tokio::spawn(publish(publisher, plan))
            })
            .collect()
    }

    /// `--hdr-log` and `--plot`, from the recorded feed.
    fn write_files(
        &self,
        recorder: &Recorder,
        started_at: std::time::SystemTime,
        results: &Results,
    ) -> Result<()> {
        write_files(
            self.args,
            self.out,
            &recorder.samples,
            started_at,
            &results.published.latency,
            &results.end_to_end,
            results.published.sent,
        )
    }

    fn summary(&self, timeline: Vec<BenchSecond>, results: Results) -> RunSummary {
        let groups = self.group_reads(&results.reads);
        let Results {
            published,
            consumed,
            consume_elapsed,
            end_to_end,
            backlog,
            ..
        } = results;
        RunSummary::new(
            CommandName::Bench,
            &self.target.name,
            Totals {
                messages: published.sent,
                bytes: published.bytes,
                // Publishing took as long as the slowest producer, from its start to its last
                // confirm.
                elapsed: published.elapsed,
            },
            LatencyKind::PublishToConfirm,
            &published.latency,
            CommandDetails::Bench {
                producers: self.args.producers,
                consumers: self.args.consumers,
                confirmed: published.confirmed,
                failed: published.failed,
                consumed,
                consumed_per_s: (consumed as f64 / consume_elapsed * 100.0).round() / 100.0,
                end_to_end_us: end_to_end.summary(),
                timeline,
                consumers_per_group: self.args.consumers_per_group,
                groups,
                backlog,
            },
        )
    }

    /// With consumers in groups: each group's reads, consumer by consumer (reader `i` is
    /// consumer `i / partitions` on partition `i % partitions`, the order they subscribe in).
    fn group_reads(&self, reads: &[ReaderReads]) -> Vec<GroupReads> {
        let (args, partitions) = (self.args, &self.target.partitions);
        if args.consumers_per_group < 2 {
            return Vec::new();
        }
        let per_group = args.consumers_per_group;
        (0..args.groups())
            .map(|group| {
                let consumers: Vec<(GroupConsumerReads, u64)> = (0..per_group)
                    .map(|member| {
                        let consumer = (group * per_group + member) as usize;
                        let first = consumer * partitions.len();
                        let own = reads.get(first..first + partitions.len()).unwrap_or(&[]);
                        let read = GroupConsumerReads {
                            consumer: format!("bench-consumer-{consumer}"),
                            consumed: own.iter().map(|r| r.counted).sum(),
                            partitions: partitions
                                .iter()
                                .zip(own)
                                .filter(|(_, r)| r.counted > 0)
                                .map(|(name, _)| name.clone())
                                .collect(),
                        };
                        (read, own.iter().map(|r| r.read_again).sum())
                    })
                    .collect();
                GroupReads {
                    group: group_name(group),
                    consumed: consumers.iter().map(|(c, _)| c.consumed).sum(),
                    read_again: consumers.iter().map(|(_, again)| again).sum(),
                    consumers: consumers.into_iter().map(|(c, _)| c).collect(),
                }
            })
            .collect()
    }
}

/// The name a group's consumers share (the broker's single-active-consumer group).
fn group_name(group: u64) -> String {
    format!("bench-group-{group}")
}

/// Bytes as megabytes, one decimal: "10.0 MB".
fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// `--hdr-log` (every sample's two histograms) and `--plot` (the samples' timeline, the whole
/// run's latencies): a run's, or a group's on its leader.
pub fn write_files(
    args: &BenchSettings,
    out: Output,
    samples: &[IntervalSample],
    started_at: std::time::SystemTime,
    confirm: &LatencyHistogram,
    end_to_end: &LatencyHistogram,
    sent: u64,
) -> Result<()> {
    if let Some(path) = &args.hdr_log {
        let logged: Vec<LoggedInterval> = samples
            .iter()
            .flat_map(|sample| {
                [
                    ("confirm", &sample.confirm),
                    ("end_to_end", &sample.end_to_end),
                ]
                .map(|(tag, histogram)| LoggedInterval {
                    start: sample.start,
                    length: sample.length,
                    tag,
                    histogram,
                })
            })
            .collect();
        write_hdr_log(path, started_at, &logged)?;
        out.status(&format!("wrote {}", path.display()));
    }
    if let Some(path) = &args.plot {
        let title = format!(
            "invstream bench: {} producers, {} consumers, {} messages",
            args.producers,
            args.consumers,
            thousands(sent)
        );
        let timeline: Vec<BenchSecond> = samples.iter().map(|s| s.second.clone()).collect();
        write_plot(path, &title, &timeline, confirm, end_to_end)?;
        out.status(&format!("wrote {}", path.display()));
    }
    Ok(())
}

/// What tells a benchmark run is over: its producers, its consumers' count, the user's stop;
/// in a group, the other instances' producers too.
struct RunWatch<'a> {
    producers: &'a [tokio::task::JoinHandle<Result<PublishOutcome>>],
    /// Consumer groups: each reads every confirmed message once.
    groups: u64,
    /// Readers that count (a group's active one per partition).
    active_readers: u64,
    backlog: Option<BacklogSettings>,
    duration: Option<Duration>,
    /// The producers' end with `--duration`, set here when a backlog comes first.
    deadline: &'a OnceLock<Instant>,
    shutdown: &'a Shutdown,
    started: Instant,
    group: Option<GroupWatch>,
    out: Output,
}

/// A group instance's view of the others' publishing (see [`InstanceLink`]).
struct GroupWatch {
    published: tokio::sync::mpsc::UnboundedSender<u64>,
    others_confirmed: tokio::sync::watch::Receiver<Option<u64>>,
}

impl GroupWatch {
    /// What the others confirmed, once all are done publishing; with the group's task gone
    /// (it failed, and the command says why), nothing more to wait for.
    fn others_confirmed(&self) -> Option<u64> {
        match self.others_confirmed.has_changed() {
            Err(_) => Some(self.others_confirmed.borrow().unwrap_or(0)),
            Ok(_) => *self.others_confirmed.borrow(),
        }
    }
}

/// What the watch leaves: the consumers (`None` if they never started), since when they read,
/// and the backlog's drain.
struct Watched {
    consumers: Option<reader::Running<BenchSink>>,
    reading_since: Option<Instant>,
    backlog: Option<BacklogDrain>,
}

impl RunWatch<'_> {
    /// Feeds a sample each second, and a last one as soon as the run is over (over its real,
    /// shorter span: a run ending 0.3 s into a second must not look like a slow second). With
    /// a backlog, starts the consumers once the producers built it. The run is over when the
    /// producers are done and every group read everything confirmed (or the user stopped, or
    /// they had `DRAIN_TIMEOUT` to catch up); the feed ends with it.
    async fn sample_until_over<F, Fut>(
        &self,
        mut sampler: Sampler,
        feed: FeedSender,
        consumers: Option<reader::Running<BenchSink>>,
        start_consumers: F,
    ) -> Result<Watched>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<reader::Running<BenchSink>>>,
    {
        let mut watched = Watched {
            reading_since: consumers.as_ref().map(|_| self.started),
            consumers,
            backlog: None,
        };
        let mut start_consumers = Some(start_consumers);
        let mut drain: Option<DrainWatch> = None;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut producers_done_at = None;
        let mut said_published = false;
        loop {
            let on_tick = tokio::select! {
                _ = tick.tick() => true,
                _ = tokio::time::sleep(FINISH_POLL) => false,
            };
            let interrupted = self.shutdown.received().is_some();
            let all_published = self.producers.iter().all(|p| p.is_finished());
            if let (true, false, Some(group)) = (all_published, said_published, &self.group) {
                said_published = true;
                let _ = group.published.send(sampler.confirmed());
            }
            // In a group, the consumers read what every instance confirmed.
            let others = match &self.group {
                Some(group) => group.others_confirmed(),
                None => Some(0),
            };
            let group_published = all_published && others.is_some();
            if group_published && producers_done_at.is_none() {
                producers_done_at = Some(Instant::now());
            }
            if let (Some(backlog), None, false) = (self.backlog, &watched.consumers, interrupted) {
                let messages = sampler.confirmed();
                if confirmed_bytes(&sampler, messages) >= backlog.bytes || all_published {
                    let start = start_consumers.take().expect("the consumers start once");
                    watched.consumers = Some(start().await?);
                    let now = Instant::now();
                    watched.reading_since = Some(now);
                    if let Some(duration) = self.duration {
                        let _ = self.deadline.set(now + duration);
                    }
                    let built = DrainWatch::new(backlog, &sampler, messages, self.started, self);
                    self.out.status(&built.built_line());
                    drain = Some(built);
                }
            }
            if let Some(drain) = &mut drain {
                drain.check(&sampler);
            }
            // In a group, every group of consumers reads what every instance confirmed.
            let confirmed = sampler.confirmed() + others.unwrap_or(0);
            let caught_up =
                watched.consumers.is_some() && sampler.consumed() >= confirmed * self.groups;
            let drained = match (producers_done_at, watched.reading_since) {
                (Some(done), Some(reading)) => {
                    caught_up || interrupted || done.max(reading).elapsed() > DRAIN_TIMEOUT
                }
                (Some(_), None) => interrupted,
                (None, _) => false,
            };
            // A stop ends this instance without waiting for the others.
            let over = all_published && (drained || interrupted);
            if !on_tick && !over {
                continue;
            }
            // A view that went away does not stop the run.
            let _ = feed.send(sampler.sample(self.started.elapsed(), over));
            if over {
                watched.backlog = drain.map(|drain| drain.outcome());
                return Ok(watched);
            }
        }
    }
}

/// The bytes of `confirmed` messages, at the mean body size of those sent.
fn confirmed_bytes(sampler: &Sampler, confirmed: u64) -> u64 {
    let (sent, bytes) = sampler.sent();
    (u128::from(bytes) * u128::from(confirmed))
        .checked_div(u128::from(sent))
        .map_or(0, |b| b as u64)
}

/// A backlog built, watched until the consumers drained it.
struct DrainWatch {
    settings: BacklogSettings,
    /// When the consumers started.
    since: Instant,
    build: Duration,
    /// What was confirmed when the consumers started, and its bodies' bytes.
    messages: u64,
    bytes: u64,
    groups: u64,
    active_readers: u64,
    /// When it was drained (since the consumers' start), and what they had read by then.
    drained: Option<(Duration, u64)>,
}

impl DrainWatch {
    fn new(
        settings: BacklogSettings,
        sampler: &Sampler,
        messages: u64,
        started: Instant,
        watch: &RunWatch,
    ) -> Self {
        let since = Instant::now();
        DrainWatch {
            settings,
            since,
            build: since - started,
            messages,
            bytes: confirmed_bytes(sampler, messages),
            groups: watch.groups,
            active_readers: watch.active_readers,
            drained: None,
        }
    }

    fn built_line(&self) -> String {
        format!(
            "backlog of {} ({} messages) built in {:.1} s: consumers start",
            megabytes(self.bytes),
            thousands(self.messages),
            self.build.as_secs_f64()
        )
    }

    /// Drained once the groups' lag is down to `1 - ratio` of the backlog (OMB's
    /// `backlogDrainRatio`), give or take what the counters cannot tell yet: up to
    /// `CONSUMER_FLUSH` messages a reader holds unfolded, and 100 ms of publishing at the rate
    /// the backlog was built.
    fn check(&mut self, sampler: &Sampler) {
        if self.drained.is_some() {
            return;
        }
        let consumed = sampler.consumed();
        let lag = (sampler.confirmed() * self.groups).saturating_sub(consumed);
        let build_rate = self.messages as f64 / self.build.as_secs_f64().max(f64::EPSILON);
        let left = (1.0 - self.settings.drain_ratio) * self.messages as f64 + build_rate * 0.1;
        let unfolded = (self.active_readers * CONSUMER_FLUSH) as f64;
        if lag as f64 <= self.groups as f64 * left + unfolded {
            self.drained = Some((self.since.elapsed(), consumed));
        }
    }

    fn outcome(self) -> BacklogDrain {
        let (drain_s, msg_per_s, mb_per_s) = match self.drained {
            Some((elapsed, consumed)) => {
                let seconds = elapsed.as_secs_f64().max(f64::EPSILON);
                let per_s = consumed as f64 / seconds;
                let mean_bytes = self.bytes as f64 / self.messages.max(1) as f64;
                (
                    Some((seconds * 1000.0).round() / 1000.0),
                    per_s.round(),
                    (per_s * mean_bytes / 1e4).round() / 100.0,
                )
            }
            None => (None, 0.0, 0.0),
        };
        BacklogDrain {
            asked_bytes: self.settings.bytes,
            bytes: self.bytes,
            messages: self.messages,
            build_s: (self.build.as_secs_f64() * 1000.0).round() / 1000.0,
            drain_ratio: self.settings.drain_ratio,
            drain_s,
            drain_msg_per_s: msg_per_s,
            drain_mb_per_s: mb_per_s,
        }
    }
}

/// What one producer publishes.
struct ProducerPlan {
    count: u64,
    /// Publishing until `deadline` (`--duration`) rather than a count.
    timed: bool,
    /// Set when the duration starts (after the backlog, if one comes first).
    deadline: Arc<OnceLock<Instant>>,
    /// Messages per second, for this producer.
    rate: Option<f64>,
    batch_size: u64,
    /// Characters added to each update's SKU to reach `--message-size`.
    pad: usize,
    seed: u64,
    /// The user's stop: no more batches after it.
    stop: crate::shutdown::StopSignal,
}

/// Publishes generated updates until the count or the deadline, paced by the rate.
async fn publish(
    mut publisher: PartitionedPublisher,
    plan: ProducerPlan,
) -> Result<PublishOutcome> {
    let mut generator = UpdateGenerator::new(1_000, plan.seed);
    let mut pace = plan.rate.map(Pace::new);
    let mut sent = 0u64;
    let mut failure = None;
    loop {
        if plan.stop.is_stopped() {
            break;
        }
        let size = match (plan.timed, plan.deadline.get()) {
            (true, Some(deadline)) if Instant::now() >= *deadline => break,
            (true, _) => plan.batch_size,
            (false, _) => plan.batch_size.min(plan.count - sent),
        };
        if size == 0 {
            break;
        }
        // Paced, at most 10 ms of messages at once.
        let size = pace.as_ref().map_or(size, |p| size.min(p.most_at_once()));
        if let Some(pace) = &mut pace {
            pace.wait_for(size).await;
        }
        let mut batch = generated_batch(&mut generator, size);
        for (_, update) in &mut batch {
            update.sku.extend(std::iter::repeat_n('-', plan.pad));
        }
        if let Err(e) = publisher.send(batch, CONFIRM_TIMEOUT).await {
            failure = Some(e);
            break;
        }
        sent += size;
    }
    let confirm_wait = match plan.stop.is_stopped() {
        true => CONFIRM_WAIT_AFTER_STOP,
        false => CONFIRM_TIMEOUT,
    };
    let outcome = publisher
        .finish(confirm_wait)
        .await
        .map(|outcomes| PublishOutcome::sum(&outcomes));
    publisher.close().await;
    match failure {
        Some(e) => Err(e),
        None => outcome,
    }
}

/// A benchmark consumer: parses every update and times it end to end, folding counts,
/// latencies and chunk sizes into the shared stats every `CONSUMER_FLUSH` messages (and when
/// quiet); its position once per chunk. In a group, it passes over what another of its group
/// read already.
struct BenchSink {
    stats: Arc<ConsumerCounters>,
    /// This reader's index in the counters' positions.
    reader: usize,
    /// In a group: the next offset of this partition the group has not counted yet.
    group_position: Option<Arc<AtomicU64>>,
    counted: u64,
    read_again: u64,
    local: LatencyHistogram,
    unflushed: u64,
    clock: BurstClock,
    /// Messages per chunk (values count messages).
    chunk_messages: LatencyHistogram,
    in_chunk: u64,
    next_offset: u64,
}

impl BenchSink {
    fn new(
        stats: Arc<ConsumerCounters>,
        reader: usize,
        group_position: Option<Arc<AtomicU64>>,
    ) -> Self {
        BenchSink {
            stats,
            reader,
            group_position,
            counted: 0,
            read_again: 0,
            local: LatencyHistogram::new(),
            unflushed: 0,
            clock: BurstClock::default(),
            chunk_messages: LatencyHistogram::new(),
            in_chunk: 0,
            next_offset: 0,
        }
    }

    fn flush(&mut self) {
        if self.unflushed == 0 {
            return;
        }
        self.stats.fold(self.unflushed, &self.local);
        self.stats.fold_chunks(&self.chunk_messages);
        self.local = LatencyHistogram::new();
        self.chunk_messages = LatencyHistogram::new();
        self.unflushed = 0;
    }
}

impl MessageSink for BenchSink {
    fn chunk_start(&mut self) {
        self.clock = BurstClock::default();
    }

    fn take(&mut self, offset: u64, message: &[u8]) -> Take {
        self.next_offset = offset + 1;
        self.in_chunk += 1;
        // A partition handed over within the group may come again from its start.
        if let Some(position) = &self.group_position {
            if position.fetch_max(offset + 1, Ordering::Relaxed) > offset {
                self.read_again += 1;
                return Take::Passed;
            }
        }
        self.counted += 1;
        if let Some(update) = InventoryUpdate::decode(MessageView::body_of(message)) {
            self.local
                .record_us(self.clock.now_us().saturating_sub(update.produced_at_us));
        }
        self.unflushed += 1;
        Take::Counted
    }

    fn chunk_end(&mut self) {
        if self.in_chunk > 0 {
            self.chunk_messages.record_us(self.in_chunk);
            self.in_chunk = 0;
            self.stats.set_position(self.reader, self.next_offset);
        }
        if self.unflushed >= CONSUMER_FLUSH {
            self.flush();
        }
    }

    fn wants_idle(&self) -> bool {
        true
    }

    fn idle(&mut self) {
        self.flush();
    }
}

/// Characters to add to an update's SKU so its body reaches `message_size` bytes.
fn padding(message_size: Option<u64>) -> usize {
    let Some(size) = message_size else { return 0 };
    let mut body = Vec::new();
    UpdateGenerator::new(1_000, 1)
        .next_update(now_us())
        .encode_into(&mut body);
    (size as usize).saturating_sub(body.len())
}
