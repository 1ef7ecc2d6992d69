//! Every mistake a user can make ends in one clear line on stderr and a non-zero exit, and the
//! password never shows.

use std::process::Output;

use assert_cmd::assert::OutputAssertExt;
use predicates::prelude::*;
use predicates::str::contains;

use crate::util::{invstream, require_broker, TestStream, OLD_BROKER_PORT};

const PASSWORD: &str = "s3cr3t-pw";

/// Asserts a failed run: non-zero exit, one non-empty stderr line, `invstream: error: …`
/// containing `expected`, no panic, no password anywhere.
fn assert_clear_error(output: &Output, expected: &str) {
    let one_error_line = predicate::function(|stderr: &str| {
        let lines: Vec<_> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        lines.len() == 1 && lines[0].starts_with("invstream: error: ")
    });
    output
        .clone()
        .assert()
        .failure()
        .stdout(contains(PASSWORD).not())
        .stderr(
            one_error_line
                .and(contains(expected))
                .and(contains("panicked").not())
                .and(contains(PASSWORD).not()),
        );
}

fn uri(user: &str, port: u16, vhost: &str) -> String {
    format!("rabbitmq-stream://{user}:{PASSWORD}@localhost:{port}/{vhost}")
}

#[test]
fn broker_not_reachable_names_host_and_port() {
    let output = invstream(&[
        "--uri",
        &uri("guest", 5599, "%2f"),
        "produce",
        "--count",
        "10",
    ]);
    assert_clear_error(&output, "cannot reach the broker at localhost:5599");
    // The hint helps a user who installed the binary alone: no script of the repository.
    assert_clear_error(&output, "rabbitmq-plugins enable rabbitmq_stream");
    output.assert().stderr(contains("scripts/").not());
}

#[test]
fn wrong_password() {
    require_broker(5552);
    let output = invstream(&[
        "--uri",
        &uri("guest", 5552, "%2f"),
        "produce",
        "--count",
        "10",
    ]);
    assert_clear_error(&output, "authentication failed for user 'guest'");
}

#[test]
fn missing_vhost() {
    require_broker(5552);
    let uri = "rabbitmq-stream://guest:guest@localhost:5552/no-such-vhost";
    let output = invstream(&["--uri", uri, "consume", "--offset", "first"]);
    assert_clear_error(&output, "virtual host 'no-such-vhost' does not exist");
}

#[test]
fn missing_stream_on_consume_says_how_to_create_it() {
    let stream = TestStream::new("missing");
    for offset in ["first", "next"] {
        let output = stream.run(&["consume", "--offset", offset, "--count", "1"]);
        assert_clear_error(&output, "does not exist");
        assert_clear_error(
            &output,
            &format!("invstream produce --stream {}", stream.name),
        );
    }
}

#[test]
fn invalid_uri() {
    for bad in [
        format!("amqp://guest:{PASSWORD}@localhost:5672/"),
        format!("rabbitmq-stream://guest:{PASSWORD}@localhost:notaport/"),
        "::not a uri::".to_string(),
    ] {
        let output = invstream(&["--uri", &bad, "produce", "--count", "1"]);
        assert_clear_error(&output, "invalid --uri");
    }
}

#[test]
fn uri_from_the_environment_is_used_and_hidden() {
    let output = std::process::Command::new(crate::util::binary())
        .env("INVSTREAM_URI", uri("guest", 5599, "%2f"))
        .args(["produce", "--count", "1"])
        .output()
        .unwrap();
    assert_clear_error(&output, "localhost:5599");
    // clap shows an `env` value in --help unless told not to: the password must not show.
    for args in [
        &["--help"][..],
        &["produce", "--help"],
        &["consume", "--help"],
    ] {
        std::process::Command::new(crate::util::binary())
            .env("INVSTREAM_URI", uri("guest", 5599, "%2f"))
            .args(args)
            .assert()
            .append_context("args", format!("{args:?}"))
            .success()
            .stdout(contains("INVSTREAM_URI").and(contains(PASSWORD).not()));
    }
}

#[test]
fn invalid_offset_count_and_duration() {
    for (args, expected) in [
        (vec!["consume", "--offset", "yesterday"], "is not an offset"),
        (vec!["consume", "--offset", "-5"], "--offset"),
        (vec!["consume", "--duration", "soon"], "is not a duration"),
        (vec!["produce", "--count", "0"], "--count"),
        (
            vec!["produce", "--count", "99999999999999999999"],
            "--count",
        ),
        (vec!["produce", "--max-in-flight", "0"], "--max-in-flight"),
        (vec!["produce", "--max-age", "forever"], "is not a duration"),
        (
            vec!["produce", "--max-length-bytes", "5 parsecs"],
            "is not a size",
        ),
        (vec!["produce", "--count", "lots"], "--count"),
        (vec!["consume", "--follow", "--count", "3"], "--follow"),
    ] {
        let output = invstream(&args);
        assert_clear_error(&output, expected);
        // Usage errors exit 2.
        output.assert().code(2);
    }
}

#[test]
fn broker_older_than_3_11_is_named() {
    require_broker(OLD_BROKER_PORT);
    // The right password: authentication comes before the request 3.10 does not know.
    let uri = format!("rabbitmq-stream://guest:guest@localhost:{OLD_BROKER_PORT}/%2f");
    let output = invstream(&["--uri", &uri, "produce", "--count", "10"]);
    assert_clear_error(&output, "runs RabbitMQ 3.10");
    assert_clear_error(&output, "needs RabbitMQ 3.11 or newer");
}

#[test]
fn stream_with_other_arguments_than_asked() {
    let stream = TestStream::new("args");
    let created = stream.run(&["produce", "--count", "1", "--max-age", "1h"]);
    created.assert().success();
    let output = stream.run(&["produce", "--count", "1", "--max-age", "2h"]);
    assert_clear_error(&output, "already exists with other arguments");
    // The same arguments are fine.
    let same = stream.run(&["produce", "--count", "2", "--max-age", "1h"]);
    same.assert().success();
    // No arguments: the stream is used as it is.
    let none = stream.run(&["produce", "--count", "3"]);
    none.assert().success();
}

#[test]
fn messages_that_are_not_inventory_updates_are_counted_not_fatal() {
    use rabbitmq_stream_client::types::Message;
    let stream = TestStream::new("foreign");
    stream.produce(10);
    let env = stream.environment();
    crate::util::runtime().block_on(async {
        let producer = env.producer().build(&stream.name).await.unwrap();
        for body in ["hello", "{\"product_id\": \"1\"}", ""] {
            producer
                .send_with_confirm(Message::builder().body(body).build())
                .await
                .unwrap();
        }
        producer.close().await.unwrap();
    });
    stream.produce(10);
    let summary = stream.run_json(&["consume", "--offset", "first"]);
    assert_eq!(summary["messages"], 23, "{summary}");
    assert_eq!(summary["not_inventory_updates"], 3);
}

/// Creates a user through the management API (port 15672) who may only read, and deletes it
/// when dropped.
struct ReadOnlyUser {
    name: String,
}

impl ReadOnlyUser {
    const MANAGEMENT: &'static str = "http://localhost:15672/api";

    fn new() -> Self {
        let name = format!("invstream-reader-{}", std::process::id());
        crate::util::runtime().block_on(async {
            let client = reqwest::Client::new();
            for (path, body) in [
                (
                    format!("users/{name}"),
                    serde_json::json!({"password": PASSWORD, "tags": ""}),
                ),
                (
                    format!("permissions/%2F/{name}"),
                    serde_json::json!({"configure": "", "write": "", "read": ".*"}),
                ),
            ] {
                let response = client
                    .put(format!("{}/{path}", Self::MANAGEMENT))
                    .basic_auth("guest", Some("guest"))
                    .json(&body)
                    .send()
                    .await
                    .expect("the management API answers on localhost:15672");
                assert!(
                    response.status().is_success(),
                    "{path}: {}",
                    response.status()
                );
            }
        });
        ReadOnlyUser { name }
    }
}

impl Drop for ReadOnlyUser {
    fn drop(&mut self) {
        let url = format!("{}/users/{}", Self::MANAGEMENT, self.name);
        crate::util::runtime().block_on(async {
            let _ = reqwest::Client::new()
                .delete(url)
                .basic_auth("guest", Some("guest"))
                .send()
                .await;
        });
    }
}

#[test]
fn a_user_without_permission_is_told_which_one_is_missing() {
    let stream = TestStream::new("perms");
    stream.produce(5);
    let user = ReadOnlyUser::new();
    let uri = format!(
        "rabbitmq-stream://{}:{PASSWORD}@localhost:5552/%2f",
        user.name
    );
    let write = stream.run(&["--uri", &uri, "produce", "--count", "10"]);
    assert_clear_error(&write, "is not allowed to write to stream");
    let create = invstream(&[
        "--uri",
        &uri,
        "--stream",
        &format!("{}-new", stream.name),
        "produce",
    ]);
    assert_clear_error(&create, "is not allowed to create stream");
    let read = stream.run(&["--uri", &uri, "--json", "consume", "--offset", "first"]);
    assert!(read.status.success(), "reading is allowed");
}

#[test]
fn a_ca_file_that_is_not_pem_or_cannot_be_read_is_named() {
    let dir = std::env::temp_dir().join(format!("invstream-ca-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let der = dir.join("ca.der");
    // The first bytes of a DER certificate: what `openssl x509 -outform der` writes.
    std::fs::write(
        &der,
        [0x30, 0x82, 0x03, 0x0b, 0x30, 0x82, 0x01, 0xf3, 0xa0, 0x03],
    )
    .unwrap();
    let broken = dir.join("broken.pem");
    std::fs::write(
        &broken,
        "-----BEGIN CERTIFICATE-----\nthis is not base64!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let missing = dir.join("missing.pem");
    let tls_uri = format!("rabbitmq-stream+tls://guest:{PASSWORD}@localhost:5551/%2f");
    let path = |p: &std::path::Path| p.to_str().unwrap().to_string();
    for (ca, expected) in [
        (
            path(&der),
            format!("--tls-ca-cert {} holds no PEM", path(&der)),
        ),
        (
            path(&broken),
            format!("--tls-ca-cert {} is not", path(&broken)),
        ),
        (
            path(&missing),
            format!("cannot read --tls-ca-cert {}", path(&missing)),
        ),
        // A directory: opening it works, reading it does not (a mode-000 file is readable by root).
        (
            path(&dir),
            format!("cannot read --tls-ca-cert {}", path(&dir)),
        ),
    ] {
        for command in [
            &["produce", "--count", "1"][..],
            &["consume", "--offset", "first"],
        ] {
            let output =
                invstream(&[&["--uri", &tls_uri, "--tls-ca-cert", &ca][..], command].concat());
            assert_clear_error(&output, &expected);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
