//! The `uptime-ledger` binary: parses the command line, sets up logging and hands over to
//! the library. `anyhow` is used only here, at the edge.

mod cli;

use clap::Parser;

/// mimalloc instead of glibc's malloc: the rebuild, audit and ingest paths allocate many
/// small buffers on one thread and free them on another, which glibc's allocator handles
/// poorly (docs/decisions.md). The library leaves the choice to whoever links it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // Test builds only: fail points named in FAILPOINTS (see Cargo.toml's `failpoints`).
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    let args = cli::Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(args.default_log_filter())),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a redirected stderr gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match args.log_format {
        cli::LogFormat::Text => logs.init(),
        cli::LogFormat::Json => logs.json().init(),
    }
    cli::console::init(args.log_format == cli::LogFormat::Json);
    if args.log_format == cli::LogFormat::Json {
        // A panic is reported as one JSON line too (the default hook writes plain text),
        // with a backtrace when RUST_BACKTRACE asks for one.
        std::panic::set_hook(Box::new(|info| {
            let thread = std::thread::current();
            let backtrace = std::backtrace::Backtrace::capture();
            let backtrace = match backtrace.status() {
                std::backtrace::BacktraceStatus::Captured => format!("\n{backtrace}"),
                _ => String::new(),
            };
            cli::console::error(format_args!(
                "thread '{}' {info}{backtrace}",
                thread.name().unwrap_or("<unnamed>")
            ));
        }));
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            cli::console::error(format_args!("cannot start the async runtime: {error}"));
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            cli::console::error(format_args!("{error:#}"));
            std::process::ExitCode::FAILURE
        }
    }
}
