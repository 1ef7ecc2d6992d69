//! Names the broker gets, checked before anything connects: stream names (and the streams
//! invstream makes of them: partitions, a benchmark's stream) must fit the directory the broker
//! keeps each stream in, producer and consumer names (and those invstream makes of them) the
//! broker's limit on names, and none may hold a control character. Past a limit the broker
//! refuses the name, or worse: a stream created with too long a name is never available, and a
//! command waits for it for ever.

use super::{
    BenchSettings, CommandSettings, CommonSettings, ConsumeSettings, PartitionLayout,
    ProduceSettings, ServeSettings, StreamsTask, SuperStreamSettings,
};
use crate::engines::reader::ReaderSpec;
use crate::error::{InvError, Result};

/// The most bytes the broker takes in a producer's or a consumer's name (its "reference";
/// `PreconditionFailed` past it, and the client cannot encode the offset and sequence queries).
pub const MAX_NAME_BYTES: usize = 255;

/// The broker keeps a stream's files in a directory named `VHOST_STREAM_TIMESTAMP` (19 digits;
/// any character not ASCII written `_`), of at most 255 characters: RabbitMQ 4.0.5 creates a
/// stream with a longer name, which then never becomes available.
const MAX_STREAM_DIRECTORY_CHARS: usize = 255;
/// The directory's characters besides the virtual host's and the stream's: `_`, `_`, 19 digits.
const STREAM_DIRECTORY_EXTRA_CHARS: usize = 21;

/// The longest default producer name: `invstream-MILLIS-PID` (13 digits of milliseconds, a
/// process id of up to 7), on a super stream's partitions too. It fits anywhere, and within the
/// 64 bytes the broker copies cheaply with every message it deduplicates (docs/BENCHMARKS.md).
const DEFAULT_PRODUCER_NAME_BYTES: usize = "invstream-1796459048455-4194304".len();
const _: () = assert!(DEFAULT_PRODUCER_NAME_BYTES <= 64);

/// The name of the consumer group that holds a given producer name for one run (see
/// `broker::lock`).
pub(crate) const LOCK_PREFIX: &str = "invstream-producer-lock:";

/// The longest stream name the broker can create in `vhost`.
pub fn max_stream_chars(vhost: &str) -> usize {
    MAX_STREAM_DIRECTORY_CHARS.saturating_sub(STREAM_DIRECTORY_EXTRA_CHARS + vhost.chars().count())
}

/// Checks every name `command` gives the broker.
pub fn check(common: &CommonSettings, command: &CommandSettings) -> Result<()> {
    let vhost = common.broker.vhost.as_str();
    let stream = common.stream.as_str();
    printable("--stream", stream)?;
    check_stream("--stream", stream, stream, None, vhost)?;
    match command {
        CommandSettings::Produce(p) => check_produce(p, vhost),
        CommandSettings::Consume(c) => check_consume(c, vhost),
        CommandSettings::Serve(s) => check_serve(s, stream, vhost),
        CommandSettings::Bench(b) => check_bench(b, stream, vhost),
        CommandSettings::Workbench(w) => w
            .configurations
            .iter()
            .try_for_each(|c| check_bench(&c.settings, stream, vhost)),
        CommandSettings::Streams(s) => check_streams(&s.action),
        CommandSettings::MaxRate(m) => check_bench(&m.bench, stream, vhost),
        CommandSettings::Workload(w) => match &w.run {
            super::WorkloadRun::Bench(b) => check_bench(b, stream, vhost),
            super::WorkloadRun::MaxRate(m) => check_bench(&m.bench, stream, vhost),
        },
    }
}

/// `streams info|delete NAME` and the names asked for: printable (they reach messages).
fn check_streams(task: &StreamsTask) -> Result<()> {
    match task {
        StreamsTask::List => Ok(()),
        StreamsTask::Delete { name, .. } => printable("NAME", name),
        StreamsTask::Info {
            name,
            consumers,
            producers,
        } => {
            printable("NAME", name)?;
            consumers
                .iter()
                .try_for_each(|c| printable("--consumer", c))?;
            producers
                .iter()
                .try_for_each(|p| printable("--producer", p))
        }
    }
}

/// A produce's producer name, and on a super stream its name, keys and partitions; only a run
/// with deduplication gives the broker a producer name.
fn check_produce(p: &ProduceSettings, vhost: &str) -> Result<()> {
    let name = p.producer_name.as_deref();
    if let Some(name) = name {
        printable("--producer-name", name)?;
    }
    if let Some(s) = &p.super_stream {
        produce_partitions(s, vhost)?;
    }
    match (name, p.dedup) {
        // Held through its lock for the run (on every partition of a super stream alike).
        (Some(name), true) => producer_name("--producer-name", name, name.len(), "NAME", true),
        // The default, invstream-MILLIS-PID, is short enough anywhere; without deduplication
        // the broker gets no name.
        _ => Ok(()),
    }
}

/// The partitions a produce publishes to on the super stream `s`, each checked as a stream.
fn produce_partitions(s: &SuperStreamSettings, vhost: &str) -> Result<()> {
    printable("--super-stream", &s.name)?;
    for key in s.layout.iter().flat_map(PartitionLayout::binding_keys) {
        printable("--partition-keys", &key)?;
    }
    // A super stream that exists may have other partitions; a new one gets these (three by
    // default).
    let layout = s.layout.clone().unwrap_or(PartitionLayout::Count(3));
    let partitions = layout.partitions(&s.name);
    for partition in &partitions {
        check_stream(
            "--super-stream",
            &s.name,
            partition,
            Some("NAME-KEY"),
            vhost,
        )?;
    }
    Ok(())
}

/// A consume's super stream (its first partition stands for all) and its readers' names.
fn check_consume(c: &ConsumeSettings, vhost: &str) -> Result<()> {
    if let Some(s) = &c.super_stream {
        printable("--super-stream", s)?;
        check_stream(
            "--super-stream",
            s,
            &format!("{s}-0"),
            Some("NAME-KEY"),
            vhost,
        )?;
    }
    for reader in &c.readers {
        check_reader(reader)?;
    }
    Ok(())
}

/// A reader's label and the consumer name it stores its offset under (`--name`, or
/// NAME-CONSUMER with several consumers).
fn check_reader(reader: &ReaderSpec) -> Result<()> {
    let flag = match reader.tracking_name.as_ref() == Some(&reader.label) {
        true => "--name",
        false => "--consumers",
    };
    printable(flag, &reader.label)?;
    // In the name of the reader's connection.
    check_name(flag, &reader.label, reader.label.len(), None)?;
    if let Some(name) = &reader.tracking_name {
        printable("--name", name)?;
        let form = (name != &reader.label).then_some("NAME-CONSUMER");
        check_name("--name", name, name.len(), form)?;
    }
    Ok(())
}

/// The gateway's target (a new super stream gets three partitions) and its producer names.
fn check_serve(s: &ServeSettings, stream: &str, vhost: &str) -> Result<()> {
    let name = s.producer_name.as_deref();
    if let Some(name) = name {
        printable("--producer-name", name)?;
    }
    let (flag, target) = match &s.super_stream {
        Some(super_stream) => ("--super-stream", super_stream.as_str()),
        None => ("--stream", stream),
    };
    // Created with three partitions when missing.
    let partitions = match &s.super_stream {
        Some(super_stream) => {
            printable("--super-stream", super_stream)?;
            PartitionLayout::Count(3).partitions(super_stream)
        }
        None => Vec::new(),
    };
    for partition in &partitions {
        check_stream(flag, target, partition, Some("NAME-KEY"), vhost)?;
    }
    // The gateway holds its name (on every partition) for as long as it serves.
    match name {
        Some(name) => producer_name("--producer-name", name, name.len(), "NAME", true),
        None => producer_name(
            flag,
            target,
            format!("invstream-{target}-serve").len(),
            "invstream-STREAM-serve",
            true,
        ),
    }
}

/// The stream a benchmark makes of `stream`: STREAM-bench-MILLIS-PID, and its partitions -0 …
/// -(N-1).
fn check_bench(b: &BenchSettings, stream: &str, vhost: &str) -> Result<()> {
    if let Some(group) = &b.group {
        printable("--group", &group.name)?;
        let coordination = crate::engines::group::coordination_stream(&group.name);
        check_stream(
            "--group",
            &group.name,
            &coordination,
            Some("invstream-group-NAME"),
            vhost,
        )?;
    }
    let bench = format!("{stream}-bench-1796459048455-4194304");
    let longest = match b.super_stream_partitions {
        Some(n) => format!("{bench}-{}", n.saturating_sub(1)),
        None => bench,
    };
    check_stream(
        "--stream",
        stream,
        &longest,
        Some("STREAM-bench-MILLIS-PID"),
        vhost,
    )
}

/// A producer name made from `flag`'s `value`, `bytes` long as `form` says (`NAME`: the value
/// itself; a super stream's partitions all publish under it), and when `locked` the lock's
/// consumer name too (`invstream-producer-lock:FORM`, see `broker::lock`).
fn producer_name(flag: &str, value: &str, bytes: usize, form: &str, locked: bool) -> Result<()> {
    check_name(flag, value, bytes, (form != "NAME").then_some(form))?;
    if locked {
        let lock = format!("{LOCK_PREFIX}{form}");
        check_name(flag, value, LOCK_PREFIX.len() + bytes, Some(&lock))?;
    }
    Ok(())
}

/// Fails unless the name the broker gets, `bytes` long and made from `flag`'s `value` as `form`
/// says (`None`: the value itself), fits [`MAX_NAME_BYTES`].
fn check_name(flag: &str, value: &str, bytes: usize, form: Option<&str>) -> Result<()> {
    if bytes <= MAX_NAME_BYTES {
        return Ok(());
    }
    let made = match form {
        Some(form) => format!(", as {form} {bytes} bytes"),
        None => format!(" ({bytes} bytes)"),
    };
    // A default producer name (invstream-STREAM-…) is made from the stream's name.
    let default = |form: &str| form.contains("invstream-STREAM") || form.contains("invstream-TIME");
    let or_name = match form.is_some_and(default) {
        true => ", or give --producer-name",
        false => "",
    };
    Err(InvError::usage(format!(
        "{flag} {} is too long{made}: the broker takes producer and consumer names of at most {MAX_NAME_BYTES} bytes; shorten it by {} bytes{or_name}",
        shown(value),
        bytes - MAX_NAME_BYTES
    )))
}

/// Fails unless the stream `stream`, made from `flag`'s `value` as `form` says (`None`: the value
/// itself), fits the broker's directory names in `vhost`.
fn check_stream(
    flag: &str,
    value: &str,
    stream: &str,
    form: Option<&str>,
    vhost: &str,
) -> Result<()> {
    let (chars, max) = (stream.chars().count(), max_stream_chars(vhost));
    if chars <= max {
        return Ok(());
    }
    let made = match form {
        Some(form) => format!(", as {form} {chars} characters"),
        None => format!(" ({chars} characters)"),
    };
    Err(InvError::usage(format!(
        "{flag} {} is too long{made}: the broker takes stream names of at most {max} characters in virtual host '{}'; shorten it by {} characters",
        shown(value),
        shown_plain(vhost),
        chars - max
    )))
}

/// Fails if `value` holds a control character (a newline, an escape sequence): every message
/// that names it would print it raw.
fn printable(flag: &str, value: &str) -> Result<()> {
    match value.chars().find(|c| c.is_control()) {
        None => Ok(()),
        Some(c) => Err(InvError::usage(format!(
            "{flag} {} holds the control character {}: use printable characters only",
            shown(value),
            c.escape_debug()
        ))),
    }
}

/// `value` for a message: quoted, control characters escaped, cut after 40 characters.
fn shown(value: &str) -> String {
    format!("'{}'", shown_plain(value))
}

fn shown_plain(value: &str) -> String {
    const SHOWN_CHARS: usize = 40;
    let mut text: String = value
        .chars()
        .take(SHOWN_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if value.chars().count() > SHOWN_CHARS {
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;

    fn checked(args: &[&str]) -> Result<()> {
        let all = std::iter::once("invstream").chain(args.iter().copied());
        crate::settings::from_cli(&Cli::try_parse_from(all).expect("the arguments parse"))
            .map(|_| ())
    }

    fn refused(args: &[&str]) -> String {
        let message = checked(args).unwrap_err().to_string();
        assert_eq!(message.lines().count(), 1, "{message}");
        message
    }

    fn n(count: usize) -> String {
        "n".repeat(count)
    }

    #[test]
    fn stream_names_fit_the_brokers_directory_names() {
        assert_eq!(max_stream_chars("/"), 233);
        assert!(checked(&["--stream", &n(233), "produce", "--producer-name", "p"]).is_ok());
        let err = refused(&["--stream", &n(234), "produce", "--producer-name", "p"]);
        assert!(
            err.contains("at most 233 characters in virtual host '/'; shorten it by 1 characters"),
            "{err}"
        );
        // Characters, not bytes: the broker writes each one not ASCII as `_`.
        assert!(checked(&["--stream", &"é".repeat(233), "consume"]).is_ok());
        // A longer virtual host leaves less room.
        let uri = "rabbitmq-stream://u:p@h:5552/shop";
        assert!(refused(&["--uri", uri, "--stream", &n(231), "consume"]).contains("at most 230"));
        // The streams invstream makes: a benchmark's, a super stream's partitions.
        assert!(checked(&["--stream", &n(205), "bench"]).is_ok());
        assert!(refused(&["--stream", &n(206), "bench"]).contains("STREAM-bench-MILLIS-PID"));
        let partitions = ["--super-stream-partitions", "11"];
        let err = refused(&[&["--stream", &n(203), "bench"][..], &partitions].concat());
        assert!(err.contains("shorten it by 1 characters"), "{err}");
        assert!(checked(&["produce", "--no-dedup", "--super-stream", &n(231)]).is_ok());
        let partitions = ["--partitions", "11", "--no-dedup"];
        let err = refused(&[&["produce", "--super-stream", &n(231)][..], &partitions].concat());
        assert!(err.contains("NAME-KEY"), "{err}");
        for command in ["consume", "serve"] {
            assert!(refused(&[command, "--super-stream", &n(232)]).contains("--super-stream"));
        }
    }

    #[test]
    fn producer_and_consumer_names_fit_255_bytes_with_what_invstream_adds() {
        // A given name is held through invstream-producer-lock:NAME.
        assert!(checked(&["produce", "--producer-name", &n(231)]).is_ok());
        let err = refused(&["produce", "--producer-name", &n(232)]);
        assert!(
            err.contains("as invstream-producer-lock:NAME 256 bytes")
                && err.contains("shorten it by 1 bytes"),
            "{err}"
        );
        assert!(checked(&["produce", "--no-dedup", "--producer-name", &n(300)]).is_ok());
        // The default name does not hold the stream's: the longest stream the broker keeps
        // is produced to under it.
        assert!(checked(&["--stream", &n(233), "produce"]).is_ok());
        // On a super stream every partition publishes under the name itself.
        let on_super = ["produce", "--super-stream", "s", "--producer-name"];
        assert!(checked(&[&on_super[..], &[&n(231)]].concat()).is_ok());
        let err = refused(&[&on_super[..], &[&n(232)]].concat());
        assert!(
            err.contains("as invstream-producer-lock:NAME 256 bytes"),
            "{err}"
        );
        let err = refused(&["serve", "--super-stream", "s", "--producer-name", &n(232)]);
        assert!(
            err.contains("as invstream-producer-lock:NAME 256 bytes"),
            "{err}"
        );
        // The gateway holds its name, the default one too.
        assert!(checked(&["serve", "--producer-name", &n(231)]).is_ok());
        let err = refused(&["serve", "--producer-name", &n(232)]);
        assert!(
            err.contains("as invstream-producer-lock:NAME 256 bytes"),
            "{err}"
        );
        assert!(checked(&["--stream", &n(215), "serve"]).is_ok());
        let err = refused(&["--stream", &n(216), "serve"]);
        assert!(
            err.contains("as invstream-producer-lock:invstream-STREAM-serve 256 bytes")
                && err.ends_with(", or give --producer-name"),
            "{err}"
        );
        assert!(refused(&["--stream", &n(240), "serve"]).contains("--stream"));
        // Consumer names, and those made of a prefix and a consumer.
        assert!(checked(&["consume", "--name", &n(255)]).is_ok());
        assert!(refused(&["consume", "--name", &n(256)]).contains("--name"));
        let err = refused(&["consume", "--consumers", "a,b", "--name", &n(254)]);
        assert!(err.contains("NAME-CONSUMER"), "{err}");
        assert!(refused(&["consume", "--consumers", &n(256)]).contains("--consumers"));
    }

    #[test]
    fn default_producer_names_on_a_super_stream_do_not_hold_its_name() {
        // invstream-TIME-PID on every partition: the longest super stream the broker keeps.
        assert!(checked(&["produce", "--super-stream", &n(231)]).is_ok());
        // The gateway's, invstream-STREAM-serve, held through its lock.
        assert!(checked(&["serve", "--super-stream", &n(215)]).is_ok());
        let err = refused(&["serve", "--super-stream", &n(216)]);
        assert!(
            err.contains("as invstream-producer-lock:invstream-STREAM-serve 256 bytes")
                && err.ends_with(", or give --producer-name"),
            "{err}"
        );
    }

    #[test]
    fn every_command_refuses_control_characters_in_its_own_names() {
        for (flag, args) in [
            ("--super-stream", &["produce", "--super-stream", "a\nb"][..]),
            ("--super-stream", &["consume", "--super-stream", "a\nb"]),
            ("--super-stream", &["serve", "--super-stream", "a\nb"]),
            ("--producer-name", &["serve", "--producer-name", "a\nb"]),
        ] {
            let err = refused(args);
            assert!(
                err.contains(&format!("{flag} 'a\\nb' holds the control character \\n")),
                "{args:?}: {err}"
            );
        }
    }

    #[test]
    fn control_characters_are_refused_and_never_printed_raw() {
        for args in [
            &["--stream", "a\nb", "consume"][..],
            &["produce", "--producer-name", "a\u{1b}[2Jb"],
            &["consume", "--name", "a\tb"],
            &["consume", "--consumers", "a,b\rc"],
            &[
                "produce",
                "--super-stream",
                "s",
                "--partition-keys",
                "a,b\u{7}",
            ],
        ] {
            let err = refused(args);
            assert!(err.contains("control character"), "{args:?}: {err}");
            assert!(!err.chars().any(char::is_control), "{args:?}: {err:?}");
        }
        let long = format!("{}\n", n(100));
        let err = refused(&["--stream", &long, "consume"]);
        assert!(err.contains(&format!("'{}…'", n(40))), "{err}");
    }
}
