//! `portcullis serve`: bind, bootstrap, serve until SIGTERM/SIGINT, drain.

use super::init_logging;
use crate::bootstrap;
use crate::cli::{GlobalArgs, ServeArgs};
use anyhow::{Context, Result};
use portcullis_admin::{metrics::Metrics, AdminParts};
use portcullis_core::drain::Shutdown;
use portcullis_core::{Clock, SystemClock};
use std::net::SocketAddr;
use std::sync::Arc;

pub async fn run(global: &GlobalArgs, args: ServeArgs) -> Result<()> {
    let config = bootstrap::load_config(global, args.listen)?;
    init_logging(&config)?;
    let listen = config.listen;
    let drain_timeout = config.drain_timeout;
    let opened = bootstrap::open(config).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);

    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (is another process using it? set --listen or PORTCULLIS_LISTEN)"))?;
    let bound = listener.local_addr()?;
    let first_password =
        bootstrap::ensure_first_admin(&opened.store, &opened.config, clock.as_ref()).await?;
    let pid_file = PidFile::create(&opened.config.data_dir)?;

    let shutdown = Shutdown::new();
    let (router, _state) = portcullis_admin::build(AdminParts {
        store: opened.store.clone(),
        clock,
        master_key: Arc::new(opened.master_key),
        jwt_secret: opened.jwt_secret,
        auth: opened.config.auth.clone(),
        limits: opened.config.limits.clone(),
        shutdown: shutdown.clone(),
        metrics: Arc::new(Metrics::new()),
    })?;

    print_banner(bound, first_password.as_deref());
    tracing::info!(address = %bound, "portcullis listening");

    tokio::spawn(watch_signals(shutdown.clone()));
    let server = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown({
        let shutdown = shutdown.clone();
        async move { shutdown.triggered().await }
    });
    let server = tokio::spawn(async move { server.await });

    shutdown.triggered().await;
    tracing::info!(
        deadline_secs = drain_timeout.as_secs(),
        "shutting down: draining in-flight requests"
    );
    match tokio::time::timeout(drain_timeout, server).await {
        Ok(Ok(Ok(()))) => tracing::info!("drained"),
        Ok(Ok(Err(e))) => tracing::error!(error = %e, "server error while draining"),
        Ok(Err(e)) => tracing::error!(error = %e, "server task failed"),
        Err(_) => tracing::warn!("drain deadline passed; closing remaining connections"),
    }
    opened.store.close().await;
    drop(pid_file);
    tracing::info!("stopped");
    Ok(())
}

async fn watch_signals(shutdown: Shutdown) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    shutdown.trigger();
    // A second signal during the drain stops at once.
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    tracing::warn!("second signal: exiting without waiting for the drain");
    std::process::exit(130);
}

fn print_banner(addr: SocketAddr, first_password: Option<&str>) {
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        addr.ip().to_string()
    };
    let url = format!("http://{host}:{}", addr.port());
    let rule = "=".repeat(72);
    println!("{rule}");
    println!("  Portcullis is running.");
    println!("  Admin API:   {url}/api/v1   (OpenAPI: {url}/api/v1/openapi.json)");
    println!("  Metrics:     {url}/metrics");
    if let Some(pw) = first_password {
        println!();
        println!("  First start: an admin user was created.");
        println!("    username:  admin");
        println!("    password:  {pw}");
        println!("  This password is shown only once. Log in and change it:");
        println!("    curl -s {url}/api/v1/auth/login -H 'content-type: application/json' \\");
        println!("      -d '{{\"username\":\"admin\",\"password\":\"<password above>\"}}'");
    }
    println!("{rule}");
}

/// `serve.pid` in the data directory while the server runs, so offline commands
/// (key rotation) can refuse to run beside it.
pub struct PidFile(std::path::PathBuf);

impl PidFile {
    fn create(dir: &std::path::Path) -> Result<Self> {
        let path = dir.join("serve.pid");
        std::fs::write(&path, std::process::id().to_string())
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Whether a server whose pid file is in `dir` is alive.
pub fn server_running(dir: &std::path::Path) -> bool {
    std::fs::read_to_string(dir.join("serve.pid"))
        .ok()
        .and_then(|pid| pid.trim().parse::<u32>().ok())
        .is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
}
