//! The `invstream` binary: parses the command line and hands it to [`invstream::run`].

use std::process::ExitCode;

use clap::Parser;

/// Millions of small messages are built and freed per second: mimalloc does that with a
/// fraction of the system allocator's cost (see docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code for a command line that does not parse, as clap and most CLIs use.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = match invstream::cli::Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version print to stdout and succeed.
        Err(e) if !e.use_stderr() => e.exit(),
        // Bare `invstream`: the help is the most useful answer.
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            e.exit()
        }
        Err(e) => {
            // One line, not clap's usage block: scripts and logs read errors line by line.
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("invstream: error: {first} (see invstream --help)");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("invstream: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(invstream::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("invstream: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
