//! Cost control on the request path: the price of each exchange, and the budgets
//! of the caller's group and key.
//!
//! Prices and budgets are snapshots (reloaded when the admin API changes them and
//! every few seconds, for changes made on other replicas); the request path reads
//! them without a lock. Balances live in a [`Ledger`]: this process's memory, or
//! Redis when replicas share one budget. A period's balance starts from the
//! events' recorded costs the first time this process meets it.

use crate::error::{ProxyError, Reason};
use crate::keys::Identity;
use arc_swap::ArcSwap;
use http::HeaderValue;
use portcullis_core::alert::{Alert, AlertStatus, Severity};
use portcullis_core::budget::{Budget, BudgetScope, BudgetState, Enforcement, Period};
use portcullis_core::pricing::{self, Price, PriceBook};
use portcullis_core::Clock;
use portcullis_governance::budget::{Account, Balance, Ledger};
use portcullis_protocol::Usage;
use portcullis_store::{DynStore, StoreError};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// Reported on every answer to a caller with a budget.
pub const BUDGET_HEADER: &str = "x-portcullis-budget";

/// Output tokens assumed when a request sets no cap (for the reservation only).
pub const DEFAULT_OUTPUT_ESTIMATE: u64 = 1024;

/// Remembered accounts (seeded, alerted) beyond which the sets start afresh.
const MAX_REMEMBERED: usize = 100_000;

/// Budgets by target id, one map per scope so a lookup borrows the caller's id.
#[derive(Default)]
struct Budgets {
    by_key: HashMap<String, Arc<Budget>>,
    by_group: HashMap<String, Arc<Budget>>,
}

impl Budgets {
    fn of(&self, scope: BudgetScope, target: &str) -> Option<&Arc<Budget>> {
        match scope {
            BudgetScope::Key => self.by_key.get(target),
            BudgetScope::Group => self.by_group.get(target),
        }
    }

    fn is_empty(&self) -> bool {
        self.by_key.is_empty() && self.by_group.is_empty()
    }
}

/// A reservation held by an exchange until it ends.
#[derive(Debug)]
pub struct Hold {
    budget: Arc<Budget>,
    account: Account,
    estimate: i64,
}

/// What admission found: the holds to settle and the header to report.
#[derive(Debug, Default)]
pub struct Admitted {
    pub holds: Vec<Hold>,
    pub header: Option<HeaderValue>,
}

/// A budget's state now, for the API.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct BudgetStatus {
    pub state: BudgetState,
    pub spent_usd: f64,
    /// Estimates of requests still running.
    pub reserved_usd: f64,
    pub limit_usd: f64,
    pub remaining_usd: f64,
    pub percent: f64,
    pub period: Period,
}

pub struct Spend {
    prices: ArcSwap<PriceBook>,
    budgets: ArcSwap<Budgets>,
    ledger: Ledger,
    store: DynStore,
    clock: Arc<dyn Clock>,
    seeded: Mutex<HashSet<Account>>,
    alerted: Mutex<HashSet<(Account, BudgetState)>>,
    /// The console's live feed, once the data plane attaches it.
    live: std::sync::OnceLock<crate::events::Live>,
}

fn remember<T: std::hash::Hash + Eq>(set: &Mutex<HashSet<T>>, value: T) -> bool {
    let mut set = set.lock().unwrap_or_else(|p| p.into_inner());
    if set.len() >= MAX_REMEMBERED {
        set.clear();
    }
    set.insert(value)
}

impl Spend {
    pub fn new(store: DynStore, clock: Arc<dyn Clock>, ledger: Ledger) -> Self {
        Self {
            prices: ArcSwap::from_pointee(PriceBook::new(&[])),
            budgets: ArcSwap::from_pointee(Budgets::default()),
            ledger,
            store,
            clock,
            seeded: Mutex::new(HashSet::new()),
            alerted: Mutex::new(HashSet::new()),
            live: std::sync::OnceLock::new(),
        }
    }

    /// Budget alerts also go to the live feed (the console's WebSocket).
    pub fn attach_live(&self, live: crate::events::Live) {
        let _ = self.live.set(live);
    }

    /// Reads prices and budgets from the store.
    pub async fn reload(&self) -> Result<(), StoreError> {
        let overrides = self.store.price_overrides().await?;
        let budgets = self.store.list_budgets().await?;
        self.prices.store(Arc::new(PriceBook::new(&overrides)));
        let mut snapshot = Budgets::default();
        for b in budgets {
            let map = match b.scope {
                BudgetScope::Key => &mut snapshot.by_key,
                BudgetScope::Group => &mut snapshot.by_group,
            };
            map.insert(b.target_id.clone(), Arc::new(b));
        }
        self.budgets.store(Arc::new(snapshot));
        Ok(())
    }

    /// Reloads every `every` until the process ends (changes on other replicas).
    pub fn spawn_refresh(self: &Arc<Self>, every: std::time::Duration) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(spend) = weak.upgrade() else { return };
                if let Err(e) = spend.reload().await {
                    tracing::warn!(error = %e, "could not refresh prices and budgets");
                }
            }
        });
    }

    pub fn price_book(&self) -> Arc<PriceBook> {
        self.prices.load_full()
    }

    pub fn price(&self, model: &str) -> Option<Price> {
        self.prices.load().lookup(model).map(|(_, p)| p)
    }

    /// The USD cost of an exchange: zero without tokens, `None` when tokens were
    /// used but the model has no price.
    pub fn cost_usd(&self, model: Option<&str>, usage: &Usage) -> Option<f64> {
        self.cost_nanos(model, usage).map(pricing::usd)
    }

    fn cost_nanos(&self, model: Option<&str>, usage: &Usage) -> Option<i64> {
        if usage.input_tokens == 0 && usage.output_tokens == 0 {
            return Some(0);
        }
        let price = self.price(model?)?;
        Some(price.cost_nanos(
            usage.input_tokens,
            usage.cached_input_tokens,
            usage.output_tokens,
        ))
    }

    pub fn budget_of(&self, scope: BudgetScope, target: &str) -> Option<Arc<Budget>> {
        self.budgets.load().of(scope, target).cloned()
    }

    fn account(budget: &Budget, period: Period) -> Account {
        Account {
            budget_id: budget.id.clone(),
            period_start_ms: period.start.as_millisecond(),
            period_end_ms: period.end.as_millisecond(),
        }
    }

    /// Makes sure the ledger starts the period from the spend already recorded.
    async fn seed(&self, budget: &Budget, account: &Account, period: Period) -> Result<(), String> {
        if self
            .seeded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(account)
        {
            return Ok(());
        }
        let spent = self
            .store
            .spent_usd(budget.scope, &budget.target_id, period.start, period.end)
            .await
            .map_err(|e| e.to_string())?;
        self.ledger
            .seed(account, pricing::nanos(spent))
            .await
            .map_err(|e| e.to_string())?;
        remember(&self.seeded, account.clone());
        Ok(())
    }

    /// The budget's balance in its current period.
    pub async fn status(&self, budget: &Budget) -> Result<BudgetStatus, String> {
        let period = budget.period_at(self.clock.now());
        let account = Self::account(budget, period);
        self.seed(budget, &account, period).await?;
        let balance = self
            .ledger
            .balance(&account)
            .await
            .map_err(|e| e.to_string())?;
        Ok(status_of(budget, balance, period))
    }

    /// Checks the caller's budgets before anything goes upstream, and reserves the
    /// request's estimated cost in each. A `block` budget that is used up refuses
    /// with 402; so does one that cannot price the model (it could not be kept).
    pub async fn admit(
        &self,
        identity: Option<&Identity>,
        model: Option<&str>,
        input_bytes: u64,
        max_output_tokens: Option<u64>,
        proxy: (&str, &str),
    ) -> Result<Admitted, ProxyError> {
        let Some(identity) = identity else {
            return Ok(Admitted::default());
        };
        let budgets = self.budgets.load();
        if budgets.is_empty() {
            return Ok(Admitted::default());
        }
        let applicable: Vec<Arc<Budget>> = [
            (BudgetScope::Key, &identity.key_id),
            (BudgetScope::Group, &identity.group_id),
        ]
        .into_iter()
        .filter_map(|(scope, id)| budgets.of(scope, id).cloned())
        .collect();
        if applicable.is_empty() {
            return Ok(Admitted::default());
        }
        let price = model.and_then(|m| self.price(m));
        // Tokens are about four bytes of text; JSON framing makes this generous.
        let estimate = price.map_or(0, |p| {
            p.cost_nanos(
                input_bytes / 4,
                0,
                max_output_tokens.unwrap_or(DEFAULT_OUTPUT_ESTIMATE),
            )
        });
        let now = self.clock.now();
        let mut admitted = Admitted::default();
        let mut worst: Option<(BudgetState, String)> = None;
        for budget in applicable {
            let enforce = budget.enforcement == Enforcement::Block;
            if enforce && price.is_none() {
                self.release(std::mem::take(&mut admitted.holds)).await;
                return Err(ProxyError::new(
                    Reason::BudgetExceeded,
                    format!(
                        "model {:?} has no price, so this caller's budget cannot be kept; \
                         an administrator can add one with PUT /api/v1/pricing/{{model}}",
                        model.unwrap_or("")
                    ),
                ));
            }
            let period = budget.period_at(now);
            let account = Self::account(&budget, period);
            let unavailable = |e: String| {
                tracing::error!(error = %e, budget = %budget.id, "budget ledger unavailable");
                ProxyError::new(
                    Reason::Internal,
                    "the gateway cannot check budgets right now",
                )
            };
            let checked = match self.seed(&budget, &account, period).await {
                Ok(()) => self
                    .ledger
                    .reserve(&account, budget.limit_nanos(), estimate, enforce)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            let admission = match checked {
                Ok(a) => a,
                Err(e) => {
                    self.release(std::mem::take(&mut admitted.holds)).await;
                    return Err(unavailable(e));
                }
            };
            // The state as the caller left it: before this request's estimate.
            let before = Balance {
                spent: admission.balance.spent,
                reserved: admission.balance.reserved
                    - if admission.admitted { estimate } else { 0 },
            };
            let status = status_of(&budget, before, period);
            self.alert_once(&budget, &account, status.state, proxy);
            if !admission.admitted {
                self.release(std::mem::take(&mut admitted.holds)).await;
                return Err(ProxyError::new(
                    Reason::BudgetExceeded,
                    format!(
                        "the {} budget is used up: ${:.2} of ${:.2} spent this period; it resets at {}",
                        budget.scope.as_str(),
                        status.spent_usd + status.reserved_usd,
                        budget.limit_usd,
                        period.end
                    ),
                ));
            }
            let value = format!(
                "{}; scope={}; spent_usd={:.6}; limit_usd={:.2}; remaining_usd={:.6}; resets={}",
                status.state.as_str(),
                budget.scope.as_str(),
                status.spent_usd,
                budget.limit_usd,
                status.remaining_usd,
                period.end
            );
            if worst.as_ref().is_none_or(|(s, _)| status.state > *s) {
                worst = Some((status.state, value));
            }
            admitted.holds.push(Hold {
                budget,
                account,
                estimate,
            });
        }
        admitted.header = worst.and_then(|(_, v)| HeaderValue::from_str(&v).ok());
        Ok(admitted)
    }

    async fn release(&self, holds: Vec<Hold>) {
        for h in holds {
            if let Err(e) = self.ledger.settle(&h.account, h.estimate, 0).await {
                tracing::warn!(error = %e, "could not release a budget reservation");
            }
        }
    }

    /// Replaces the holds' estimates by the exchange's real cost. Runs when the
    /// exchange ends (also on a client disconnect); never blocks it.
    pub fn settle(
        self: &Arc<Self>,
        holds: Vec<Hold>,
        model: Option<&str>,
        usage: &Usage,
        proxy: (&str, &str),
    ) {
        if holds.is_empty() {
            return;
        }
        let actual = self.cost_nanos(model, usage).unwrap_or(0);
        let proxy = (proxy.0.to_owned(), proxy.1.to_owned());
        let spend = self.clone();
        let work = async move {
            for h in holds {
                if let Err(e) = spend.ledger.settle(&h.account, h.estimate, actual).await {
                    tracing::warn!(error = %e, budget = %h.budget.id, "could not settle a budget reservation");
                    continue;
                }
                if let Ok(balance) = spend.ledger.balance(&h.account).await {
                    let period = h.budget.period_at(spend.clock.now());
                    let state = status_of(&h.budget, balance, period).state;
                    spend.alert_once(&h.budget, &h.account, state, (&proxy.0, &proxy.1));
                }
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(work);
            }
            Err(_) => tracing::warn!("no runtime to settle budget reservations on"),
        }
    }

    /// Raises the period's warning or exceeded alert, once (across replicas: the
    /// alert's id is the budget period's, and the store ignores a second one).
    fn alert_once(
        &self,
        budget: &Budget,
        account: &Account,
        state: BudgetState,
        proxy: (&str, &str),
    ) {
        if state == BudgetState::Ok || !remember(&self.alerted, (account.clone(), state)) {
            return;
        }
        let (rule, severity) = match state {
            BudgetState::Exceeded => ("BUDGET-EXCEEDED", Severity::High),
            _ => ("BUDGET-WARNING", Severity::Medium),
        };
        let now = self.clock.now();
        let alert = Alert {
            id: portcullis_core::id::new_id_at(now),
            created_at: now,
            event_id: format!("budget:{}:{}", budget.id, account.period_start_ms),
            proxy_id: proxy.0.to_owned(),
            proxy_name: proxy.1.to_owned(),
            rule: rule.into(),
            category: "budget".into(),
            severity,
            action: budget.enforcement.as_str().into(),
            location: "budget".into(),
            key_id: (budget.scope == BudgetScope::Key).then(|| budget.target_id.clone()),
            group_id: (budget.scope == BudgetScope::Group).then(|| budget.target_id.clone()),
            status: AlertStatus::Open,
            status_changed_at: None,
            status_changed_by: None,
            note: Some(format!(
                "{} budget {} reached {} of ${:.2} (warning at {}%)",
                budget.scope.as_str(),
                budget.id,
                if state == BudgetState::Exceeded {
                    "100%"
                } else {
                    "the warning threshold"
                },
                budget.limit_usd,
                budget.warn_percent
            )),
        };
        let store = self.store.clone();
        let live = self.live.get().cloned();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let live = live.unwrap_or_else(crate::events::Live::detached);
                if let Err(e) = live.raise_alert(store.as_ref(), &alert).await {
                    tracing::error!(error = %e, "could not raise a budget alert");
                }
            });
        }
    }
}

fn status_of(budget: &Budget, balance: Balance, period: Period) -> BudgetStatus {
    let limit = budget.limit_nanos();
    let state = BudgetState::of(balance.spent, limit, budget.warn_percent);
    let spent_usd = pricing::usd(balance.spent);
    BudgetStatus {
        state,
        spent_usd,
        reserved_usd: pricing::usd(balance.reserved.max(0)),
        limit_usd: budget.limit_usd,
        remaining_usd: (budget.limit_usd - spent_usd).max(0.0),
        percent: if limit > 0 {
            (balance.spent as f64 / limit as f64 * 100.0 * 100.0).round() / 100.0
        } else {
            100.0
        },
        period,
    }
}
