//! Issue 26's crashes and hangs, each class driven through the real binary: durations past what
//! an `Instant` holds, reads of user input without bound, names the broker cannot take, signals
//! during start-up or a long pause, a request body that never arrives, and a replay from a
//! timestamp after the last message. A test that could hang waits with a deadline and fails
//! (after killing the process) past it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Output};
use std::time::{Duration, Instant};

use crate::serve_util;
use crate::util::{
    assert_one_line_error, require_broker, send_signal, spawn_piped, unique_name, wait_within,
    BrokerNode, TcpProxy, TestStream, TestSuperStream, BROKER_PORT,
};

/// `invstream ARGS…`, which must end within `limit`.
fn run_within(args: &[&str], limit: Duration) -> Output {
    wait_within(spawn_piped(args), limit, &format!("invstream {args:?}"))
}

#[test]
fn a_duration_past_the_bound_is_refused_by_flag_before_anything_is_stored() {
    let stream = TestStream::new("huge-duration");
    let huge = "18446744073709551615s";
    let slow = format!("consumer={huge}");
    let cases: [(&[&str], &str); 7] = [
        (
            &["produce", "--count", "10", "--confirm-timeout", huge],
            "--confirm-timeout",
        ),
        (
            &["--retry-for", huge, "produce", "--count", "10"],
            "--retry-for",
        ),
        (
            &["produce", "--count", "10", "--max-age", huge],
            "--max-age",
        ),
        (
            &["consume", "--offset", "first", "--duration", huge],
            "--duration",
        ),
        (&["consume", "--offset", "first", "--slow", &slow], "--slow"),
        (&["serve", "--confirm-timeout", huge], "--confirm-timeout"),
        (&["bench", "--duration", huge], "--duration"),
    ];
    for (args, flag) in cases {
        let args = [&["--stream", stream.name.as_str()][..], args].concat();
        let output = run_within(&args, Duration::from_secs(30));
        assert_one_line_error(&output, 2, flag);
        assert_one_line_error(&output, 2, "longer than the maximum");
    }
    let output = stream.run(&["consume", "--offset", "first"]);
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("does not exist"),
        "nothing was stored: {output:?}"
    );
}

#[test]
fn input_without_a_newline_fails_in_one_line_instead_of_taking_all_memory() {
    let stream = TestStream::new("endless-line");
    let args = [
        "--quiet",
        "--stream",
        &stream.name,
        "produce",
        "--input",
        "/dev/zero",
    ];
    let output = run_within(&args, Duration::from_secs(60));
    assert_one_line_error(&output, 1, "line 1 is longer than 1 MiB");
}

#[test]
fn user_files_past_their_bound_are_refused_in_one_line() {
    require_broker(BROKER_PORT);
    let zero = "/dev/zero";
    let tls_uri = "rabbitmq-stream+tls://guest:guest@localhost:5551/%2f";
    let listen = format!("127.0.0.1:{}", serve_util::free_port());
    let stream = unique_name("test-user-files");
    for args in [
        &[
            "--stream",
            &stream,
            "serve",
            "--listen",
            &listen,
            "--auth-token-file",
            zero,
        ][..],
        &["--uri", tls_uri, "--tls-ca-cert", zero, "produce"],
        &[
            "--stream",
            &stream,
            "serve",
            "--listen",
            &listen,
            "--listen-tls-cert",
            zero,
            "--listen-tls-key",
            zero,
        ],
    ] {
        let output = run_within(args, Duration::from_secs(60));
        assert_one_line_error(&output, 1, "larger than");
    }
}

#[test]
fn names_the_broker_cannot_take_are_refused_before_anything_connects() {
    require_broker(BROKER_PORT);
    let long = |n: usize| "n".repeat(n);
    // The longest stream name the broker creates in vhost "/" (measured: 234 is created and
    // never available), and a producer name whose lock is the longest name it takes.
    let base = unique_name("test-long");
    let longest = TestStream {
        name: format!("{base}{}", long(233 - base.len())),
    };
    let output = longest.run(&["produce", "--count", "1", "--producer-name", &long(231)]);
    assert!(output.status.success(), "{output:?}");
    let too_long = TestStream {
        name: format!("{base}{}", long(234 - base.len())),
    };
    let checks: [(&[&str], &str); 8] = [
        (
            &["--stream", &too_long.name, "produce", "--count", "1"],
            "at most 233 characters",
        ),
        (
            &[
                "--stream",
                &longest.name,
                "produce",
                "--producer-name",
                &long(232),
            ],
            "shorten it by 1 bytes",
        ),
        // Every partition publishes under the given name, held through its lock.
        (
            &[
                "produce",
                "--super-stream",
                "s",
                "--producer-name",
                &long(232),
            ],
            "invstream-producer-lock:NAME 256 bytes",
        ),
        (&["consume", "--name", &long(256)], "at most 255 bytes"),
        (
            &["consume", "--consumers", "a,b", "--name", &long(254)],
            "NAME-CONSUMER",
        ),
        (
            &["--stream", &long(217), "bench"],
            "STREAM-bench-MILLIS-PID",
        ),
        (&["produce", "--super-stream", &long(232)], "NAME-KEY"),
        (&["--stream", "a\u{1b}[2Jb", "consume"], "control character"),
    ];
    for (args, needle) in checks {
        let output = run_within(args, Duration::from_secs(30));
        assert_one_line_error(&output, 1, needle);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains('\u{1b}'), "printed raw: {stderr:?}");
    }
    let output = too_long.run(&["consume", "--offset", "first"]);
    assert!(
        !output.status.success(),
        "the refused stream was not created"
    );
}

/// A listener that accepts connections and never answers: a broker hung mid-handshake.
fn silent_listener() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

/// The first connection to `listener`, within 30 s.
fn accept_within(listener: &TcpListener) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match listener.accept() {
            Ok((connection, _)) => return connection,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("nothing connected within 30 s: {e}"),
        }
    }
}

/// The first line `child` writes on stdout, within 30 s.
fn first_stdout_line(child: &mut Child) -> String {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("a line on stdout within 30 s")
}

#[test]
fn a_signal_during_the_handshake_ends_the_command_at_once() {
    for (signal, code) in [("INT", 130), ("TERM", 143)] {
        let (listener, port) = silent_listener();
        let uri = format!("rabbitmq-stream://guest:guest@127.0.0.1:{port}/%2f");
        let child = spawn_piped(&["--uri", &uri, "produce", "--count", "1"]);
        // Ready: it connected and waits for the broker's answer.
        let _held = accept_within(&listener);
        send_signal(&child, signal);
        let output = wait_within(child, Duration::from_secs(5), "produce after SIGINT");
        assert_eq!(output.status.code(), Some(code), "{output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!("stopped by SIG{signal} while starting")),
            "{stderr}"
        );
    }
}

#[test]
fn ctrl_c_cuts_a_slow_consumers_pause_short() {
    let stream = TestStream::new("slow-pause");
    stream.produce(5);
    let mut child = spawn_piped(&[
        "--stream",
        &stream.name,
        "consume",
        "--offset",
        "first",
        "--count",
        "5",
        "--print",
        "--slow",
        "consumer=1h",
    ]);
    // Ready: the first message is printed, and its hour's pause begun.
    let first = first_stdout_line(&mut child);
    assert!(first.contains("\"offset\":0"), "{first}");
    send_signal(&child, "INT");
    let output = wait_within(child, Duration::from_secs(5), "consume --slow after SIGINT");
    assert!(output.status.success(), "{output:?}");
}

/// Each line `child` writes on stderr, as it comes.
fn stderr_lines(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// Waits up to 60 s for a line holding `marker`.
fn wait_for_line(lines: &std::sync::mpsc::Receiver<String>, marker: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(marker) => return,
            Ok(_) => continue,
            Err(e) => panic!("no line with '{marker}' on stderr within 60 s: {e}"),
        }
    }
}

#[test]
fn ctrl_c_ends_a_reader_that_is_reconnecting() {
    // A node of its own that advertises the proxy's port, so the reader's connection (made to
    // the stream's advertised leader) goes through the proxy, which a test can cut.
    const NODE_PORT: u16 = 5585;
    const PROXY_PORT: u16 = 5586;
    let proxy = TcpProxy::on(PROXY_PORT, NODE_PORT);
    let _node = BrokerNode::start_advertising("inv-hangs-reconnect", NODE_PORT, PROXY_PORT);
    let uri = format!("rabbitmq-stream://guest:guest@localhost:{PROXY_PORT}/%2f");
    let stream = unique_name("test-reconnect-stop");
    let through_proxy = ["--uri", uri.as_str(), "--stream", stream.as_str()];
    let produced = run_within(
        &[&through_proxy[..], &["produce", "--count", "10"]].concat(),
        Duration::from_secs(60),
    );
    assert!(produced.status.success(), "{produced:?}");
    let follow = [
        "--retry-for",
        "1h",
        "consume",
        "--offset",
        "first",
        "--follow",
    ];
    let mut child = spawn_piped(&[&through_proxy[..], &follow].concat());
    let lines = stderr_lines(&mut child);
    wait_for_line(&lines, "reading");
    // The broker goes away: the reader reconnects, for up to an hour.
    proxy.refuse(true);
    proxy.sever();
    wait_for_line(&lines, "lost the connection");
    send_signal(&child, "INT");
    let output = wait_within(
        child,
        Duration::from_secs(5),
        "consume reconnecting after SIGINT",
    );
    assert!(output.status.success(), "{output:?}");
}

/// Ctrl-C while produce reconnects (the broker away, `--retry-for 1h`) ends the run at once
/// with 130 and its summary, instead of after the whole retry window.
#[test]
fn ctrl_c_ends_a_produce_that_is_reconnecting() {
    // As above: the node advertises the proxy's port, so the producer's connection goes
    // through the proxy, which the test cuts.
    const NODE_PORT: u16 = 5597;
    const PROXY_PORT: u16 = 5598;
    let proxy = TcpProxy::on(PROXY_PORT, NODE_PORT);
    let _node = BrokerNode::start_advertising("inv-hangs-produce-stop", NODE_PORT, PROXY_PORT);
    let uri = format!("rabbitmq-stream://guest:guest@localhost:{PROXY_PORT}/%2f");
    let stream = unique_name("test-produce-reconnect-stop");
    let args = [
        "--json",
        "--uri",
        uri.as_str(),
        "--stream",
        stream.as_str(),
        "--retry-for",
        "1h",
        "produce",
        "--count",
        "100000",
        "--rate",
        "200",
    ];
    let mut child = spawn_piped(&args);
    let lines = stderr_lines(&mut child);
    wait_for_line(&lines, "publishing");
    proxy.refuse(true);
    proxy.sever();
    wait_for_line(&lines, "lost the connection");
    send_signal(&child, "INT");
    let output = wait_within(
        child,
        Duration::from_secs(10),
        "produce reconnecting after SIGINT",
    );
    assert_eq!(output.status.code(), Some(130), "{output:?}");
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).expect("a summary");
    assert_eq!(summary["interrupted"], true, "{summary}");
}

/// A POST whose head says `length` bytes and which sends `sent` of them, once the server asked
/// for the body (`Expect: 100-continue`): the request is then in the handler, reading.
fn post_half_a_body(base: &str) -> TcpStream {
    let addr = base.trim_start_matches("http://");
    let mut client = TcpStream::connect(addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        client,
        "POST /updates HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-ndjson\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n"
    )
    .unwrap();
    let mut head = [0u8; 25];
    client.read_exact(&mut head).unwrap();
    assert!(
        head.starts_with(b"HTTP/1.1 100 Continue"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    client.write_all(br#"{"product_id":7,"#).unwrap();
    client
}

/// The status line of the answer `client` gets (after the 100 Continue), or what came before
/// the connection closed or went quiet for 30 s.
fn answer(client: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        let status = text
            .split("\r\n")
            .find(|l| l.starts_with("HTTP/1.1") && !l.contains("100 Continue"));
        match (status, client.read(&mut buffer)) {
            (Some(status), _) if text.contains(&format!("{status}\r\n")) => {
                return status.to_string()
            }
            (_, Ok(read)) if read > 0 => received.extend_from_slice(&buffer[..read]),
            _ => return text,
        }
    }
}

#[test]
fn a_request_body_that_stops_arriving_gets_408() {
    let stream = TestStream::new("body-timeout");
    let (child, base) = serve_util::start(&stream, &["--body-read-timeout", "1s"]);
    let mut client = post_half_a_body(&base);
    let started = Instant::now();
    let status = answer(&mut client);
    assert!(status.starts_with("HTTP/1.1 408"), "{status}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    send_signal(&child, "TERM");
    let output = wait_within(child, Duration::from_secs(15), "serve after SIGTERM");
    assert!(output.status.success(), "{output:?}");
}

#[test]
fn serve_stops_without_waiting_out_a_body_that_never_comes() {
    let stream = TestStream::new("body-stop");
    // The default --body-read-timeout (30 s): the stop must not wait it out.
    let (child, base) = serve_util::start(&stream, &[]);
    let mut client = post_half_a_body(&base);
    let stopped = Instant::now();
    send_signal(&child, "TERM");
    let output = wait_within(child, Duration::from_secs(10), "serve after SIGTERM");
    assert!(output.status.success(), "{output:?}");
    let status = answer(&mut client);
    assert!(status.starts_with("HTTP/1.1 503"), "{status}");
    assert!(stopped.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_timestamp_after_the_last_message_has_nothing_to_read() {
    let stream = TestStream::new("late-timestamp");
    stream.produce(10);
    let later = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let later = later
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let args = [
        "--json",
        "--stream",
        &stream.name,
        "consume",
        "--offset",
        &later,
    ];
    let output = run_within(&args, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("has nothing to read from offset"),
        "{stderr}"
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["messages"], 0, "{summary}");
    // One before the messages still reads them all.
    let earlier = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    let earlier = earlier
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let summary = stream.run_json(&["consume", "--offset", &earlier]);
    assert_eq!(summary["messages"], 10, "{summary}");

    // The same on each partition of a super stream.
    let super_stream = TestSuperStream::new("late-timestamp");
    super_stream.produce(30, 3);
    let args = [
        "--json",
        "consume",
        "--super-stream",
        &super_stream.name,
        "--offset",
        &later,
    ];
    let output = run_within(&args, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "super stream '{}' has nothing to read",
            super_stream.name
        )),
        "{stderr}"
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["messages"], 0, "{summary}");
    let summary = super_stream.run_json(&["consume", "--offset", &earlier]);
    assert_eq!(summary["messages"], 30, "{summary}");
}
