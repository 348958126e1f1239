//! Task tracking: the task ids and states the agents' answers show are recorded
//! per agent and per key. A plain answer is recorded before it is returned (so the
//! caller's next `tasks/get` finds the task); stream events go through a bounded
//! queue to one writer task, as they pass, without holding the stream up.

use portcullis_core::Clock;
use portcullis_protocol::a2a;
use portcullis_store::{DynStore, TaskSighting};
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Sightings from streams waiting to be written; more are dropped (and logged).
const QUEUE: usize = 1024;
/// A key's tasks on one agent looked up to filter a `ListTasks` answer (the most
/// recently updated); older ones are left out of the list.
const OWNED_LOOKUP: u32 = 1000;

/// Who called, for the task rows an answer creates.
#[derive(Debug, Clone)]
pub(crate) struct Owner {
    pub agent_id: String,
    pub key_id: String,
    pub group_id: String,
}

pub(crate) struct Tasks {
    store: DynStore,
    clock: Arc<dyn Clock>,
    /// `None` outside a runtime (streams are then not recorded).
    queue: Option<mpsc::Sender<TaskSighting>>,
}

impl Tasks {
    pub fn new(store: DynStore, clock: Arc<dyn Clock>) -> Self {
        let queue = tokio::runtime::Handle::try_current().ok().map(|rt| {
            let (tx, mut rx) = mpsc::channel::<TaskSighting>(QUEUE);
            let writer = store.clone();
            rt.spawn(async move {
                while let Some(seen) = rx.recv().await {
                    if let Err(e) = writer.record_a2a_task(&seen).await {
                        tracing::error!(error = %e, task = %seen.task_id, "A2A task not recorded");
                    }
                }
            });
            tx
        });
        Tasks {
            store,
            clock,
            queue,
        }
    }

    /// Whether `task_id` on the agent was created by this key. Unknown tasks are
    /// nobody's.
    pub async fn owned_by(
        &self,
        owner: &Owner,
        task_id: &str,
    ) -> Result<bool, portcullis_store::StoreError> {
        Ok(self
            .store
            .a2a_task(&owner.agent_id, task_id)
            .await?
            .is_some_and(|t| t.key_id == owner.key_id))
    }

    fn sighting(&self, owner: &Owner, message: &Value) -> Option<TaskSighting> {
        let seen = a2a::task_seen(message.get("result")?)?;
        Some(TaskSighting {
            agent_id: owner.agent_id.clone(),
            task_id: seen.task_id,
            context_id: seen.context_id,
            key_id: owner.key_id.clone(),
            group_id: owner.group_id.clone(),
            state: seen.state.to_owned(),
            at: self.clock.now(),
        })
    }

    /// Keeps, in a `ListTasks` answer, only the tasks this key created (the agent
    /// sees one caller, the gateway, and lists everyone's); `totalSize` becomes
    /// the count kept. Whether the answer changed.
    pub async fn keep_owned(
        &self,
        owner: &Owner,
        message: &mut Value,
    ) -> Result<bool, super::Refusal> {
        let Some(Value::Array(listed)) = message.get_mut("result").and_then(|r| r.get_mut("tasks"))
        else {
            return Ok(false);
        };
        let filter = portcullis_store::TaskFilter {
            agent_id: Some(owner.agent_id.clone()),
            key_id: Some(owner.key_id.clone()),
            limit: OWNED_LOOKUP,
            ..Default::default()
        };
        let owned = self.store.list_a2a_tasks(&filter).await.map_err(|e| {
            tracing::error!(error = %e, "A2A task store unavailable");
            super::Refusal::new(
                http::StatusCode::SERVICE_UNAVAILABLE,
                portcullis_protocol::mcp::jsonrpc::GATEWAY_UNAVAILABLE,
                "the gateway cannot read its task records right now",
            )
        })?;
        let before = listed.len();
        listed.retain(|t| {
            t.get("id")
                .and_then(Value::as_str)
                .is_some_and(|id| owned.iter().any(|o| o.task_id == id))
        });
        let kept = listed.len();
        let mut changed = kept != before;
        if let Some(result) = message.get_mut("result").and_then(Value::as_object_mut) {
            if result.get("totalSize").and_then(Value::as_u64) != Some(kept as u64)
                && result.contains_key("totalSize")
            {
                result.insert("totalSize".into(), Value::from(kept));
                changed = true;
            }
        }
        Ok(changed)
    }

    /// Records the task a whole JSON-RPC answer shows, if any; waits for the store.
    pub async fn record_answer(&self, owner: &Owner, message: &Value) {
        if let Some(seen) = self.sighting(owner, message) {
            if let Err(e) = self.store.record_a2a_task(&seen).await {
                tracing::error!(error = %e, task = %seen.task_id, "A2A task not recorded");
            }
        }
    }

    /// Queues the task a stream event shows, if any, for recording without
    /// holding the stream up.
    pub fn see_event(&self, owner: &Owner, message: &Value) {
        if let Some(seen) = self.sighting(owner, message) {
            self.queue(seen);
        }
    }

    fn queue(&self, seen: TaskSighting) {
        let Some(queue) = &self.queue else { return };
        if queue.try_send(seen).is_err() {
            tracing::warn!("A2A task queue full or closed; a task state was not recorded");
        }
    }
}
