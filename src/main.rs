//! The `hookline` command: parses the command line and runs the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    hookline::cli::main(hookline::cli::Cli::parse())
}
