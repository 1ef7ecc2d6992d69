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
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rabbitmq_stream_client::types::{Message, OffsetSpecification};
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
        let name = coordination.as_str();
        broker
            .while_starting(|| broker.ensure_stream(name, COORDINATION_RETENTION.arguments()))
            .await?;
        // Subscribed before the first `Hello`, so this instance reads every answer to it. (The
        // stream another instance just created may not be available for a moment.)
        let mut consumer = broker
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
        let me = Member::this_process();
        let link = Link {
            group: spec.name.clone(),
            stream: coordination.clone(),
        };
        let deadline = tokio::time::Instant::now() + spec.join_timeout;
        let mut hello = tokio::time::interval(HELLO_EVERY);
        let mut heard: HashMap<String, (Member, Instant)> = HashMap::new();
        let mut create_stream = Some(create_stream);
        let mut joined_before = 0;
        let hello_message = Control::Hello {
            member: me.clone(),
            instances: spec.instances,
            plan: spec.plan.clone(),
        };
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {
                    let _ = producer.close().await;
                    let _ = consumer.handle().close().await;
                    return Err(GroupError::JoinTimeout {
                        group: spec.name.clone(),
                        joined: live(&heard, &me).len(),
                        expected: spec.instances,
                        timeout: spec.join_timeout,
                    }
                    .into());
                }
                _ = hello.tick() => link.send(&producer, &hello_message, "joining").await?,
                delivery = consumer.next() => {
                    let Some(delivery) = delivery else {
                        return Err(link.lost("joining", "the subscription ended"));
                    };
                    let Ok(delivery) = delivery else { continue };
                    let Some(message) = delivery.message().data().and_then(Control::decode) else {
                        continue;
                    };
                    match message {
                        Control::Hello { member, instances, plan } if member.id != me.id => {
                            if instances != spec.instances || plan != spec.plan {
                                // Once more, so that the other learns of this one before it
                                // goes (it may have subscribed after this one's last word).
                                link.send(&producer, &hello_message, "joining").await?;
                                return Err(GroupError::PlanMismatch {
                                    group: spec.name.clone(),
                                    host: member.host,
                                    pid: member.pid,
                                    theirs: format!("--instances {instances}, {plan}"),
                                    ours: format!("--instances {}, {}", spec.instances, spec.plan),
                                }
                                .into());
                            }
                            heard.insert(member.id.clone(), (member, Instant::now()));
                        }
                        Control::Start { run, roster, stream, delay_ms } => {
                            if !roster.contains(&me) {
                                let _ = producer.close().await;
                                let _ = consumer.handle().close().await;
                                return Err(GroupError::NotInRoster {
                                    group: spec.name.clone(),
                                    expected: spec.instances,
                                }
                                .into());
                            }
                            return Ok(Group {
                                producer,
                                consumer,
                                coordination,
                                me,
                                run,
                                roster,
                                stream,
                                start_at: Instant::now() + Duration::from_millis(delay_ms),
                                spec,
                            });
                        }
                        _ => {}
                    }
                }
            }
            heard.retain(|_, (_, at)| at.elapsed() < HELLO_STALE);
            let here = live(&heard, &me);
            if here.len() != joined_before {
                joined_before = here.len();
                events(GroupEvent::Waiting {
                    joined: here.len(),
                    expected: spec.instances,
                });
            }
            if here.len() >= spec.instances as usize && here[0] == me {
                if let Some(create_stream) = create_stream.take() {
                    let roster: Vec<Member> =
                        here.into_iter().take(spec.instances as usize).collect();
                    let stream = create_stream().await?;
                    let run = format!("{}-{}", me.id, now_ms());
                    let start = Control::Start {
                        run,
                        roster,
                        stream,
                        delay_ms: START_DELAY.as_millis() as u64,
                    };
                    link.send(&producer, &start, "starting the group").await?;
                }
            }
        }
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

    async fn run(mut self, inbox: Inbox, outbox: Outbox, events: GroupEvents) -> Result<GroupEnd> {
        let link = Link {
            group: self.spec.name.clone(),
            stream: self.coordination.clone(),
        };
        let Inbox {
            samples: mut samples_rx,
            published: mut published_rx,
            done: mut done_rx,
        } = inbox;
        let mut state = GroupState::new(&self.run, self.roster.clone());
        // Everyone is given until its start, and then some, before silence counts.
        let mut heard: HashMap<String, Instant> = self
            .roster
            .iter()
            .map(|m| (m.id.clone(), self.start_at))
            .collect();
        let mut declared = HashSet::new();
        let mut assumed = Vec::new();
        let mut sent_samples = 0;
        let mut samples_open = true;
        let mut done_pending = true;
        let mut published_open = true;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let mut last_said = Instant::now();
        let leader = self.is_leader();
        while !state.complete() {
            tokio::select! {
                sample = samples_rx.recv(), if samples_open => match sample {
                    Some(sample) => {
                        sent_samples += 1;
                        let message = Control::Sample {
                            run: self.run.clone(),
                            id: self.me.id.clone(),
                            index: sent_samples,
                            sample: Box::new((&sample).into()),
                        };
                        link.send(&self.producer, &message, "sending a sample").await?;
                        last_said = Instant::now();
                    }
                    None => samples_open = false,
                },
                confirmed = published_rx.recv(), if published_open => match confirmed {
                    Some(confirmed) => {
                        let message = Control::Published {
                            run: self.run.clone(),
                            id: self.me.id.clone(),
                            confirmed,
                        };
                        link.send(&self.producer, &message, "saying it published").await?;
                        last_said = Instant::now();
                    }
                    None => published_open = false,
                },
                // After its last sample: `Done` must follow every sample in the stream.
                figures = &mut done_rx, if done_pending && !samples_open => {
                    done_pending = false;
                    // No figures: the benchmark failed, and the command says why; the others
                    // will count this instance lost.
                    let Ok(figures) = figures else {
                        break;
                    };
                    let message = Control::Done {
                        run: self.run.clone(),
                        id: self.me.id.clone(),
                        figures: Box::new(figures),
                    };
                    link.send(&self.producer, &message, "saying it is done").await?;
                },
                delivery = self.consumer.next() => {
                    let Some(delivery) = delivery else {
                        return Err(link.lost("running", "the subscription ended"));
                    };
                    let Ok(delivery) = delivery else { continue };
                    let Some(message) = delivery.message().data().and_then(Control::decode) else {
                        continue;
                    };
                    if let Control::Lost { run, id } = &message {
                        let running = state.running().iter().any(|m| &m.id == id);
                        let number = self.roster.iter().position(|m| &m.id == id);
                        if let (true, true, Some(number)) = (run == &self.run, running, number) {
                            events(GroupEvent::Lost {
                                number: number + 1,
                                member: self.roster[number].clone(),
                                at_s: state.last_sample_s(id),
                            });
                        }
                    }
                    if let Some(id) = sender(&message) {
                        heard.insert(id.to_string(), Instant::now());
                    }
                    for sample in state.apply(message) {
                        let _ = outbox.feed.send(sample);
                    }
                    outbox.others.send_replace(state.others_confirmed(&self.me.id));
                },
                _ = tick.tick() => {
                    if done_pending && last_said.elapsed() >= ALIVE_EVERY {
                        let message = Control::Alive { run: self.run.clone(), id: self.me.id.clone() };
                        link.send(&self.producer, &message, "saying it is still here").await?;
                        last_said = Instant::now();
                    }
                    let silent: Vec<Member> = state
                        .running()
                        .into_iter()
                        .filter(|m| m.id != self.me.id)
                        .filter(|m| heard.get(&m.id).is_some_and(|at| at.elapsed() > LOST_AFTER))
                        .cloned()
                        .collect();
                    for member in silent {
                        let quiet_for = heard.get(&member.id).map_or(Duration::ZERO, Instant::elapsed);
                        if leader && declared.insert(member.id.clone()) {
                            let message = Control::Lost { run: self.run.clone(), id: member.id.clone() };
                            link.send(&self.producer, &message, "declaring an instance lost").await?;
                        } else if !leader && quiet_for > ASSUME_LOST_AFTER {
                            let number = self.roster.iter().position(|m| m.id == member.id).unwrap_or(0) + 1;
                            events(GroupEvent::AssumedLost { number, member: member.clone() });
                            assumed.push(member.id.clone());
                            for sample in state.assume_lost(&member.id) {
                                let _ = outbox.feed.send(sample);
                            }
                            outbox.others.send_replace(state.others_confirmed(&self.me.id));
                        }
                    }
                },
            }
        }
        let _ = self.producer.close().await;
        let _ = self.consumer.handle().close().await;
        Ok(GroupEnd {
            members: state.outcome(),
            assumed_lost: assumed,
        })
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
