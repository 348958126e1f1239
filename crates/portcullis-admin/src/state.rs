//! What every admin handler can reach.

use crate::auth::{LoginLimiter, TokenSigner};
use crate::metrics::Metrics;
use crate::routes::AccessTable;
use portcullis_core::audit::AuditDraft;
use portcullis_core::drain::Shutdown;
use portcullis_core::{Clock, MasterKey};
use portcullis_proxy::DataPlane;
use portcullis_store::DynStore;
use std::sync::Arc;

/// Reads the configuration file again: the declared resources, or every problem.
pub type Reloader = Arc<dyn Fn() -> Result<portcullis_config::Declared, Vec<String>> + Send + Sync>;

#[derive(Clone)]
pub struct AppState {
    pub store: DynStore,
    pub clock: Arc<dyn Clock>,
    pub master_key: Arc<MasterKey>,
    pub tokens: Arc<TokenSigner>,
    pub login_limiter: Arc<LoginLimiter>,
    pub metrics: Arc<Metrics>,
    pub access: Arc<AccessTable>,
    pub shutdown: Shutdown,
    pub data_plane: Arc<DataPlane>,
    pub reload: Option<Reloader>,
    /// Outstanding tickets for the live WebSocket.
    pub tickets: Arc<crate::api::live::Tickets>,
    /// Scans of MCP servers running in the background.
    pub scans: Arc<crate::api::mcp_scans::Scanner>,
}

impl AppState {
    /// Appends to the audit chain. A failed append is logged and counted; the
    /// action it describes has already happened and is not undone.
    pub async fn audit(&self, draft: AuditDraft) {
        let action = draft.action.clone();
        if let Err(e) = self.store.append_audit(draft, self.clock.now()).await {
            self.metrics.audit_write_failures.inc();
            tracing::error!(error = %e, action, "audit append failed");
        }
    }
}
