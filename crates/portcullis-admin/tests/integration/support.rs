use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use portcullis_admin::{metrics::Metrics, AdminParts, AppState};
use portcullis_config::{AuthConfig, LimitsConfig};
use portcullis_core::drain::Shutdown;
use portcullis_core::{password, Clock, MasterKey, Role, SystemClock};
use portcullis_proxy::keys::KeyAuthenticator;
use portcullis_proxy::metrics::ProxyMetrics;
use portcullis_proxy::relay::Relay;
use portcullis_proxy::DataPlane;
use portcullis_store::{NewSession, NewUser, SqliteStore};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tower::ServiceExt;

pub const PASSWORD: &str = "correct-horse-battery-staple";
pub const BODY_LIMIT: usize = 4096;

/// One argon2 hash for every test user (hashing is the slow part).
fn password_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| password::hash(PASSWORD).unwrap())
}

pub struct Harness {
    pub router: Router,
    pub state: AppState,
    pub db_path: std::path::PathBuf,
    _dir: tempfile::TempDir,
    /// The PostgreSQL store and its throw-away schema, for [`Harness::postgres`].
    pg: Option<(Arc<portcullis_store::PgStore>, String)>,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Harness {
    pub async fn new() -> Self {
        Self::with_body_limit(BODY_LIMIT).await
    }

    /// A harness whose admin API accepts bodies up to `admin_body_bytes`.
    pub async fn with_body_limit(admin_body_bytes: usize) -> Self {
        Self::with_options(admin_body_bytes, Arc::new(SystemClock), None, None).await
    }

    /// A harness on PostgreSQL (a fresh schema in the `test` database;
    /// `TEST_DATABASE_URL` overrides the address). End it with [`Harness::drop_postgres`].
    pub async fn postgres() -> Self {
        let url = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let schema = format!(
            "pcx_admin_{}",
            portcullis_core::id::new_id().replace('-', "")
        );
        let pg = portcullis_store::PgStore::connect(&url, Some(&schema))
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL must answer at {url} (make services): {e}"));
        let pg = Arc::new(pg);
        let mut h = Self::build(
            BODY_LIMIT,
            Arc::new(SystemClock),
            None,
            None,
            Some(pg.clone() as portcullis_store::DynStore),
        )
        .await;
        h.pg = Some((pg, schema));
        h
    }

    /// Drops the schema of a [`Harness::postgres`].
    pub async fn drop_postgres(self) {
        if let Some((pg, schema)) = self.pg {
            pg.drop_schema(&schema).await.unwrap();
            portcullis_store::Store::close(&*pg).await;
        }
    }

    /// A harness whose admin API and data plane read time from `clock`.
    pub async fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self::with_options(BODY_LIMIT, clock, None, None).await
    }

    /// A harness whose data plane counts rate limits with `limiter`.
    pub async fn with_limiter(limiter: portcullis_governance::ratelimit::RateLimiter) -> Self {
        Self::with_options(BODY_LIMIT, Arc::new(SystemClock), Some(limiter), None).await
    }

    /// A harness whose rate limits and budget balances live in Redis, as replicas'.
    pub async fn with_shared(
        clock: Arc<dyn Clock>,
        shared: portcullis_governance::shared::Shared,
    ) -> Self {
        Self::with_options(
            BODY_LIMIT,
            clock,
            Some(portcullis_governance::ratelimit::RateLimiter::redis(
                shared.clone(),
            )),
            Some(portcullis_governance::budget::Ledger::shared(shared)),
        )
        .await
    }

    async fn with_options(
        admin_body_bytes: usize,
        clock: Arc<dyn Clock>,
        limiter: Option<portcullis_governance::ratelimit::RateLimiter>,
        ledger: Option<portcullis_governance::budget::Ledger>,
    ) -> Self {
        Self::build(admin_body_bytes, clock, limiter, ledger, None).await
    }

    async fn build(
        admin_body_bytes: usize,
        clock: Arc<dyn Clock>,
        limiter: Option<portcullis_governance::ratelimit::RateLimiter>,
        ledger: Option<portcullis_governance::budget::Ledger>,
        store: Option<portcullis_store::DynStore>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db_path = dir.path().join("admin.db");
        let store: portcullis_store::DynStore = match store {
            Some(store) => store,
            None => Arc::new(SqliteStore::open(&db_path).await.unwrap()),
        };
        let master_key = Arc::new(MasterKey::generate());
        let mut registry = prometheus_client::registry::Registry::default();
        let proxy_metrics = ProxyMetrics::register(&mut registry);
        let alerts = portcullis_proxy::events::AlertSettings::register(
            &mut registry,
            Some(portcullis_core::alert::Severity::High),
        );
        let (events, _writer) = portcullis_proxy::events::start(
            store.clone(),
            proxy_metrics.events_dropped.clone(),
            proxy_metrics.events_write_failures.clone(),
            alerts,
            Shutdown::new(),
        );
        let spend = Arc::new(portcullis_proxy::spend::Spend::new(
            store.clone(),
            clock.clone(),
            ledger.unwrap_or_else(portcullis_governance::budget::Ledger::local),
        ));
        let relay = Arc::new(Relay {
            keys: Arc::new(KeyAuthenticator::new(store.clone(), clock.clone())),
            events,
            clock: clock.clone(),
            spend,
            prompts: portcullis_proxy::prompts::Prompts::new("Acme"),
            limiter: Arc::new(limiter.unwrap_or_else(|| {
                portcullis_governance::ratelimit::RateLimiter::local(clock.clone())
            })),
        });
        let data_plane = DataPlane::new(
            relay,
            store.clone(),
            clock.clone(),
            master_key.clone(),
            proxy_metrics,
            std::net::Ipv4Addr::LOCALHOST.into(),
            Duration::from_secs(5),
        );
        let (router, state) = portcullis_admin::build(AdminParts {
            store,
            clock,
            master_key,
            jwt_secret: vec![9u8; 32],
            auth: AuthConfig {
                token_ttl: Duration::from_secs(3600),
                login_max_failures_per_user: 5,
                login_max_failures_per_addr: 20,
                login_window: Duration::from_secs(900),
            },
            limits: LimitsConfig { admin_body_bytes },
            shutdown: Shutdown::new(),
            metrics: Arc::new(Metrics::with_registry(registry)),
            data_plane,
            reload: None,
        })
        .unwrap();
        Self {
            router,
            state,
            db_path,
            _dir: dir,
            pg: None,
        }
    }

    /// Creates a user with [`PASSWORD`] and returns (user id, session token).
    pub async fn user(&self, name: &str, role: Role) -> (String, String) {
        let user = self
            .state
            .store
            .create_user(
                NewUser {
                    username: name.into(),
                    password_hash: password_hash().into(),
                    role,
                    must_change_password: false,
                },
                SystemClock.now(),
            )
            .await
            .unwrap();
        let token = self.session(&user.id).await;
        (user.id, token)
    }

    /// A new session token for a user, as login would issue.
    pub async fn session(&self, user_id: &str) -> String {
        let now = SystemClock.now();
        let (token, claims) = self.state.tokens.issue(user_id, now).unwrap();
        let expires_at = jiff::Timestamp::from_second(claims.exp).unwrap();
        self.state
            .store
            .create_session(
                NewSession {
                    id: claims.jti,
                    user_id: user_id.into(),
                    expires_at,
                },
                now,
            )
            .await
            .unwrap();
        token
    }

    pub async fn send(&self, req: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        self.send(request(method, path, token, body)).await
    }
}

pub fn request(
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    let mut req = match body {
        Some(v) => builder
            .header("content-type", "application/json")
            .body(Body::from(v.to_string()))
            .unwrap(),
        None => builder.body(Body::empty()).unwrap(),
    };
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    req
}

/// Asserts the admin error shape and returns the code.
pub fn error_code(reply: &Reply) -> String {
    let code = reply.body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error body: {}", reply.text));
    assert!(
        reply.body["error"]["message"].is_string(),
        "error without message: {}",
        reply.text
    );
    code.to_owned()
}

/// A key of `group_id` holding `scopes`, stored directly: (plaintext, id).
pub async fn stored_key(
    h: &Harness,
    group_id: &str,
    scopes: Vec<portcullis_core::model::KeyScope>,
) -> (String, String) {
    let generated = portcullis_core::api_key::generate();
    let key = h
        .state
        .store
        .create_api_key(
            portcullis_store::NewApiKey {
                name: "k".into(),
                group_id: group_id.into(),
                prefix: generated.prefix,
                key_hash: generated.hash,
                scopes,
                expires_at: None,
                created_by: "test".into(),
                rate_limits: Default::default(),
            },
            SystemClock.now(),
        )
        .await
        .unwrap();
    (generated.plaintext, key.id)
}

/// A TCP relay to the local Redis that can be cut, to play an outage.
pub struct Cuttable {
    pub addr: std::net::SocketAddr,
    tasks: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Cuttable {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tasks = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let held = tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let relay = tokio::spawn(async move {
                    if let Ok(mut redis) = tokio::net::TcpStream::connect("127.0.0.1:6379").await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut redis).await;
                    }
                });
                held.lock().unwrap().push(relay);
            }
        });
        tasks.lock().unwrap().push(accept);
        Self { addr, tasks }
    }

    /// Redis through this relay, under a fresh key prefix. `make test` starts
    /// Redis, so its absence fails the test rather than skipping it.
    pub async fn shared(&self, prefix: &str) -> portcullis_governance::shared::Shared {
        let prefix = format!("{prefix}:{}", portcullis_core::id::new_id());
        portcullis_governance::shared::Shared::connect(&format!("redis://{}", self.addr), &prefix)
            .await
            .unwrap_or_else(|e| panic!("Redis must answer on 127.0.0.1:6379 (make services): {e}"))
    }

    pub fn cut(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}
