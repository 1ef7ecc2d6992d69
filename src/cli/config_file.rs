//! The config file: TOML whose keys are the options' long names, the global options at the top
//! and a table per command (`[produce]`, `[streams.info]`). Its values become the options'
//! defaults before the command line is parsed, so the command line and the environment win
//! over it without a rule of their own. Everything wrong in it is a usage error (exit 2) in one
//! line that names the file and the key.

use std::path::{Path, PathBuf};

use clap::error::ErrorKind;
use clap::{Arg, ArgAction, Command};

use super::environment::is_option;

/// The most a config file holds: a few hundred lines are plenty.
const MAX_CONFIG_FILE_BYTES: u64 = 1 << 20;

/// A config file, read and parsed (its values are checked when applied to the command).
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub path: PathBuf,
    table: toml::Table,
}

/// Where the config file is: `--config FILE` or `INVSTREAM_CONFIG` (it must exist), else the
/// XDG default (read only when it exists), or none where no home is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub path: PathBuf,
    pub explicit: bool,
}

impl Location {
    /// `raw_args` (the program first) and the environment through `var`.
    pub fn find(
        raw_args: &[std::ffi::OsString],
        var: impl Fn(&str) -> Option<std::ffi::OsString>,
    ) -> Option<Location> {
        let explicit = |path: PathBuf| Location {
            path,
            explicit: true,
        };
        if let Some(path) = config_argument(raw_args) {
            return Some(explicit(path));
        }
        let set = |name: &str| var(name).filter(|v| !v.is_empty());
        if let Some(path) = set("INVSTREAM_CONFIG") {
            return Some(explicit(path.into()));
        }
        // XDG: a relative XDG_CONFIG_HOME is invalid and ignored.
        let base = set("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| set("HOME").map(|home| PathBuf::from(home).join(".config")))?;
        Some(Location {
            path: base.join("invstream").join("config.toml"),
            explicit: false,
        })
    }

    /// The file, or `None` for a default one that does not exist.
    pub fn read(&self) -> Result<Option<ConfigFile>, clap::Error> {
        let bytes = match crate::files::read_bounded(&self.path, MAX_CONFIG_FILE_BYTES) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !self.explicit => {
                return Ok(None)
            }
            Err(e) => {
                let what_to_do = match self.explicit {
                    true => "fix the path given by --config or INVSTREAM_CONFIG",
                    false => "make it readable or move it away",
                };
                return Err(config_error(
                    &self.path,
                    format!("cannot read it: {e}; {what_to_do}"),
                ));
            }
        };
        let text = String::from_utf8(bytes)
            .map_err(|_| config_error(&self.path, "not UTF-8 text; TOML files are UTF-8"))?;
        ConfigFile::parse(&self.path, &text).map(Some)
    }
}

/// The value of `--config FILE` or `--config=FILE` (the last given, as clap takes it), before
/// clap parses: the file gives clap its defaults. Nothing after `--` is an option.
fn config_argument(raw_args: &[std::ffi::OsString]) -> Option<PathBuf> {
    let mut found = None;
    let mut args = raw_args.iter().skip(1);
    while let Some(arg) = args.next() {
        let Some(arg) = arg.to_str() else { continue };
        if arg == "--" {
            break;
        }
        if arg == "--config" {
            found = args.next().map(PathBuf::from);
        } else if let Some(path) = arg.strip_prefix("--config=") {
            found = Some(PathBuf::from(path));
        }
    }
    found
}

impl ConfigFile {
    pub fn parse(path: &Path, text: &str) -> Result<ConfigFile, clap::Error> {
        let table: toml::Table = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|span| format!("line {}: ", text[..span.start].lines().count().max(1)));
            config_error(
                path,
                format!(
                    "{}not valid TOML: {}",
                    line.unwrap_or_default(),
                    e.message().trim()
                ),
            )
        })?;
        Ok(ConfigFile {
            path: path.to_path_buf(),
            table,
        })
    }

    /// `command` (unbuilt, with its environment variables) with this file's values as defaults.
    pub fn apply(&self, command: Command) -> Result<Command, clap::Error> {
        let globals: Vec<String> = command
            .get_arguments()
            .filter_map(|a| a.get_long().map(str::to_string))
            .collect();
        self.apply_table(command, &self.table, &[], &globals)
    }

    fn apply_table(
        &self,
        mut command: Command,
        table: &toml::Table,
        path: &[&str],
        globals: &[String],
    ) -> Result<Command, clap::Error> {
        for (key, value) in table {
            let key_path: Vec<&str> = path.iter().copied().chain([key.as_str()]).collect();
            let option = command
                .get_arguments()
                .find(|a| is_option(a) && a.get_long() == Some(key.as_str()))
                .cloned();
            if let Some(arg) = option {
                let values = self.values(&arg, value, &key_path)?;
                command = command.mut_arg(arg.get_id().clone(), |arg| with_defaults(arg, values));
                continue;
            }
            let (Some(_), toml::Value::Table(inner)) = (command.find_subcommand(key), value) else {
                return Err(self.unknown_key(&command, key, value, path, globals));
            };
            let mut failed = None;
            command = command.mut_subcommand(key, |sub| {
                match self.apply_table(sub.clone(), inner, &key_path, globals) {
                    Ok(sub) => sub,
                    Err(e) => {
                        failed = Some(e);
                        sub
                    }
                }
            });
            if let Some(e) = failed {
                return Err(e);
            }
        }
        Ok(command)
    }

    /// The strings clap would have been given for `value`, each checked by the option's parser.
    fn values(
        &self,
        arg: &Arg,
        value: &toml::Value,
        key_path: &[&str],
    ) -> Result<Vec<String>, clap::Error> {
        let wrong = |reason: String| self.key_error(key_path, reason);
        if matches!(arg.get_action(), ArgAction::SetTrue) {
            return match value {
                toml::Value::Boolean(b) => Ok(vec![b.to_string()]),
                other => Err(wrong(format!(
                    "is a flag: write true or false, not {}",
                    other.type_str()
                ))),
            };
        }
        let many =
            matches!(arg.get_action(), ArgAction::Append) || arg.get_value_delimiter().is_some();
        let values: Vec<String> = match value {
            toml::Value::Array(items) if many => items
                .iter()
                .map(|item| scalar(item).ok_or_else(|| wrong(takes("a list of values", item))))
                .collect::<Result<_, _>>()?,
            toml::Value::Array(_) => {
                return Err(wrong(
                    "takes one value, not a list (only repeatable options take lists)".into(),
                ))
            }
            other => vec![scalar(other).ok_or_else(|| wrong(takes("a value", other)))?],
        };
        for value in &values {
            check_value(arg, value).map_err(|reason| wrong(format!("= {value:?}: {reason}")))?;
        }
        Ok(values)
    }

    fn unknown_key(
        &self,
        command: &Command,
        key: &str,
        value: &toml::Value,
        path: &[&str],
        globals: &[String],
    ) -> clap::Error {
        let key_path: Vec<&str> = path.iter().copied().chain([key]).collect();
        let dashed = key.replace('_', "-");
        let hint = if command.find_subcommand(key).is_some() {
            format!(
                "is a command: its options go in a table, [{}], not {}",
                key_path.join("."),
                value.type_str()
            )
        } else if key == "password" {
            "is not read from a config file: put the password in a file named by password-file, or in INVSTREAM_PASSWORD".into()
        } else if dashed != key
            && command
                .get_arguments()
                .any(|a| a.get_long() == Some(dashed.as_str()))
        {
            format!("is unknown: write {dashed} (the option's long name)")
        } else if !path.is_empty() && globals.iter().any(|g| *g == key) {
            "is a global option: put it at the top of the file, above the first [table]".into()
        } else if path.is_empty() {
            "is unknown: the top level holds global options (uri, stream, retry-for, …) and a [COMMAND] table per command".into()
        } else {
            format!(
                "is unknown: the keys of [{}] are the long names of invstream {} --help's options",
                path.join("."),
                path.join(" ")
            )
        };
        self.key_error(&key_path, hint)
    }

    fn key_error(&self, key_path: &[&str], reason: String) -> clap::Error {
        config_error(&self.path, format!("key {} {reason}", key_path.join(".")))
    }
}

/// `"takes a value, not a table"`, for a TOML value that cannot be one.
fn takes(what: &str, value: &toml::Value) -> String {
    format!("takes {what}, not {}", value.type_str())
}

/// A TOML scalar as clap would see it typed; `None` for a table, list or boolean (only flags
/// take those).
fn scalar(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Datetime(d) => Some(d.to_string()),
        toml::Value::Boolean(_) | toml::Value::Array(_) | toml::Value::Table(_) => None,
    }
}

/// Whether `arg`'s parser takes `value`, tried on an option alone (the real one's relations
/// name options a lone command does not have), so a bad value is named with its file and key.
fn check_value(arg: &Arg, value: &str) -> Result<(), String> {
    let long = arg.get_long().unwrap_or("value").to_string();
    let trial = Arg::new("value")
        .long(long.clone())
        .action(ArgAction::Set)
        .allow_hyphen_values(true)
        .value_parser(arg.get_value_parser().clone());
    Command::new("invstream")
        .no_binary_name(true)
        .arg(trial)
        .try_get_matches_from([format!("--{long}={value}")])
        .map(|_| ())
        .map_err(|e| {
            let line = super::usage_error::flatten(&e);
            // "invalid value '0' for '--count <value>': 0 is not in …": the value is named
            // before it already.
            match line.split_once("': ") {
                Some((_, reason)) if line.starts_with("invalid value") => reason.to_string(),
                _ => line,
            }
        })
}

/// `arg` defaulting to `values` (a flag to "true" or "false"). Help shows a default from the
/// file, except a URI's, which may hold a password.
fn with_defaults(arg: Arg, values: Vec<String>) -> Arg {
    let may_hold_a_password = matches!(arg.get_long(), Some("uri" | "management-url"));
    arg.default_values(values)
        .hide_default_value(may_hold_a_password)
}

/// A usage error (exit 2) about the config file, in one line.
fn config_error(path: &Path, message: impl std::fmt::Display) -> clap::Error {
    clap::Error::raw(
        ErrorKind::InvalidValue,
        format!("config file {}: {message}\n", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{environment::with_environment_variables, Cli, Command as Sub};
    use clap::{CommandFactory, FromArgMatches};

    fn parse_with(config: &str, args: &[&str]) -> Result<Cli, String> {
        let file = ConfigFile::parse(Path::new("/etc/test.toml"), config)
            .map_err(|e| super::super::usage_error::flatten(&e))?;
        // Without variables: a developer's INVSTREAM_* would change what these tests see.
        let command = file
            .apply(Cli::command())
            .map_err(|e| super::super::usage_error::flatten(&e))?;
        let matches = command
            .try_get_matches_from(std::iter::once(&"invstream").chain(args))
            .map_err(|e| super::super::usage_error::flatten(&e))?;
        Cli::from_arg_matches(&matches).map_err(|e| e.to_string())
    }

    fn produce_count(cli: &Cli) -> u64 {
        match &cli.command {
            Sub::Produce(p) => p.count,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn values_become_defaults_the_command_line_beats() {
        let config = r#"
            uri = ["rabbitmq-stream://a@h1:5552/%2f", "rabbitmq-stream://a@h2:5552/%2f"]
            retry-for = "5s"
            json = true
            [produce]
            count = 77
            compression = "zstd"
            sub-entry-size = 10
            partition-keys = ["AMS-1", "BER-2"]
            super-stream = "s"
            [consume]
            count = 5
            [streams.info]
            consumer = ["stats", "email"]
        "#;
        let cli = parse_with(config, &["produce"]).unwrap();
        assert_eq!(produce_count(&cli), 77);
        assert_eq!(cli.global.uri.len(), 2);
        assert_eq!(cli.global.retry_for, std::time::Duration::from_secs(5));
        assert!(cli.global.json);
        let Sub::Produce(p) = &cli.command else {
            unreachable!()
        };
        assert_eq!(p.partition_keys, ["AMS-1", "BER-2"]);
        assert_eq!(p.layout.sub_entry_size, 10);
        let cli = parse_with(config, &["produce", "--count", "3"]).unwrap();
        assert_eq!(produce_count(&cli), 3);
        let cli = parse_with(config, &["consume"]).unwrap();
        let Sub::Consume(c) = &cli.command else {
            unreachable!()
        };
        assert_eq!(c.count, Some(5));
        let cli = parse_with(config, &["streams", "info", "x"]).unwrap();
        let Sub::Streams(s) = &cli.command else {
            unreachable!()
        };
        let crate::cli::StreamsAction::Info(info) = &s.action else {
            unreachable!()
        };
        assert_eq!(info.consumer, ["stats", "email"]);
    }

    #[test]
    fn mistakes_are_named_with_the_file_and_the_key() {
        for (config, expected) in [
            ("[produce]\ncont = 5", "key produce.cont is unknown"),
            (
                "[produce]\ncount = \"many\"",
                "key produce.count = \"many\"",
            ),
            (
                "[produce]\ncount = 0",
                "key produce.count = \"0\": 0 is not in 1..=",
            ),
            (
                "[produce]\ncount = [1, 2]",
                "key produce.count takes one value",
            ),
            (
                "[produce]\nfilter-values = 1",
                "is a flag: write true or false",
            ),
            ("[produce]\nbatch_size = 5", "write batch-size"),
            (
                "[produce]\nuri = \"x\"",
                "key produce.uri is a global option",
            ),
            ("produce = 5", "key produce is a command"),
            ("password = \"pw\"", "put the password in a file"),
            ("colour = true", "key colour is unknown"),
            (
                "[streams.info]\nyes = true",
                "invstream streams info --help",
            ),
            (
                "[produce]\ncompression = \"brotli\"",
                "key produce.compression = \"brotli\"",
            ),
            ("count = ", "line 1: not valid TOML"),
        ] {
            let err = parse_with(config, &["produce"]).unwrap_err();
            assert!(err.contains("config file /etc/test.toml: "), "{err}");
            assert!(err.contains(expected), "{config:?}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn the_file_is_found_by_flag_variable_or_xdg() {
        let args = |a: &[&str]| {
            a.iter()
                .map(Into::into)
                .collect::<Vec<std::ffi::OsString>>()
        };
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.into())
        };
        let at = |path: &str, explicit| {
            Some(Location {
                path: path.into(),
                explicit,
            })
        };
        let home = env(&[("HOME", "/home/u")]);
        assert_eq!(
            Location::find(&args(&["invstream", "produce"]), home),
            at("/home/u/.config/invstream/config.toml", false)
        );
        let xdg = env(&[("HOME", "/home/u"), ("XDG_CONFIG_HOME", "/x")]);
        assert_eq!(
            Location::find(&args(&["invstream"]), xdg),
            at("/x/invstream/config.toml", false)
        );
        let variable = env(&[("HOME", "/home/u"), ("INVSTREAM_CONFIG", "/c.toml")]);
        assert_eq!(
            Location::find(&args(&["invstream"]), variable),
            at("/c.toml", true)
        );
        assert_eq!(
            Location::find(
                &args(&["invstream", "produce", "--config=/a.toml"]),
                variable
            ),
            at("/a.toml", true)
        );
        assert_eq!(
            Location::find(
                &args(&["invstream", "--config", "/b.toml", "produce"]),
                home
            ),
            at("/b.toml", true)
        );
        assert_eq!(Location::find(&args(&["invstream"]), env(&[])), None);
    }

    #[test]
    fn only_a_missing_default_file_is_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("config.toml");
        let default = Location {
            path: missing.clone(),
            explicit: false,
        };
        assert!(default.read().unwrap().is_none());
        let explicit = Location {
            path: missing,
            explicit: true,
        };
        let err = super::super::usage_error::flatten(&explicit.read().unwrap_err());
        assert!(
            err.contains("cannot read it") && err.contains("--config"),
            "{err}"
        );
    }

    /// The variables are applied first and the file's defaults after: both on one command.
    #[test]
    fn the_file_applies_to_the_command_with_variables() {
        let file = ConfigFile::parse(Path::new("c.toml"), "[bench]\nproducers = 2").unwrap();
        let command = file
            .apply(with_environment_variables(Cli::command()))
            .unwrap();
        let producers = command
            .find_subcommand("bench")
            .unwrap()
            .get_arguments()
            .find(|a| a.get_long() == Some("producers"))
            .unwrap();
        assert_eq!(producers.get_default_values(), ["2"]);
        assert!(producers.get_env().is_some());
    }
}
