//! `bench`'s live dashboard, driven as a person drives it: the real binary in a tmux pane
//! (`new-session -d -x W -y H`, `send-keys`, `capture-pane`). The pane runs a shell, so after the
//! run it shows how the terminal was left. Readiness is always a capture polled until it holds;
//! the 120 s limits only keep a broken run from hanging the suite.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::util::{assert_stream_deleted, binary, unique_name, BrokerNode, TcpProxy, TestStream};

/// Panel titles every size of terminal shows.
const PANELS: [&str; 5] = ["Rates", "Latency", "Flow", "Consumers", "Events"];

/// The longest a pane may take to show what a test waits for.
const PATIENCE: Duration = Duration::from_secs(120);

/// tmux, installed with apt-get when missing: the test fails (never skips) when it cannot be.
fn require_tmux() {
    let found = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return;
    }
    let installed = Command::new("apt-get")
        .args(["install", "-y", "tmux"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .unwrap_or_else(|e| panic!("tmux is missing and apt-get cannot run: {e}"));
    assert!(
        installed.status.success(),
        "tmux is missing and `apt-get install -y tmux` failed: {}",
        String::from_utf8_lossy(&installed.stderr)
    );
}

/// A tmux server and session of one test's own, running a plain shell in a `width`×`height`
/// pane; killed on drop.
struct Pane {
    socket: String,
}

impl Pane {
    fn new(width: u16, height: u16) -> Pane {
        require_tmux();
        let pane = Pane {
            socket: unique_name("invstream-dash"),
        };
        let shell =
            "env -i PATH=/usr/bin:/bin TERM=xterm-256color PS1='$ ' bash --norc --noprofile";
        let started = pane.tmux(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            shell,
        ]);
        assert!(started.status.success(), "tmux new-session: {started:?}");
        pane
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux runs")
    }

    /// Types `line` and Enter.
    fn type_line(&self, line: &str) {
        let typed = self.tmux(&["send-keys", "-t", "t", "-l", line]);
        assert!(typed.status.success(), "send-keys: {typed:?}");
        self.key("Enter");
    }

    /// Presses one key (tmux key names: `q`, `Escape`, `C-c`, `Enter`).
    fn key(&self, key: &str) {
        let sent = self.tmux(&["send-keys", "-t", "t", key]);
        assert!(sent.status.success(), "send-keys {key}: {sent:?}");
    }

    /// What the pane shows now (the visible screen).
    fn capture(&self) -> String {
        let captured = self.tmux(&["capture-pane", "-p", "-t", "t"]);
        assert!(captured.status.success(), "capture-pane: {captured:?}");
        String::from_utf8_lossy(&captured.stdout).into_owned()
    }

    /// Everything the normal screen holds, its scrollback included, wrapped lines joined.
    fn history(&self) -> String {
        let captured = self.tmux(&["capture-pane", "-p", "-J", "-S", "-", "-t", "t"]);
        String::from_utf8_lossy(&captured.stdout).into_owned()
    }

    /// Whether the pane is on the alternate screen (a full-screen program holds it).
    fn alternate_on(&self) -> bool {
        let shown = self.tmux(&["display-message", "-p", "-t", "t", "#{alternate_on}"]);
        String::from_utf8_lossy(&shown.stdout).trim() == "1"
    }

    /// Polls the pane until `done` holds for a capture, and returns that capture.
    fn wait_for(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let screen = self.capture();
            if done(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "waited {PATIENCE:?} for {what}; the pane shows:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs a bench line in the shell, then `echo exit=$?`.
    fn run_bench(&self, args: &str) {
        self.type_line(&format!(
            "'{}' {args}; echo \"exit=$?\"",
            binary().display()
        ));
    }

    /// Waits for the run to end; returns its exit code as the shell echoed it.
    fn wait_exit(&self) -> i32 {
        // The typed line holds `exit=$?`: the echoed one has digits.
        let code = |screen: &str| {
            screen.split("exit=").skip(1).find_map(|rest| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse::<i32>().ok()
            })
        };
        let screen = self.wait_for("the run to end (exit=N)", |s| code(s).is_some());
        code(&screen).unwrap()
    }

    /// Asserts the terminal is a normal shell's again: off the alternate screen, not raw (the
    /// line discipline canonical and echoing, as `stty` reports it), and a command's output
    /// shows.
    fn assert_restored(&self) {
        assert!(
            !self.alternate_on(),
            "still on the alternate screen:\n{}",
            self.capture()
        );
        self.type_line("stty -a | tr ' ' '\\n' | grep -E '^-?(icanon|echo)$' | tr '\\n' ' '; echo; echo restored-$((6*7))");
        let screen = self.wait_for("the shell to answer", |s| s.contains("restored-42"));
        let modes = screen
            .lines()
            .rev()
            .find(|l| l.contains("icanon"))
            .unwrap_or_else(|| panic!("stty printed no modes:\n{screen}"));
        assert!(
            modes.split_whitespace().any(|m| m == "icanon")
                && modes.split_whitespace().any(|m| m == "echo"),
            "the terminal was left raw ({modes}):\n{screen}"
        );
    }
}

impl Drop for Pane {
    /// A test that failed midway leaves its bench running: `q` lets it delete its stream (a
    /// killed pane would end it by SIGHUP, stream left behind), then the server goes.
    fn drop(&mut self) {
        let ended = |pane: &Pane| {
            pane.capture()
                .split("exit=")
                .skip(1)
                .any(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        };
        if !ended(self) {
            let _ = self.tmux(&["send-keys", "-t", "t", "q"]);
            let deadline = Instant::now() + Duration::from_secs(30);
            while !ended(self) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = self.tmux(&["kill-server"]);
    }
}

/// The number after `label` on the screen ("confirmed   12,345" → 12345).
fn number_after(screen: &str, label: &str) -> Option<u64> {
    let rest = &screen[screen.find(label)? + label.len()..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The bench's own stream, from the summary or the status line that created it.
fn bench_stream_of(text: &str, stream: &TestStream) -> String {
    let start = text
        .find(&format!("'{}-bench-", stream.name))
        .unwrap_or_else(|| panic!("no bench stream named in:\n{text}"));
    let name = &text[start + 1..];
    name[..name.find('\'').expect("a quoted name")].to_string()
}

fn panels_shown(screen: &str) -> bool {
    PANELS.iter().all(|p| screen.contains(p))
}

#[test]
fn dashboard_shows_live_numbers_and_q_ends_it_with_the_summary_and_no_stream() {
    let stream = TestStream::new("dash-live");
    let pane = Pane::new(120, 36);
    pane.run_bench(&format!(
        "--stream {} bench --duration 10m --rate 20000 --consumers 1",
        stream.name
    ));
    let first = pane.wait_for("the panels with messages confirmed", |s| {
        panels_shown(s) && number_after(s, "confirmed   ").is_some_and(|n| n > 0)
    });
    assert!(
        pane.alternate_on(),
        "the dashboard is not full screen:\n{first}"
    );
    let before = number_after(&first, "confirmed   ").unwrap();
    let later = pane.wait_for("the confirmed count to grow", |s| {
        number_after(s, "confirmed   ").is_some_and(|n| n > before)
    });
    // Live consumers: a position that moved past 0.
    assert!(
        number_after(&later, "consumer 0").is_some_and(|n| n > 0),
        "no consumer position:\n{later}"
    );
    pane.key("q");
    assert_eq!(
        pane.wait_exit(),
        130,
        "q stops as Ctrl-C does:\n{}",
        pane.capture()
    );
    let history = pane.history();
    assert!(
        history.contains("(interrupted)") && history.contains("read by a consumer"),
        "no summary after q:\n{history}"
    );
    pane.assert_restored();
    assert_stream_deleted(&bench_stream_of(&history, &stream));
}

#[test]
fn dashboard_renders_on_80x24_and_200x60_and_esc_or_ctrl_c_stop_it() {
    let stream = TestStream::new("dash-sizes");
    let small = Pane::new(80, 24);
    let large = Pane::new(200, 60);
    for pane in [&small, &large] {
        pane.run_bench(&format!(
            "--stream {} bench --duration 10m --rate 5000 --producers 2 --consumers 2",
            stream.name
        ));
    }
    for (pane, size, key) in [(&small, "80x24", "Escape"), (&large, "200x60", "C-c")] {
        let screen = pane.wait_for(&format!("every panel on {size}"), |s| {
            panels_shown(s) && number_after(s, "confirmed   ").is_some_and(|n| n > 0)
        });
        assert!(screen.contains("elapsed"), "{size}:\n{screen}");
        pane.key(key);
        assert_eq!(
            pane.wait_exit(),
            130,
            "{key} on {size}:\n{}",
            pane.capture()
        );
        let history = pane.history();
        pane.assert_restored();
        assert_stream_deleted(&bench_stream_of(&history, &stream));
    }
}

#[test]
fn dashboard_restores_the_terminal_when_the_broker_goes_away() {
    // A node of its own that advertises the proxy's port, so every connection of the run goes
    // through the proxy, which the test cuts: the broker is gone, mid-run.
    const NODE_PORT: u16 = 5611;
    const PROXY_PORT: u16 = 5612;
    let proxy = TcpProxy::on(PROXY_PORT, NODE_PORT);
    let _node = BrokerNode::start_advertising("inv-dash-broker-gone", NODE_PORT, PROXY_PORT);
    let uri = format!("rabbitmq-stream://guest:guest@localhost:{PROXY_PORT}/%2f");
    let stream = unique_name("test-dash-gone");
    let pane = Pane::new(100, 30);
    pane.run_bench(&format!(
        "--uri '{uri}' --stream {stream} --retry-for 1s bench --duration 10m --rate 5000"
    ));
    pane.wait_for("the dashboard with messages confirmed", |s| {
        panels_shown(s) && number_after(s, "confirmed   ").is_some_and(|n| n > 0)
    });
    proxy.refuse(true);
    proxy.sever();
    let code = pane.wait_exit();
    let history = pane.history();
    assert_ne!(code, 0, "the run failed, and says so:\n{history}");
    assert!(history.contains("error"), "no error line:\n{history}");
    pane.assert_restored();
}

/// The README's screenshot comes from this path: scripts/dashboard-screenshot.sh runs bench in
/// tmux, captures the pane with its colours and has headless Chromium take a PNG. Written to a
/// temporary file, or to docs/img/dashboard.png with INVSTREAM_SCREENSHOT=update.
#[test]
fn dashboard_screenshot_is_a_png_of_the_panels() {
    let stream = TestStream::new("dash-shot");
    let update = std::env::var("INVSTREAM_SCREENSHOT").is_ok_and(|v| v == "update");
    let dir = tempfile::tempdir().unwrap();
    let png: PathBuf = match update {
        true => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/img/dashboard.png"),
        false => dir.path().join("dashboard.png"),
    };
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/dashboard-screenshot.sh");
    let output = Command::new("bash")
        .arg(&script)
        .arg(&png)
        .arg(&stream.name)
        .env("INVSTREAM", binary())
        .env("SHOW_AFTER_S", if update { "12" } else { "5" })
        .output()
        .expect("bash runs");
    assert!(
        output.status.success(),
        "{}: {}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    // A blank page compresses to a few kilobytes; the panels, their text and lines do not.
    assert!(
        bytes.len() > 20_000,
        "a blank screenshot? {} bytes",
        bytes.len()
    );
}
