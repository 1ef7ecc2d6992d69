//! The user's own updates: newline-delimited JSON from a file (gzip when it ends in `.gz`) or
//! stdin, read line by line on a blocking thread and handed over in batches through a bounded
//! channel, so memory stays flat whatever the file's size.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

use tokio::sync::mpsc;

use crate::model::{now_us, InventoryUpdate};

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

    /// A short name for default producer names: the file's name, or `stdin`.
    pub fn label(&self) -> String {
        match self {
            InputSource::Stdin => "stdin".to_string(),
            InputSource::File(path) => path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_else(|| "input".to_string()),
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

/// A valid update and its 1-based line number, which is also its publishing id: re-reading
/// the same file after a crash gives every line the same id, so the broker drops what it has.
pub type NumberedUpdate = (u64, InventoryUpdate);

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

/// Starts reading `source` on a blocking thread. Lines numbered up to `skip_lines` are passed
/// over unparsed (the broker already holds them); blank lines are ignored; a line without
/// `seq` gets its 0-based line position.
pub fn spawn_reader(
    source: InputSource,
    skip_lines: u64,
    batch_size: usize,
) -> mpsc::Receiver<InputEvent> {
    // A few batches of read-ahead: enough to keep the producer busy, small enough to stay flat.
    let (tx, rx) = mpsc::channel(4);
    std::thread::spawn(move || {
        let reader = match source.open() {
            Ok(reader) => BufReader::with_capacity(1 << 16, reader),
            Err(e) => {
                let _ = tx.blocking_send(InputEvent::Failed(format!("cannot open {source}: {e}")));
                return;
            }
        };
        let mut batch = Vec::with_capacity(batch_size);
        for (index, line) in reader.lines().enumerate() {
            let number = index as u64 + 1;
            let line = match line {
                Ok(line) => line,
                Err(e) => {
                    let _ = tx.blocking_send(InputEvent::Failed(format!(
                        "reading {source} at line {number}: {e}"
                    )));
                    return;
                }
            };
            if number <= skip_lines || line.trim().is_empty() {
                continue;
            }
            match InventoryUpdate::from_input(&line, number - 1, now_us()) {
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
}
