//! The `invstream` binary: parses the command line and hands it to [`invstream::run`].

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = invstream::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
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
