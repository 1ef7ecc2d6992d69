//! One shutdown path for every command: SIGINT (Ctrl-C) and SIGTERM both set one token, which
//! engines and commands watch; the signal that set it decides the exit code (130 or 143, as
//! shells report them).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

/// Exit code after SIGINT (Ctrl-C), as shells use.
pub const EXIT_INTERRUPTED: u8 = 130;
/// Exit code after SIGTERM.
pub const EXIT_TERMINATED: u8 = 143;

/// Which signal asked the process to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        })
    }
}

impl Signal {
    pub fn exit_code(self) -> u8 {
        match self {
            Signal::Interrupt => EXIT_INTERRUPTED,
            Signal::Terminate => EXIT_TERMINATED,
        }
    }
}

/// The token: set once, by a signal or by the program itself (a benchmark's readers when the
/// run is over).
#[derive(Debug, Clone)]
pub struct Shutdown {
    tx: watch::Sender<Option<Signal>>,
    /// Whether anything watches the token yet: a command does once it has started (see
    /// [`Shutdown::unheeded`]).
    watched: Arc<AtomicBool>,
}

/// A watcher of a [`Shutdown`]: cheap to clone, one per task.
#[derive(Debug, Clone)]
pub struct StopSignal {
    rx: watch::Receiver<Option<Signal>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A token nothing has set yet (and no signal feeds: see [`Shutdown::on_signals`]).
    pub fn new() -> Self {
        Shutdown {
            tx: watch::channel(None).0,
            watched: Arc::new(AtomicBool::new(false)),
        }
    }

    /// A token that SIGINT and SIGTERM set. Must be called inside the runtime. The handlers are
    /// in place when it returns: a signal that comes at once is not lost (or fatal).
    pub fn on_signals() -> Self {
        let shutdown = Self::new();
        let tx = shutdown.tx.clone();
        let signals = Signals::register();
        tokio::spawn(async move {
            let signal = signals.wait().await;
            tx.send_replace(Some(signal));
        });
        shutdown
    }

    /// Stops whoever watches, as if by `signal`; the first one counts.
    pub fn trigger(&self, signal: Signal) {
        self.tx.send_if_modified(|current| {
            let first = current.is_none();
            if first {
                *current = Some(signal);
            }
            first
        });
    }

    /// A watcher; from the first one on, the command heeds the token itself.
    pub fn signal(&self) -> StopSignal {
        self.watched.store(true, Ordering::Relaxed);
        StopSignal {
            rx: self.tx.subscribe(),
        }
    }

    /// Resolves with the signal if the token is set before anything watches it: a command that
    /// is still starting (connecting, creating its stream) heeds it only once started, which a
    /// broker that accepts and never answers delays by a handshake timeout per node. Racing
    /// start-up against this ends it at once. Never resolves once something watches.
    pub async fn unheeded(&self) -> Signal {
        let mut rx = self.tx.subscribe();
        let signal = match rx.wait_for(Option::is_some).await {
            Ok(signal) => *signal,
            Err(_) => None,
        };
        match signal {
            Some(signal) if !self.watched.load(Ordering::Relaxed) => signal,
            _ => std::future::pending().await,
        }
    }

    /// The signal that stopped the run, if one did.
    pub fn received(&self) -> Option<Signal> {
        *self.tx.borrow()
    }
}

impl StopSignal {
    /// Resolves once the token is set (at once if it is).
    pub async fn stopped(&mut self) {
        if self.rx.wait_for(Option::is_some).await.is_err() {
            // The token is gone without being set: nothing will ever set it.
            std::future::pending::<()>().await;
        }
    }

    pub fn is_stopped(&self) -> bool {
        self.rx.borrow().is_some()
    }
}

/// SIGINT and SIGTERM, their handlers registered (`tokio::signal::ctrl_c` registers only when
/// first polled).
#[cfg(unix)]
struct Signals {
    interrupt: Option<tokio::signal::unix::Signal>,
    terminate: Option<tokio::signal::unix::Signal>,
}

#[cfg(unix)]
impl Signals {
    fn register() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        Signals {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
        }
    }

    async fn wait(mut self) -> Signal {
        async fn recv(signal: Option<&mut tokio::signal::unix::Signal>) {
            match signal {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = recv(self.interrupt.as_mut()) => Signal::Interrupt,
            _ = recv(self.terminate.as_mut()) => Signal::Terminate,
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn register() -> Self {
        Signals
    }

    async fn wait(self) -> Signal {
        let _ = tokio::signal::ctrl_c().await;
        Signal::Interrupt
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn the_first_trigger_counts_and_every_watcher_sees_it() {
        let shutdown = Shutdown::new();
        let (mut a, b) = (shutdown.signal(), shutdown.signal());
        assert!(!b.is_stopped());
        shutdown.trigger(Signal::Terminate);
        shutdown.trigger(Signal::Interrupt);
        a.stopped().await;
        assert!(b.is_stopped());
        assert_eq!(shutdown.received(), Some(Signal::Terminate));
        assert_eq!(Signal::Terminate.exit_code(), 143);
        assert_eq!(Signal::Interrupt.exit_code(), 130);
    }

    #[tokio::test]
    async fn a_signal_before_anything_watches_is_unheeded_and_after_it_is_not() {
        let starting = Shutdown::new();
        starting.trigger(Signal::Interrupt);
        let unheeded = tokio::time::timeout(Duration::from_secs(1), starting.unheeded()).await;
        assert_eq!(unheeded.ok(), Some(Signal::Interrupt));

        let started = Shutdown::new();
        let mut watcher = started.signal();
        started.trigger(Signal::Terminate);
        watcher.stopped().await;
        let unheeded = tokio::time::timeout(Duration::from_millis(50), started.unheeded()).await;
        assert!(unheeded.is_err(), "a started command stops by itself");
    }
}
