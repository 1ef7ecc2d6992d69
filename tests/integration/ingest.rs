//! The user's own data: NDJSON files (and gzip, and stdin) in, `consume --print` out.

use std::collections::HashSet;
use std::io::Write;
use std::process::{Command, Stdio};

use invstream::model::UpdateGenerator;

use crate::util::{binary, summary_of, TestStream};

/// Writes `count` valid update lines, with `{"broken": …}` lines inserted before the given
/// 0-based positions; returns the file and the valid lines.
fn ndjson_file(
    name: &str,
    count: u64,
    broken_before: &[u64],
) -> (tempfile_path::Path, Vec<String>) {
    let path = tempfile_path::Path::new(name);
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path.0).unwrap());
    let mut generator = UpdateGenerator::new(500, 11);
    let mut valid = Vec::new();
    for i in 0..count {
        if broken_before.contains(&i) {
            writeln!(file, r#"{{"broken": {i}}}"#).unwrap();
        }
        let line =
            serde_json::to_string(&generator.next_update(1_700_000_000_000_000 + i)).unwrap();
        writeln!(file, "{line}").unwrap();
        valid.push(line);
    }
    file.flush().unwrap();
    (path, valid)
}

/// `consume --print --offset first`: the printed updates, as JSON text, in stream order.
fn printed_updates(stream: &TestStream, extra: &[&str]) -> Vec<serde_json::Value> {
    let output = stream.run(&[&["consume", "--offset", "first", "--print"], extra].concat());
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).expect("each printed line is JSON")
        })
        .collect()
}

/// Publishes `file` again with `--strict`, which must fail: its stderr.
fn strict_run_stderr(stream: &TestStream, file: &tempfile_path::Path) -> String {
    let strict = stream.run(&[
        "produce",
        "--input",
        file.as_str(),
        "--strict",
        "--no-dedup",
    ]);
    assert!(!strict.status.success());
    String::from_utf8_lossy(&strict.stderr).into_owned()
}

#[test]
fn file_with_bad_lines_publishes_the_rest_and_print_reproduces_them() {
    let stream = TestStream::new("ingest-file");
    let (file, valid) = ndjson_file("ingest-file.ndjson", 99_997, &[10, 50_000, 99_000]);
    let output = stream.run(&["--json", "produce", "--input", file.as_str()]);
    let summary = summary_of(&output);
    assert_eq!(summary["confirmed"], 99_997, "{summary}");
    assert_eq!(summary["invalid_lines"], 3);
    let stderr = String::from_utf8_lossy(&output.stderr);
    for line in [11, 50_002, 99_003] {
        assert!(
            stderr.contains(&format!("line {line} skipped")),
            "line {line} not reported: {stderr}"
        );
    }

    let printed = printed_updates(&stream, &[]);
    assert_eq!(printed.len(), valid.len());
    for (i, (printed, original)) in printed.iter().zip(&valid).enumerate() {
        assert_eq!(printed["offset"], i as u64);
        let original: serde_json::Value = serde_json::from_str(original).unwrap();
        assert_eq!(printed["update"], original, "line {i}");
        assert!(
            printed["timestamp"]
                .as_str()
                .unwrap()
                .starts_with("2023-11-14T"),
            "{printed}"
        );
    }

    let stderr = strict_run_stderr(&stream, &file);
    assert!(
        stderr.contains("line 11 is not a valid inventory update"),
        "{stderr}"
    );
}

#[test]
fn killed_input_run_resumes_without_duplicates() {
    let stream = TestStream::new("ingest-kill");
    let (file, valid) = ndjson_file("ingest-kill.ndjson", 100_000, &[]);
    let args = [
        "produce",
        "--input",
        file.as_str(),
        "--producer-name",
        "ingest-kill",
        "--resume",
        // Paced (2 s), so the kill lands mid-run however fast this machine publishes.
        "--rate",
        "50000",
    ];
    // Killed once the broker holds some of the first run's lines.
    stream.crash_then_rerun("ingest-kill", &args, 100_000);

    let printed = printed_updates(&stream, &[]);
    let seqs: HashSet<u64> = printed
        .iter()
        .map(|p| p["update"]["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(printed.len(), valid.len(), "each line exactly once");
    assert_eq!(seqs.len(), valid.len());
}

#[test]
fn stdin_and_gzip_inputs() {
    let stream = TestStream::new("ingest-stdin");
    let (file, valid) = ndjson_file("ingest-stdin.ndjson", 1_000, &[]);
    let text = std::fs::read(&file.0).unwrap();
    let mut child = Command::new(binary())
        .args([
            "--json",
            "--stream",
            &stream.name,
            "produce",
            "--input",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&text).unwrap();
    let summary = summary_of(&child.wait_with_output().unwrap());
    assert_eq!(summary["confirmed"], 1_000, "{summary}");

    let gz = tempfile_path::Path::new("ingest-stdin.ndjson.gz");
    let mut encoder = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz.0).unwrap(),
        flate2::Compression::fast(),
    );
    encoder.write_all(&text).unwrap();
    encoder.finish().unwrap();
    let summary = stream.run_json(&["produce", "--input", gz.as_str()]);
    assert_eq!(summary["confirmed"], 1_000, "{summary}");
    assert_eq!(printed_updates(&stream, &[]).len(), 2 * valid.len());
}

#[test]
fn print_with_product_prints_only_those_products() {
    let stream = TestStream::new("print-product");
    stream.produce(5_000);
    let all = printed_updates(&stream, &[]);
    let expected: Vec<&serde_json::Value> = all
        .iter()
        .filter(|p| [3, 5].contains(&p["update"]["product_id"].as_u64().unwrap()))
        .collect();
    let filtered = printed_updates(&stream, &["--product", "3,5"]);
    assert!(!expected.is_empty());
    assert_eq!(filtered.len(), expected.len());
    for (got, want) in filtered.iter().zip(expected) {
        assert_eq!(got["offset"], want["offset"]);
    }
}

/// Files in the system temp directory, removed on drop.
mod tempfile_path {
    pub struct Path(pub tempfile::TempPath);

    impl Path {
        /// A new empty file whose name ends with `name` (so `.gz` keeps its meaning).
        pub fn new(name: &str) -> Self {
            let file = tempfile::Builder::new()
                .prefix("invstream-")
                .suffix(&format!("-{name}"))
                .tempfile()
                .unwrap();
            Path(file.into_temp_path())
        }

        pub fn as_str(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }
}

#[test]
fn line_that_is_not_utf8_is_skipped_and_reported_or_fatal_with_strict() {
    let stream = TestStream::new("ingest-utf8");
    let file = tempfile_path::Path::new("ingest-utf8.ndjson");
    let mut generator = UpdateGenerator::new(500, 12);
    let mut bytes = Vec::new();
    let mut valid = Vec::new();
    for i in 0..1_000u64 {
        if i == 600 {
            // Line 601: Latin-1, as a spreadsheet export might write it.
            bytes.extend_from_slice(b"{\"sku\":\"caf\xe9\",\"warehouse\":\"W\"}\n");
        }
        let line =
            serde_json::to_string(&generator.next_update(1_700_000_000_000_000 + i)).unwrap();
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        valid.push(line);
    }
    std::fs::write(&file.0, &bytes).unwrap();

    let output = stream.run(&["--json", "produce", "--input", file.as_str()]);
    let summary = summary_of(&output);
    assert_eq!(summary["confirmed"], 1_000, "{summary}");
    assert_eq!(summary["invalid_lines"], 1, "{summary}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("line 601 skipped") && stderr.contains("not valid UTF-8"),
        "{stderr}"
    );

    let printed = printed_updates(&stream, &[]);
    assert_eq!(printed.len(), 1_000, "exactly the valid lines");
    for (i, (printed, original)) in printed.iter().zip(&valid).enumerate() {
        let original: serde_json::Value = serde_json::from_str(original).unwrap();
        assert_eq!(printed["update"], original, "line {i}");
    }

    let stderr = strict_run_stderr(&stream, &file);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    assert!(
        errors[0].contains("line 601 is not a valid inventory update: not valid UTF-8"),
        "{stderr}"
    );
}
