//! Governed system prompts on the request path: an immutable snapshot of the
//! templates, their bindings and the group names, swapped whole when the admin
//! API changes any of them, so a request reads no database to find its prompt.
//!
//! Choice: any group binding beats any proxy binding; among bindings of one kind
//! the higher priority wins, then the template name that sorts first.

use arc_swap::ArcSwap;
use portcullis_protocol::system_prompt::{Template, Values};
use portcullis_store::{BindingTarget, PromptBinding, Store, StoreError, SystemPromptRecord};
use std::collections::HashMap;
use std::sync::Arc;

/// A stored template, parsed once.
#[derive(Debug)]
pub struct GovernedPrompt {
    pub id: String,
    pub name: String,
    pub template: Template,
}

/// One binding that applies to a request.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub target: BindingTarget,
    pub target_id: String,
    pub priority: i64,
    pub prompt: Arc<GovernedPrompt>,
}

#[derive(Debug, Default)]
pub struct PromptSnapshot {
    /// Best first, per target id.
    by_group: HashMap<String, Vec<Candidate>>,
    by_proxy: HashMap<String, Vec<Candidate>>,
    group_names: HashMap<String, Arc<str>>,
}

impl PromptSnapshot {
    /// Builds the snapshot; a stored template that no longer parses (edited by
    /// hand, or from a newer version) is skipped with a warning.
    pub fn build(
        templates: Vec<SystemPromptRecord>,
        bindings: Vec<PromptBinding>,
        groups: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        let parsed: HashMap<String, Arc<GovernedPrompt>> = templates
            .into_iter()
            .filter_map(|t| match Template::parse(&t.content) {
                Ok(template) => Some((
                    t.id.clone(),
                    Arc::new(GovernedPrompt {
                        id: t.id,
                        name: t.name,
                        template,
                    }),
                )),
                Err(e) => {
                    tracing::warn!(template = %t.name, error = %e, "stored system prompt unusable; skipped");
                    None
                }
            })
            .collect();
        let mut snapshot = PromptSnapshot {
            group_names: groups
                .into_iter()
                .map(|(id, name)| (id, Arc::from(name)))
                .collect(),
            ..Default::default()
        };
        for b in bindings {
            let Some(prompt) = parsed.get(&b.template_id) else {
                continue;
            };
            let map = match b.target {
                BindingTarget::Group => &mut snapshot.by_group,
                BindingTarget::Proxy => &mut snapshot.by_proxy,
            };
            map.entry(b.target_id.clone()).or_default().push(Candidate {
                target: b.target,
                target_id: b.target_id,
                priority: b.priority,
                prompt: prompt.clone(),
            });
        }
        for list in snapshot
            .by_group
            .values_mut()
            .chain(snapshot.by_proxy.values_mut())
        {
            list.sort_by(|a, b| {
                b.priority
                    .cmp(&a.priority)
                    .then_with(|| a.prompt.name.cmp(&b.prompt.name))
            });
        }
        snapshot
    }

    /// Reads everything the snapshot needs from the store.
    pub async fn load(store: &dyn Store) -> Result<Self, StoreError> {
        let templates = store.list_system_prompts().await?;
        let bindings = store.list_prompt_bindings(None).await?;
        let groups = store.list_groups().await?;
        Ok(Self::build(
            templates,
            bindings,
            groups.into_iter().map(|g| (g.id, g.name)),
        ))
    }

    /// The binding that applies to a request: the caller's group first, then
    /// the proxy. No allocation.
    pub fn pick(&self, proxy_id: &str, group_id: Option<&str>) -> Option<&Candidate> {
        group_id
            .and_then(|g| self.by_group.get(g))
            .and_then(|list| list.first())
            .or_else(|| self.by_proxy.get(proxy_id).and_then(|list| list.first()))
    }

    /// Every binding that applies, in the order they are considered (the first
    /// wins); for explaining a choice.
    pub fn candidates(&self, proxy_id: &str, group_id: Option<&str>) -> Vec<&Candidate> {
        let group = group_id
            .and_then(|g| self.by_group.get(g))
            .into_iter()
            .flatten();
        group
            .chain(self.by_proxy.get(proxy_id).into_iter().flatten())
            .collect()
    }

    pub fn group_name(&self, group_id: &str) -> Option<&str> {
        self.group_names.get(group_id).map(|n| &**n)
    }

    pub fn is_empty(&self) -> bool {
        self.by_group.is_empty() && self.by_proxy.is_empty()
    }
}

/// The live snapshot and the organization name templates may use.
#[derive(Debug, Default)]
pub struct Prompts {
    snapshot: ArcSwap<PromptSnapshot>,
    organization: String,
}

impl Prompts {
    pub fn new(organization: impl Into<String>) -> Self {
        Self {
            snapshot: ArcSwap::from_pointee(PromptSnapshot::default()),
            organization: organization.into(),
        }
    }

    pub fn organization(&self) -> &str {
        &self.organization
    }

    pub fn snapshot(&self) -> Arc<PromptSnapshot> {
        self.snapshot.load_full()
    }

    /// Cheap check on the request path: is any template bound at all?
    pub fn any(&self) -> bool {
        !self.snapshot.load().is_empty()
    }

    pub fn replace(&self, next: PromptSnapshot) {
        self.snapshot.store(Arc::new(next));
    }

    /// Reloads from the store; on failure the current snapshot keeps serving.
    pub async fn refresh(&self, store: &dyn Store) -> Result<(), StoreError> {
        let next = PromptSnapshot::load(store).await?;
        self.replace(next);
        Ok(())
    }
}

/// The text for one request, and which template it came from.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub template_id: String,
    pub text: String,
}

/// The request's inputs to a template.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    pub proxy_id: &'a str,
    pub proxy_name: &'a str,
    pub group_id: Option<&'a str>,
    pub user: Option<&'a str>,
    pub date: &'a str,
}

impl PromptSnapshot {
    /// Picks and renders the prompt for a request, if any template applies.
    pub fn render(&self, facts: &RequestFacts<'_>, organization: &str) -> Option<Rendered> {
        let chosen = self.pick(facts.proxy_id, facts.group_id)?;
        let values = Values {
            user: facts.user,
            group: facts.group_id.and_then(|g| self.group_name(g)),
            date: facts.date,
            organization,
            proxy: facts.proxy_name,
        };
        Some(Rendered {
            template_id: chosen.prompt.id.clone(),
            text: chosen.prompt.template.render(&values),
        })
    }
}

/// `YYYY-MM-DD` in UTC.
pub fn utc_date(now: jiff::Timestamp) -> String {
    now.strftime("%Y-%m-%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(id: &str, name: &str, content: &str) -> SystemPromptRecord {
        SystemPromptRecord {
            id: id.into(),
            name: name.into(),
            description: String::new(),
            content: content.into(),
            created_at: jiff::Timestamp::UNIX_EPOCH,
            updated_at: jiff::Timestamp::UNIX_EPOCH,
        }
    }

    fn bind(template: &str, target: BindingTarget, id: &str, priority: i64) -> PromptBinding {
        PromptBinding {
            template_id: template.into(),
            target,
            target_id: id.into(),
            priority,
        }
    }

    fn snapshot() -> PromptSnapshot {
        use BindingTarget::{Group, Proxy};
        PromptSnapshot::build(
            vec![
                template("t1", "proxy-low", "proxy low {{proxy}}"),
                template("t2", "proxy-high", "proxy high"),
                template("t3", "group-low", "group low for {{group}}"),
                template("t4", "broken", "uses {{nope}}"),
                template("t5", "b-tie", "tie b"),
                template("t6", "a-tie", "tie a"),
            ],
            vec![
                bind("t1", Proxy, "p1", 100),
                bind("t2", Proxy, "p1", 200),
                bind("t3", Group, "g1", -5),
                bind("t4", Group, "g2", 1000),
                bind("t5", Group, "g3", 1),
                bind("t6", Group, "g3", 1),
            ],
            [("g1".to_owned(), "research".to_owned())],
        )
    }

    #[test]
    fn group_beats_proxy_and_higher_priority_wins() {
        let s = snapshot();
        // Any group binding beats a proxy binding, even with a lower priority.
        assert_eq!(s.pick("p1", Some("g1")).unwrap().prompt.name, "group-low");
        // Without a group binding, the highest proxy binding.
        assert_eq!(s.pick("p1", Some("g9")).unwrap().prompt.name, "proxy-high");
        assert_eq!(s.pick("p1", None).unwrap().prompt.name, "proxy-high");
        assert!(s.pick("p2", None).is_none());
        // An unusable template is skipped: g2 falls back to the proxy.
        assert_eq!(s.pick("p1", Some("g2")).unwrap().prompt.name, "proxy-high");
        // Equal priorities: the name that sorts first.
        assert_eq!(s.pick("p1", Some("g3")).unwrap().prompt.name, "a-tie");
        let order: Vec<&str> = s
            .candidates("p1", Some("g1"))
            .iter()
            .map(|c| c.prompt.name.as_str())
            .collect();
        assert_eq!(order, ["group-low", "proxy-high", "proxy-low"]);
    }

    #[test]
    fn renders_with_the_group_name_and_request_facts() {
        let s = snapshot();
        let facts = RequestFacts {
            proxy_id: "p1",
            proxy_name: "edge",
            group_id: Some("g1"),
            user: Some("alice"),
            date: "2026-01-02",
        };
        let r = s.render(&facts, "Acme").unwrap();
        assert_eq!(
            (r.template_id.as_str(), r.text.as_str()),
            ("t3", "group low for research")
        );
        let r = s
            .render(
                &RequestFacts {
                    group_id: None,
                    ..facts
                },
                "Acme",
            )
            .unwrap();
        assert_eq!(r.text, "proxy high");
        assert!(s
            .render(
                &RequestFacts {
                    proxy_id: "p2",
                    group_id: None,
                    ..facts
                },
                ""
            )
            .is_none());
    }

    #[test]
    fn empty_snapshot_and_date() {
        let prompts = Prompts::new("Acme");
        assert!(!prompts.any());
        prompts.replace(snapshot());
        assert!(prompts.any());
        assert_eq!(prompts.organization(), "Acme");
        let ts: jiff::Timestamp = "2026-03-04T23:59:59Z".parse().unwrap();
        assert_eq!(utc_date(ts), "2026-03-04");
    }
}
