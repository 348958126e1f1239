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
