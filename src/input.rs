//! The user's own updates: newline-delimited JSON from a file (gzip when it ends in `.gz`) or
//! stdin, read line by line on a blocking thread and handed over in batches through a bounded
//! channel, so memory stays flat whatever the file's size.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

use tokio::sync::mpsc;

use crate::model::{now_us, InventoryUpdate, NumberedUpdate};

/// Where updates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputSource {
    Stdin,
    File(PathBuf),
}

impl InputSource {
    /// `-` is stdin; anything else a path.
    pub fn parse(text: &str) -> Self {
        match text {
            "-" => InputSource::Stdin,
            path => InputSource::File(PathBuf::from(path)),
        }
    }

    fn open(&self) -> std::io::Result<Box<dyn Read + Send>> {
        match self {
            InputSource::Stdin => Ok(Box::new(std::io::stdin())),
            InputSource::File(path) => {
                let file = File::open(path)?;
                if path.extension().is_some_and(|ext| ext == "gz") {
                    Ok(Box::new(flate2::read::MultiGzDecoder::new(file)))
                } else {
                    Ok(Box::new(file))
                }
            }
        }
    }
}

impl std::fmt::Display for InputSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InputSource::Stdin => f.write_str("stdin"),
            InputSource::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// What the reading thread hands over, in file order.
#[derive(Debug)]
pub enum InputEvent {
    Batch(Vec<NumberedUpdate>),
    Invalid {
        line: u64,
        reason: String,
    },
    /// The input could not be read; nothing follows.
    Failed(String),
}

/// The longest line read. An update is ~200 bytes; a longer line is no NDJSON (a binary file,
/// `/dev/zero`), and reading it whole took all memory (an abort) or, without a newline, forever.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// A line without its `\n` or `\r\n` (as `BufRead::lines` gives it).
fn strip_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Starts reading `source` on a blocking thread. Lines numbered up to `skip_lines` are passed
/// over unparsed (the broker already holds them); blank lines are ignored; a line without
/// `seq` gets its 0-based line position. (One thread body: the line loop, its batching and the
/// end-of-input checks share the line number and the batch being filled.)
pub fn spawn_reader(
    source: InputSource,
    skip_lines: u64,
    batch_size: usize,
) -> mpsc::Receiver<InputEvent> {
    // A few batches of read-ahead: enough to keep the producer busy, small enough to stay flat.
    let (tx, rx) = mpsc::channel(4);
    std::thread::spawn(move || {
        let mut reader = match source.open() {
            Ok(reader) => BufReader::with_capacity(1 << 16, reader),
            Err(e) => {
                let _ = tx.blocking_send(InputEvent::Failed(format!("cannot open {source}: {e}")));
                return;
            }
        };
        let mut batch = Vec::with_capacity(batch_size);
        // Lines are read as bytes, so a line that is not UTF-8 is one invalid line (reported,
        // skipped or fatal with --strict) rather than the end of the input; every line still
        // counts, so line numbers (the publishing ids) stay those of the file.
        let mut bytes = Vec::with_capacity(1 << 10);
        let mut number = 0u64;
        loop {
            bytes.clear();
            // Two bytes past the bound: room for a `\r\n` after a line of exactly the bound.
            let mut bounded = (&mut reader).take(MAX_LINE_BYTES as u64 + 2);
            match bounded.read_until(b'\n', &mut bytes) {
                Ok(0) => break,
                Ok(_) => number += 1,
                Err(e) => {
                    let _ = tx.blocking_send(InputEvent::Failed(format!(
                        "reading {source} at line {}: {e}",
                        number + 1
                    )));
                    return;
                }
            }
            if strip_newline(&bytes).len() > MAX_LINE_BYTES {
                // Fatal, not one invalid line: skipping to its end could read forever.
                let _ = tx.blocking_send(InputEvent::Failed(format!(
                    "{source} line {number} is longer than 1 MiB: give one JSON update per line (NDJSON)"
                )));
                return;
            }
            if number <= skip_lines {
                continue;
            }
            let line = match std::str::from_utf8(strip_newline(&bytes)) {
                Ok(line) => line,
                Err(e) => {
                    let reason = format!("not valid UTF-8 (byte {})", e.valid_up_to() + 1);
                    if tx
                        .blocking_send(InputEvent::Invalid {
                            line: number,
                            reason,
                        })
                        .is_err()
                    {
                        return;
                    }
                    continue;
                }
            };
            if line.trim().is_empty() {
                continue;
            }
            match InventoryUpdate::from_input(line, number - 1, now_us()) {
                Ok(update) => batch.push((number, update)),
                Err(reason) => {
                    if tx
                        .blocking_send(InputEvent::Invalid {
                            line: number,
                            reason,
                        })
                        .is_err()
                    {
                        return;
                    }
                }
            }
            if batch.len() >= batch_size {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(batch_size));
                if tx.blocking_send(InputEvent::Batch(full)).is_err() {
                    return;
                }
            }
        }
        if number < skip_lines {
            // The name's last id is past this input's end: it published something else.
            let _ = tx.blocking_send(InputEvent::Failed(format!(
                "{source} ends at line {number}, but the producer already stored up to line {skip_lines}: that name published other updates; give this input a --producer-name of its own"
            )));
            return;
        }
        if !batch.is_empty() {
            let _ = tx.blocking_send(InputEvent::Batch(batch));
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn line(product_id: u64) -> String {
        format!(
            r#"{{"product_id":{product_id},"sku":"S{product_id}","warehouse":"W","event":"restocked","quantity_delta":5,"stock_level":50}}"#
        )
    }

    async fn collect(source: InputSource, skip: u64) -> Vec<InputEvent> {
        let mut rx = spawn_reader(source, skip, 2);
        let mut events = Vec::new();
        while let Some(event) = rx.recv().await {
            events.push(event);
        }
        events
    }

    #[tokio::test]
    async fn reads_batches_reports_bad_lines_and_skips() {
        let dir = std::env::temp_dir().join(format!("invstream-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("updates.ndjson");
        let text = [line(1), "oops".to_string(), String::new(), line(2), line(3)].join("\n");
        std::fs::write(&path, &text).unwrap();

        let events = collect(InputSource::File(path.clone()), 0).await;
        let numbers: Vec<u64> = events
            .iter()
            .flat_map(|e| match e {
                InputEvent::Batch(b) => b.iter().map(|(n, _)| *n).collect(),
                _ => vec![],
            })
            .collect();
        assert_eq!(numbers, vec![1, 4, 5]);
        assert!(events
            .iter()
            .any(|e| matches!(e, InputEvent::Invalid { line: 2, .. })));
        let seqs: Vec<u64> = events
            .iter()
            .flat_map(|e| match e {
                InputEvent::Batch(b) => b.iter().map(|(_, u)| u.seq).collect(),
                _ => vec![],
            })
            .collect();
        assert_eq!(seqs, vec![0, 3, 4], "a missing seq is the line's position");

        let resumed = collect(InputSource::File(path.clone()), 4).await;
        assert_eq!(resumed.len(), 1, "{resumed:?}");
        // A name that holds more than the file has lines published something else.
        let past_the_end = collect(InputSource::File(path.clone()), 6).await;
        assert!(
            matches!(&past_the_end[..], [InputEvent::Failed(m)] if m.contains("ends at line 5") && m.contains("up to line 6")),
            "{past_the_end:?}"
        );
        let at_the_end = collect(InputSource::File(path.clone()), 5).await;
        assert!(at_the_end.is_empty(), "{at_the_end:?}");

        let gz = dir.join("updates.ndjson.gz");
        let mut encoder =
            flate2::write::GzEncoder::new(File::create(&gz).unwrap(), flate2::Compression::fast());
        encoder.write_all(text.as_bytes()).unwrap();
        encoder.finish().unwrap();
        let from_gz = collect(InputSource::File(gz), 0).await;
        assert_eq!(from_gz.len(), events.len());

        let missing = collect(InputSource::File(dir.join("nope")), 0).await;
        assert!(matches!(&missing[..], [InputEvent::Failed(m)] if m.contains("cannot open")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_line_past_the_bound_fails_the_input_after_the_lines_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let at_bound = format!("{}\r\n", " ".repeat(MAX_LINE_BYTES));
        let mut text = format!("{}\n{at_bound}{}\n", line(1), line(2));
        text.push_str(&"x".repeat(MAX_LINE_BYTES + 1));
        text.push('\n');
        text.push_str(&line(3));
        let path = dir.path().join("long.ndjson");
        std::fs::write(&path, &text).unwrap();
        let events = collect(InputSource::File(path), 0).await;
        let numbers: Vec<u64> = events
            .iter()
            .flat_map(|e| match e {
                InputEvent::Batch(b) => b.iter().map(|(n, _)| *n).collect(),
                _ => vec![],
            })
            .collect();
        assert_eq!(
            numbers,
            vec![1, 3],
            "a line of exactly 1 MiB is read: {events:?}"
        );
        match events.last() {
            Some(InputEvent::Failed(m)) => {
                assert!(
                    m.ends_with(
                        "line 4 is longer than 1 MiB: give one JSON update per line (NDJSON)"
                    ),
                    "{m}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    /// `/dev/zero` never ends a line: the read stops at the bound instead of taking all memory.
    #[cfg(unix)]
    #[tokio::test]
    async fn an_endless_line_fails_at_the_bound() {
        let events = collect(InputSource::File("/dev/zero".into()), 0).await;
        assert!(
            matches!(&events[..], [InputEvent::Failed(m)] if m.contains("line 1 is longer than 1 MiB")),
            "{events:?}"
        );
    }

    #[tokio::test]
    async fn a_line_that_is_not_utf8_is_one_invalid_line_and_numbering_goes_on() {
        let dir = std::env::temp_dir().join(format!("invstream-input-utf8-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut bytes = Vec::new();
        bytes.extend_from_slice(line(1).as_bytes());
        bytes.extend_from_slice(b"\n");
        // Latin-1 "café" inside a JSON string: 0xE9 is not UTF-8.
        bytes.extend_from_slice(b"{\"sku\":\"caf\xe9\"}\r\n");
        bytes.extend_from_slice(line(2).as_bytes());
        bytes.extend_from_slice(b"\r\n\xff\xfe\n");
        bytes.extend_from_slice(line(3).as_bytes());
        let path = dir.join("latin1.ndjson");
        std::fs::write(&path, &bytes).unwrap();
        let gz = dir.join("latin1.ndjson.gz");
        let mut encoder =
            flate2::write::GzEncoder::new(File::create(&gz).unwrap(), flate2::Compression::fast());
        encoder.write_all(&bytes).unwrap();
        encoder.finish().unwrap();

        for source in [path, gz] {
            let events = collect(InputSource::File(source.clone()), 0).await;
            let mut numbers = Vec::new();
            let mut invalid = Vec::new();
            for event in &events {
                match event {
                    InputEvent::Batch(b) => numbers.extend(b.iter().map(|(n, u)| (*n, u.seq))),
                    InputEvent::Invalid { line, reason } => invalid.push((*line, reason.clone())),
                    InputEvent::Failed(m) => panic!("{source:?}: {m}"),
                }
            }
            assert_eq!(numbers, vec![(1, 0), (3, 2), (5, 4)], "{source:?}");
            assert_eq!(
                invalid,
                vec![
                    (2, "not valid UTF-8 (byte 12)".to_string()),
                    (4, "not valid UTF-8 (byte 1)".to_string())
                ],
                "{source:?}"
            );
            // Resuming after line 2 passes over the bad line unread.
            let resumed = collect(InputSource::File(source.clone()), 2).await;
            assert!(
                !resumed
                    .iter()
                    .any(|e| matches!(e, InputEvent::Invalid { line: 2, .. })),
                "{resumed:?}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
