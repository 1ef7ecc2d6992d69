//! Readers on tasks of their own: `consume` (one or many readers, one per partition of a super
//! stream) and `bench` start them here and wait for them together, with the count read so far
//! reported every 100 ms.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{
    read, MessageSink, ReadContext, ReadOutcome, ReadPlan, ReaderEvents, ReaderSpec, SharedCount,
    Subscription,
};

/// One reader to start: its plan, its spec, its subscription and its sink.
pub struct Start<S> {
    pub plan: Arc<ReadPlan>,
    pub spec: ReaderSpec,
    pub subscription: Subscription,
    pub sink: S,
    /// A `--count` shared with other readers (see [`SharedCount`]).
    pub shared_count: Option<Arc<SharedCount>>,
}

/// Readers running on their own tasks (see [`spawn_all`]), and the count they read together.
pub struct Running<S> {
    tasks: Vec<tokio::task::JoinHandle<(String, ReadOutcome<S>)>>,
    count: Arc<AtomicU64>,
}

/// How often [`Running::join`] reports the count read so far.
const PROGRESS_TICK: Duration = Duration::from_millis(100);

/// Starts every reader on a task of its own, each stopping at `stop` or its plan's rules.
pub fn spawn_all<S: MessageSink + 'static>(
    readers: Vec<Start<S>>,
    stop: &crate::shutdown::Shutdown,
    events: &ReaderEvents,
) -> Running<S> {
    let count = Arc::new(AtomicU64::new(0));
    let tasks = readers
        .into_iter()
        .map(|start| {
            let (stop, progress, events) = (stop.signal(), count.clone(), events.clone());
            tokio::spawn(async move {
                let Start {
                    plan,
                    spec,
                    subscription,
                    sink,
                    shared_count,
                } = start;
                let context = ReadContext {
                    plan: &plan,
                    reader: &spec,
                    stop,
                    progress,
                    events,
                    shared_count,
                };
                let outcome = read(context, subscription, sink).await;
                (spec.label, outcome)
            })
        })
        .collect();
    Running { tasks, count }
}

impl<S: Send + 'static> Running<S> {
    /// Waits for every reader; meanwhile `progress` hears the messages read so far, every
    /// 100 ms. Each reader's label and outcome, in the order they were started.
    pub async fn join(self, mut progress: impl FnMut(u64)) -> Vec<(String, ReadOutcome<S>)> {
        let all = futures::future::join_all(self.tasks);
        let mut all = std::pin::pin!(all);
        let results = loop {
            tokio::select! {
                results = &mut all => break results,
                _ = tokio::time::sleep(PROGRESS_TICK) => progress(self.count.load(Ordering::Relaxed)),
            }
        };
        results
            .into_iter()
            // A reader's panic is a bug: it goes on as the caller's.
            .map(|result| result.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())))
            .collect()
    }
}
