//! `mock-upstream`: the mock provider as a process, for out-of-process tests and benchmarks.

use clap::Parser;
use mock_upstream::{MockConfig, MockUpstream};
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(about = "Mock OpenAI/Anthropic provider for Portcullis tests and benchmarks (loopback)")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:18080")]
    listen: SocketAddr,
    /// Content chunks per stream.
    #[arg(long, default_value_t = 8)]
    chunks: usize,
    /// Wait before each stream chunk, milliseconds.
    #[arg(long, default_value_t = 0)]
    chunk_delay_ms: u64,
    /// Wait before each response head, milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Require this provider key (Authorization: Bearer or x-api-key).
    #[arg(long)]
    expected_key: Option<String>,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let config = MockConfig {
            chunks: args.chunks,
            chunk_delay: Duration::from_millis(args.chunk_delay_ms),
            latency: Duration::from_millis(args.latency_ms),
            expected_key: args.expected_key,
            ..MockConfig::default()
        };
        let mock = match MockUpstream::start(args.listen, config).await {
            Ok(m) => m,
            Err(e) => {
                eprintln!("error: cannot listen on {}: {e}", args.listen);
                return std::process::ExitCode::FAILURE;
            }
        };
        println!("mock-upstream listening on {}", mock.base_url());
        let _ = std::io::stdout().flush();
        wait_for_signal().await;
        mock.shutdown().await;
        std::process::ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
