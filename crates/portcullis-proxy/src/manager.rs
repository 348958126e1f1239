//! Proxies started and stopped at run time. Running proxies are published in an
//! atomically swapped map read by the request path; start, stop and restart are
//! serialised by one async lock that the request path never takes.

use crate::error::Reason;
use crate::metrics::ProxyMetrics;
use crate::relay::{error_response, Relay};
use crate::runtime::{BuildError, ProxyRuntime};
use arc_swap::ArcSwap;
use axum::extract::{Path, Request, State};
use axum::response::Response;
use axum::serve::ListenerExt;
use axum::Router;
use portcullis_core::drain::Shutdown;
use portcullis_core::proxy::{Proxy, ProxyKind, ProxyState, ProxyStatus};
use portcullis_core::secret::SecretError;
use portcullis_core::SecretString;
use portcullis_core::{Clock, MasterKey};
use portcullis_policy::pack::PackError;
use portcullis_policy::Pack;
use portcullis_protocol::Dialect;
use portcullis_store::{DynStore, Store, StoreError};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("credential {0} does not exist")]
    CredentialMissing(String),
    #[error("credential cannot be decrypted: {0}")]
    Credential(#[from] SecretError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("cannot listen on {addr}: {source} (is the port in use?)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Policy(#[from] PolicyLookupError),
}

/// A policy name that cannot be turned into a pack.
#[derive(Debug, thiserror::Error)]
pub enum PolicyLookupError {
    #[error("unknown policy {0:?}: no built-in or user pack has that name")]
    Unknown(String),
    #[error("policy {name:?} is stored but unusable: {source}")]
    Unusable { name: String, source: PackError },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The built-in pack with this name, if there is one. Parsed (and validated) once
/// per process.
pub fn builtin_pack(name: &str) -> Option<Result<Pack, PackError>> {
    static PARSED: std::sync::OnceLock<Vec<(&'static str, Result<Pack, PackError>)>> =
        std::sync::OnceLock::new();
    PARSED
        .get_or_init(|| {
            portcullis_policy::builtin::PACKS
                .iter()
                .map(|(n, json)| (*n, Pack::from_json(n, json)))
                .collect()
        })
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, parsed)| parsed.clone())
}

/// Resolves policy names to packs, in order: built-in packs first, then the user
/// packs in the store.
pub async fn resolve_policies(
    store: &dyn Store,
    names: &[String],
) -> Result<Vec<Pack>, PolicyLookupError> {
    let mut packs = Vec::with_capacity(names.len());
    for name in names {
        let unusable = |source| PolicyLookupError::Unusable {
            name: name.clone(),
            source,
        };
        let pack = match builtin_pack(name) {
            Some(parsed) => parsed.map_err(unusable)?,
            None => match store.policy(name).await? {
                Some(record) => Pack::from_json(name, &record.pack).map_err(unusable)?,
                None => return Err(PolicyLookupError::Unknown(name.clone())),
            },
        };
        packs.push(pack);
    }
    Ok(packs)
}

struct Listener {
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<()>,
    addr: SocketAddr,
}

struct Running {
    /// The definition it was started with (shutdown needs no store).
    proxy: Proxy,
    listener: Option<Listener>,
}

pub struct DataPlane {
    relay: Arc<Relay>,
    mcp: Arc<crate::mcp::McpRelay>,
    a2a: Arc<crate::a2a::A2aRelay>,
    store: DynStore,
    clock: Arc<dyn Clock>,
    master_key: Arc<MasterKey>,
    metrics: ProxyMetrics,
    listen_ip: IpAddr,
    drain_timeout: Duration,
    routes: ArcSwap<HashMap<String, Arc<ProxyRuntime>>>,
    running: tokio::sync::Mutex<HashMap<String, Running>>,
    statuses: RwLock<HashMap<String, ProxyStatus>>,
}

impl DataPlane {
    pub fn new(
        relay: Arc<Relay>,
        store: DynStore,
        clock: Arc<dyn Clock>,
        master_key: Arc<MasterKey>,
        metrics: ProxyMetrics,
        listen_ip: IpAddr,
        drain_timeout: Duration,
    ) -> Arc<Self> {
        let mcp = crate::mcp::McpRelay::new(
            relay.keys.clone(),
            relay.events.clone(),
            store.clone(),
            clock.clone(),
            &master_key,
            relay.limiter.clone(),
            listen_ip.is_loopback(),
        );
        relay.spend.attach_live(relay.events.live().clone());
        let a2a = crate::a2a::A2aRelay::new(
            relay.keys.clone(),
            relay.events.clone(),
            store.clone(),
            clock.clone(),
            relay.limiter.clone(),
            master_key.clone(),
        );
        Arc::new(Self {
            relay,
            mcp,
            a2a,
            store,
            clock,
            master_key,
            metrics,
            listen_ip,
            drain_timeout,
            routes: ArcSwap::from_pointee(HashMap::new()),
            running: tokio::sync::Mutex::new(HashMap::new()),
            statuses: RwLock::new(HashMap::new()),
        })
    }

    /// The A2A relay (the admin API fetches agent cards through it).
    pub fn a2a(&self) -> &Arc<crate::a2a::A2aRelay> {
        &self.a2a
    }

    pub fn relay(&self) -> &Arc<Relay> {
        &self.relay
    }

    /// A running proxy by name (the request path).
    pub fn lookup(&self, name: &str) -> Option<Arc<ProxyRuntime>> {
        self.routes.load().get(name).cloned()
    }

    pub fn status(&self, proxy: &Proxy) -> ProxyStatus {
        let mut status = self.stored_status(proxy);
        let runtime = self.lookup(&proxy.spec.name);
        // A running federation reports each server's health.
        if let Some(members) = runtime.as_ref().and_then(|r| r.federation.as_ref()) {
            if status.state == ProxyState::Running {
                status.mcp_servers = members.health();
                let down: Vec<&str> = status
                    .mcp_servers
                    .iter()
                    .filter(|s| !s.up)
                    .map(|s| s.name.as_str())
                    .collect();
                if !down.is_empty() {
                    status.reason = Some(format!("MCP servers unavailable: {}", down.join(", ")));
                }
            }
            return status;
        }
        // A running stdio MCP proxy is as well as its server process (a legacy
        // SSE server's, as its stream).
        let trouble = runtime.and_then(|r| {
            r.stdio
                .as_ref()
                .or(r.legacy_sse.get())
                .and_then(|s| s.trouble())
        });
        match (status.state, trouble) {
            (ProxyState::Running, Some((down, reason))) => ProxyStatus {
                state: if down {
                    ProxyState::Error
                } else {
                    ProxyState::Running
                },
                reason: Some(reason),
                ..status
            },
            _ => status,
        }
    }

    fn stored_status(&self, proxy: &Proxy) -> ProxyStatus {
        self.statuses
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&proxy.id)
            .cloned()
            .unwrap_or_else(|| ProxyStatus {
                state: ProxyState::Stopped,
                reason: None,
                listen_addr: None,
                gateway_path: gateway_path(&proxy.spec.name),
                since: self.clock.now(),
                mcp_servers: Vec::new(),
            })
    }

    fn set_status(
        &self,
        proxy: &Proxy,
        state: ProxyState,
        reason: Option<String>,
        addr: Option<SocketAddr>,
    ) -> ProxyStatus {
        let status = ProxyStatus {
            state,
            reason,
            listen_addr: addr.map(|a| a.to_string()),
            gateway_path: gateway_path(&proxy.spec.name),
            since: self.clock.now(),
            mcp_servers: Vec::new(),
        };
        self.statuses
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(proxy.id.clone(), status.clone());
        self.relay.events.live().publish(|| {
            crate::events::LiveMessage::ProxyStatus(crate::events::ProxyStatusChange {
                proxy_id: proxy.id.clone(),
                proxy_name: proxy.spec.name.clone(),
                status: status.clone(),
            })
        });
        status
    }

    /// System prompt templates, their bindings or group names changed: reload the
    /// snapshot the request path reads. On failure the old one keeps serving.
    pub async fn refresh_prompts(&self) -> Result<(), StoreError> {
        let refreshed = self.relay.prompts.refresh(self.store.as_ref()).await;
        if let Err(e) = &refreshed {
            tracing::error!(error = %e, "system prompts not reloaded");
        }
        refreshed
    }

    /// The governed system prompts as the request path sees them.
    pub fn prompts(&self) -> &crate::prompts::Prompts {
        &self.relay.prompts
    }

    /// Keys changed (revoked, expired): forget cached ones.
    pub fn keys_changed(&self) {
        self.relay.keys.invalidate();
    }

    /// Starts a proxy; a running one is left as it is. Failures are kept in the
    /// status as well as returned.
    pub async fn start(&self, proxy: &Proxy) -> Result<ProxyStatus, StartError> {
        let mut running = self.running.lock().await;
        if running.contains_key(&proxy.id) {
            return Ok(self.status(proxy));
        }
        match self.launch(proxy).await {
            Ok((runtime, listener)) => {
                let addr = listener.as_ref().map(|l| l.addr);
                running.insert(
                    proxy.id.clone(),
                    Running {
                        proxy: proxy.clone(),
                        listener,
                    },
                );
                self.routes.rcu(|routes| {
                    let mut next = HashMap::clone(routes);
                    next.insert(proxy.spec.name.clone(), runtime.clone());
                    next
                });
                tracing::info!(proxy = %proxy.spec.name, addr = ?addr, "proxy started");
                Ok(self.set_status(proxy, ProxyState::Running, None, addr))
            }
            Err(e) => {
                tracing::warn!(proxy = %proxy.spec.name, error = %e, "proxy failed to start");
                self.set_status(proxy, ProxyState::Error, Some(e.to_string()), None);
                Err(e)
            }
        }
    }

    /// Opens a stored credential.
    async fn open_credential(&self, id: Option<&str>) -> Result<Option<SecretString>, StartError> {
        let Some(id) = id else {
            return Ok(None);
        };
        let sealed = self
            .store
            .sealed_credentials()
            .await?
            .into_iter()
            .find(|c| c.id == id)
            .ok_or_else(|| StartError::CredentialMissing(id.to_owned()))?;
        Ok(Some(self.master_key.open(&sealed.sealed, &sealed.id)?))
    }

    async fn launch(
        &self,
        proxy: &Proxy,
    ) -> Result<(Arc<ProxyRuntime>, Option<Listener>), StartError> {
        let credential = self
            .open_credential(proxy.spec.credential_id.as_deref())
            .await?;
        let policies = resolve_policies(self.store.as_ref(), &proxy.spec.policies).await?;
        let mut runtime =
            ProxyRuntime::build(proxy, credential.as_ref(), &self.metrics, &policies)?;
        runtime.live = self.relay.events.live().clone();
        if !proxy.spec.mcp_servers.is_empty() {
            let mut credentials = Vec::with_capacity(proxy.spec.mcp_servers.len());
            for server in &proxy.spec.mcp_servers {
                credentials.push(
                    self.open_credential(server.credential_id.as_deref())
                        .await?,
                );
            }
            runtime.federation = Some(Arc::new(crate::mcp::federation::Members::build(
                &proxy.spec,
                &credentials,
            )?));
        }
        if let Some(command) = &proxy.spec.upstream_command {
            runtime.stdio = Some(crate::mcp::stdio::StdioServer::start(
                crate::mcp::stdio::StdioConfig {
                    proxy: runtime.name.clone(),
                    upstream: crate::mcp::stdio::Upstream::Process {
                        command: command.clone(),
                        args: proxy.spec.upstream_args.clone(),
                        env: proxy.spec.upstream_env.clone(),
                    },
                    request_timeout: runtime.first_byte_timeout,
                    max_message_bytes: runtime.max_body_bytes,
                },
            ));
        }
        let runtime = Arc::new(runtime);
        let listener = match proxy.spec.listen_port {
            None => None,
            Some(port) => {
                let addr = SocketAddr::new(self.listen_ip, port);
                let socket = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::Bind { addr, source })?;
                let addr = socket.local_addr().unwrap_or(addr);
                let shutdown = Shutdown::new();
                let router = own_port_router(self.relay.clone(), self.mcp.clone(), runtime.clone());
                // Streams are many small writes: without TCP_NODELAY each waits on
                // the client's delayed ACK (~40 ms).
                let socket = socket.tap_io(|tcp| {
                    let _ = tcp.set_nodelay(true);
                });
                let stop = shutdown.clone();
                let task = tokio::spawn(async move {
                    let serve = axum::serve(socket, router)
                        .with_graceful_shutdown(async move { stop.triggered().await });
                    if let Err(e) = serve.await {
                        tracing::error!(error = %e, "proxy listener failed");
                    }
                });
                Some(Listener {
                    shutdown,
                    task,
                    addr,
                })
            }
        };
        Ok((runtime, listener))
    }

    /// Stops a proxy: it leaves the route map at once, its listener stops
    /// accepting, and in-flight exchanges get the drain timeout to finish.
    pub async fn stop(&self, proxy: &Proxy) -> ProxyStatus {
        let mut running = self.running.lock().await;
        let stdio = self
            .routes
            .load()
            .get(&proxy.spec.name)
            .and_then(|r| r.stdio.clone());
        self.routes.rcu(|routes| {
            let mut next = HashMap::clone(routes);
            next.remove(&proxy.spec.name);
            next
        });
        if let Some(Running {
            listener: Some(listener),
            ..
        }) = running.remove(&proxy.id)
        {
            listener.shutdown.trigger();
            let mut task = listener.task;
            if tokio::time::timeout(self.drain_timeout, &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
        if let Some(server) = stdio {
            // Not left to the last request holding the runtime: the process goes now.
            server.stop().await;
        }
        tracing::info!(proxy = %proxy.spec.name, "proxy stopped");
        self.set_status(proxy, ProxyState::Stopped, None, None)
    }

    pub async fn restart(&self, proxy: &Proxy) -> Result<ProxyStatus, StartError> {
        self.stop(proxy).await;
        self.start(proxy).await
    }

    /// Restarts the running proxies that use a policy, so a changed pack applies
    /// (A2A agents compile theirs again on their next request).
    /// Returns the names of those restarted; one that fails to start keeps the
    /// failure in its status.
    pub async fn restart_using(&self, policy: &str) -> Vec<String> {
        self.a2a.policies_changed();
        let using: Vec<Proxy> = self
            .running
            .lock()
            .await
            .values()
            .filter(|r| r.proxy.spec.policies.iter().any(|p| p == policy))
            .map(|r| r.proxy.clone())
            .collect();
        let mut restarted = Vec::with_capacity(using.len());
        for proxy in using {
            let _ = self.restart(&proxy).await;
            restarted.push(proxy.spec.name);
        }
        restarted
    }

    /// Removes every trace of a deleted proxy.
    pub async fn forget(&self, proxy: &Proxy) {
        self.stop(proxy).await;
        self.statuses
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&proxy.id);
    }

    /// Starts the proxies marked auto-start; failures stay visible in their status.
    pub async fn start_auto(&self) -> Result<(), StoreError> {
        for proxy in self.store.list_proxies().await? {
            if proxy.spec.auto_start {
                let _ = self.start(&proxy).await;
            }
        }
        Ok(())
    }

    /// Stops every proxy (server shutdown).
    pub async fn stop_all(&self) {
        let running: Vec<Proxy> = self
            .running
            .lock()
            .await
            .values()
            .map(|r| r.proxy.clone())
            .collect();
        for proxy in running {
            self.stop(&proxy).await;
        }
    }

    /// `/p/{name}/...` on the gateway port.
    pub fn gateway_router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/p/{name}/{*rest}", axum::routing::any(by_name))
            .route("/a2a/{name}", axum::routing::post(a2a_post))
            .route("/a2a/{name}/", axum::routing::post(a2a_post))
            .route(
                "/a2a/{name}/.well-known/agent-card.json",
                axum::routing::get(a2a_card),
            )
            .route(
                "/a2a/{name}/.well-known/agent.json",
                axum::routing::get(a2a_card),
            )
            .with_state(self.clone())
    }
}

async fn a2a_post(
    State(dp): State<Arc<DataPlane>>,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    dp.a2a.post(&name, req).await
}

async fn a2a_card(
    State(dp): State<Arc<DataPlane>>,
    Path(name): Path<String>,
    headers: http::HeaderMap,
) -> Response {
    dp.a2a.card(&name, &headers).await
}

pub fn gateway_path(name: &str) -> String {
    format!("/p/{name}/")
}

async fn by_name(
    State(dp): State<Arc<DataPlane>>,
    Path((name, rest)): Path<(String, String)>,
    req: Request,
) -> Response {
    match dp.lookup(&name) {
        Some(runtime) if runtime.kind == ProxyKind::Mcp => {
            dp.mcp.handle(runtime, req, &format!("/{rest}")).await
        }
        Some(runtime) => dp.relay.handle(runtime, req, &format!("/{rest}")).await,
        None => error_response(
            Dialect::OpenAi,
            Reason::NotFound,
            &format!("no running proxy named {name:?}"),
        ),
    }
}

fn own_port_router(
    relay: Arc<Relay>,
    mcp: Arc<crate::mcp::McpRelay>,
    runtime: Arc<ProxyRuntime>,
) -> Router {
    Router::new().fallback(move |req: Request| {
        let (relay, mcp, runtime) = (relay.clone(), mcp.clone(), runtime.clone());
        async move {
            let path = req.uri().path().to_owned();
            match runtime.kind {
                ProxyKind::Mcp => mcp.handle(runtime, req, &path).await,
                ProxyKind::Llm => relay.handle(runtime, req, &path).await,
            }
        }
    })
}
