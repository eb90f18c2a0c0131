//! `hookline-bench`: see bench/README.md.

use std::process::ExitCode;

use clap::Parser as _;
use hookline_bench::cli::{Cli, Command};

/// jemalloc, as in `hookline`: what the bench spends is taken from the stage it measures.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Receiver(args)) => runtime(Some(args.threads)).and_then(|runtime| {
            runtime
                .block_on(hookline_bench::receiver::run(
                    args.addr,
                    &args.secret,
                    args.tls_ca.as_deref(),
                    args.track_ids,
                ))
                .map(|()| ExitCode::SUCCESS)
        }),
        Some(Command::Stage(args)) => runtime(None).and_then(|runtime| {
            runtime
                .block_on(hookline_bench::stage::run(args))
                .map(|()| ExitCode::SUCCESS)
        }),
        Some(Command::Store(args)) => hookline_bench::store::run(&args).map(|()| ExitCode::SUCCESS),
        Some(Command::Console(args)) => runtime(None).and_then(|runtime| {
            runtime
                .block_on(hookline_bench::console::run(args))
                .map(|()| ExitCode::SUCCESS)
        }),
        Some(Command::Faults(args)) => {
            runtime(None).and_then(|runtime| runtime.block_on(hookline_bench::faults::run(args)))
        }
        Some(Command::Run(args)) => {
            runtime(None).and_then(|runtime| runtime.block_on(hookline_bench::run::run(args)))
        }
        None => {
            runtime(None).and_then(|runtime| runtime.block_on(hookline_bench::run::run(cli.run)))
        }
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime(threads: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(threads) = threads {
        builder.worker_threads(threads.max(1));
    }
    Ok(builder.build()?)
}
