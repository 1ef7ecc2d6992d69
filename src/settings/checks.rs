//! Values that parse but cannot work, refused before anything connects (issue 26's "accepted
//! silently" class): zero waits, retention the broker refuses or cannot honour, flags that
//! combine into something other than what they say, output files that could only fail after
//! a whole run.

use std::path::Path;
use std::time::Duration;

use crate::error::{InvError, Result};

/// The broker refuses a segment above this (RabbitMQ's `x-stream-max-segment-size-bytes` limit).
pub const MAX_SEGMENT_BYTES: u64 = 3_000_000_000;

/// Below this a stream may never confirm (measured on RabbitMQ 4.0.5: a 1-byte segment never
/// confirmed 20,000 updates, 1 kB did); 4 KiB is a floor no real stream goes under.
pub const MIN_SEGMENT_BYTES: u64 = 4096;

/// A wait that must be above zero: `0s` would count every message failed, or end before
/// starting.
pub fn positive(flag: &str, value: Option<Duration>, what: &str) -> Result<()> {
    match value {
        Some(d) if d.is_zero() => Err(InvError::usage(format!(
            "{flag} 0s would {what}: give a duration above zero, e.g. {flag} 30s"
        ))),
        _ => Ok(()),
    }
}

/// Retention the broker can keep as asked.
pub fn retention(max_segment_size_bytes: Option<u64>, max_age: Option<Duration>) -> Result<()> {
    if let Some(bytes) = max_segment_size_bytes {
        if !(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&bytes) {
            return Err(InvError::usage(format!(
                "--max-segment-size-bytes {bytes} is outside what a stream can use: give 4kib to 3gb (RabbitMQ refuses more than {MAX_SEGMENT_BYTES} bytes; the default is 500mb)"
            )));
        }
    }
    if let Some(age) = max_age {
        if age < Duration::from_secs(1) || age.subsec_nanos() != 0 {
            return Err(InvError::usage(format!(
                "--max-age {} is not whole seconds: the broker keeps ages in seconds, e.g. --max-age 90s or 7days",
                humantime::format_duration(age)
            )));
        }
    }
    Ok(())
}

/// Sub-entry batches carry no filter values (one entry holds many products).
pub fn filter_values_without_sub_entries(filter_values: bool, sub_entry_size: u64) -> Result<()> {
    match filter_values && sub_entry_size > 1 {
        true => Err(InvError::usage(
            "--filter-values tags single entries, and a sub-entry batch holds many products: drop --filter-values or --sub-entry-size",
        )),
        false => Ok(()),
    }
}

/// `--consumers` splits into whole groups of `--consumers-per-group`.
pub fn consumer_groups(consumers: u64, per_group: u64) -> Result<()> {
    match consumers % per_group {
        0 => Ok(()),
        _ => Err(InvError::usage(format!(
            "--consumers {consumers} does not split into groups of --consumers-per-group {per_group}: give a multiple, e.g. --consumers {}",
            (consumers / per_group + 1) * per_group
        ))),
    }
}

/// `--backlog` needs consumers to drain it, and a drain ratio above 0 and at most 1.
pub fn backlog(bytes: u64, drain_ratio: f64, consumers: u64) -> Result<super::BacklogSettings> {
    if consumers == 0 {
        return Err(InvError::usage(
            "--backlog is drained by consumers and --consumers is 0: give --consumers 1 or more",
        ));
    }
    if !(drain_ratio > 0.0 && drain_ratio <= 1.0) {
        return Err(InvError::usage(format!(
            "--backlog-drain-ratio {drain_ratio} is not above 0 and at most 1: give e.g. 1 (caught up) or 0.9"
        )));
    }
    Ok(super::BacklogSettings { bytes, drain_ratio })
}

/// `--verify` checks every producer's `seq` for gaps; `--product` reads only some updates, so
/// the others would show as gaps that are not there.
pub fn verify_reads_everything(verify: bool, products: &[u64]) -> Result<()> {
    match verify && !products.is_empty() {
        true => Err(InvError::usage(
            "--verify checks every update's seq and --product reads only some of them: drop one of the two",
        )),
        false => Ok(()),
    }
}

/// `--super-stream` names where to publish or read; a `--stream` typed beside it would be
/// ignored without a word.
pub fn stream_or_super_stream(super_stream: Option<&str>, stream_typed: bool) -> Result<()> {
    match (super_stream, stream_typed) {
        (Some(name), true) => Err(InvError::usage(format!(
            "--stream and --super-stream {name} name two different targets: give one of them"
        ))),
        _ => Ok(()),
    }
}

/// A file a run writes at its end (`--plot`, `--hdr-log`): checked now, not after the whole run.
/// `extension`, when given, is the only format the file can have.
pub fn output_file(flag: &str, path: &Path, extension: Option<&str>) -> Result<()> {
    let shown = path.display();
    if let Some(extension) = extension {
        let given = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !given.eq_ignore_ascii_case(extension) {
            return Err(InvError::usage(format!(
                "{flag} {shown}: invstream draws {} only: name the file FILE.{extension}",
                extension.to_uppercase()
            )));
        }
    }
    if path.is_dir() {
        return Err(InvError::usage(format!(
            "{flag} {shown} is a directory: give a file name"
        )));
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        let what = match parent.exists() {
            true => "is not a directory",
            false => "does not exist: create it first",
        };
        return Err(InvError::usage(format!(
            "{flag} {shown}: {} {what}",
            parent.display()
        )));
    }
    // Opened for appending so an existing file is not cut before the run has anything to write.
    let existed = path.exists();
    let opened = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path);
    if let Err(e) = opened {
        return Err(InvError::usage(format!(
            "{flag} {shown} cannot be written: {e}"
        )));
    }
    if !existed {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// A directory a run writes its files into (`--export-omb`): made now if missing, and found
/// writable, not after the whole run.
pub fn output_dir(flag: &str, dir: &Path) -> Result<()> {
    let shown = dir.display();
    if dir.exists() && !dir.is_dir() {
        return Err(InvError::usage(format!(
            "{flag} {shown} is not a directory: give a directory (made if missing)"
        )));
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| InvError::usage(format!("{flag} {shown} cannot be made: {e}")))?;
    // A file made and removed at once: the run's files will be written beside it.
    let probe = dir.join(format!(".invstream-write-check-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| InvError::usage(format!("{flag} {shown} cannot be written: {e}")))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_waits_are_refused_and_others_pass() {
        assert!(positive("--duration", Some(Duration::ZERO), "end at once").is_err());
        assert!(positive("--duration", Some(Duration::from_millis(1)), "x").is_ok());
        assert!(positive("--duration", None, "x").is_ok());
    }

    #[test]
    fn retention_the_broker_cannot_keep_is_refused() {
        assert!(retention(Some(1), None).is_err());
        assert!(retention(Some(4_000_000_000), None).is_err());
        assert!(retention(Some(500_000_000), None).is_ok());
        assert!(retention(None, Some(Duration::ZERO)).is_err());
        assert!(retention(None, Some(Duration::from_millis(1500))).is_err());
        assert!(retention(None, Some(Duration::from_secs(60))).is_ok());
    }

    #[test]
    fn combinations_that_say_something_else_are_refused() {
        assert!(filter_values_without_sub_entries(true, 10).is_err());
        assert!(filter_values_without_sub_entries(true, 1).is_ok());
        assert!(verify_reads_everything(true, &[3]).is_err());
        assert!(verify_reads_everything(true, &[]).is_ok());
    }

    #[test]
    fn output_files_are_checked_before_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let svg = dir.path().join("out.svg");
        assert!(output_file("--plot", &svg, Some("svg")).is_ok());
        assert!(!svg.exists(), "the check leaves no file behind");
        let png = dir.path().join("out.png");
        let e = output_file("--plot", &png, Some("svg"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("out.png") && e.contains("SVG"), "{e}");
        let missing = dir.path().join("nope/out.svg");
        assert!(output_file("--plot", &missing, Some("svg")).is_err());
        assert!(output_file("--hdr-log", dir.path(), None).is_err());
        let existing = dir.path().join("keep.log");
        std::fs::write(&existing, "kept").unwrap();
        assert!(output_file("--hdr-log", &existing, None).is_ok());
        assert_eq!(std::fs::read_to_string(&existing).unwrap(), "kept");
    }

    #[test]
    fn output_dirs_are_made_and_must_be_writable() {
        let dir = tempfile::tempdir().unwrap();
        let made = dir.path().join("a/b");
        assert!(output_dir("--export-omb", &made).is_ok());
        assert!(made.is_dir());
        assert_eq!(
            std::fs::read_dir(&made).unwrap().count(),
            0,
            "no probe left"
        );
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let e = output_dir("--export-omb", &file).unwrap_err().to_string();
        assert!(
            e.contains("--export-omb") && e.contains("not a directory"),
            "{e}"
        );
        assert!(output_dir("--export-omb", &file.join("below")).is_err());
    }
}
