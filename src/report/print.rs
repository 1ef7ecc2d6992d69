//! `consume --print`: consumed messages as NDJSON lines on stdout, for `jq` and friends.

/// Writes consumed messages to stdout as NDJSON, like a console consumer, for `jq` and friends:
/// `{"offset":N,"timestamp":"RFC 3339 of produced_at_us","update":{…}}`, or
/// `{"offset":N,"body":"…"}` for a message that is not an inventory update.
pub struct MessagePrinter {
    /// Whole lines, written out together under stdout's lock (so the readers of a super
    /// stream's partitions never split each other's lines).
    buffer: Vec<u8>,
    /// Flush every line (someone is watching a live stream) rather than when the buffer fills.
    flush_each: bool,
    /// The partition each line names (a super stream's reader).
    partition: Option<String>,
}

/// Lines are written out once this much is buffered.
const PRINT_BUFFER: usize = 1 << 16;

impl MessagePrinter {
    pub fn stdout(flush_each: bool) -> Self {
        MessagePrinter {
            buffer: Vec::with_capacity(PRINT_BUFFER + 4096),
            flush_each,
            partition: None,
        }
    }

    /// A printer whose lines start with `"partition":"NAME"`.
    pub fn for_partition(flush_each: bool, partition: &str) -> Self {
        MessagePrinter {
            partition: Some(partition.to_string()),
            ..MessagePrinter::stdout(flush_each)
        }
    }

    /// `produced_at_us` is `Some` for an inventory update, whose body is then valid JSON.
    pub fn print(
        &mut self,
        offset: u64,
        body: &[u8],
        produced_at_us: Option<u64>,
    ) -> std::io::Result<()> {
        use std::io::Write;
        match produced_at_us {
            Some(us) => {
                self.buffer.push(b'{');
                if let Some(partition) = &self.partition {
                    write!(
                        self.buffer,
                        "\"partition\":{},",
                        serde_json::json!(partition)
                    )?;
                }
                write!(
                    self.buffer,
                    "\"offset\":{offset},\"timestamp\":\"{}\",\"update\":",
                    rfc3339_us(us)
                )?;
                self.buffer.extend_from_slice(body);
                self.buffer.extend_from_slice(b"}\n");
            }
            None => {
                let mut line =
                    serde_json::json!({"offset": offset, "body": String::from_utf8_lossy(body)});
                if let Some(partition) = &self.partition {
                    line["partition"] = serde_json::json!(partition);
                }
                writeln!(self.buffer, "{line}")?;
            }
        }
        if self.flush_each || self.buffer.len() >= PRINT_BUFFER {
            self.flush()?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        use std::io::Write;
        if self.buffer.is_empty() {
            return Ok(());
        }
        let mut stdout = std::io::stdout().lock();
        let written = stdout.write_all(&self.buffer).and_then(|_| stdout.flush());
        self.buffer.clear();
        written
    }
}

/// Microseconds since the epoch as RFC 3339 (UTC).
fn rfc3339_us(us: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(us as i128 * 1_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
