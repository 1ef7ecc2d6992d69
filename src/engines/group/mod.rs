//! One benchmark run by several processes (`bench --instances N --group NAME`), coordinated
//! through the broker alone, on a stream of the group's own, `invstream-group-NAME` (created by
//! whoever comes first; kept, with a small retention, for the next run).
//!
//! **Forming.** Each instance subscribes to the stream at "next" (so everything it reads was
//! written by a live process after it came: nothing of an earlier run, crashed or not, is ever
//! read) and says `Hello` every half second. An instance counts the instances it heard from in
//! the last two seconds; the group is the N with the lowest ids, and the lowest of them leads.
//! The leader creates the benchmark's stream and writes `Start` (the roster, the stream). The
//! first `Start` in the stream is the group for everyone: the stream's order settles any race,
//! so no election protocol is needed. (A single-active-consumer group would elect a leader too,
//! but its activation gives nothing the stream's order does not, and we do no fail-over.)
//! Everyone starts two seconds after reading `Start`: the broker delivers it to all at about
//! the same moment, which no clock skew between machines disturbs.
//!
//! **Running.** Each instance writes its per-second samples (with their histograms), a
//! `Published` when its producers are done, and `Done` with its figures; every instance applies
//! every message, in the stream's order, to a [`GroupState`], which yields the group's samples
//! (the leader shows them) and the group's figures. An instance's run is over when its
//! producers are done, every other instance's too, and its consumers read everything the group
//! confirmed.
//!
//! **Losing one.** An instance with nothing else to say for a second says `Alive` (its group
//! task does, beside its benchmark), so silence means the process or its connection is gone.
//! The leader writes `Lost` for an instance that sent nothing for [`LOST_AFTER`]; everyone then stops waiting for it and counts it as of its last sample. The
//! leader is not replaced: an instance that hears nothing from another (the leader included)
//! for [`ASSUME_LOST_AFTER`] counts it lost on its own, so no one waits for ever.

pub mod aggregate;
pub mod protocol;
pub mod split;

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rabbitmq_stream_client::error::ConsumerDeliveryError;
use rabbitmq_stream_client::types::{Delivery, Message, OffsetSpecification};
use rabbitmq_stream_client::{Consumer, Environment, NoDedup, Producer};
use tokio::sync::{mpsc, oneshot, watch};

pub use aggregate::{GroupState, MemberOutcome};
pub use protocol::{Control, InstanceFigures, Member};
pub use split::{share, Share};

use crate::broker::{BrokerSettings, Retention};
use crate::engines::feed::{FeedSender, IntervalSample};
use crate::error::{GroupError, Result};

/// How often an instance says `Hello` while the group forms.
const HELLO_EVERY: Duration = Duration::from_millis(500);
/// An instance not heard from for this long is no longer counted while the group forms.
const HELLO_STALE: Duration = Duration::from_secs(2);
/// From reading `Start` to starting: time to subscribe the consumers and open the producers.
const START_DELAY: Duration = Duration::from_secs(2);
/// An instance that sent nothing else for this long says `Alive`.
const ALIVE_EVERY: Duration = Duration::from_secs(1);
/// The leader declares an instance lost that sent nothing for this long while running.
pub const LOST_AFTER: Duration = Duration::from_secs(5);
/// An instance counts another lost on its own after this long without a word from it (the
/// leader's `Lost` comes sooner, unless the leader itself is gone).
pub const ASSUME_LOST_AFTER: Duration = Duration::from_secs(15);

/// The coordination stream's limits: small, as it holds only a few messages a second.
const COORDINATION_RETENTION: Retention = Retention {
    max_length_bytes: Some(50_000_000),
    max_segment_size_bytes: Some(5_000_000),
    max_age: Some(Duration::from_secs(24 * 3600)),
};

/// The coordination stream of group `name`.
pub fn coordination_stream(name: &str) -> String {
    format!("invstream-group-{name}")
}

/// A group as the command line asks for it.
#[derive(Debug, Clone)]
pub struct GroupSpec {
    pub name: String,
    pub instances: u32,
    pub join_timeout: Duration,
    /// The benchmark's options in words: every instance must give the same.
    pub plan: String,
}

/// What a group says while it forms and runs (the command decides how to show it).
#[derive(Debug, Clone)]
pub enum GroupEvent {
    /// `joined` instances (this one included) are here, of `expected`.
    Waiting { joined: usize, expected: u32 },
    /// The leader declared instance `number` (1-based) lost, `at_s` into its run.
    Lost {
        number: usize,
        member: Member,
        at_s: f64,
    },
    /// This instance heard nothing from instance `number` for [`ASSUME_LOST_AFTER`] and counts
    /// it lost on its own (the leader did not say so: it may be the one gone).
    AssumedLost { number: usize, member: Member },
}

/// Where a group's events go.
pub type GroupEvents = Arc<dyn Fn(GroupEvent) + Send + Sync>;

/// A formed group, and this process's place in it.
pub struct Group {
    producer: Producer<NoDedup>,
    consumer: Consumer,
    spec: GroupSpec,
    coordination: String,
    pub me: Member,
    /// This run's id: the leader's, as it wrote in `Start`.
    pub run: String,
    /// The group's instances, in order; the first leads.
    pub roster: Vec<Member>,
    /// The benchmark's stream, which the leader created.
    pub stream: String,
    /// When every instance starts its producers.
    pub start_at: Instant,
}

impl Group {
    /// Joins group `spec.name` and waits until it is formed; as the leader, calls
    /// `create_stream` (which returns the benchmark's stream, created) before saying `Start`.
    /// Fails after `spec.join_timeout` saying how many joined.
    pub async fn join<F, Fut>(
        env: &Environment,
        broker: &BrokerSettings,
        spec: GroupSpec,
        events: &GroupEvents,
        create_stream: F,
    ) -> Result<Group>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<String>>,
    {
        let coordination = coordination_stream(&spec.name);
        let (mut consumer, producer) = open_coordination(env, broker, &coordination).await?;
        let mut forming = Forming::new(Member::this_process(), &spec, create_stream);
        let link = Link {
            group: spec.name.clone(),
            stream: coordination.clone(),
        };
        let deadline = tokio::time::Instant::now() + spec.join_timeout;
        let mut hello = tokio::time::interval(HELLO_EVERY);
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {
                    close(producer, consumer).await;
                    return Err(forming.timed_out(&spec));
                }
                _ = hello.tick() => link.send(&producer, &forming.hello, "joining").await?,
                delivery = consumer.next() => {
                    let Some(message) = read(delivery, &link, "joining")? else { continue };
                    if let Some(start) = forming.on_message(message, &spec, &link, &producer).await? {
                        let me = forming.me;
                        return Group::formed(start, me, producer, consumer, spec, coordination).await;
                    }
                }
            }
            let here = forming.recount(&spec, events);
            forming.maybe_start(here, &spec, &link, &producer).await?;
        }
    }

    /// The group the first `Start` says, with this instance in it; or, if the leader left it
    /// out (it counted others, come sooner), the refusal, as this instance has no part to run.
    async fn formed(
        start: Formed,
        me: Member,
        producer: Producer<NoDedup>,
        consumer: Consumer,
        spec: GroupSpec,
        coordination: String,
    ) -> Result<Group> {
        if !start.roster.contains(&me) {
            close(producer, consumer).await;
            return Err(GroupError::NotInRoster {
                group: spec.name.clone(),
                expected: spec.instances,
            }
            .into());
        }
        Ok(Group {
            producer,
            consumer,
            coordination,
            me,
            run: start.run,
            roster: start.roster,
            stream: start.stream,
            start_at: Instant::now() + Duration::from_millis(start.delay_ms),
            spec,
        })
    }

    /// This instance's place in the group, from 0 (the leader).
    pub fn index(&self) -> usize {
        self.roster
            .iter()
            .position(|m| m.id == self.me.id)
            .expect("a formed group holds this instance")
    }

    pub fn is_leader(&self) -> bool {
        self.index() == 0
    }

    pub fn leader(&self) -> &Member {
        &self.roster[0]
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Runs this instance's side of the group on a task until every instance is done or lost:
    /// the channels to give the benchmark, and the task, which ends with every instance's
    /// figures.
    pub fn start(
        self,
        events: GroupEvents,
    ) -> (Channels, tokio::task::JoinHandle<Result<GroupEnd>>) {
        let (samples, samples_rx) = mpsc::unbounded_channel();
        let (published, published_rx) = mpsc::unbounded_channel();
        let (done, done_rx) = oneshot::channel();
        let (others_tx, others_confirmed) = watch::channel(None);
        let (feed_tx, feed) = mpsc::unbounded_channel();
        let channels = Channels {
            samples,
            published,
            done,
            others_confirmed,
            feed,
        };
        let inbox = Inbox {
            samples: samples_rx,
            published: published_rx,
            done: done_rx,
        };
        let outbox = Outbox {
            others: others_tx,
            feed: feed_tx,
        };
        (channels, tokio::spawn(self.run(inbox, outbox, events)))
    }

    /// The group's task: one [`Running`] method per thing that can happen, in one loop, so the
    /// instance's messages go out in the order things happened.
    async fn run(mut self, inbox: Inbox, outbox: Outbox, events: GroupEvents) -> Result<GroupEnd> {
        let Inbox {
            samples: mut samples_rx,
            published: mut published_rx,
            done: mut done_rx,
        } = inbox;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let mut running = Running::new(&self, outbox, events);
        let producer = &self.producer;
        while !running.state.complete() {
            tokio::select! {
                sample = samples_rx.recv(), if running.samples_open => {
                    running.on_sample(sample, producer).await?;
                },
                confirmed = published_rx.recv(), if running.published_open => {
                    running.on_published(confirmed, producer).await?;
                },
                // After its last sample: `Done` must follow every sample in the stream.
                figures = &mut done_rx, if running.done_pending && !running.samples_open => {
                    if running.on_done(figures, producer).await?.is_break() {
                        break;
                    }
                },
                delivery = self.consumer.next() => running.on_delivery(delivery)?,
                _ = tick.tick() => running.on_tick(producer).await?,
            }
        }
        close(self.producer, self.consumer).await;
        Ok(running.end())
    }
}

/// Opens this instance's reader and writer on the coordination stream `name` (creating it if
/// no instance has yet). The reader comes first, so that it reads every answer to this
/// instance's first `Hello`.
async fn open_coordination(
    env: &Environment,
    broker: &BrokerSettings,
    name: &str,
) -> Result<(Consumer, Producer<NoDedup>)> {
    broker
        .while_starting(|| broker.ensure_stream(name, COORDINATION_RETENTION.arguments()))
        .await?;
    // The stream another instance just created may not be available for a moment.
    let consumer = broker
        .while_starting(|| async move {
            env.consumer()
                .offset(OffsetSpecification::Next)
                .client_provided_name("invstream-group")
                .build(name)
                .await
                .map_err(|e| broker.consumer_error(e, name))
        })
        .await?;
    let producer = broker
        .while_starting(|| async move {
            env.producer()
                .client_provided_name("invstream-group")
                .build(name)
                .await
                .map_err(|e| broker.producer_error(e, name))
        })
        .await?;
    Ok((consumer, producer))
}

/// Closes this instance's writer and reader on the coordination stream; a failure to close
/// changes nothing for the run, so it is not reported.
async fn close(producer: Producer<NoDedup>, consumer: Consumer) {
    let _ = producer.close().await;
    let _ = consumer.handle().close().await;
}

/// The message a delivery from the coordination stream holds, if it is one of ours (a broken
/// delivery or a stranger's message is skipped); an error if the subscription ended.
fn read(
    delivery: Option<std::result::Result<Delivery, ConsumerDeliveryError>>,
    link: &Link,
    during: &'static str,
) -> Result<Option<Control>> {
    let Some(delivery) = delivery else {
        return Err(link.lost(during, "the subscription ended"));
    };
    let Ok(delivery) = delivery else {
        return Ok(None);
    };
    Ok(delivery.message().data().and_then(Control::decode))
}

/// The group as the first `Start` in the stream gives it.
struct Formed {
    run: String,
    roster: Vec<Member>,
    stream: String,
    delay_ms: u64,
}

/// What an instance knows while its group forms.
struct Forming<F> {
    me: Member,
    /// The instances that said `Hello` lately, and when they last did.
    heard: HashMap<String, (Member, Instant)>,
    /// How many were here at the last count, so that `Waiting` is said only on a change.
    joined_before: usize,
    /// The leader's one job before `Start`; taken when it is done, so it is done once.
    create_stream: Option<F>,
    /// This instance's `Hello`, the same every time.
    hello: Control,
}

impl<F, Fut> Forming<F>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<String>>,
{
    fn new(me: Member, spec: &GroupSpec, create_stream: F) -> Forming<F> {
        let hello = Control::Hello {
            member: me.clone(),
            instances: spec.instances,
            plan: spec.plan.clone(),
        };
        Forming {
            me,
            heard: HashMap::new(),
            joined_before: 0,
            create_stream: Some(create_stream),
            hello,
        }
    }

    /// Takes in a message read while forming: another's `Hello` is recorded, or refused if it
    /// runs another plan (two groups under one name would wait for ever); a `Start` is the
    /// group, returned. Anything else is not for a forming group.
    async fn on_message(
        &mut self,
        message: Control,
        spec: &GroupSpec,
        link: &Link,
        producer: &Producer<NoDedup>,
    ) -> Result<Option<Formed>> {
        match message {
            Control::Hello {
                member,
                instances,
                plan,
            } if member.id != self.me.id => {
                if instances != spec.instances || plan != spec.plan {
                    // Once more, so that the other learns of this one before it goes (it may
                    // have subscribed after this one's last word).
                    link.send(producer, &self.hello, "joining").await?;
                    return Err(GroupError::PlanMismatch {
                        group: spec.name.clone(),
                        host: member.host,
                        pid: member.pid,
                        theirs: format!("--instances {instances}, {plan}"),
                        ours: format!("--instances {}, {}", spec.instances, spec.plan),
                    }
                    .into());
                }
                self.heard
                    .insert(member.id.clone(), (member, Instant::now()));
                Ok(None)
            }
            Control::Start {
                run,
                roster,
                stream,
                delay_ms,
            } => Ok(Some(Formed {
                run,
                roster,
                stream,
                delay_ms,
            })),
            _ => Ok(None),
        }
    }

    /// Forgets the instances gone quiet and returns those here, in the group's order; says
    /// `Waiting` when their number changed, so the user sees the group fill.
    fn recount(&mut self, spec: &GroupSpec, events: &GroupEvents) -> Vec<Member> {
        self.heard.retain(|_, (_, at)| at.elapsed() < HELLO_STALE);
        let here = live(&self.heard, &self.me);
        if here.len() != self.joined_before {
            self.joined_before = here.len();
            events(GroupEvent::Waiting {
                joined: here.len(),
                expected: spec.instances,
            });
        }
        here
    }

    /// As the leader (the lowest id of those `here`), once enough are here: creates the
    /// benchmark's stream and says `Start`, once (the first `Start` in the stream counts).
    async fn maybe_start(
        &mut self,
        here: Vec<Member>,
        spec: &GroupSpec,
        link: &Link,
        producer: &Producer<NoDedup>,
    ) -> Result<()> {
        if here.len() < spec.instances as usize || here[0] != self.me {
            return Ok(());
        }
        let Some(create_stream) = self.create_stream.take() else {
            return Ok(());
        };
        let roster: Vec<Member> = here.into_iter().take(spec.instances as usize).collect();
        let stream = create_stream().await?;
        let run = format!("{}-{}", self.me.id, now_ms());
        let start = Control::Start {
            run,
            roster,
            stream,
            delay_ms: START_DELAY.as_millis() as u64,
        };
        link.send(producer, &start, "starting the group").await
    }

    /// The error for a group that did not form in time, saying how many came.
    fn timed_out(&self, spec: &GroupSpec) -> crate::error::InvError {
        GroupError::JoinTimeout {
            group: spec.name.clone(),
            joined: live(&self.heard, &self.me).len(),
            expected: spec.instances,
            timeout: spec.join_timeout,
        }
        .into()
    }
}

/// This instance's side of a running group: what it heard and said so far.
struct Running {
    link: Link,
    /// This run's id, as `Start` gave it.
    run: String,
    me: Member,
    roster: Vec<Member>,
    leader: bool,
    /// Every instance's messages, applied in the stream's order.
    state: GroupState,
    /// When each instance last said something (its start, until it does).
    heard: HashMap<String, Instant>,
    /// The instances the leader declared lost, so that it says so once each.
    declared: HashSet<String>,
    /// The instances this one counted lost on its own.
    assumed: Vec<String>,
    /// How many samples this instance sent, to number the next.
    sent_samples: u64,
    /// Whether the benchmark may still send samples.
    samples_open: bool,
    /// Whether the benchmark may still say its producers are done.
    published_open: bool,
    /// Whether `Done` is still to say (and `Alive` until it is).
    done_pending: bool,
    /// When this instance last wrote, for `Alive`.
    last_said: Instant,
    outbox: Outbox,
    events: GroupEvents,
}

impl Running {
    fn new(group: &Group, outbox: Outbox, events: GroupEvents) -> Running {
        Running {
            link: Link {
                group: group.spec.name.clone(),
                stream: group.coordination.clone(),
            },
            run: group.run.clone(),
            me: group.me.clone(),
            roster: group.roster.clone(),
            leader: group.is_leader(),
            state: GroupState::new(&group.run, group.roster.clone()),
            // Everyone is given until its start, and then some, before silence counts.
            heard: group
                .roster
                .iter()
                .map(|m| (m.id.clone(), group.start_at))
                .collect(),
            declared: HashSet::new(),
            assumed: Vec::new(),
            sent_samples: 0,
            samples_open: true,
            published_open: true,
            done_pending: true,
            last_said: Instant::now(),
            outbox,
            events,
        }
    }

    /// Writes the benchmark's next sample, numbered; the end of its samples closes the branch.
    async fn on_sample(
        &mut self,
        sample: Option<IntervalSample>,
        producer: &Producer<NoDedup>,
    ) -> Result<()> {
        let Some(sample) = sample else {
            self.samples_open = false;
            return Ok(());
        };
        self.sent_samples += 1;
        let message = Control::Sample {
            run: self.run.clone(),
            id: self.me.id.clone(),
            index: self.sent_samples,
            sample: Box::new((&sample).into()),
        };
        self.link
            .send(producer, &message, "sending a sample")
            .await?;
        self.last_said = Instant::now();
        Ok(())
    }

    /// Writes `Published` when this instance's producers are done.
    async fn on_published(
        &mut self,
        confirmed: Option<u64>,
        producer: &Producer<NoDedup>,
    ) -> Result<()> {
        let Some(confirmed) = confirmed else {
            self.published_open = false;
            return Ok(());
        };
        let message = Control::Published {
            run: self.run.clone(),
            id: self.me.id.clone(),
            confirmed,
        };
        self.link
            .send(producer, &message, "saying it published")
            .await?;
        self.last_said = Instant::now();
        Ok(())
    }

    /// Writes `Done` with this instance's figures; without figures (the benchmark failed, and
    /// the command says why) the group's task stops, and the others will count this one lost.
    async fn on_done(
        &mut self,
        figures: std::result::Result<InstanceFigures, oneshot::error::RecvError>,
        producer: &Producer<NoDedup>,
    ) -> Result<ControlFlow<()>> {
        self.done_pending = false;
        let Ok(figures) = figures else {
            return Ok(ControlFlow::Break(()));
        };
        let message = Control::Done {
            run: self.run.clone(),
            id: self.me.id.clone(),
            figures: Box::new(figures),
        };
        self.link
            .send(producer, &message, "saying it is done")
            .await?;
        Ok(ControlFlow::Continue(()))
    }

    /// Applies a message read from the stream (noting who spoke), and passes on what it
    /// completes. The leader's `Lost` is told first, while the instance still counts as
    /// running, and only for this run.
    fn on_delivery(
        &mut self,
        delivery: Option<std::result::Result<Delivery, ConsumerDeliveryError>>,
    ) -> Result<()> {
        let Some(message) = read(delivery, &self.link, "running")? else {
            return Ok(());
        };
        if let Control::Lost { run, id } = &message {
            let running = self.state.running().iter().any(|m| &m.id == id);
            let number = self.roster.iter().position(|m| &m.id == id);
            if let (true, true, Some(number)) = (run == &self.run, running, number) {
                (self.events)(GroupEvent::Lost {
                    number: number + 1,
                    member: self.roster[number].clone(),
                    at_s: self.state.last_sample_s(id),
                });
            }
        }
        if let Some(id) = sender(&message) {
            self.heard.insert(id.to_string(), Instant::now());
        }
        let samples = self.state.apply(message);
        self.pass_on(samples);
        Ok(())
    }

    /// Every half second: says `Alive` if this instance has been quiet, and deals with the
    /// instances gone quiet (the leader declares them lost; the others wait for its word, but
    /// not for ever).
    async fn on_tick(&mut self, producer: &Producer<NoDedup>) -> Result<()> {
        if self.done_pending && self.last_said.elapsed() >= ALIVE_EVERY {
            let message = Control::Alive {
                run: self.run.clone(),
                id: self.me.id.clone(),
            };
            self.link
                .send(producer, &message, "saying it is still here")
                .await?;
            self.last_said = Instant::now();
        }
        for member in self.silent() {
            let quiet_for = self
                .heard
                .get(&member.id)
                .map_or(Duration::ZERO, Instant::elapsed);
            if self.leader && self.declared.insert(member.id.clone()) {
                let message = Control::Lost {
                    run: self.run.clone(),
                    id: member.id.clone(),
                };
                self.link
                    .send(producer, &message, "declaring an instance lost")
                    .await?;
            } else if !self.leader && quiet_for > ASSUME_LOST_AFTER {
                self.assume_lost(member);
            }
        }
        Ok(())
    }

    /// The other instances still running that sent nothing for [`LOST_AFTER`].
    fn silent(&self) -> Vec<Member> {
        self.state
            .running()
            .into_iter()
            .filter(|m| m.id != self.me.id)
            .filter(|m| {
                self.heard
                    .get(&m.id)
                    .is_some_and(|at| at.elapsed() > LOST_AFTER)
            })
            .cloned()
            .collect()
    }

    /// Counts `member` lost on this instance's own word (the leader's never came).
    fn assume_lost(&mut self, member: Member) {
        let number = self
            .roster
            .iter()
            .position(|m| m.id == member.id)
            .unwrap_or(0)
            + 1;
        (self.events)(GroupEvent::AssumedLost {
            number,
            member: member.clone(),
        });
        self.assumed.push(member.id.clone());
        let samples = self.state.assume_lost(&member.id);
        self.pass_on(samples);
    }

    /// Hands the benchmark the group's samples just completed, and what the others confirmed.
    fn pass_on(&self, samples: Vec<IntervalSample>) {
        for sample in samples {
            let _ = self.outbox.feed.send(sample);
        }
        self.outbox
            .others
            .send_replace(self.state.others_confirmed(&self.me.id));
    }

    fn end(self) -> GroupEnd {
        GroupEnd {
            members: self.state.outcome(),
            assumed_lost: self.assumed,
        }
    }
}

/// The instances heard from lately and this one, in the group's order (by id).
fn live(heard: &HashMap<String, (Member, Instant)>, me: &Member) -> Vec<Member> {
    let mut here: Vec<Member> = heard.values().map(|(m, _)| m.clone()).collect();
    here.push(me.clone());
    here.sort_by(|a, b| a.id.cmp(&b.id));
    here.dedup_by(|a, b| a.id == b.id);
    here
}

/// The instance a running group's message comes from (the leader's `Lost` speaks for it).
fn sender(message: &Control) -> Option<&str> {
    match message {
        Control::Sample { id, .. }
        | Control::Published { id, .. }
        | Control::Done { id, .. }
        | Control::Alive { id, .. } => Some(id),
        Control::Hello { .. } | Control::Start { .. } | Control::Lost { .. } => None,
    }
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// How the group's task and the benchmark talk.
pub struct Channels {
    /// The benchmark's samples go to the group.
    pub samples: FeedSender,
    /// Said once, when this instance's producers are all done: what they confirmed.
    pub published: mpsc::UnboundedSender<u64>,
    /// This instance's figures, when its benchmark is over (dropped if it failed).
    pub done: oneshot::Sender<InstanceFigures>,
    /// What the other instances confirmed, once all of them are done publishing.
    pub others_confirmed: watch::Receiver<Option<u64>>,
    /// The group's samples, as they complete; ends with the group.
    pub feed: mpsc::UnboundedReceiver<IntervalSample>,
}

struct Inbox {
    samples: mpsc::UnboundedReceiver<IntervalSample>,
    published: mpsc::UnboundedReceiver<u64>,
    done: oneshot::Receiver<InstanceFigures>,
}

struct Outbox {
    others: watch::Sender<Option<u64>>,
    feed: mpsc::UnboundedSender<IntervalSample>,
}

/// How a group's run ended.
#[derive(Debug)]
pub struct GroupEnd {
    /// Every instance's figures, in the group's order.
    pub members: Vec<MemberOutcome>,
    /// The ids of the instances this one counted lost on its own (not on the leader's word).
    pub assumed_lost: Vec<String>,
}

/// The coordination stream, for its messages and errors.
struct Link {
    group: String,
    stream: String,
}

impl Link {
    async fn send(
        &self,
        producer: &Producer<NoDedup>,
        message: &Control,
        during: &'static str,
    ) -> Result<()> {
        let body = Message::builder().body(message.encode()).build();
        match producer.send_with_confirm(body).await {
            Ok(status) if status.confirmed() => Ok(()),
            Ok(status) => Err(self.lost(during, &format!("not confirmed: {:?}", status.status()))),
            Err(e) => Err(self.lost(during, &e.to_string())),
        }
    }

    fn lost(&self, during: &'static str, reason: &str) -> crate::error::InvError {
        GroupError::Coordination {
            group: self.group.clone(),
            stream: self.stream.clone(),
            during,
            reason: reason.to_string(),
        }
        .into()
    }
}
