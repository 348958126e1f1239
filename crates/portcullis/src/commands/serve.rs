//! `portcullis serve`: bind, bootstrap, serve until SIGTERM/SIGINT, drain.

use super::init_logging;
use crate::bootstrap;
use crate::cli::{GlobalArgs, ServeArgs};
use anyhow::{Context, Result};
use axum::serve::ListenerExt;
use portcullis_admin::{metrics::Metrics, AdminParts};
use portcullis_core::drain::Shutdown;
use portcullis_core::{Clock, SystemClock};
use portcullis_governance::budget::Ledger;
use portcullis_governance::ratelimit::RateLimiter;
use portcullis_governance::shared::Shared;
use portcullis_proxy::keys::KeyAuthenticator;
use portcullis_proxy::metrics::ProxyMetrics;
use portcullis_proxy::prompts::Prompts;
use portcullis_proxy::relay::Relay;
use portcullis_proxy::spend::Spend;
use portcullis_proxy::DataPlane;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How often prices and budgets are re-read (changes made on other replicas).
const SPEND_REFRESH: std::time::Duration = std::time::Duration::from_secs(5);

/// In-process buckets, or Redis when configured (shared by every replica). A
/// configured Redis that does not answer stops the start: running on local
/// counters instead would silently multiply the limits by the replica count.
/// The Redis connection that replicas share budgets and rate limits through, when
/// `redis_url` is set. A configured Redis that does not answer stops the start.
async fn shared_counters(config: &portcullis_config::Config) -> Result<Option<Shared>> {
    let Some(url) = &config.redis_url else {
        return Ok(None);
    };
    const HINT: &str = "PORTCULLIS_REDIS_URL is set but Redis cannot be used (budgets and rate limits are shared through it)";
    // The connection manager keeps retrying a refused connection; give up soon.
    let shared = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        Shared::connect(url.expose(), &config.redis_prefix),
    )
    .await
    .map_err(|_| anyhow::anyhow!("Redis did not answer within 5 s"))
    .context(HINT)?
    .context(HINT)?;
    tracing::info!(prefix = %config.redis_prefix, "budgets and rate limits shared through Redis");
    Ok(Some(shared))
}

pub async fn run(global: &GlobalArgs, args: ServeArgs) -> Result<()> {
    let config = bootstrap::load_config(global, args.listen)?;
    init_logging(&config)?;
    portcullis_proxy::engines::after_compile(crate::allocator::release_freed);
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
    let mut registry = prometheus_client::registry::Registry::default();
    let proxy_metrics = ProxyMetrics::register(&mut registry);
    let alerts = portcullis_proxy::events::AlertSettings::register(
        &mut registry,
        Some(opened.config.alerts.min_severity),
    );
    let metrics = Arc::new(Metrics::with_registry(registry));
    // Events outlive the drain: their writer stops only after the proxies have.
    let events_shutdown = Shutdown::new();
    let (events, event_writer) = portcullis_proxy::events::start(
        opened.store.clone(),
        proxy_metrics.events_dropped.clone(),
        proxy_metrics.events_write_failures.clone(),
        alerts,
        events_shutdown.clone(),
    );
    let shared = shared_counters(&opened.config).await?;
    let (ledger, limiter) = match shared {
        Some(shared) => (Ledger::shared(shared.clone()), RateLimiter::redis(shared)),
        None => (Ledger::local(), RateLimiter::local(clock.clone())),
    };
    let spend = Arc::new(Spend::new(opened.store.clone(), clock.clone(), ledger));
    spend
        .reload()
        .await
        .context("cannot read prices and budgets")?;
    spend.spawn_refresh(SPEND_REFRESH);
    let relay = Arc::new(Relay {
        keys: Arc::new(KeyAuthenticator::new(opened.store.clone(), clock.clone())),
        events,
        clock: clock.clone(),
        spend,
        prompts: Prompts::new(opened.config.organization.clone()),
        limiter: Arc::new(limiter),
    });
    let master_key = Arc::new(opened.master_key);
    let data_plane = DataPlane::new(
        relay,
        opened.store.clone(),
        clock.clone(),
        master_key.clone(),
        proxy_metrics,
        listen.ip(),
        drain_timeout,
    );
    data_plane
        .a2a()
        .set_network(opened.config.a2a_network.clone());
    data_plane
        .a2a()
        .set_stream_idle(opened.config.a2a_stream_idle);
    let (admin_router, state) = portcullis_admin::build(AdminParts {
        store: opened.store.clone(),
        clock,
        master_key,
        jwt_secret: opened.jwt_secret,
        auth: opened.config.auth.clone(),
        limits: opened.config.limits.clone(),
        shutdown: shutdown.clone(),
        metrics,
        data_plane: data_plane.clone(),
        reload: reloader(global),
    })?;
    if let Some(every) = opened.config.a2a_refresh {
        portcullis_admin::api::a2a_agents::spawn_card_refresh(state.clone(), every);
    }
    let router = admin_router.merge(data_plane.gateway_router());
    let demo = match args.demo {
        true => Some(crate::demo::prepare(&opened.store, &SystemClock).await?),
        false => None,
    };
    if let Err(problems) =
        portcullis_admin::declared::apply(&state, &opened.config.declared, "config").await
    {
        anyhow::bail!(
            "the configuration file's resources cannot be applied:\n  - {}",
            problems.join("\n  - ")
        );
    }
    data_plane.refresh_prompts().await?;
    data_plane.start_auto().await?;
    // Changes made through another replica's admin API arrive here this way.
    tokio::spawn(refresh_prompts_every(
        data_plane.clone(),
        Duration::from_secs(30),
        shutdown.clone(),
    ));
    tokio::spawn(reload_on_sighup(state.clone()));

    print_banner(
        bound,
        first_password.as_deref(),
        demo.as_ref().map(|d| d.key.as_str()),
    );
    tracing::info!(address = %bound, "portcullis listening");

    tokio::spawn(watch_signals(shutdown.clone()));
    // Streams relayed under /p/{name} are many small writes: no Nagle delay.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
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
    let gateway = async {
        match tokio::time::timeout(drain_timeout, server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "server error while draining"),
            Ok(Err(e)) => tracing::error!(error = %e, "server task failed"),
            Err(_) => tracing::warn!("drain deadline passed; closing remaining connections"),
        }
    };
    tokio::join!(gateway, data_plane.stop_all());
    tracing::info!("drained");
    events_shutdown.trigger();
    if let Err(e) = event_writer.await {
        tracing::error!(error = %e, "event writer failed");
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

fn print_banner(addr: SocketAddr, first_password: Option<&str>, demo_key: Option<&str>) {
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
    if let Some(key) = demo_key {
        println!();
        println!("  Demo: an LLM proxy backed by a built-in mock provider. Try it:");
        println!(
            "    curl -s {url}/p/{}/v1/chat/completions \\",
            crate::demo::PROXY
        );
        println!("      -H 'authorization: Bearer {key}' -H 'content-type: application/json' \\");
        println!("      -d '{{\"model\":\"gpt-4o-mini\",\"messages\":[{{\"role\":\"user\",\"content\":\"Hello!\"}}]}}'");
        println!(
            "  Or point the OpenAI SDK at base_url={url}/p/{}/v1 with that key.",
            crate::demo::PROXY
        );
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

/// Re-reads the configuration file, when there is one, for reloads.
fn reloader(global: &GlobalArgs) -> Option<portcullis_admin::state::Reloader> {
    let path = global.config.clone()?;
    let data_dir = global.data_dir.clone();
    Some(Arc::new(move || {
        let overrides = portcullis_config::Overrides {
            data_dir: data_dir.clone(),
            ..Default::default()
        };
        portcullis_config::load(Some(&path), &portcullis_config::ProcessEnv, &overrides)
            .map(|config| config.declared)
            .map_err(|e| match e {
                portcullis_config::ConfigError::Invalid(problems) => problems,
                other => vec![other.to_string()],
            })
    }))
}

/// SIGHUP applies the configuration file again; a bad file is logged and ignored.
async fn reload_on_sighup(state: portcullis_admin::AppState) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    while hup.recv().await.is_some() {
        let Some(reload) = state.reload.clone() else {
            tracing::warn!("SIGHUP ignored: the server was started without --config");
            continue;
        };
        let declared = match tokio::task::spawn_blocking(move || reload()).await {
            Ok(Ok(declared)) => declared,
            Ok(Err(problems)) => {
                tracing::error!(problems = ?problems, "configuration refused on SIGHUP; the running one stays");
                continue;
            }
            Err(_) => continue,
        };
        match portcullis_admin::declared::apply(&state, &declared, "signal:SIGHUP").await {
            Ok(applied) => tracing::info!(?applied, "configuration reloaded"),
            Err(problems) => {
                tracing::error!(problems = ?problems, "configuration refused on SIGHUP; the running one stays")
            }
        }
    }
}

async fn refresh_prompts_every(data_plane: Arc<DataPlane>, every: Duration, shutdown: Shutdown) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate; the snapshot is fresh
    loop {
        tokio::select! {
            _ = tick.tick() => {
                // A failure is logged by the data plane; the old snapshot serves on.
                let _ = data_plane.refresh_prompts().await;
            }
            _ = shutdown.triggered() => return,
        }
    }
}
