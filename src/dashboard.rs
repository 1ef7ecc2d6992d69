//! `bench`'s live dashboard, a [`SampleView`] of the sample feed (oha's monitor is the model):
//! the feed's samples go into a [`Model`]; a thread of its own owns the terminal, reads the keys
//! and redraws from the latest model at most `REDRAW_EVERY`; status lines are held back while
//! it is up and shown in its events panel. `q`, `Esc` and Ctrl-C (raw mode swallows SIGINT) stop
//! the run through the one shutdown path. The screen is restored when the [`Dashboard`] drops,
//! before the summary is printed; also on a panic (`screen`).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};

use crate::engines::feed::{IntervalSample, SampleView};
use crate::report::{held_since, hold_status, Output, StatusHold};
use crate::shutdown::{Shutdown, Signal};

mod draw;
mod model;
mod screen;

pub use model::{Model, RunPlan};
use screen::Screen;

/// At most four frames a second, and only when something shown changed (a sample, an event,
/// the clock's second, a key, a resize): about one a second while a run goes.
const REDRAW_EVERY: Duration = Duration::from_millis(250);

/// How long the key reader waits for a key before it looks at the clock and the stop flag.
const KEY_POLL: Duration = Duration::from_millis(50);

/// Whether `bench` shows the dashboard: not with `--no-tui`, `--json` or `-q`, and only when
/// stdout and stderr are both terminals (a pipe or a log gets the per-second lines).
pub fn wanted(no_tui: bool, out: Output) -> bool {
    let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
    !no_tui
        && !out.json
        && !out.quiet
        && !dumb
        && std::io::stdout().is_terminal()
        && std::io::stderr().is_terminal()
}

/// The dashboard when [`wanted`] and the terminal can be set up; `None` otherwise (a terminal
/// that refuses raw mode gets a status line and the per-second lines).
pub fn start_if_wanted(
    no_tui: bool,
    plan: RunPlan,
    shutdown: &Shutdown,
    out: Output,
) -> Option<Dashboard> {
    if !wanted(no_tui, out) {
        return None;
    }
    match Dashboard::start(plan, shutdown) {
        Ok(dashboard) => Some(dashboard),
        Err(e) => {
            out.status(&format!("no dashboard ({e}); printing a line per second"));
            None
        }
    }
}

/// The live dashboard: a view of the feed while it lives, the terminal restored when it drops.
pub struct Dashboard {
    model: Arc<Mutex<Model>>,
    stop: Arc<AtomicBool>,
    ui: Option<JoinHandle<()>>,
    /// Dropped after the screen is restored: then the held status lines are printed.
    _held: StatusHold,
}

impl Dashboard {
    /// Takes the terminal and starts drawing; status lines are held from now on.
    pub fn start(plan: RunPlan, shutdown: &Shutdown) -> std::io::Result<Dashboard> {
        let screen = Screen::enter()?;
        let held = hold_status();
        let mut model = Model::new(plan);
        // The run's own line opens the events (the status lines before it are on the screen
        // underneath).
        model.push_events(vec![model.plan.title.clone()]);
        let model = Arc::new(Mutex::new(model));
        let stop = Arc::new(AtomicBool::new(false));
        let ui = Ui {
            model: model.clone(),
            stop: stop.clone(),
            shutdown: shutdown.clone(),
            events_seen: 0,
        };
        let ui = std::thread::Builder::new()
            .name("dashboard".into())
            .spawn(move || ui.run(screen))?;
        Ok(Dashboard {
            model,
            stop,
            ui: Some(ui),
            _held: held,
        })
    }
}

impl SampleView for Dashboard {
    fn on_sample(&mut self, sample: &IntervalSample) {
        lock(&self.model).on_sample(sample);
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(ui) = self.ui.take() {
            // The thread restores the screen as it ends; a panic there was restored by the hook.
            let _ = ui.join();
        }
        screen::restore();
    }
}

fn lock(model: &Mutex<Model>) -> MutexGuard<'_, Model> {
    model.lock().unwrap_or_else(|p| p.into_inner())
}

/// The dashboard's thread: keys, held lines, frames.
struct Ui {
    model: Arc<Mutex<Model>>,
    stop: Arc<AtomicBool>,
    shutdown: Shutdown,
    events_seen: usize,
}

impl Ui {
    /// Until the dashboard drops (or the terminal fails: then the run goes on undrawn, and
    /// Ctrl-C is a signal again).
    fn run(mut self, mut screen: Screen) {
        let _ = self.run_on(&mut screen);
        drop(screen);
    }

    fn run_on(&mut self, screen: &mut Screen) -> std::io::Result<()> {
        let mut next_frame = Instant::now();
        // What the last frame showed; a frame that would show the same is not drawn.
        let mut drawn = None;
        while !self.stop.load(Ordering::SeqCst) && Screen::active() {
            let wait = next_frame.saturating_duration_since(Instant::now());
            if event::poll(wait.min(KEY_POLL))? {
                match event::read()? {
                    Event::Key(key) if key.kind != KeyEventKind::Release && is_stop(&key) => {
                        self.shutdown.trigger(Signal::Interrupt);
                        lock(&self.model).stopping = true;
                        next_frame = Instant::now();
                    }
                    Event::Resize(..) => {
                        drawn = None;
                        next_frame = Instant::now();
                    }
                    _ => {}
                }
            }
            if Instant::now() < next_frame {
                continue;
            }
            let (lines, seen) = held_since(self.events_seen);
            self.events_seen = seen;
            let model = &mut *lock(&self.model);
            model.push_events(lines);
            let elapsed = model.plan.started.elapsed();
            next_frame = Instant::now() + REDRAW_EVERY;
            let shown = Some((
                model.samples,
                model.events_seen,
                elapsed.as_secs(),
                model.stopping,
            ));
            if shown == drawn {
                continue;
            }
            screen
                .terminal
                .draw(|frame| draw::draw(frame, model, elapsed))?;
            drawn = shown;
        }
        Ok(())
    }
}

/// `q`, `Esc` or Ctrl-C.
fn is_stop(key: &event::KeyEvent) -> bool {
    match key.code {
        KeyCode::Char('q') | KeyCode::Char('Q') | KeyCode::Esc => true,
        KeyCode::Char('c') => key.modifiers.contains(KeyModifiers::CONTROL),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::crossterm::event::KeyEvent;

    #[test]
    fn q_esc_and_ctrl_c_stop_and_c_alone_does_not() {
        let key = |code, modifiers| KeyEvent::new(code, modifiers);
        assert!(is_stop(&key(KeyCode::Char('q'), KeyModifiers::NONE)));
        assert!(is_stop(&key(KeyCode::Esc, KeyModifiers::NONE)));
        assert!(is_stop(&key(KeyCode::Char('c'), KeyModifiers::CONTROL)));
        assert!(!is_stop(&key(KeyCode::Char('c'), KeyModifiers::NONE)));
        assert!(!is_stop(&key(KeyCode::Enter, KeyModifiers::NONE)));
    }
}
