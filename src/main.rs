//! The `invstream` binary: parses the command line, sets up logs and the allocator, and hands
//! the command to [`invstream::run`].

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

/// Millions of small messages are built and freed per second: mimalloc does that with a
/// fraction of the system allocator's cost (see docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code for a command line that does not parse, as clap and most CLIs use.
const EXIT_USAGE: u8 = 2;

/// mimalloc's `purge_delay` option (its position in `mi_option_t`, in mimalloc 2 and 3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// A reader's chunks come and go every few milliseconds; mimalloc 3 keeps freed memory for 1 s
/// before returning it, so a fast replay held more of them resident the longer it ran (32 MB for
/// 100,000 updates, 62–81 MB for 10,000,000); after 10 ms (mimalloc 2's delay) it stays flat
/// (30 vs 39–43 MB). At 0 ms produce would pay ~40% more CPU, so only `consume` asks for it. Soon
/// purging is cheap because the client reuses its chunk and read buffers (vendor patches 0025,
/// 0026): with new buffers per chunk, every chunk would fault its pages back in.
fn return_freed_memory_soon() {
    // SAFETY: sets one of mimalloc's options; any value is valid for this one, at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 10) }
}

/// Logs on stderr, off unless `RUST_LOG` asks for them, e.g.
/// `RUST_LOG=invstream=debug,rabbitmq_stream_client=info`.
fn init_logs() {
    let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() else {
        return;
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours only for a terminal: a log file or a pipe gets plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// One line on stderr; nothing to do if stderr itself is gone.
fn say(line: &str) {
    let line = invstream::report::for_terminal(line);
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

fn main() -> ExitCode {
    let cli = match invstream::cli::Cli::try_parse_args(std::env::args_os()) {
        Ok(cli) => cli,
        // --help and --version print to stdout and succeed.
        Err(e) if !e.use_stderr() => match e.print() {
            Ok(()) => return ExitCode::SUCCESS,
            // `invstream --help | head -1`: the reader is gone, which is fine.
            Err(_) => return ExitCode::SUCCESS,
        },
        // Bare `invstream`: the help is the most useful answer.
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            return ExitCode::from(EXIT_USAGE);
        }
        Err(e) => {
            // One line, not clap's usage block: scripts and logs read errors line by line.
            let line = invstream::cli::usage_error::one_line(&e);
            say(&format!("invstream: error: {line} (see invstream --help)"));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    init_logs();
    if matches!(cli.command, invstream::cli::Command::Consume(_)) {
        return_freed_memory_soon();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            say(&format!(
                "invstream: error: cannot start the async runtime: {e}"
            ));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(invstream::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            say(&format!("invstream: error: {e:#}"));
            ExitCode::FAILURE
        }
    }
}
