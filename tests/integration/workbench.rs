//! `bench --param … --runs …`: several configurations in one run, their exports, the HTML report
//! as a browser shows it, and baselines.

use std::path::Path;
use std::process::Command;

use crate::util::{assert_one_line_error, assert_stream_deleted, summary_of, TestStream};

/// A 2×2 matrix, 2 runs each: 4 rows of 2 runs, every run on a stream of its own (deleted
/// after), and every export parses with the same 4 rows.
#[test]
fn a_two_by_two_matrix_runs_every_combination_on_fresh_streams_and_exports_them() {
    let stream = TestStream::new("workbench-matrix");
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let summary = stream.run_json(&[
        "bench",
        "--count",
        "3000",
        "--param",
        "producers=1,2",
        "--param",
        "batch-size=100,500",
        "--runs",
        "2",
        "--warmup",
        "1s",
        "--export-json",
        &file("results.json"),
        "--export-csv",
        &file("results.csv"),
        "--export-markdown",
        &file("results.md"),
        "--report",
        &file("report.html"),
        "--export-omb",
        &file("omb"),
    ]);
    let configurations = summary["configurations"].as_array().unwrap();
    let labels: Vec<&str> = configurations
        .iter()
        .map(|c| c["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        [
            "producers=1 batch-size=100",
            "producers=1 batch-size=500",
            "producers=2 batch-size=100",
            "producers=2 batch-size=500",
        ],
        "{summary}"
    );
    let mut streams = Vec::new();
    for configuration in configurations {
        let runs = configuration["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 2, "{configuration}");
        for run in runs {
            assert_eq!(run["confirmed"], 3000, "{run}");
            assert_eq!(run["consumed"], 3000, "{run}");
            streams.push(run["stream"].as_str().unwrap().to_string());
        }
        let publish = &configuration["stats"]["publish_msg_per_s"];
        assert!(publish["min"].as_f64() <= publish["median"].as_f64());
        assert!(publish["median"].as_f64() <= publish["max"].as_f64());
    }
    let mut distinct = streams.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        8,
        "each run has its own stream: {streams:?}"
    );
    for name in &streams {
        assert_stream_deleted(name);
    }
    assert_eq!(
        summary["broker"]["nodes"][0]["version"], "4.0.5",
        "{summary}"
    );

    let exported: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file("results.json")).unwrap()).unwrap();
    assert_eq!(exported["configurations"].as_array().unwrap().len(), 4);
    let csv = std::fs::read_to_string(file("results.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 5, "{csv}");
    assert!(rows.iter().all(|r| r.len() == rows[0].len()), "{csv}");
    assert_eq!(&rows[0][..3], ["configuration", "producers", "batch-size"]);
    assert_eq!(
        &rows[4][..4],
        ["producers=2 batch-size=500", "2", "500", "2"]
    );
    let markdown = std::fs::read_to_string(file("results.md")).unwrap();
    let table_rows = markdown.lines().filter(|l| l.starts_with('|')).count();
    assert_eq!(table_rows, 2 + 4, "header, rule and 4 rows: {markdown}");
    let html = std::fs::read_to_string(file("report.html")).unwrap();
    assert!(html.contains("producers=2 batch-size=500"));
    // An OMB result per measured run (not per warm-up), its configuration as the driver.
    let mut drivers: Vec<String> = std::fs::read_dir(file("omb"))
        .unwrap()
        .map(|e| {
            let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
            let omb: serde_json::Value = serde_json::from_str(&text).unwrap();
            omb["driver"].as_str().unwrap().to_string()
        })
        .collect();
    drivers.sort();
    assert_eq!(drivers.len(), 8, "{drivers:?}");
    assert_eq!(drivers[0], "invstream producers=1 batch-size=100");
    assert_eq!(drivers[7], "invstream producers=2 batch-size=500");
}

/// The report opens in headless Chromium without a console error, and its screenshot shows
/// charts: many pixels that are neither white nor one flat colour.
#[test]
fn the_html_report_renders_in_a_browser_with_its_charts() {
    let stream = TestStream::new("workbench-report");
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.html");
    stream.run_json(&[
        "bench",
        "--count",
        "20000",
        "--param",
        "sub-entry-size=1,10",
        "--report",
        report.to_str().unwrap(),
    ]);
    let chromium = debian_program("chromium", "chromium");
    let screenshot = dir.path().join("report.png");
    let output = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,1600",
        ])
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg(format!("file://{}", report.display()))
        .output()
        .expect("chromium runs");
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "chromium failed: {log}");
    let console: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:?}");
    let (drawn, total) = drawn_pixels(&screenshot);
    // Text alone covers a few percent; the bars, curves and grids take far more.
    assert!(
        drawn * 100 > total * 8,
        "the screenshot is nearly blank: {drawn} of {total} pixels drawn"
    );
}

/// Compared with a baseline of the same settings, every row is within noise (exit 0); at half
/// the rate, the row is worse, named, and the exit is 1.
#[test]
fn a_baseline_catches_a_run_made_slower_on_purpose() {
    let stream = TestStream::new("workbench-baseline");
    let dir = tempfile::tempdir().unwrap();
    let bench = |rate: &str, baseline: &[&str]| {
        stream.run(
            &[
                &[
                    "--json",
                    "bench",
                    "--count",
                    "9000",
                    "--rate",
                    rate,
                    "--param",
                    "producers=1",
                    "--runs",
                    "2",
                    "--baseline-dir",
                    dir.path().to_str().unwrap(),
                ][..],
                baseline,
            ]
            .concat(),
        )
    };
    summary_of(&bench("3000", &["--save-baseline", "paced"]));
    assert!(dir.path().join("paced.json").is_file());

    let same = summary_of(&bench("3000", &["--baseline", "paced"]));
    let row = &same["baseline"]["rows"][0];
    assert_eq!(row["label"], "producers=1", "{same}");
    assert_eq!(row["verdict"], "within_noise", "{same}");

    let slower = bench("1500", &["--baseline", "paced"]);
    assert_eq!(slower.status.code(), Some(1), "{slower:?}");
    let stderr = String::from_utf8_lossy(&slower.stderr);
    assert!(
        stderr.contains("worse than baseline 'paced': producers=1"),
        "{stderr}"
    );
    let results: serde_json::Value = serde_json::from_slice(&slower.stdout).unwrap();
    assert_eq!(results["baseline"]["rows"][0]["verdict"], "worse");

    let missing = stream.run(&[
        "bench",
        "--baseline",
        "nothing-here",
        "--baseline-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_one_line_error(&missing, 1, "no baseline 'nothing-here'");
}

/// The path of `program`, installed from Debian package `package` when missing (these tests need
/// it: without it they fail, they never skip).
fn debian_program(program: &str, package: &str) -> String {
    let found = |program: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {program}")])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    if let Some(path) = found(program) {
        return path;
    }
    let installed = Command::new("sh")
        .args([
            "-c",
            &format!("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq {package}"),
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        installed,
        "cannot install {package}: apt-get install {package} as root"
    );
    found(program).unwrap_or_else(|| panic!("{package} installed but {program} is not on PATH"))
}

/// Pixels of the PNG at `path` that are not the page's white background, and all pixels.
fn drawn_pixels(path: &Path) -> (usize, usize) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buffer = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buffer).unwrap();
    let channels = info.color_type.samples();
    let pixels = &buffer[..info.buffer_size()];
    let drawn = pixels
        .chunks(channels)
        .filter(|p| p[..3.min(channels)].iter().any(|&c| c < 240))
        .count();
    (drawn, pixels.len() / channels)
}
