//! Configuration besides the command line: an environment variable per option, the config file,
//! and the password from a file or `INVSTREAM_PASSWORD`. Precedence: the command line, then
//! the environment, then the config file, then the built-in default.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::util::{assert_one_line_error, binary, summary_of, TestStream};

/// `invstream --json --stream STREAM ARGS…` with `vars` set.
fn run_with(stream: &TestStream, vars: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(binary())
        .envs(vars.iter().copied())
        .args([&["--json", "--stream", stream.name.as_str()][..], args].concat())
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs")
}

fn produced(output: &Output) -> u64 {
    let summary = summary_of(output);
    assert_eq!(summary["failed"], 0, "{summary}");
    summary["confirmed"].as_u64().expect("confirmed")
}

fn write_config(dir: &Path, text: &str) -> String {
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn command_line_beats_environment_beats_config_file() {
    let stream = TestStream::new("config-precedence");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "[produce]\ncount = 77\n[consume]\ncount = 3\n");
    let env = [("INVSTREAM_PRODUCE_COUNT", "123")];
    let config_var = [("INVSTREAM_CONFIG", config.as_str())];

    assert_eq!(produced(&run_with(&stream, &env, &["produce"])), 123);
    let from_file = run_with(&stream, &[], &["--config", &config, "produce"]);
    assert_eq!(produced(&from_file), 77);
    // The file named by INVSTREAM_CONFIG, and under the produce command as well.
    assert_eq!(produced(&run_with(&stream, &config_var, &["produce"])), 77);
    let both = [env[0], config_var[0]];
    assert_eq!(produced(&run_with(&stream, &both, &["produce"])), 123);
    assert_eq!(
        produced(&run_with(&stream, &both, &["produce", "--count", "5"])),
        5
    );
    // --count means another thing to consume: its own variable, its own table.
    let read = summary_of(&run_with(&stream, &both, &["consume", "--offset", "first"]));
    assert_eq!(read["messages"], 3, "{read}");
}

/// The XDG default is read when it exists; a missing one is no error.
#[test]
fn the_default_config_file_is_used_when_it_exists() {
    let stream = TestStream::new("config-default");
    let home = tempfile::tempdir().unwrap();
    let xdg = [("XDG_CONFIG_HOME", home.path().to_str().unwrap())];
    assert_eq!(
        produced(&run_with(&stream, &xdg, &["produce", "--count", "4"])),
        4
    );
    std::fs::create_dir(home.path().join("invstream")).unwrap();
    write_config(&home.path().join("invstream"), "[produce]\ncount = 9\n");
    assert_eq!(produced(&run_with(&stream, &xdg, &["produce"])), 9);
}

#[test]
fn config_file_mistakes_are_usage_errors_naming_file_and_key() {
    let stream = TestStream::new("config-mistakes");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "retry-for = \"5s\"\n[produce]\ncuont = 5\n");
    let output = run_with(&stream, &[], &["--config", &config, "produce"]);
    assert_one_line_error(&output, 2, "key produce.cuont is unknown");
    assert_one_line_error(&output, 2, &config);

    let config = write_config(dir.path(), "[produce]\ncount = \"lots\"\n");
    let output = run_with(&stream, &[], &["--config", &config, "produce"]);
    assert_one_line_error(&output, 2, "key produce.count = \"lots\"");

    let missing = dir.path().join("missing.toml");
    let output = run_with(
        &stream,
        &[],
        &["--config", missing.to_str().unwrap(), "produce"],
    );
    assert_one_line_error(&output, 2, "cannot read it");
}

/// A flag's variable takes true/false/1/0; anything else is a usage error naming it.
#[test]
fn flags_from_the_environment_take_true_false_1_0() {
    let stream = TestStream::new("config-flags");
    let text = |vars: &[(&str, &str)]| {
        let output = Command::new(binary())
            .envs(vars.iter().copied())
            .args(["--stream", &stream.name, "produce", "--count", "2"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            output,
        )
    };
    for value in ["1", "true"] {
        let (code, stdout, _) = text(&[("INVSTREAM_JSON", value)]);
        assert_eq!(code, Some(0), "{stdout}");
        assert!(stdout.trim_start().starts_with('{'), "{value}: {stdout}");
    }
    for value in ["0", "false"] {
        let (code, stdout, _) = text(&[("INVSTREAM_JSON", value)]);
        assert_eq!(code, Some(0), "{stdout}");
        assert!(
            !stdout.trim_start().starts_with('{') && stdout.contains("confirmed"),
            "{value}: {stdout}"
        );
    }
    let (_, _, output) = text(&[("INVSTREAM_JSON", "maybe")]);
    assert_one_line_error(&output, 2, "environment variable INVSTREAM_JSON");
    // The command's own flag, under the command's name.
    let (_, _, output) = text(&[("INVSTREAM_PRODUCE_NO_DEDUP", "perhaps")]);
    assert_one_line_error(&output, 2, "INVSTREAM_PRODUCE_NO_DEDUP");
}

#[test]
fn help_names_every_options_variable() {
    let output = Command::new(binary())
        .args(["produce", "--help"])
        .env("INVSTREAM_PRODUCE_COUNT", "123")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    for name in [
        "[env: INVSTREAM_PRODUCE_COUNT]",
        "[env: INVSTREAM_PRODUCE_BATCH_SIZE]",
        "[env: INVSTREAM_CONFIG]",
        "[env: INVSTREAM_PASSWORD_FILE]",
        "INVSTREAM_PASSWORD:",
    ] {
        assert!(help.contains(name), "{name}: {help}");
    }
    assert!(!help.contains("=123"), "{help}");
}

/// `--password-file` supplies the password a URI leaves out; a wrong one fails in one line
/// that never holds it.
#[test]
fn the_password_comes_from_a_file_and_never_shows() {
    let stream = TestStream::new("config-password");
    let dir = tempfile::tempdir().unwrap();
    let right = dir.path().join("right");
    std::fs::write(&right, "guest\n").unwrap();
    let uri = "rabbitmq-stream://guest@localhost:5552/%2f";
    let args = |file: &Path| {
        vec![
            "--uri".to_string(),
            uri.to_string(),
            "--password-file".to_string(),
            file.to_str().unwrap().to_string(),
            "produce".to_string(),
            "--count".to_string(),
            "10".to_string(),
        ]
    };
    let right_args = args(&right);
    let right_args: Vec<&str> = right_args.iter().map(String::as_str).collect();
    assert_eq!(produced(&run_with(&stream, &[], &right_args)), 10);
    // INVSTREAM_PASSWORD replaces the URI's (wrong) password too.
    let wrong_uri = "rabbitmq-stream://guest:not-this@localhost:5552/%2f";
    let from_variable = run_with(
        &stream,
        &[("INVSTREAM_PASSWORD", "guest")],
        &["--uri", wrong_uri, "produce", "--count", "10"],
    );
    assert_eq!(produced(&from_variable), 10);

    let secret = "Wr0ng-s3cret-pw";
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, format!("{secret}\n")).unwrap();
    let wrong_args = args(&wrong);
    let wrong_args: Vec<&str> = wrong_args.iter().map(String::as_str).collect();
    for output in [
        run_with(&stream, &[], &wrong_args),
        run_with(
            &stream,
            &[("INVSTREAM_PASSWORD", secret)],
            &["produce", "--count", "10"],
        ),
    ] {
        assert_one_line_error(&output, 1, "authentication failed for user 'guest'");
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!all.contains(secret), "{all}");
    }

    let both = run_with(&stream, &[("INVSTREAM_PASSWORD", secret)], &right_args);
    assert_one_line_error(&both, 1, "keep one");
    let missing = dir.path().join("no-such-file");
    let missing_args = args(&missing);
    let missing_args: Vec<&str> = missing_args.iter().map(String::as_str).collect();
    let output = run_with(&stream, &[], &missing_args);
    assert_one_line_error(&output, 1, "no-such-file");
}
