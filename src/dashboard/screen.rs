//! The terminal while the dashboard owns it: raw mode and the alternate screen, restored when
//! the [`Screen`] drops (a normal end, an error return, a panic's unwinding) and by a panic hook
//! (a panic on any thread restores it before the message is printed), so the terminal is never
//! left raw.

use std::io::{self, Stdout};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::{cursor, execute, terminal};
use ratatui::Terminal;

/// Whether the terminal is raw and on the alternate screen now (the panic hook's question).
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// The panic hook goes in once per process (the hook chains to the one before it).
static HOOK: Once = Once::new();

/// The dashboard's terminal; drawing goes to stdout.
pub struct Screen {
    pub terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl Screen {
    /// Raw mode, the alternate screen, the cursor hidden; anything that fails puts back what
    /// was done.
    pub fn enter() -> io::Result<Screen> {
        install_panic_hook();
        terminal::enable_raw_mode()?;
        ACTIVE.store(true, Ordering::SeqCst);
        let entered = execute!(io::stdout(), terminal::EnterAlternateScreen, cursor::Hide)
            .and_then(|()| Terminal::new(CrosstermBackend::new(io::stdout())));
        match entered {
            Ok(terminal) => Ok(Screen { terminal }),
            Err(e) => {
                restore();
                Err(e)
            }
        }
    }

    /// Whether the screen is still the dashboard's (a panic elsewhere restores it at once).
    pub fn active() -> bool {
        ACTIVE.load(Ordering::SeqCst)
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// Leaves the alternate screen, shows the cursor and ends raw mode; once, however many call it.
pub fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let _ = execute!(io::stdout(), terminal::LeaveAlternateScreen, cursor::Show);
        let _ = terminal::disable_raw_mode();
    }
}

fn install_panic_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}
