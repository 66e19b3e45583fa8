//! The `omnid` command line. Thin: parses arguments, sets up logging, and calls into the
//! library (`omnid::cli`).

use std::process::ExitCode;

fn main() -> ExitCode {
    omnid::cli::init_logging();
    match omnid::cli::run(std::env::args_os()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
