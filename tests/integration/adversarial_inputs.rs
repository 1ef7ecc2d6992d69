//! Issue 26's "misleading errors and accepted nonsense": each case is a command line a user may
//! type, and the one line it must now get (it used to run, or say something beside the point).

use std::io::Write;
use std::process::{Command, Stdio};

use crate::serve_util::{free_port, UPDATE};
use crate::util::{assert_one_line_error, binary, invstream, runtime, TestStream, TestSuperStream};

/// Each flag combination that parses but cannot do what it says is refused in one line, before
/// anything is published.
#[test]
fn values_that_parse_but_cannot_work_are_refused_in_one_line() {
    let stream = TestStream::new("adv-nonsense");
    let cases: &[(&[&str], &str)] = &[
        (
            &["produce", "--max-segment-size-bytes", "4gb"],
            "give 4kib to 3gb",
        ),
        (
            &["produce", "--max-segment-size-bytes", "1"],
            "give 4kib to 3gb",
        ),
        (&["produce", "--max-age", "0s"], "not whole seconds"),
        (&["produce", "--max-age", "1500ms"], "not whole seconds"),
        (
            &["produce", "--confirm-timeout", "0s"],
            "--confirm-timeout 0s would",
        ),
        (
            &["serve", "--confirm-timeout", "0s"],
            "--confirm-timeout 0s would",
        ),
        (&["consume", "--duration", "0s"], "--duration 0s would"),
        (&["bench", "--duration", "0s"], "--duration 0s would"),
        (
            &["produce", "--sub-entry-size", "10", "--filter-values"],
            "drop --filter-values or --sub-entry-size",
        ),
        (
            &["consume", "--offset", "first", "--verify", "--product", "3"],
            "--verify checks every update's seq",
        ),
        (&["bench", "--plot", "out.png"], "name the file FILE.svg"),
        (
            &["bench", "--hdr-log", "/nonexistent-dir/latency.hlog"],
            "does not exist",
        ),
        (
            &["produce", "--super-stream", "elsewhere"],
            "--stream and --super-stream elsewhere name two different targets",
        ),
    ];
    for (args, needle) in cases {
        // `TestStream::run` types --stream: the last case relies on it.
        let output = stream.run(args);
        assert_one_line_error(&output, 1, needle);
    }
    // Nothing above created the stream or published anything.
    let read = stream.run(&["consume", "--offset", "first"]);
    assert!(!read.status.success(), "the stream was created");

    let clap_cases: &[(&[&str], &str)] = &[
        (&["consume", "--store-every", "5"], "--name"),
        (&["produce", "--strict"], "--input"),
        (&["produce", "--resume"], "--producer-name"),
        (
            &["consume", "--follow", "--count", "5", "--duration", "1s"],
            "--duration",
        ),
        (&["produce", "--cont", "5"], "'--count'"),
        (&["produce", "--count", "-5"], "--FLAG=-5"),
    ];
    for (args, needle) in clap_cases {
        let output = invstream(args);
        assert_one_line_error(&output, 2, needle);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains(": (see"), "a list left out: {stderr}");
    }
    let uri = invstream(&[
        "--uri",
        "rabbitmq-stream://guest:guest@localhost:5552/%2f?ssl=true",
        "produce",
    ]);
    assert_one_line_error(&uri, 1, "a query string");
}

/// A value that came from an environment variable is named as such.
#[test]
fn a_bad_value_from_the_environment_names_the_variable() {
    let output = Command::new(binary())
        .args(["produce"])
        .env("INVSTREAM_STREAM", "")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_one_line_error(&output, 2, "environment variable INVSTREAM_STREAM");
}

/// A truncated PEM file is named in words, not as a list of byte values.
#[test]
fn a_truncated_pem_says_which_line_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n").unwrap();
    let output = invstream(&[
        "--uri",
        "rabbitmq-stream+tls://guest:guest@localhost:5551/%2f",
        "--tls-ca-cert",
        ca.to_str().unwrap(),
        "produce",
    ]);
    assert_one_line_error(&output, 1, "\"-----END CERTIFICATE-----\" line is missing");
    assert!(!String::from_utf8_lossy(&output.stderr).contains("[45, 45"));
}

/// An input with no valid line is an error, and no reason names a Rust type; an array is not
/// read as an update by position.
#[test]
fn an_input_of_only_invalid_lines_fails_in_the_users_words() {
    let stream = TestStream::new("adv-invalid-input");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.ndjson");
    let mut f = std::fs::File::create(&file).unwrap();
    writeln!(f, r#"[7, "SKU-7", "AMS-1", "sold", -1, 3]"#).unwrap();
    writeln!(f, r#""just text""#).unwrap();
    writeln!(f, r#"{{"product_id": 123456789012345678901}}"#).unwrap();
    drop(f);
    let output = stream.run(&["produce", "--input", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no valid update in the input"), "{stderr}");
    assert!(stderr.contains("line 1 skipped, not a valid inventory update: not a JSON object"));
    assert!(stderr.contains("18446744073709551615"), "{stderr}");
    for rust in ["InputUpdate", "struct", "u64"] {
        assert!(!stderr.contains(rust), "{rust} in: {stderr}");
    }
}

/// `--rate` paces every message, the first second included: 10 updates at 2 a second take at
/// least 4.5 s (they used to go out in one batch, in milliseconds). A lower bound only: a slow
/// machine cannot fail it.
#[test]
fn rate_paces_each_message_from_the_first() {
    let stream = TestStream::new("adv-rate");
    let summary = stream.run_json(&["produce", "--count", "10", "--rate", "2"]);
    assert_eq!(summary["confirmed"], 10, "{summary}");
    let elapsed = summary["elapsed_s"].as_f64().unwrap();
    assert!(elapsed >= 4.4, "10 updates at --rate 2 took {elapsed} s");
}

/// Super streams: a layout the existing one does not have is refused, and so is publishing
/// straight into one of its partitions by name.
#[test]
fn a_super_streams_layout_and_partitions_are_not_bypassed() {
    let ss = TestSuperStream::new("adv-layout");
    ss.produce(30, 1);
    let seven = ss.run(&["produce", "--count", "10", "--partitions", "7"]);
    assert_one_line_error(&seven, 1, "already exists with partitions");
    let partition = ss.partition(0);
    let direct = invstream(&["--stream", &partition, "produce", "--count", "10"]);
    assert_one_line_error(
        &direct,
        1,
        &format!("is a partition of super stream '{}'", ss.name()),
    );
    // Reading a partition by its name is still fine.
    let read = invstream(&[
        "--json", "--stream", &partition, "consume", "--offset", "first",
    ]);
    assert!(read.status.success());
}

/// The gateway's answers name what is wrong: the body limit, a compressed body, a product id
/// too large.
#[test]
fn the_gateway_names_its_limit_and_what_it_cannot_read() {
    let stream = TestStream::new("adv-serve-answers");
    let listen = format!("127.0.0.1:{}", free_port());
    let (gateway, _log) = stream.spawn_watched(
        &["serve", "--listen", &listen, "--max-body-bytes", "1kib"],
        "serving stream",
    );
    let base = format!("http://{listen}");
    let client = reqwest::Client::new();
    let answers = runtime().block_on(async {
        let big = vec![UPDATE; 20].join("\n");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(UPDATE.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        let mut answers = Vec::new();
        for (body, encoding) in [
            (big.into_bytes(), None),
            (gz.clone(), None),
            (gz, Some("gzip")),
        ] {
            let mut request = client.post(format!("{base}/updates")).body(body);
            if let Some(encoding) = encoding {
                request = request.header("content-encoding", encoding);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            answers.push((status, response.json::<serde_json::Value>().await.unwrap()));
        }
        let response = client
            .post(format!("{base}/send_notification"))
            .body(r#"{"product_id": 123456789012345678901, "status": "in stock"}"#)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        answers.push((status, response.json::<serde_json::Value>().await.unwrap()));
        answers
    });
    crate::util::send_signal(&gateway, "TERM");
    let _ = gateway.wait_with_output();
    let (status, body) = &answers[0];
    assert_eq!(*status, 413, "{body}");
    assert_eq!(body["max_body_bytes"], 1024, "{body}");
    assert!(body["error"].as_str().unwrap().contains("--max-body-bytes"));
    for (status, body) in &answers[1..3] {
        assert_eq!(*status, 415, "{body}");
        assert!(
            body["error"].as_str().unwrap().contains("uncompressed"),
            "{body}"
        );
    }
    let (status, body) = &answers[3];
    assert_eq!(*status, 400, "{body}");
    assert!(
        body["reason"].as_str().unwrap().contains("larger than"),
        "{body}"
    );
}
