//! The README's examples, run against the test brokers and checked against the text.
//!
//! Every fenced block of README.md is one of:
//! - a ```` ```console ```` transcript: each `$ COMMAND` line runs in bash (in one scratch folder
//!   for the whole README, with the built `invstream` first on `PATH`), and what it prints,
//!   stdout and stderr together, must match the lines below it up to the next `$`. A command
//!   ending in `&` runs in the background: the test waits until it has printed the lines shown
//!   below it (its readiness signal), and stops it (SIGTERM) when the block ends;
//! - preceded by `<!-- readme: file NAME -->`: its text is written to NAME in the scratch folder,
//!   for the transcripts after it (a config file, an NDJSON file);
//! - preceded by `<!-- readme: shown by MODULE::TEST -->`: an example the named integration test
//!   runs itself (a broker restarted mid-run, a SIGKILL), which must exist; or `shown by
//!   scripts/NAME.sh`, a script CI runs (the quick start, which installs with cargo);
//! - preceded by `<!-- readme: not run: REASON -->`: needs what no test machine has (Docker).
//!
//! Matching ([`matches`]): numbers (and hex ids like a commit) are masked on both sides, so a rate
//! or a timestamp may differ while every word, label and line must be there; runs of spaces
//! count as one; a line `...` (or `... (more)`) stands for any number of lines and `[..]` for
//! any text within a line; `debug` reads as `release` (the tests run a debug build). So a
//! changed report, message or flag fails here instead of drifting.
//!
//! The README's streams (`inventory_updates`, `orders`, …) are its own: no other test uses those
//! names, and this test deletes them first so that every run starts from the same state.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use regex::Regex;

use crate::util::{self, BROKER_PORT, OLD_BROKER_PORT};

/// The streams and super streams the README's examples name.
const README_STREAMS: &[&str] = &[
    "inventory_updates",
    "own_updates",
    "gateway",
    "orders",
    "billing_events",
    "invstream-group-readme",
];

/// How long one foreground command may take (the longest are benches of a few seconds).
const COMMAND_LIMIT: Duration = Duration::from_secs(180);

#[derive(Debug, Clone, PartialEq)]
enum Directive {
    File(String),
    ShownBy(String),
    NotRun(String),
}

#[derive(Debug)]
struct Block {
    /// 1-based line of the opening fence.
    line: usize,
    info: String,
    text: Vec<String>,
    directive: Option<Directive>,
}

/// One `$ COMMAND` of a transcript with the output shown below it.
#[derive(Debug, PartialEq)]
struct Step {
    command: String,
    background: bool,
    expected: Vec<String>,
    /// Index in the block's text of the line after the command (where `expected` starts).
    output_at: usize,
}

fn blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut pending: Option<Directive> = None;
    let mut open: Option<Block> = None;
    for (index, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(block) = open.as_mut() {
            if trimmed.starts_with("```") {
                blocks.push(open.take().unwrap());
            } else {
                block.text.push(line.to_string());
            }
            continue;
        }
        if let Some(info) = trimmed.strip_prefix("```") {
            open = Some(Block {
                line: index + 1,
                info: info.trim().to_string(),
                text: Vec::new(),
                directive: pending.take(),
            });
        } else if let Some(directive) = directive(trimmed) {
            pending = Some(directive);
        } else if !trimmed.is_empty() {
            pending = None;
        }
    }
    assert!(open.is_none(), "README.md ends inside a fenced block");
    blocks
}

fn directive(line: &str) -> Option<Directive> {
    let inner = line
        .strip_prefix("<!-- readme:")?
        .strip_suffix("-->")?
        .trim();
    let (kind, rest) = inner.split_once(' ').unwrap_or((inner, ""));
    let rest = rest.trim().to_string();
    match kind {
        "file" => Some(Directive::File(rest)),
        "shown" => Some(Directive::ShownBy(
            rest.strip_prefix("by ").unwrap_or(&rest).trim().to_string(),
        )),
        "not" => Some(Directive::NotRun(
            rest.strip_prefix("run:")
                .unwrap_or(&rest)
                .trim()
                .to_string(),
        )),
        other => panic!("unknown README directive `{other}` in `{line}`"),
    }
}

fn steps(text: &[String]) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut continuing = false;
    for (index, line) in text.iter().enumerate() {
        if continuing {
            let step = steps.last_mut().unwrap();
            step.command.push('\n');
            step.command.push_str(line);
            step.output_at = index + 1;
            continuing = line.ends_with('\\');
        } else if let Some(command) = line.strip_prefix("$ ") {
            continuing = command.ends_with('\\');
            steps.push(Step {
                command: command.to_string(),
                background: false,
                expected: Vec::new(),
                output_at: index + 1,
            });
        } else {
            let step = steps
                .last_mut()
                .unwrap_or_else(|| panic!("output before any `$ ` command: {line}"));
            step.expected.push(line.clone());
        }
    }
    for step in &mut steps {
        let without_comment = strip_comment(&step.command);
        if let Some(command) = without_comment.trim_end().strip_suffix('&') {
            step.background = true;
            step.command = command.trim_end().to_string();
        }
    }
    steps
}

/// The command without a trailing `# comment` (outside quotes).
fn strip_comment(command: &str) -> String {
    let (mut single, mut double) = (false, false);
    let mut previous = ' ';
    for (index, c) in command.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && previous.is_whitespace() => {
                return command[..index].trim_end().to_string()
            }
            _ => {}
        }
        previous = c;
    }
    command.to_string()
}

/// A line with its numbers and hex ids masked and its runs of spaces made one.
fn masked(line: &str) -> String {
    static NUMBER: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let number = NUMBER.get_or_init(|| {
        Regex::new(r"(?:\b[0-9a-f]*[0-9][0-9a-f]*\b|[0-9]+)(?:[.,:][0-9]+)*").unwrap()
    });
    // A debug build (the tests') says so where a release build says release.
    let line = line.replace("debug", "release").replace("-dirty", "");
    let masked = number.replace_all(&line, "#");
    masked.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn is_elision(line: &str) -> bool {
    let trimmed = line.trim();
    trimmed == "..." || trimmed == "…" || trimmed.starts_with("... (") || trimmed.starts_with("… (")
}

/// Whether `actual` is what `expected` shows (see the module's doc).
fn matches(expected: &[String], actual: &[String]) -> bool {
    let patterns: Vec<Option<Regex>> = expected
        .iter()
        .map(|line| {
            (!is_elision(line)).then(|| {
                let pattern = masked(line)
                    .split("[..]")
                    .map(regex::escape)
                    .collect::<Vec<_>>()
                    .join(".*");
                Regex::new(&format!("^{pattern}$")).unwrap()
            })
        })
        .collect();
    let actual: Vec<String> = actual.iter().map(|line| masked(line)).collect();
    fits(&patterns, &actual)
}

fn fits(patterns: &[Option<Regex>], actual: &[String]) -> bool {
    match patterns.split_first() {
        None => actual.is_empty(),
        Some((None, rest)) => (0..=actual.len()).any(|skip| fits(rest, &actual[skip..])),
        Some((Some(pattern), rest)) => {
            !actual.is_empty() && pattern.is_match(&actual[0]) && fits(rest, &actual[1..])
        }
    }
}

/// A background command and what it printed so far.
struct Background {
    child: Child,
    command: String,
    lines: Arc<Mutex<Vec<String>>>,
    /// Lines already checked (the readiness lines).
    shown: usize,
}

struct Runner {
    folder: PathBuf,
    path: String,
    last_status: i32,
    background: Vec<Background>,
    failures: Vec<String>,
    /// Where the step being checked shows its output, and what to write there instead when
    /// blessing (`README_BLESS=1`): (first line index, lines shown, lines printed).
    output_line: usize,
    blessed: Vec<(usize, usize, Vec<String>)>,
    started: Instant,
}

impl Runner {
    fn new(folder: PathBuf) -> Self {
        let bin = util::binary();
        let path = format!(
            "{}:{}",
            bin.parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Runner {
            folder,
            path,
            last_status: 0,
            background: Vec::new(),
            failures: Vec::new(),
            output_line: 0,
            blessed: Vec::new(),
            started: Instant::now(),
        }
    }

    fn bash(&self, script: &str) -> Command {
        let mut command = Command::new("bash");
        command
            .arg("-c")
            .arg(script)
            .current_dir(&self.folder)
            .env("PATH", &self.path)
            .env("HOME", self.folder.join("home"))
            .env("LC_ALL", "C.UTF-8")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null());
        command
    }

    fn run_block(&mut self, block: &Block) {
        for step in steps(&block.text) {
            // The README's 0-based line index of the step's first output line.
            self.output_line = block.line + step.output_at;
            let where_ = format!(
                "README.md block at line {}: `$ {}`",
                block.line, step.command
            );
            eprintln!("{:>7.1}s {where_}", self.started.elapsed().as_secs_f64());
            if step.background {
                self.start(step, &where_);
            } else if step.command == "wait" {
                self.wait(step, &where_);
            } else {
                self.run(step, &where_);
            }
        }
        self.stop_background();
    }

    fn run(&mut self, step: Step, where_: &str) {
        let script = format!("(exit {}); {{\n{}\n}} 2>&1", self.last_status, step.command);
        let mut child = self
            .bash(&script)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("bash runs");
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut BufReader::new(stdout), &mut text);
            text
        });
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > COMMAND_LIMIT {
                let _ = child.kill();
                self.failures
                    .push(format!("{where_}: still ran after {COMMAND_LIMIT:?}"));
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.last_status = status.code().unwrap_or(128);
        let printed: Vec<String> = reader.join().unwrap().lines().map(str::to_string).collect();
        self.check(&step.expected, &printed, where_);
    }

    fn start(&mut self, step: Step, where_: &str) {
        let mut child = self
            .bash(&format!("exec {} 2>&1", step.command))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("bash runs");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let wanted = step.expected.len();
        let started = Instant::now();
        while lines.lock().unwrap().len() < wanted && started.elapsed() < COMMAND_LIMIT {
            if let Ok(Some(_)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(200));
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let printed: Vec<String> = lines.lock().unwrap().iter().take(wanted).cloned().collect();
        self.check(&step.expected, &printed, where_);
        self.background.push(Background {
            child,
            command: step.command,
            lines,
            shown: wanted,
        });
    }

    /// `$ wait`: every background command to its end; what each printed after its readiness
    /// lines, one after the other, must be what the README shows below `wait`.
    fn wait(&mut self, step: Step, where_: &str) {
        let mut printed = Vec::new();
        for mut job in self.background.drain(..) {
            let started = Instant::now();
            while job.child.try_wait().unwrap().is_none() && started.elapsed() < COMMAND_LIMIT {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = job.child.kill();
            let _ = job.child.wait();
            // The reader thread drains the pipe after the exit.
            std::thread::sleep(Duration::from_millis(200));
            printed.extend(job.lines.lock().unwrap().iter().skip(job.shown).cloned());
        }
        self.check(&step.expected, &printed, where_);
    }

    fn stop_background(&mut self) {
        for mut job in self.background.drain(..) {
            let _ = Command::new("kill")
                .args(["-TERM", &job.child.id().to_string()])
                .status();
            let started = Instant::now();
            while job.child.try_wait().unwrap().is_none() {
                if started.elapsed() > Duration::from_secs(30) {
                    let _ = job.child.kill();
                    self.failures.push(format!(
                        "`{}` did not stop within 30 s of SIGTERM; it printed:\n{}",
                        job.command,
                        job.lines.lock().unwrap().join("\n")
                    ));
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn check(&mut self, expected: &[String], printed: &[String], where_: &str) {
        if !matches(expected, printed) {
            self.blessed
                .push((self.output_line, expected.len(), printed.to_vec()));
            self.failures.push(format!(
                "{where_}\n--- the README shows:\n{}\n--- it printed:\n{}\n",
                expected.join("\n"),
                printed.join("\n")
            ));
        }
    }
}

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether `tests/integration/MODULE.rs` has `fn TEST(`, or `scripts/NAME.sh` exists and
/// `.ci/run` runs it.
fn test_exists(name: &str) -> bool {
    let Some((module, test)) = name.split_once("::") else {
        let ci = std::fs::read_to_string(repository().join(".ci/run")).unwrap_or_default();
        return name.starts_with("scripts/")
            && repository().join(name).is_file()
            && ci.contains(&format!("bash {name}"));
    };
    let file = repository().join(format!("tests/integration/{module}.rs"));
    std::fs::read_to_string(file)
        .map(|text| text.contains(&format!("fn {test}(")))
        .unwrap_or(false)
}

fn delete_readme_streams(runner: &Runner) {
    for name in README_STREAMS {
        let _ = runner
            .bash(&format!("invstream streams delete {name} --yes"))
            .output();
    }
}

/// `README_BLESS=1`: writes what each mismatched command printed into README.md in place of
/// what it showed, for a person to read through (and put back `...` where lines vary).
fn bless(readme: &str, blessed: &[(usize, usize, Vec<String>)]) {
    let mut lines: Vec<String> = readme.lines().map(str::to_string).collect();
    for (at, shown, printed) in blessed.iter().rev() {
        lines.splice(*at..*at + *shown, printed.iter().cloned());
    }
    std::fs::write(repository().join("README.md"), lines.join("\n") + "\n").unwrap();
}

fn link_into(folder: &Path, names: &[&str]) {
    for name in names {
        std::os::unix::fs::symlink(repository().join(name), folder.join(name)).unwrap();
    }
}

#[test]
fn every_readme_example_runs_and_prints_what_the_readme_shows() {
    util::require_broker(BROKER_PORT);
    util::require_broker(OLD_BROKER_PORT);
    let readme = std::fs::read_to_string(repository().join("README.md")).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    std::fs::create_dir(scratch.path().join("home")).unwrap();
    link_into(scratch.path(), &["tests", "scripts", "docs"]);
    let mut runner = Runner::new(scratch.path().to_path_buf());
    delete_readme_streams(&runner);

    let mut unmarked = Vec::new();
    let mut shown_by = BTreeSet::new();
    let mut ran = 0;
    for block in blocks(&readme) {
        match (&block.directive, block.info.as_str()) {
            (Some(Directive::File(name)), _) => {
                let mut file = std::fs::File::create(scratch.path().join(name)).unwrap();
                writeln!(file, "{}", block.text.join("\n")).unwrap();
            }
            (Some(Directive::ShownBy(test)), _) => {
                assert!(
                    test_exists(test),
                    "README.md line {}: `shown by {test}` names no test",
                    block.line
                );
                shown_by.insert(test.clone());
            }
            (Some(Directive::NotRun(reason)), _) => {
                assert!(!reason.is_empty(), "README.md line {}: say why", block.line);
            }
            (None, "console") => {
                runner.run_block(&block);
                ran += 1;
            }
            (None, _) => unmarked.push(block.line),
        }
    }
    delete_readme_streams(&runner);
    if std::env::var_os("README_BLESS").is_some() {
        bless(&readme, &runner.blessed);
    }
    assert!(
        unmarked.is_empty(),
        "README.md blocks at lines {unmarked:?} are neither a ```console transcript nor marked \
         `<!-- readme: file NAME | shown by MODULE::TEST | not run: WHY -->`"
    );
    assert!(
        ran > 10,
        "only {ran} transcripts ran: is the README parsed?"
    );
    assert!(
        runner.failures.is_empty(),
        "{} README example(s) print something else than the README shows:\n\n{}",
        runner.failures.len(),
        runner.failures.join("\n")
    );
}

#[cfg(test)]
mod matching {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn numbers_and_ids_may_differ_words_may_not() {
        let shown = lines("  elapsed         0.231 s\n  throughput      432,598 msg/s, 76.9 MB/s");
        assert!(matches(
            &shown,
            &lines("  elapsed 1.5 s\n  throughput 12 msg/s, 1,076.9 MB/s")
        ));
        assert!(!matches(
            &shown,
            &lines("  elapsed 1.5 s\n  throughput 12 msgs/s, 1.9 MB/s")
        ));
        assert!(matches(
            &lines("commit=\"7d0ac42\""),
            &lines("commit=\"fdd1f27\"")
        ));
    }

    #[test]
    fn an_elision_line_stands_for_any_lines_and_dots_in_brackets_for_any_text() {
        let shown = lines("first\n...\nlast [..] end");
        assert!(matches(&shown, &lines("first\nlast x end")));
        assert!(matches(
            &shown,
            &lines("first\na\nb\nlast anything here end")
        ));
        assert!(!matches(&shown, &lines("first\na\nlast")));
        assert!(!matches(&lines("first"), &lines("first\nmore")));
    }

    #[test]
    fn transcripts_split_into_commands_with_their_output() {
        let text = lines("$ invstream a \\\n    --b\nout 1\n$ invstream serve & # comment\nready");
        let steps = steps(&text);
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0].command, "invstream a \\\n    --b");
        assert_eq!(steps[0].expected, vec!["out 1"]);
        assert!(steps[1].background);
        assert_eq!(steps[1].command, "invstream serve");
    }

    #[test]
    fn directives_mark_the_next_block() {
        let readme = "<!-- readme: not run: needs Docker -->\n```sh\ndocker run x\n```\n\ntext\n```console\n$ a\n```\n";
        let blocks = blocks(readme);
        assert_eq!(
            blocks[0].directive,
            Some(Directive::NotRun("needs Docker".into()))
        );
        assert_eq!(blocks[1].directive, None);
        assert_eq!(blocks[1].info, "console");
    }
}
