//! An environment variable for every option, named from where the option sits, so a new option
//! gets one without anyone writing it down: `INVSTREAM_<LONG>` for the global options and
//! `INVSTREAM_<COMMAND>_<LONG>` for a command's (`INVSTREAM_STREAMS_INFO_CONSUMER` below a
//! nested command): `--count` means one thing to produce and another to consume, so they never
//! share one. A variable named in the derive (`INVSTREAM_SERVE_TOKENS_FILE`, older than this
//! scheme) is kept as it is.

use clap::builder::BoolishValueParser;
use clap::{Arg, ArgAction, Command};

/// What every variable starts with.
const PREFIX: &str = "INVSTREAM";

/// Not an option (a password on the command line would show in `ps` and shell history): read
/// by the settings, beside `--password-file`.
pub const PASSWORD_VARIABLE: &str = "INVSTREAM_PASSWORD";

/// The variable of option `--long` of the command at `commands` (none for a global option).
pub fn variable_name(commands: &[&str], long: &str) -> String {
    std::iter::once(PREFIX)
        .chain(commands.iter().copied())
        .chain([long])
        .collect::<Vec<_>>()
        .join("_")
        .to_ascii_uppercase()
        .replace('-', "_")
}

/// `command` (unbuilt, as `Cli::command()` gives it) with a variable on every option, its value
/// never shown in help (a URI holds a password), and flags that take true/false/1/0 from it.
pub fn with_environment_variables(command: Command) -> Command {
    name_options(command, &[])
}

/// Every variable the program reads, the password's included (tests clear them).
pub fn variables() -> Vec<String> {
    fn collect(command: &Command, names: &mut Vec<String>) {
        for arg in command.get_arguments() {
            if let Some(env) = arg.get_env() {
                names.push(env.to_string_lossy().into_owned());
            }
        }
        for sub in command.get_subcommands() {
            collect(sub, names);
        }
    }
    let mut names = vec![PASSWORD_VARIABLE.to_string()];
    collect(
        &with_environment_variables(<super::Cli as clap::CommandFactory>::command()),
        &mut names,
    );
    names.sort();
    names.dedup();
    names
}

/// Whether `arg` is an option a user sets: a long name, and not `--help` or `--version`
/// (positional arguments are what a command is about, not settings).
pub fn is_option(arg: &Arg) -> bool {
    arg.get_long().is_some()
        && !matches!(
            arg.get_action(),
            ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
        )
}

fn name_options(command: Command, path: &[String]) -> Command {
    let commands: Vec<&str> = path.iter().map(String::as_str).collect();
    let command = command.mut_args(|arg| name_option(arg, &commands));
    let subcommands: Vec<String> = command
        .get_subcommands()
        .map(|sub| sub.get_name().to_string())
        .collect();
    subcommands.into_iter().fold(command, |command, name| {
        let path: Vec<String> = path.iter().cloned().chain([name.clone()]).collect();
        command.mut_subcommand(&name, |sub| name_options(sub, &path))
    })
}

fn name_option(arg: Arg, commands: &[&str]) -> Arg {
    if !is_option(&arg) {
        return arg;
    }
    // clap's own parser for flags takes only true/false; `INVSTREAM_JSON=1` is as common.
    let arg = match arg.get_action() {
        ArgAction::SetTrue => arg.value_parser(BoolishValueParser::new()),
        _ => arg,
    };
    let arg = match (arg.get_env(), arg.get_long()) {
        (None, Some(long)) => {
            let name = variable_name(commands, long);
            arg.env(name)
        }
        _ => arg,
    };
    // `[env: NAME]`, never `[env: NAME=VALUE]` (nor `[env: NAME=]` when unset).
    arg.hide_env_values(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::CommandFactory;
    use std::collections::BTreeMap;

    /// Every option of every command and where it sits, the global ones once (unbuilt).
    fn options(command: &Command, path: &[String], out: &mut Vec<(Vec<String>, Arg)>) {
        for arg in command.get_arguments().filter(|a| is_option(a)) {
            out.push((path.to_vec(), arg.clone()));
        }
        for sub in command.get_subcommands() {
            let path: Vec<String> = path
                .iter()
                .cloned()
                .chain([sub.get_name().into()])
                .collect();
            options(sub, &path, out);
        }
    }

    #[test]
    fn names_follow_the_command_path() {
        assert_eq!(variable_name(&[], "retry-for"), "INVSTREAM_RETRY_FOR");
        assert_eq!(
            variable_name(&["produce"], "count"),
            "INVSTREAM_PRODUCE_COUNT"
        );
        assert_eq!(
            variable_name(&["streams", "info"], "consumer"),
            "INVSTREAM_STREAMS_INFO_CONSUMER"
        );
    }

    /// Every option has a variable; each variable belongs to one option, except those named in
    /// the derive for options that mean the same on sibling commands (`--management-url`).
    #[test]
    fn every_option_has_its_own_variable() {
        let mut all = Vec::new();
        options(&with_environment_variables(Cli::command()), &[], &mut all);
        let explicit: Vec<String> = {
            let mut plain = Vec::new();
            options(&Cli::command(), &[], &mut plain);
            plain
                .iter()
                .filter_map(|(_, a)| a.get_env())
                .map(|e| e.to_string_lossy().into_owned())
                .collect()
        };
        let mut owners: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (path, arg) in &all {
            let long = arg.get_long().unwrap();
            let env = arg
                .get_env()
                .unwrap_or_else(|| panic!("{path:?} --{long} has no variable"))
                .to_string_lossy()
                .into_owned();
            assert!(arg.is_hide_env_values_set(), "{path:?} --{long}");
            owners
                .entry(env)
                .or_default()
                .push(format!("{} --{long}", path.join(" ")));
        }
        for (env, owned_by) in &owners {
            if !explicit.contains(env) {
                assert_eq!(owned_by.len(), 1, "{env} is shared by {owned_by:?}");
            }
        }
        // The names users already have in scripts are kept.
        for (env, owner) in [
            ("INVSTREAM_URI", " --uri"),
            ("INVSTREAM_STREAM", " --stream"),
            ("INVSTREAM_MANAGEMENT_URL", "streams list --management-url"),
            ("INVSTREAM_BASELINE_DIR", "bench --baseline-dir"),
            ("INVSTREAM_SERVE_TOKENS_FILE", "serve --auth-token-file"),
            ("INVSTREAM_PRODUCE_COUNT", "produce --count"),
            ("INVSTREAM_CONSUME_COUNT", "consume --count"),
            ("INVSTREAM_RETRY_FOR", " --retry-for"),
            ("INVSTREAM_CONFIG", " --config"),
            ("INVSTREAM_PASSWORD_FILE", " --password-file"),
            ("INVSTREAM_STREAMS_DELETE_YES", "streams delete --yes"),
        ] {
            let owned_by = owners.get(env).unwrap_or_else(|| panic!("{env}"));
            assert!(owned_by.iter().any(|o| o == owner), "{env}: {owned_by:?}");
        }
        assert!(all.len() > 80, "only {} options", all.len());
        let names = variables();
        assert!(names.iter().any(|n| n == PASSWORD_VARIABLE));
        assert!(!names
            .iter()
            .any(|n| n.ends_with("_HELP") || n.ends_with("_VERSION")));
    }

    /// Help names the variable of each option of each command, without its value.
    #[test]
    fn help_names_each_commands_variables() {
        let mut command = with_environment_variables(Cli::command());
        // Built, so the global options are produce's too.
        command.build();
        let produce = command
            .find_subcommand_mut("produce")
            .unwrap()
            .render_long_help()
            .to_string();
        for name in [
            "[env: INVSTREAM_PRODUCE_COUNT]",
            "[env: INVSTREAM_URI]",
            "[env: INVSTREAM_PASSWORD_FILE]",
            "[env: INVSTREAM_JSON]",
        ] {
            assert!(produce.contains(name), "{name} in {produce}");
        }
        assert!(!produce.contains("=]"), "{produce}");
    }

    /// A flag's variable takes true/false/1/0 (and clap's yes/no/on/off), nothing else: it is
    /// read through the flag's parser, tried here on an option that takes a value.
    #[test]
    fn flags_take_boolish_values() {
        let json = with_environment_variables(Cli::command())
            .get_arguments()
            .find(|a| a.get_long() == Some("json"))
            .unwrap()
            .clone();
        let trial = Command::new("t").no_binary_name(true).arg(
            Arg::new("value")
                .long("value")
                .value_parser(json.get_value_parser().clone()),
        );
        let parse = |value: &str| {
            trial
                .clone()
                .try_get_matches_from([format!("--value={value}")])
                .map(|m| *m.get_one::<bool>("value").unwrap())
        };
        for (value, expected) in [("true", true), ("1", true), ("false", false), ("0", false)] {
            assert_eq!(parse(value).unwrap(), expected, "{value}");
        }
        assert!(parse("maybe").is_err());
    }
}
