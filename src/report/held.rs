//! Status lines held back while a full-screen view owns the terminal: `Output::status` queues
//! them here instead of writing over the screen; the view shows them as they come, and what was
//! held is printed on stderr once the screen is restored.

use std::io::Write;
use std::sync::Mutex;

/// Lines kept at most while held (the oldest go first); a run's events are far fewer.
const MOST_HELD: usize = 10_000;

/// While `Some`, status lines go here, in order.
static HELD: Mutex<Option<Held>> = Mutex::new(None);

struct Held {
    lines: Vec<String>,
    /// Lines dropped from the front to stay under `MOST_HELD`.
    dropped: usize,
}

/// Holds status lines from now until it drops; then prints them on stderr.
pub struct StatusHold(());

/// Starts holding status lines (a second hold while one is live shares it).
pub fn hold_status() -> StatusHold {
    let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
    held.get_or_insert(Held {
        lines: Vec::new(),
        dropped: 0,
    });
    StatusHold(())
}

/// Queues `line` if lines are held; gives it back if not.
pub(super) fn try_hold(line: String) -> Option<String> {
    let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
    let Some(held) = held.as_mut() else {
        return Some(line);
    };
    if held.lines.len() >= MOST_HELD {
        held.lines.remove(0);
        held.dropped += 1;
    }
    held.lines.push(line);
    None
}

/// The lines held after the first `seen` ones (counting those dropped), and how many were held
/// in all; nothing while no hold is live.
pub fn held_since(seen: usize) -> (Vec<String>, usize) {
    let held = HELD.lock().unwrap_or_else(|p| p.into_inner());
    let Some(held) = held.as_ref() else {
        return (Vec::new(), seen);
    };
    let total = held.dropped + held.lines.len();
    let from = seen.saturating_sub(held.dropped).min(held.lines.len());
    (held.lines[from..].to_vec(), total)
}

impl Drop for StatusHold {
    fn drop(&mut self) {
        let held = HELD.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(held) = held {
            let mut stderr = std::io::stderr().lock();
            for line in held.lines {
                let _ = writeln!(stderr, "invstream: {line}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_lines_come_in_order_and_only_while_held() {
        assert_eq!(try_hold("before".into()), Some("before".into()));
        let hold = hold_status();
        assert_eq!(try_hold("held one".into()), None);
        assert_eq!(try_hold("held two".into()), None);
        // Other unit tests may print status lines meanwhile: look at this test's own.
        let (lines, seen) = held_since(0);
        let own: Vec<_> = lines.iter().filter(|l| l.starts_with("held ")).collect();
        assert_eq!(own, ["held one", "held two"]);
        assert!(held_since(seen).0.iter().all(|l| !l.starts_with("held ")));
        drop(hold);
        assert_eq!(try_hold("after".into()), Some("after".into()));
    }
}
