//! Every flag of every command with edge values (0, negative, past u64, empty, unicode, 300
//! characters), against a broker node of the walk's own (whatever streams the values create
//! are deleted with it): each run must end within a bound with exit 0 or one line
//! `invstream: error: …`, never a panic, an abort or a hang. The flags are read from the CLI
//! definition itself, so a flag added later is walked too.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use clap::CommandFactory;

use crate::util::{binary, send_signal, wait_or_kill, BrokerNode};

/// The values every flag is tried with.
fn edge_values() -> Vec<String> {
    vec![
        "0".into(),
        "-1".into(),
        "18446744073709551616".into(),
        String::new(),
        "ünïcødé ✓".into(),
        "x".repeat(300),
    ]
}

/// How long one run may take before it counts as a hang.
const BOUND: Duration = Duration::from_secs(40);

/// Each command's smallest real run: the walk replaces a flag given here, or adds it.
fn base(command: &str) -> Vec<(&'static str, &'static str)> {
    match command {
        "produce" => vec![("--count", "50")],
        "consume" => vec![
            ("--offset", "first"),
            ("--count", "5"),
            ("--duration", "10s"),
        ],
        "bench" => vec![("--count", "200"), ("--consumers", "1")],
        "serve" => vec![("--listen", "127.0.0.1:0")],
        _ => vec![],
    }
}

/// The command line for `command` with `flag` set to `value` (globals before the command).
fn command_line(
    uri: &str,
    stream: &str,
    command: &str,
    flag: &str,
    value: &str,
    global: bool,
) -> Vec<String> {
    let mut globals = vec![
        ("--uri".to_string(), uri.to_string()),
        ("--stream".to_string(), stream.to_string()),
    ];
    let mut own: Vec<(String, String)> = base(command)
        .into_iter()
        .map(|(f, v)| (f.to_string(), v.to_string()))
        .collect();
    let target = if global { &mut globals } else { &mut own };
    match target.iter_mut().find(|(f, _)| f == flag) {
        Some(pair) => pair.1 = value.to_string(),
        None => target.push((flag.to_string(), value.to_string())),
    }
    let mut line = vec!["--json".to_string()];
    for (f, v) in globals {
        line.push(f);
        line.push(v);
    }
    line.push(command.to_string());
    for (f, v) in own {
        line.push(f);
        line.push(v);
    }
    line
}

/// Why a finished run is not acceptable, if it is not.
fn judge(output: &Output) -> Option<String> {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let Some(code) = output.status.code() else {
        return Some(format!("killed by a signal ({:?})", output.status));
    };
    if stderr.contains("panicked") || stderr.contains("RUST_BACKTRACE") {
        return Some(format!("panicked: {stderr}"));
    }
    if code == 0 {
        return None;
    }
    if ![1, 2].contains(&code) {
        return Some(format!("exit {code}: {stderr}"));
    }
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("invstream: error:"))
        .collect();
    let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
    match (errors.len(), last) {
        (1, Some(last)) if last.starts_with("invstream: error:") => None,
        // A run that ended with failures it reports in its summary (exit 1, no error line).
        (0, _) if code == 1 && !output.stdout.is_empty() => None,
        _ => Some(format!(
            "exit {code} without one final error line: {stderr}"
        )),
    }
}

/// Waits up to `BOUND` for a run; `Err` (after killing it) when it is still running.
fn finish(child: Child) -> Result<Output, String> {
    wait_or_kill(child, BOUND).ok_or_else(|| format!("still running after {BOUND:?}: killed"))
}

/// `serve` runs until stopped: once it says it serves, SIGTERM must end it with exit 0.
fn run_serve(line: &[String], dir: &std::path::Path) -> Result<Output, String> {
    let mut child = Command::new(binary())
        .args(line)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line.contains("serving"));
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let deadline = Instant::now() + BOUND;
    let serving = loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(true) => break true,
            Ok(false) => continue,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break false,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("neither served nor ended".to_string());
            }
        }
    };
    if serving {
        send_signal(&child, "TERM");
    }
    let mut output = finish(child)?;
    output.stderr = reader.join().unwrap().into_bytes();
    Ok(output)
}

#[test]
fn every_flag_with_edge_values_ends_in_exit_0_or_one_line_error() {
    let node = BrokerNode::start("inv-flag-walk", 5594, None);
    let uri = node.uri();
    let stream = "flag-walk";
    let filled = Command::new(binary())
        .args([
            "--uri", &uri, "--stream", stream, "produce", "--count", "100",
        ])
        .output()
        .unwrap();
    assert!(filled.status.success(), "{filled:?}");

    let cli = invstream::cli::Cli::command();
    let takes_value = |arg: &clap::Arg| {
        arg.get_action().takes_values() && arg.get_long().is_some() && !arg.is_hide_set()
    };
    let globals: Vec<String> = cli
        .get_arguments()
        .filter(|a| takes_value(a))
        .map(|a| format!("--{}", a.get_long().unwrap()))
        .collect();
    let mut cases: Vec<(String, String, bool)> = globals
        .iter()
        .map(|flag| ("produce".to_string(), flag.clone(), true))
        .collect();
    for sub in cli.get_subcommands() {
        for arg in sub.get_arguments().filter(|a| takes_value(a)) {
            let flag = format!("--{}", arg.get_long().unwrap());
            if !globals.contains(&flag) {
                cases.push((sub.get_name().to_string(), flag, false));
            }
        }
    }
    assert!(
        cases.len() > 40,
        "the walk found only {} flags",
        cases.len()
    );

    // Files the values name (`--plot 0`, `--hdr-log …`) are written here, not in the repository.
    let work = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut runs = 0;
    for (command, flag, global) in &cases {
        for value in edge_values() {
            let line = command_line(&uri, stream, command, flag, &value, *global);
            let outcome = match command.as_str() {
                "serve" => run_serve(&line, work.path()),
                _ => finish(
                    Command::new(binary())
                        .args(&line)
                        .current_dir(work.path())
                        .stdin(Stdio::null())
                        .stdout(Stdio::piped())
                        .stderr(Stdio::piped())
                        .spawn()
                        .expect("the binary starts"),
                ),
            };
            runs += 1;
            let why = match outcome {
                Ok(output) => judge(&output),
                Err(hang) => Some(hang),
            };
            if let Some(why) = why {
                let shown: String = value.chars().take(20).collect();
                failures.push(format!("{command} {flag} {shown:?}: {why}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {runs} runs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
