//! What the installed binary offers without a broker: `--version` names the build, and
//! `completions` and `man` write documents that name every command and its flags.

use assert_cmd::assert::OutputAssertExt;
use predicates::prelude::*;
use predicates::str::contains;

use crate::util::invstream;

/// The commands `invstream --help` lists.
fn commands() -> Vec<String> {
    invstream::cli::command_names()
}

#[test]
fn version_names_the_commit_and_the_profile() {
    // The tests drive the binary built with them: the debug profile, unless --release.
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    for flag in ["--version", "-V"] {
        let output = invstream(&[flag]);
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        output.assert().success();
        let line = text.trim_end();
        let inner = line
            .strip_prefix(&format!("invstream {} (commit ", env!("CARGO_PKG_VERSION")))
            .and_then(|rest| rest.strip_suffix(&format!(", {profile})")))
            .unwrap_or_else(|| panic!("{flag}: {line:?}"));
        let hash = inner.strip_suffix("-dirty").unwrap_or(inner);
        assert!(
            inner == "unknown" || (hash.len() == 7 && hash.chars().all(|c| c.is_ascii_hexdigit())),
            "{flag}: {line:?}"
        );
    }
}

#[test]
fn bash_completions_name_every_command() {
    let output = invstream(&["completions", "bash"]);
    let script = String::from_utf8_lossy(&output.stdout).into_owned();
    output.assert().success().stderr("");
    assert!(script.contains("complete -F _invstream"), "{script}");
    // The words offered after `invstream`: the first `opts="…"`, the one with --version.
    let top_level = script
        .lines()
        .map(str::trim_start)
        .find(|l| l.starts_with("opts=\"") && l.contains("--version"))
        .expect("a top-level opts line");
    for command in commands() {
        assert!(
            top_level
                .split_whitespace()
                .any(|w| w.trim_matches('"') == command),
            "{command}: {top_level}"
        );
    }
}

#[test]
fn completions_for_an_unknown_shell_is_a_usage_error() {
    invstream(&["completions", "tcsh"])
        .assert()
        .code(2)
        .stderr(contains("invstream: error:").and(contains("bash")));
}

#[test]
fn man_writes_the_page_of_produce_with_its_flags() {
    let output = invstream(&["man", "produce"]);
    let page = String::from_utf8_lossy(&output.stdout).into_owned();
    output.assert().success();
    assert!(page.contains(".TH invstream-produce 1"), "{page}");
    for flag in ["\\-\\-count", "\\-\\-batch\\-size", "\\-\\-uri"] {
        assert!(page.contains(flag), "{flag}: {page}");
    }
    let main = invstream(&["man"]);
    main.assert()
        .success()
        .stdout(contains(".TH invstream 1").and(contains("invstream\\-produce(1)")));
}

#[test]
fn man_out_writes_one_page_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    let out_text = out.to_str().unwrap();
    invstream(&["man", "--out", out_text])
        .assert()
        .success()
        .stdout("")
        .stderr(contains("wrote").and(contains(out_text)));
    for command in commands() {
        let page = out.join(format!("invstream-{command}.1"));
        assert!(page.is_file(), "{}", page.display());
    }
    assert!(out.join("invstream.1").is_file());
}

#[test]
fn man_of_an_unknown_command_names_the_pages() {
    invstream(&["man", "nosuch"])
        .assert()
        .failure()
        .stderr(contains("no man page for 'nosuch'").and(contains("produce")));
}

#[test]
fn documents_need_no_valid_broker_settings() {
    let output = std::process::Command::new(crate::util::binary())
        .args(["completions", "zsh"])
        .env("INVSTREAM_URI", "not a uri")
        .output()
        .unwrap();
    output
        .assert()
        .success()
        .stdout(contains("#compdef invstream"));
}
