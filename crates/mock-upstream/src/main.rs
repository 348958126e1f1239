//! `mock-upstream`: the mock provider as a process, for out-of-process tests
//! and benchmarks. Prints one ready line on stdout so scripts can wait for it.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use mock_upstream::{MockConfig, MockUpstream};

/// Mock OpenAI/Anthropic upstream for Portcullis tests and benchmarks.
///
/// Faults are chosen per request with the model name or the `x-mock-fault`
/// header (mock-error-400/401/429/500/503, mock-stall, mock-stall-stream,
/// mock-disconnect); pacing with `x-mock-latency-ms`, `x-mock-chunk-delay-ms`
/// and `x-mock-chunks`. The answer echoes the last user text, or is the
/// `x-mock-answer` header's text when one is sent.
#[derive(Debug, Parser)]
#[command(name = "mock-upstream", version)]
struct Args {
    /// Address to listen on (port 0 picks a free port; the ready line shows it).
    #[arg(long, default_value = "127.0.0.1:18080")]
    listen: SocketAddr,
    /// Content chunks per streamed reply.
    #[arg(long, default_value_t = 8)]
    chunks: usize,
    /// Wait before each SSE event, in milliseconds.
    #[arg(long, default_value_t = 0)]
    chunk_delay_ms: u64,
    /// Wait before each response head, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Require this provider key (`Authorization: Bearer` or `x-api-key`).
    #[arg(long)]
    expected_key: Option<String>,
    /// Requests kept for `GET /__mock/requests` (0 disables recording).
    #[arg(long, default_value_t = 1000)]
    record_limit: usize,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("mock-upstream: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("mock-upstream: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> std::io::Result<()> {
    let config = MockConfig {
        chunks: args.chunks,
        chunk_delay: Duration::from_millis(args.chunk_delay_ms),
        latency: Duration::from_millis(args.latency_ms),
        expected_key: args.expected_key,
        record_limit: args.record_limit,
    };
    let mock = MockUpstream::start(args.listen, config)
        .await
        .map_err(|err| {
            std::io::Error::new(
                err.kind(),
                format!("cannot listen on {}: {err}", args.listen),
            )
        })?;
    // Handlers go in before the ready line: a caller may signal as soon as it reads it.
    let signals = Signals::install()?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "mock-upstream listening on http://{}", mock.addr())?;
        stdout.flush()?;
    }
    let signal = signals.wait().await;
    mock.shutdown().await;
    signal
}

#[cfg(unix)]
struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    async fn wait(mut self) -> std::io::Result<()> {
        tokio::select! {
            _ = self.terminate.recv() => Ok(()),
            _ = self.interrupt.recv() => Ok(()),
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn install() -> std::io::Result<Self> {
        Ok(Signals)
    }

    async fn wait(self) -> std::io::Result<()> {
        tokio::signal::ctrl_c().await
    }
}
