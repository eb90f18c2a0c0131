//! The `hookline` command: parses the command line and runs the library.

use clap::Parser;

/// jemalloc: per event, the processor spends a fifth less CPU than with glibc's allocator.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    hookline::cli::main(hookline::cli::Cli::parse())
}
