//! The fail-closed tool inventory: every `tools/list` result is reconciled with
//! the store (new tools recorded, changed ones compared with what was approved,
//! descriptions scanned), and only approved tools are shown and callable.

use crate::keys::Identity;
use crate::runtime::ProxyRuntime;
use portcullis_core::alert::{Alert, AlertStatus, Severity};
use portcullis_core::mcp::{McpTool, ToolStatus};
use portcullis_core::Clock;
use portcullis_policy::{Action, Location};
use portcullis_protocol::mcp::tools;
use portcullis_store::{DynStore, StoreError, ToolSighting};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// The rule id of rug-pull alerts.
pub const RUG_PULL_RULE: &str = "mcp-rug-pull";
/// Who approved a tool the proxy approved by itself.
pub const AUTO_APPROVER: &str = "auto-approve";
/// `last_seen_at` of an unchanged tool is rewritten at most this often.
const TOUCH_INTERVAL_MS: i64 = 60_000;

/// What the inventory decided for a listed tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub status: ToolStatus,
    /// The definition differs from the approved one: raise a rug-pull alert.
    pub rug_pull: bool,
}

/// What the store knows of a tool, as far as deciding goes.
#[derive(Debug, Clone, Copy)]
pub struct Known<'a> {
    pub status: ToolStatus,
    pub hash: &'a str,
    pub approved_hash: Option<&'a str>,
}

/// The status of a listed tool. `flagged`: a `block` rule fired on its
/// description or schema. Unchanged definitions keep their status (an operator may
/// approve a flagged tool on purpose); a new or changed definition that is flagged
/// is quarantined; a definition that differs from the approved one is quarantined
/// and is a rug pull; a disabled tool stays disabled.
pub fn decide(known: Option<Known<'_>>, hash: &str, flagged: bool, auto_approve: bool) -> Decision {
    let plain = |status| Decision {
        status,
        rug_pull: false,
    };
    let Some(known) = known else {
        return plain(match (flagged, auto_approve) {
            (true, _) => ToolStatus::Quarantined,
            (false, true) => ToolStatus::Approved,
            (false, false) => ToolStatus::Pending,
        });
    };
    if known.status == ToolStatus::Disabled {
        return plain(ToolStatus::Disabled);
    }
    if known.hash == hash {
        return plain(known.status);
    }
    let rug_pull = known.approved_hash.is_some_and(|approved| approved != hash);
    if flagged || rug_pull {
        return Decision {
            status: ToolStatus::Quarantined,
            rug_pull,
        };
    }
    plain(known.status)
}

/// The outcome of one `tools/list` result.
#[derive(Debug, Default)]
pub struct Listing {
    /// Names the client may see.
    pub visible: HashSet<String>,
    /// Policy findings on descriptions, as stored in the event.
    pub findings: Vec<Value>,
    /// Rug-pull alerts raised.
    pub alerts: usize,
}

/// Why a `tools/call` is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallRefusal {
    Unknown,
    NotApproved(ToolStatus),
}

impl CallRefusal {
    pub fn message(&self, name: &str) -> String {
        match self {
            CallRefusal::Unknown => format!(
                "tool {name:?} is not in this gateway's inventory; list the tools first"
            ),
            CallRefusal::NotApproved(status) => format!(
                "tool {name:?} is {} on this gateway and cannot be called until an operator approves it",
                status.as_str()
            ),
        }
    }
}

pub struct Inventory {
    store: DynStore,
    clock: Arc<dyn Clock>,
}

impl Inventory {
    pub fn new(store: DynStore, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// May `name` of `server` (`""` without federation) be called through this
    /// proxy? `Ok`: its stored definition. Store errors fail closed.
    pub async fn check_call(
        &self,
        proxy: &ProxyRuntime,
        server: &str,
        name: &str,
    ) -> Result<Result<Value, CallRefusal>, StoreError> {
        Ok(
            match self.store.mcp_tool_named(&proxy.id, server, name).await? {
                None => Err(CallRefusal::Unknown),
                Some(t) if t.status == ToolStatus::Approved => Ok(t.definition),
                Some(t) => Err(CallRefusal::NotApproved(t.status)),
            },
        )
    }

    /// Stores an alert of `proxy` and shows it on the live feed; `false` when one
    /// with its event id exists already.
    pub async fn raise_alert(
        &self,
        proxy: &ProxyRuntime,
        alert: &Alert,
    ) -> Result<bool, StoreError> {
        proxy.live.raise_alert(self.store.as_ref(), alert).await
    }

    /// The federation members that have a tool called `name`.
    pub async fn servers_with(
        &self,
        proxy: &ProxyRuntime,
        name: &str,
    ) -> Result<Vec<String>, StoreError> {
        Ok(self
            .store
            .mcp_tools_of(&proxy.id)
            .await?
            .into_iter()
            .filter(|t| t.name == name && !t.server.is_empty())
            .map(|t| t.server)
            .collect())
    }

    /// Records a listing of `server` (`""` without federation) and says which
    /// of its tools the client may see (by their own names). `whole`: the listing
    /// is the server's complete list, so an approved tool missing from it has
    /// disappeared.
    pub async fn reconcile(
        &self,
        proxy: &ProxyRuntime,
        server: &str,
        listed: &[Value],
        whole: bool,
        event_id: &str,
        identity: Option<&Identity>,
    ) -> Result<Listing, StoreError> {
        let mut known: HashMap<String, McpTool> = self
            .store
            .mcp_tools_of(&proxy.id)
            .await?
            .into_iter()
            .filter(|t| t.server == server)
            .map(|t| (t.name.clone(), t))
            .collect();
        let now = self.clock.now();
        // A server that had tools and gains one is worth a look (a rug pull may
        // add rather than change).
        let known_server = !known.is_empty();
        let mut listing = Listing::default();
        let mut seen = HashSet::new();
        for definition in listed {
            let Some(name) = tools::tool_name(definition) else {
                continue; // a tool without a usable name is never shown
            };
            if !seen.insert(name.to_owned()) {
                // A second definition under one name: hide both.
                listing.visible.remove(name);
                continue;
            }
            let hash = tools::definition_hash(definition);
            let flagged = scan_description(proxy, name, definition, &mut listing.findings);
            let mut record = known.remove(name);
            if record.is_none() {
                let decision = decide(None, &hash, !flagged.is_empty(), proxy.mcp_auto_approve);
                let approved = decision.status == ToolStatus::Approved;
                let tool = McpTool {
                    id: portcullis_core::id::new_id(),
                    proxy_id: proxy.id.clone(),
                    server: server.to_owned(),
                    name: name.to_owned(),
                    definition: definition.clone(),
                    hash: hash.clone(),
                    status: decision.status,
                    approved_hash: approved.then(|| hash.clone()),
                    approved_definition: approved.then(|| definition.clone()),
                    flagged_rules: flagged.clone(),
                    first_seen_at: now,
                    last_seen_at: now,
                    approved_by: approved.then(|| AUTO_APPROVER.to_owned()),
                    approved_at: approved.then_some(now),
                    status_changed_at: now,
                };
                if self.store.insert_mcp_tool(&tool).await? {
                    if approved {
                        listing.visible.insert(name.to_owned());
                    }
                    if known_server {
                        let alert =
                            change_alert(proxy, &tool, Change::Added, event_id, identity, now);
                        if self.raise_alert(proxy, &alert).await? {
                            listing.alerts += 1;
                            tracing::warn!(proxy = %proxy.name, tool = %name, status = tool.status.as_str(), "MCP server gained a tool");
                        }
                    }
                    continue;
                }
                // Another replica stored it first: decide against its record.
                record = self.store.mcp_tool_named(&proxy.id, server, name).await?;
            }
            let Some(record) = record else {
                continue; // vanished (proxy deleted meanwhile): not shown
            };
            let decision = decide(
                Some(Known {
                    status: record.status,
                    hash: &record.hash,
                    approved_hash: record.approved_hash.as_deref(),
                }),
                &hash,
                !flagged.is_empty(),
                proxy.mcp_auto_approve,
            );
            let stale =
                now.as_millisecond() - record.last_seen_at.as_millisecond() >= TOUCH_INTERVAL_MS;
            if record.hash != hash
                || record.status != decision.status
                || record.flagged_rules != flagged
                || stale
            {
                let definition_text = definition.to_string();
                self.store
                    .record_mcp_tool(
                        &record.id,
                        &ToolSighting {
                            definition: &definition_text,
                            hash: &hash,
                            status: decision.status,
                            flagged_rules: &flagged,
                        },
                        now,
                    )
                    .await?;
            }
            if decision.rug_pull {
                let before = record
                    .approved_definition
                    .as_ref()
                    .unwrap_or(&record.definition);
                let alert = rug_pull_alert(
                    proxy, &record, before, definition, &hash, event_id, identity, now,
                );
                if self.raise_alert(proxy, &alert).await? {
                    listing.alerts += 1;
                    tracing::warn!(proxy = %proxy.name, tool = %name, "MCP tool definition changed after approval; quarantined");
                }
            }
            if decision.status == ToolStatus::Approved {
                listing.visible.insert(name.to_owned());
            }
        }
        if whole {
            // Approved tools the server no longer lists.
            for gone in known.values().filter(|t| t.status == ToolStatus::Approved) {
                let alert = change_alert(proxy, gone, Change::Removed, event_id, identity, now);
                if self.raise_alert(proxy, &alert).await? {
                    listing.alerts += 1;
                    tracing::warn!(proxy = %proxy.name, tool = %gone.name, "approved MCP tool no longer listed by its server");
                }
            }
        }
        Ok(listing)
    }
}

/// Scans a definition at `tool_description`; the ids of `block` rules that fired.
fn scan_description(
    proxy: &ProxyRuntime,
    name: &str,
    definition: &Value,
    findings: &mut Vec<Value>,
) -> Vec<String> {
    let Some(engine) = &proxy.policy else {
        return Vec::new();
    };
    let mut blocking = Vec::new();
    for finding in engine.scan(
        Location::ToolDescription,
        &tools::description_text(definition),
    ) {
        if finding.action == Action::Block
            && !blocking.iter().any(|r: &String| **r == *finding.rule_id)
        {
            blocking.push(finding.rule_id.to_string());
        }
        let mut json = crate::relay::finding_json(&finding);
        json["tool"] = Value::from(name);
        findings.push(json);
    }
    blocking
}

/// A tool that appeared on, or vanished from, a server the inventory knew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Added,
    Removed,
}

/// The alert of a tool a known server gained or dropped: medium, or high when
/// a new tool is callable at once (auto-approval). One per tool and change.
fn change_alert(
    proxy: &ProxyRuntime,
    tool: &McpTool,
    change: Change,
    event_id: &str,
    identity: Option<&Identity>,
    now: jiff::Timestamp,
) -> Alert {
    let description: String = tools::description_text(&tool.definition)
        .chars()
        .take(500)
        .collect();
    let (what, dedupe, severity) = match change {
        Change::Added => (
            format!(
                "appeared on a server whose tools were known; it is {}",
                tool.status.as_str()
            ),
            format!("mcp-tool-added:{}", tool.id),
            if tool.status == ToolStatus::Approved {
                Severity::High
            } else {
                Severity::Medium
            },
        ),
        Change::Removed => (
            "was approved and is no longer listed by its server (a tool that comes back is compared with the approved definition)".to_owned(),
            // Until the tool is listed again its last sighting stays the same.
            format!(
                "mcp-tool-removed:{}:{}",
                tool.id,
                tool.last_seen_at.as_millisecond()
            ),
            Severity::Medium,
        ),
    };
    let note = format!(
        "{} {what} (listing event {event_id}).\n{description}",
        tool_named(tool)
    );
    let facts = (dedupe, severity, "alert");
    inventory_alert(proxy, identity, now, facts, note)
}

/// `MCP tool "name"`, with its server on a federation.
fn tool_named(tool: &McpTool) -> String {
    if tool.server.is_empty() {
        format!("MCP tool {:?}", tool.name)
    } else {
        format!("MCP tool {:?} of server {:?}", tool.name, tool.server)
    }
}

/// An inventory alert: `facts` are its dedupe id (one alert per id, whichever
/// replica raises it first), severity and action.
fn inventory_alert(
    proxy: &ProxyRuntime,
    identity: Option<&Identity>,
    now: jiff::Timestamp,
    (dedupe, severity, action): (String, Severity, &str),
    note: String,
) -> Alert {
    Alert {
        id: portcullis_core::id::new_id_at(now),
        created_at: now,
        event_id: dedupe,
        proxy_id: proxy.id.clone(),
        proxy_name: proxy.name.to_string(),
        rule: RUG_PULL_RULE.to_owned(),
        category: "rug_pull".to_owned(),
        severity,
        action: action.to_owned(),
        location: "tool_description".to_owned(),
        key_id: identity.map(|i| i.key_id.clone()),
        group_id: identity.map(|i| i.group_id.clone()),
        status: AlertStatus::Open,
        status_changed_at: None,
        status_changed_by: None,
        note: Some(note),
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "one alert's facts, each distinct"
)]
fn rug_pull_alert(
    proxy: &ProxyRuntime,
    record: &McpTool,
    before: &Value,
    after: &Value,
    hash: &str,
    event_id: &str,
    identity: Option<&Identity>,
    now: jiff::Timestamp,
) -> Alert {
    let note = format!(
        "{} changed after approval and is quarantined until approved again (listing event {event_id}).\n{}",
        tool_named(record),
        tools::diff(before, after)
    );
    // One alert per tool and new definition.
    let dedupe = format!("mcp-tool:{}:{}", record.id, hash.get(..16).unwrap_or(hash));
    inventory_alert(
        proxy,
        identity,
        now,
        (dedupe, Severity::High, "quarantine"),
        note,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known<'a>(
        status: ToolStatus,
        hash: &'a str,
        approved: Option<&'a str>,
    ) -> Option<Known<'a>> {
        Some(Known {
            status,
            hash,
            approved_hash: approved,
        })
    }

    #[test]
    fn new_tools_wait_unless_auto_approved_and_flagged_ones_are_quarantined() {
        assert_eq!(decide(None, "h", false, false).status, ToolStatus::Pending);
        assert_eq!(decide(None, "h", false, true).status, ToolStatus::Approved);
        assert_eq!(
            decide(None, "h", true, true).status,
            ToolStatus::Quarantined
        );
        assert!(!decide(None, "h", true, false).rug_pull);
    }

    #[test]
    fn a_changed_approved_definition_is_a_rug_pull() {
        let d = decide(
            known(ToolStatus::Approved, "a", Some("a")),
            "b",
            false,
            true,
        );
        assert_eq!(
            d,
            Decision {
                status: ToolStatus::Quarantined,
                rug_pull: true
            }
        );
        // Unchanged: stays approved, even if a policy flags it (operator's choice).
        let d = decide(
            known(ToolStatus::Approved, "a", Some("a")),
            "a",
            true,
            false,
        );
        assert_eq!(d.status, ToolStatus::Approved);
        // Reverting to the approved definition does not lift the quarantine.
        let d = decide(
            known(ToolStatus::Quarantined, "b", Some("a")),
            "a",
            false,
            false,
        );
        assert_eq!(
            d,
            Decision {
                status: ToolStatus::Quarantined,
                rug_pull: false
            }
        );
        // Changing again raises again (deduplicated per hash by the alert id).
        let d = decide(
            known(ToolStatus::Quarantined, "b", Some("a")),
            "c",
            false,
            false,
        );
        assert!(d.rug_pull);
    }

    #[test]
    fn pending_and_disabled_tools_keep_their_status() {
        let d = decide(known(ToolStatus::Pending, "a", None), "b", false, true);
        assert_eq!(
            d,
            Decision {
                status: ToolStatus::Pending,
                rug_pull: false
            }
        );
        let d = decide(known(ToolStatus::Pending, "a", None), "b", true, false);
        assert_eq!(d.status, ToolStatus::Quarantined);
        let d = decide(
            known(ToolStatus::Disabled, "a", Some("a")),
            "b",
            true,
            false,
        );
        assert_eq!(
            d,
            Decision {
                status: ToolStatus::Disabled,
                rug_pull: false
            }
        );
    }

    #[test]
    fn refusals_name_the_tool_and_status() {
        assert!(CallRefusal::NotApproved(ToolStatus::Quarantined)
            .message("add")
            .contains("\"add\" is quarantined"));
        assert!(CallRefusal::Unknown
            .message("x")
            .contains("not in this gateway's inventory"));
    }
}
