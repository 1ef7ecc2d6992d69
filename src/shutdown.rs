//! One shutdown path for every command: SIGINT (Ctrl-C) and SIGTERM both set one token, which
//! engines and commands watch; the signal that set it decides the exit code (130 or 143, as
//! shells report them).

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
        }
    }

    /// A token that SIGINT and SIGTERM set. Must be called inside the runtime.
    pub fn on_signals() -> Self {
        let shutdown = Self::new();
        let tx = shutdown.tx.clone();
        tokio::spawn(async move {
            let signal = wait_for_signal().await;
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

    pub fn signal(&self) -> StopSignal {
        StopSignal {
            rx: self.tx.subscribe(),
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

#[cfg(unix)]
async fn wait_for_signal() -> Signal {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = tokio::signal::ctrl_c() => Signal::Interrupt,
            _ = term.recv() => Signal::Terminate,
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            Signal::Interrupt
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> Signal {
    let _ = tokio::signal::ctrl_c().await;
    Signal::Interrupt
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
