//! `completions` and `man`: documents made from the clap definition itself (clap_complete,
//! clap_mangen), so they name every command and flag this binary has. Nothing connects.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::InvError;
use crate::report::Output;
use crate::settings::DocumentSettings;

/// The program the completions complete: the installed binary's name.
const BIN_NAME: &str = "invstream";

/// Writes the document: on stdout, or the man pages into their folder. A closed stdout
/// (`| head`) ends quietly, as for every command.
pub fn run(document: &DocumentSettings) -> anyhow::Result<ExitCode> {
    let text = match document {
        DocumentSettings::Completions(shell) => completions(*shell),
        DocumentSettings::ManPage { command } => man_page(command.as_deref())?,
        DocumentSettings::ManPages { out, quiet } => {
            let written = write_man_pages(out)?;
            let output = Output {
                json: false,
                quiet: *quiet,
                summary_to_stderr: false,
            };
            output.status(&format!(
                "wrote {} man pages to {}",
                written.len(),
                out.display()
            ));
            return Ok(ExitCode::SUCCESS);
        }
    };
    let output = Output {
        json: false,
        quiet: false,
        summary_to_stderr: false,
    };
    match output.document(&text) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(InvError::Output(format!(
            "cannot write the document: {e} (is the disk full, or the output closed?)"
        ))
        .into()),
    }
}

/// The completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> String {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), BIN_NAME, &mut script);
    String::from_utf8_lossy(&script).into_owned()
}

/// Every manual page: invstream(1) first, then one per command (invstream-produce(1), …), as
/// clap_mangen's `generate_to` makes them: the global flags on each, no `help` command.
fn man_pages() -> Vec<clap_mangen::Man> {
    // With every option's environment variable, as --help names them.
    let mut cli = crate::cli::environment::with_environment_variables(Cli::command())
        .disable_help_subcommand(true);
    cli.build();
    let commands: Vec<clap::Command> = cli
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .cloned()
        .collect();
    // Each page's footer names the build (clap_mangen would give a command's page no version).
    let source = format!("{BIN_NAME} {}", crate::build_info::VERSION);
    std::iter::once(cli)
        .chain(commands)
        .map(|command| clap_mangen::Man::new(command).source(source.clone()))
        .collect()
}

/// The roff page of `command` (settings checked the name), or invstream(1) for none.
pub fn man_page(command: Option<&str>) -> anyhow::Result<String> {
    let file = match command {
        Some(command) => format!("{BIN_NAME}-{command}.1"),
        None => format!("{BIN_NAME}.1"),
    };
    let page = man_pages()
        .into_iter()
        .find(|page| page.get_filename() == file)
        .ok_or_else(|| InvError::usage(format!("no man page for '{file}'")))?;
    let mut roff = Vec::new();
    page.render(&mut roff)?;
    Ok(String::from_utf8_lossy(&roff).into_owned())
}

/// Writes every page into `dir` (made if missing) and returns their paths.
pub fn write_man_pages(dir: &Path) -> Result<Vec<PathBuf>, InvError> {
    let cannot = |e: std::io::Error| {
        InvError::Output(format!(
            "cannot write the man pages to {}: {e}",
            dir.display()
        ))
    };
    std::fs::create_dir_all(dir).map_err(cannot)?;
    man_pages()
        .iter()
        .map(|page| page.generate_to(dir).map_err(cannot))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shell_completes_every_command() {
        let commands = crate::cli::command_names();
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
            clap_complete::Shell::PowerShell,
            clap_complete::Shell::Elvish,
        ] {
            let script = completions(shell);
            for command in &commands {
                assert!(script.contains(command.as_str()), "{shell}: {command}");
            }
            // A flag of a command, not only the commands' names.
            assert!(script.contains("batch-size"), "{shell}");
        }
    }

    /// The words bash offers after `invstream` (its first `opts="…"`, the one with --version).
    fn bash_top_level_words(script: &str) -> Vec<&str> {
        let line = script
            .lines()
            .map(str::trim_start)
            .find(|l| l.starts_with("opts=\"") && l.contains("--version"))
            .expect("a top-level opts line");
        line.trim_start_matches("opts=\"")
            .trim_end_matches('"')
            .split_whitespace()
            .collect()
    }

    #[test]
    fn bash_completes_every_command_and_the_flags_of_produce() {
        let script = completions(clap_complete::Shell::Bash);
        assert!(script.contains("complete -F _invstream"), "{script}");
        let words = bash_top_level_words(&script);
        for command in crate::cli::command_names() {
            assert!(words.contains(&command.as_str()), "{command}: {words:?}");
        }
        let produce = script
            .lines()
            .map(str::trim_start)
            .find(|l| l.starts_with("opts=\"") && l.contains("--producer-name"))
            .expect("produce's opts line");
        for flag in ["--count", "--resume", "--super-stream", "--uri"] {
            assert!(
                produce.split_whitespace().any(|w| w == flag),
                "{flag}: {produce}"
            );
        }
    }

    #[test]
    fn the_main_page_lists_every_command() {
        let page = man_page(None).unwrap();
        assert!(page.contains(".TH invstream 1"), "{page}");
        for command in crate::cli::command_names() {
            assert!(
                page.contains(&format!("invstream\\-{command}(1)")),
                "{command}: {page}"
            );
        }
        assert!(page.contains(crate::build_info::VERSION), "{page}");
    }

    #[test]
    fn the_produce_page_has_its_flags_and_the_global_ones() {
        let page = man_page(Some("produce")).unwrap();
        assert!(page.contains(".TH invstream-produce 1"), "{page}");
        assert!(page.contains(crate::build_info::VERSION), "{page}");
        for flag in [
            "batch\\-size",
            "producer\\-name",
            "resume",
            "uri",
            "retry\\-for",
        ] {
            assert!(page.contains(&format!("\\-\\-{flag}")), "{flag}: {page}");
        }
    }

    #[test]
    fn out_writes_a_page_per_command() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("man1");
        let written = write_man_pages(&out).unwrap();
        let mut names: Vec<String> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut expected: Vec<String> = crate::cli::command_names()
            .iter()
            .map(|c| format!("invstream-{c}.1"))
            .chain(["invstream.1".to_string()])
            .collect();
        expected.sort();
        assert_eq!(names, expected);
        let produce = std::fs::read_to_string(out.join("invstream-produce.1")).unwrap();
        assert!(produce.contains("\\-\\-batch\\-size"), "{produce}");
    }
}
