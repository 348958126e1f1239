//! Storage for the A2A agent registry. Same SQL on both back ends.

use crate::records::ts;
use crate::{Result, StoreError};
use async_trait::async_trait;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Where an agent stands in review. Only `approved` agents are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    Pending,
    Approved,
    Disabled,
    /// The card changed on refresh; not served until approved again.
    Changed,
}

impl AgentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Disabled => "disabled",
            Self::Changed => "changed",
        }
    }
}

impl std::str::FromStr for AgentStatus {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s {
            "pending" => Self::Pending,
            "approved" => Self::Approved,
            "disabled" => Self::Disabled,
            "changed" => Self::Changed,
            _ => return Err(()),
        })
    }
}

/// A group allowed to call an agent, and the skills of the card it sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentGrant {
    pub group_id: String,
    /// Skill ids this group sees in the served card; absent: every skill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skills: Option<Vec<String>>,
}

/// A stored credential the gateway sends to the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentCredential {
    /// A credential of `/api/v1/credentials`.
    pub credential_id: String,
    /// Header that carries it; absent: `Authorization: Bearer <secret>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
}

/// Who may call an agent, how often, and with which upstream credential.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AgentSettings {
    /// Groups allowed to call the agent; empty: nobody (fail closed).
    pub access: Vec<AgentGrant>,
    /// Requests per minute per key on this agent; absent: no per-agent limit.
    pub rate_limit_rpm: Option<u64>,
    pub credential: Option<AgentCredential>,
    /// Policy packs (built-in or user) the agent's messages and answers are
    /// scanned with; absent: the gateway's default for agents.
    pub policies: Option<Vec<String>>,
}

/// A registered agent.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct A2aAgent {
    pub id: String,
    /// Unique; the gateway serves the agent at `/a2a/{name}`.
    pub name: String,
    /// Where the card was fetched from; `None` for a pasted card.
    pub base_url: Option<String>,
    #[schema(value_type = Object)]
    pub card: serde_json::Value,
    /// SHA-256 (hex) of the card's canonical JSON.
    pub card_hash: String,
    pub status: AgentStatus,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub refreshed_at: Timestamp,
    #[serde(flatten)]
    pub settings: AgentSettings,
}

/// One state a task was seen in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskStateAt {
    pub state: String,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
}

/// A task seen through the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct A2aTask {
    pub id: String,
    pub agent_id: String,
    /// The agent's id for the task.
    pub task_id: String,
    pub context_id: Option<String>,
    /// The key whose call first showed the task: only it may get, cancel or
    /// resubscribe to it through the gateway.
    pub key_id: String,
    pub group_id: String,
    /// The last state seen.
    pub state: String,
    /// Every change of state, oldest first (at most [`MAX_TASK_HISTORY`]).
    pub history: Vec<TaskStateAt>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

/// State changes kept per task (the oldest are dropped).
pub const MAX_TASK_HISTORY: usize = 64;

/// A task state seen in an answer to a caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSighting {
    pub agent_id: String,
    pub task_id: String,
    pub context_id: Option<String>,
    pub key_id: String,
    pub group_id: String,
    pub state: String,
    pub at: Timestamp,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskFilter {
    pub agent_id: Option<String>,
    pub key_id: Option<String>,
    pub group_id: Option<String>,
    pub state: Option<String>,
    pub context_id: Option<String>,
    pub limit: u32,
}

#[async_trait]
pub trait A2aStore: Send + Sync {
    /// `Conflict` when the name is taken.
    async fn insert_a2a_agent(&self, agent: &A2aAgent) -> Result<()>;
    async fn a2a_agent(&self, id: &str) -> Result<Option<A2aAgent>>;
    async fn a2a_agent_named(&self, name: &str) -> Result<Option<A2aAgent>>;
    /// By name.
    async fn list_a2a_agents(&self) -> Result<Vec<A2aAgent>>;
    /// Stores a refreshed card with its hash and status.
    async fn record_a2a_card(
        &self,
        id: &str,
        card: &serde_json::Value,
        hash: &str,
        status: AgentStatus,
        now: Timestamp,
    ) -> Result<bool>;
    /// Approve only while the card still has `hash`; other statuses always.
    async fn set_a2a_agent_status(
        &self,
        id: &str,
        status: AgentStatus,
        hash: Option<&str>,
        now: Timestamp,
    ) -> Result<bool>;
    async fn delete_a2a_agent(&self, id: &str) -> Result<bool>;
    async fn a2a_task(&self, agent_id: &str, task_id: &str) -> Result<Option<A2aTask>>;
    /// Records a sighting: a new task is owned by its key; a known one gets the
    /// state appended to its history when it changed (its owner stays).
    async fn record_a2a_task(&self, seen: &TaskSighting) -> Result<()>;
    /// Most recently updated first.
    async fn list_a2a_tasks(&self, filter: &TaskFilter) -> Result<Vec<A2aTask>>;
    /// Replaces access, rate limit, credential and policies.
    async fn set_a2a_agent_settings(
        &self,
        id: &str,
        settings: &AgentSettings,
        now: Timestamp,
    ) -> Result<bool>;
}

#[derive(sqlx::FromRow)]
pub(crate) struct A2aAgentRow {
    id: String,
    name: String,
    base_url: Option<String>,
    card: String,
    card_hash: String,
    status: String,
    created_at: i64,
    updated_at: i64,
    refreshed_at: i64,
    access: String,
    rate_limit_rpm: Option<i64>,
    credential_id: Option<String>,
    credential_header: Option<String>,
    policies: Option<String>,
}

impl TryFrom<A2aAgentRow> for A2aAgent {
    type Error = StoreError;
    fn try_from(r: A2aAgentRow) -> Result<Self> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("a2a agent {}: {what}", r.id));
        let card = serde_json::from_str(&r.card).map_err(|_| corrupt("card"))?;
        let status = r.status.parse().map_err(|()| corrupt("status"))?;
        let access = serde_json::from_str(&r.access).map_err(|_| corrupt("access"))?;
        let rate_limit_rpm = r
            .rate_limit_rpm
            .map(u64::try_from)
            .transpose()
            .map_err(|_| corrupt("rate_limit_rpm"))?;
        let policies = r
            .policies
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|_| corrupt("policies"))?;
        Ok(A2aAgent {
            id: r.id,
            name: r.name,
            base_url: r.base_url,
            card,
            card_hash: r.card_hash,
            status,
            created_at: ts(r.created_at),
            updated_at: ts(r.updated_at),
            refreshed_at: ts(r.refreshed_at),
            settings: AgentSettings {
                access,
                rate_limit_rpm,
                credential: r.credential_id.map(|credential_id| AgentCredential {
                    credential_id,
                    header: r.credential_header,
                }),
                policies,
            },
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct A2aTaskRow {
    id: String,
    agent_id: String,
    task_id: String,
    context_id: Option<String>,
    key_id: String,
    group_id: String,
    state: String,
    history: String,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<A2aTaskRow> for A2aTask {
    type Error = StoreError;
    fn try_from(r: A2aTaskRow) -> Result<Self> {
        let history = serde_json::from_str(&r.history)
            .map_err(|_| StoreError::Corrupt(format!("a2a task {}: history", r.id)))?;
        Ok(A2aTask {
            id: r.id,
            agent_id: r.agent_id,
            task_id: r.task_id,
            context_id: r.context_id,
            key_id: r.key_id,
            group_id: r.group_id,
            state: r.state,
            history,
            created_at: ts(r.created_at),
            updated_at: ts(r.updated_at),
        })
    }
}

/// The history with `state` appended, if it differs from the last one.
pub(crate) fn appended(
    mut history: Vec<TaskStateAt>,
    state: &str,
    at: Timestamp,
) -> Option<String> {
    if history.last().is_some_and(|h| h.state == state) {
        return None;
    }
    history.push(TaskStateAt {
        state: state.to_owned(),
        at,
    });
    if history.len() > MAX_TASK_HISTORY {
        let drop = history.len() - MAX_TASK_HISTORY;
        history.drain(..drop);
    }
    serde_json::to_string(&history).ok()
}

macro_rules! a2a_task_cols {
    () => {
        "id, agent_id, task_id, context_id, key_id, group_id, state, history, created_at, updated_at"
    };
}

macro_rules! a2a_agent_cols {
    () => {
        "id, name, base_url, card, card_hash, status, created_at, updated_at, refreshed_at, access, rate_limit_rpm, credential_id, credential_header, policies"
    };
}

macro_rules! impl_a2a_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::a2a::A2aStore for $store {
            async fn insert_a2a_agent(&self, a: &$crate::a2a::A2aAgent) -> $crate::Result<()> {
                let q = concat!("INSERT INTO a2a_agents (", a2a_agent_cols!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)");
                let settings = &a.settings;
                sqlx::query(q)
                    .bind(&a.id)
                    .bind(&a.name)
                    .bind(a.base_url.as_deref())
                    .bind(a.card.to_string())
                    .bind(&a.card_hash)
                    .bind(a.status.as_str())
                    .bind($crate::records::ms(a.created_at))
                    .bind($crate::records::ms(a.updated_at))
                    .bind($crate::records::ms(a.refreshed_at))
                    .bind($crate::a2a::access_json(settings))
                    .bind(settings.rate_limit_rpm.map(|n| i64::try_from(n).unwrap_or(i64::MAX)))
                    .bind(settings.credential.as_ref().map(|c| c.credential_id.as_str()))
                    .bind(settings.credential.as_ref().and_then(|c| c.header.as_deref()))
                    .bind($crate::a2a::policies_json(settings))
                    .execute(&self.pool)
                    .await
                    .map_err($crate::records::conflict("an agent with this name"))?;
                Ok(())
            }

            async fn a2a_agent(&self, id: &str) -> $crate::Result<Option<$crate::a2a::A2aAgent>> {
                let q = concat!("SELECT ", a2a_agent_cols!(), " FROM a2a_agents WHERE id = $1");
                sqlx::query_as::<_, $crate::a2a::A2aAgentRow>(q).bind(id).fetch_optional(&self.pool).await?.map(TryInto::try_into).transpose()
            }

            async fn a2a_agent_named(&self, name: &str) -> $crate::Result<Option<$crate::a2a::A2aAgent>> {
                let q = concat!("SELECT ", a2a_agent_cols!(), " FROM a2a_agents WHERE name = $1");
                sqlx::query_as::<_, $crate::a2a::A2aAgentRow>(q).bind(name).fetch_optional(&self.pool).await?.map(TryInto::try_into).transpose()
            }

            async fn list_a2a_agents(&self) -> $crate::Result<Vec<$crate::a2a::A2aAgent>> {
                let q = concat!("SELECT ", a2a_agent_cols!(), " FROM a2a_agents ORDER BY name");
                sqlx::query_as::<_, $crate::a2a::A2aAgentRow>(q).fetch_all(&self.pool).await?.into_iter().map(TryInto::try_into).collect()
            }

            async fn record_a2a_card(&self, id: &str, card: &serde_json::Value, hash: &str, status: $crate::a2a::AgentStatus, now: jiff::Timestamp) -> $crate::Result<bool> {
                let done = sqlx::query("UPDATE a2a_agents SET card = $2, card_hash = $3, status = $4, refreshed_at = $5, \
                                        updated_at = CASE WHEN card_hash = $3 AND status = $4 THEN updated_at ELSE $5 END WHERE id = $1")
                    .bind(id)
                    .bind(card.to_string())
                    .bind(hash)
                    .bind(status.as_str())
                    .bind($crate::records::ms(now))
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn set_a2a_agent_status(&self, id: &str, status: $crate::a2a::AgentStatus, hash: Option<&str>, now: jiff::Timestamp) -> $crate::Result<bool> {
                let done = sqlx::query("UPDATE a2a_agents SET status = $2, updated_at = $3 WHERE id = $1 AND ($4 IS NULL OR card_hash = $4)")
                    .bind(id)
                    .bind(status.as_str())
                    .bind($crate::records::ms(now))
                    .bind(hash)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn set_a2a_agent_settings(&self, id: &str, settings: &$crate::a2a::AgentSettings, now: jiff::Timestamp) -> $crate::Result<bool> {
                let done = sqlx::query("UPDATE a2a_agents SET access = $2, rate_limit_rpm = $3, credential_id = $4, credential_header = $5, updated_at = $6, policies = $7 WHERE id = $1")
                    .bind(id)
                    .bind($crate::a2a::access_json(settings))
                    .bind(settings.rate_limit_rpm.map(|n| i64::try_from(n).unwrap_or(i64::MAX)))
                    .bind(settings.credential.as_ref().map(|c| c.credential_id.as_str()))
                    .bind(settings.credential.as_ref().and_then(|c| c.header.as_deref()))
                    .bind($crate::records::ms(now))
                    .bind($crate::a2a::policies_json(settings))
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn a2a_task(&self, agent_id: &str, task_id: &str) -> $crate::Result<Option<$crate::a2a::A2aTask>> {
                let q = concat!("SELECT ", a2a_task_cols!(), " FROM a2a_tasks WHERE agent_id = $1 AND task_id = $2");
                sqlx::query_as::<_, $crate::a2a::A2aTaskRow>(q).bind(agent_id).bind(task_id).fetch_optional(&self.pool).await?.map(TryInto::try_into).transpose()
            }

            async fn record_a2a_task(&self, s: &$crate::a2a::TaskSighting) -> $crate::Result<()> {
                let at = $crate::records::ms(s.at);
                if let Some(current) = self.a2a_task(&s.agent_id, &s.task_id).await? {
                    let Some(history) = $crate::a2a::appended(current.history, &s.state, s.at) else {
                        return Ok(());
                    };
                    sqlx::query("UPDATE a2a_tasks SET state = $2, history = $3, updated_at = $4, context_id = COALESCE(context_id, $5) WHERE id = $1")
                        .bind(&current.id)
                        .bind(&s.state)
                        .bind(history)
                        .bind(at)
                        .bind(s.context_id.as_deref())
                        .execute(&self.pool)
                        .await?;
                    return Ok(());
                }
                let history = $crate::a2a::appended(Vec::new(), &s.state, s.at).unwrap_or_else(|| "[]".into());
                let q = concat!("INSERT INTO a2a_tasks (", a2a_task_cols!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) ON CONFLICT (agent_id, task_id) DO NOTHING");
                sqlx::query(q)
                    .bind(portcullis_core::id::new_id_at(s.at))
                    .bind(&s.agent_id)
                    .bind(&s.task_id)
                    .bind(s.context_id.as_deref())
                    .bind(&s.key_id)
                    .bind(&s.group_id)
                    .bind(&s.state)
                    .bind(history)
                    .bind(at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn list_a2a_tasks(&self, f: &$crate::a2a::TaskFilter) -> $crate::Result<Vec<$crate::a2a::A2aTask>> {
                let q = concat!("SELECT ", a2a_task_cols!(), " FROM a2a_tasks WHERE ($1 IS NULL OR agent_id = $1) AND ($2 IS NULL OR key_id = $2) \
                                 AND ($3 IS NULL OR group_id = $3) AND ($4 IS NULL OR state = $4) AND ($5 IS NULL OR context_id = $5) \
                                 ORDER BY updated_at DESC, id DESC LIMIT $6");
                sqlx::query_as::<_, $crate::a2a::A2aTaskRow>(q)
                    .bind(f.agent_id.as_deref())
                    .bind(f.key_id.as_deref())
                    .bind(f.group_id.as_deref())
                    .bind(f.state.as_deref())
                    .bind(f.context_id.as_deref())
                    .bind(i64::from(f.limit))
                    .fetch_all(&self.pool)
                    .await?
                    .into_iter()
                    .map(TryInto::try_into)
                    .collect()
            }

            async fn delete_a2a_agent(&self, id: &str) -> $crate::Result<bool> {
                let done = sqlx::query("DELETE FROM a2a_agents WHERE id = $1").bind(id).execute(&self.pool).await?;
                Ok(done.rows_affected() > 0)
            }
        }
    };
}

pub(crate) fn access_json(settings: &AgentSettings) -> String {
    serde_json::to_string(&settings.access).unwrap_or_else(|_| "[]".into())
}

pub(crate) fn policies_json(settings: &AgentSettings) -> Option<String> {
    settings
        .policies
        .as_ref()
        .and_then(|p| serde_json::to_string(p).ok())
}

pub(crate) use {a2a_agent_cols, a2a_task_cols, impl_a2a_store};
