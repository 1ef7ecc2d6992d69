//! clap's errors as one line: scripts and logs read errors line by line, and clap's own
//! rendering puts what matters (the conflicting flags, the missing ones, "did you mean",
//! the `--` tip for a negative number) on the lines after the first. A value that came from an
//! environment variable is named as such, not as a flag the user never typed.

use clap::error::{ContextKind, ContextValue, Error, ErrorKind};
use clap::CommandFactory;

use super::Cli;

/// `e` in one line, without clap's `error: ` prefix and usage block; a value that came from an
/// environment variable says so.
pub fn one_line(e: &Error) -> String {
    let line = flatten(e);
    match value_from_environment(e) {
        Some(from_env) => {
            format!("{line} (the value comes from the environment variable {from_env})")
        }
        None => line,
    }
}

/// `e` in one line, as clap says it.
pub fn flatten(e: &Error) -> String {
    let rendered = e.render().to_string();
    let mut line = String::new();
    let mut tips = Vec::new();
    let mut listed = Vec::new();
    for text in rendered.lines().map(str::trim) {
        if text.starts_with("Usage:") || text.starts_with("For more information") {
            break;
        }
        if text.is_empty() {
            continue;
        }
        if line.is_empty() {
            line = text.strip_prefix("error: ").unwrap_or(text).to_string();
        } else if let Some(tip) = text.strip_prefix("tip: ") {
            tips.push(tip.to_string());
        } else {
            listed.push(text.to_string());
        }
    }
    if line.is_empty() {
        line = "invalid arguments".to_string();
    }
    if !listed.is_empty() {
        let sep = if line.ends_with(':') { " " } else { ": " };
        line = format!("{line}{sep}{}", listed.join(", "));
    }
    if let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) {
        if e.kind() == ErrorKind::UnknownArgument && is_negative_number(arg) && tips.is_empty() {
            tips.push(format!(
                "a value that starts with '-' goes after '=': --FLAG={arg}"
            ));
        }
    }
    for tip in tips {
        line = format!("{line}; {tip}");
    }
    line
}

fn is_negative_number(arg: &str) -> bool {
    arg.strip_prefix('-')
        .is_some_and(|n| !n.is_empty() && n.parse::<f64>().is_ok())
}

/// The environment variable behind the flag `e` is about, when the flag was not on the command
/// line but its variable is set: of the commands with that flag, the one the command line names.
fn value_from_environment(e: &Error) -> Option<String> {
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let long = arg.strip_prefix("--")?.split([' ', '=']).next()?;
    let typed: Vec<String> = std::env::args().skip(1).collect();
    if typed
        .iter()
        .any(|a| *a == format!("--{long}") || a.starts_with(&format!("--{long}=")))
    {
        return None;
    }
    let command = super::environment::with_environment_variables(Cli::command());
    let mut candidates = Vec::new();
    variables_of(&command, long, &[], &mut candidates);
    candidates
        .into_iter()
        .filter(|(path, env)| {
            std::env::var_os(env).is_some() && path.iter().all(|c| typed.contains(c))
        })
        .max_by_key(|(path, _)| path.len())
        .map(|(_, env)| env)
}

/// The variables of option `--long` wherever it is (the command path, the variable).
fn variables_of(
    command: &clap::Command,
    long: &str,
    path: &[String],
    out: &mut Vec<(Vec<String>, String)>,
) {
    for arg in command.get_arguments() {
        if let (Some(l), Some(env)) = (arg.get_long(), arg.get_env()) {
            if l == long {
                out.push((path.to_vec(), env.to_string_lossy().into_owned()));
            }
        }
    }
    for sub in command.get_subcommands() {
        let path: Vec<String> = path
            .iter()
            .cloned()
            .chain([sub.get_name().into()])
            .collect();
        variables_of(sub, long, &path, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn error_of(args: &[&str]) -> String {
        let e = Cli::try_parse_from([&["invstream"], args].concat()).unwrap_err();
        one_line(&e)
    }

    #[test]
    fn conflicts_name_every_flag_in_the_one_line() {
        let line = error_of(&["consume", "--follow", "--count", "5", "--duration", "1s"]);
        assert!(
            line.contains("--follow") && line.contains("--count"),
            "{line}"
        );
        assert!(!line.contains('\n'), "{line}");
        assert!(!line.trim_end().ends_with(':'), "{line}");
    }

    #[test]
    fn a_missing_required_flag_is_named() {
        let line = error_of(&["produce", "--resume"]);
        assert!(line.contains("--producer-name"), "{line}");
        assert!(!line.trim_end().ends_with(':'), "{line}");
    }

    #[test]
    fn a_misspelt_flag_gets_did_you_mean_and_a_negative_number_the_dash_dash_tip() {
        let line = error_of(&["produce", "--cont", "5"]);
        assert!(line.contains("'--count'"), "{line}");
        let line = error_of(&["produce", "--count", "-5"]);
        assert!(line.contains("-5") && line.contains("--"), "{line}");
        assert!(!line.contains('\n'), "{line}");
    }
}
