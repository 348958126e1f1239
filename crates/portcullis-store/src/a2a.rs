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
}

impl TryFrom<A2aAgentRow> for A2aAgent {
    type Error = StoreError;
    fn try_from(r: A2aAgentRow) -> Result<Self> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("a2a agent {}: {what}", r.id));
        let card = serde_json::from_str(&r.card).map_err(|_| corrupt("card"))?;
        let status = r.status.parse().map_err(|()| corrupt("status"))?;
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
        })
    }
}

macro_rules! a2a_agent_cols {
    () => {
        "id, name, base_url, card, card_hash, status, created_at, updated_at, refreshed_at"
    };
}

macro_rules! impl_a2a_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::a2a::A2aStore for $store {
            async fn insert_a2a_agent(&self, a: &$crate::a2a::A2aAgent) -> $crate::Result<()> {
                let q = concat!("INSERT INTO a2a_agents (", a2a_agent_cols!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)");
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

            async fn delete_a2a_agent(&self, id: &str) -> $crate::Result<bool> {
                let done = sqlx::query("DELETE FROM a2a_agents WHERE id = $1").bind(id).execute(&self.pool).await?;
                Ok(done.rows_affected() > 0)
            }
        }
    };
}

pub(crate) use {a2a_agent_cols, impl_a2a_store};
