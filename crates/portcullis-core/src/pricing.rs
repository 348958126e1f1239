//! What a model costs: a built-in price table, operator overrides on top, and the
//! cost of one exchange from its token usage.
//!
//! Costs are counted in nano-dollars (`i64`): a 100-token request to a cheap model
//! costs a few micro-dollars, and integer counters add up exactly across replicas.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Nano-dollars per US dollar.
pub const NANOS_PER_USD: f64 = 1e9;

/// USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    /// Cache reads; when a provider has no discount this equals `input`.
    pub cached_input: f64,
}

impl Price {
    pub const fn new(input: f64, output: f64, cached_input: f64) -> Self {
        Self {
            input,
            output,
            cached_input,
        }
    }

    /// Every figure finite, non-negative and below $100,000 per million tokens.
    pub fn is_valid(&self) -> bool {
        [self.input, self.output, self.cached_input]
            .iter()
            .all(|p| p.is_finite() && (0.0..100_000.0).contains(p))
    }

    /// Cost in nano-dollars. `input` counts cached tokens too (usage is normalised
    /// that way), so cache reads are taken out of it and priced apart.
    pub fn cost_nanos(&self, input: u64, cached: u64, output: u64) -> i64 {
        let cached = cached.min(input);
        // USD per million tokens = nano-dollars per thousand tokens.
        let nanos = ((input - cached) as f64 * self.input
            + cached as f64 * self.cached_input
            + output as f64 * self.output)
            * 1e3;
        nanos.round().clamp(0.0, i64::MAX as f64) as i64
    }
}

pub fn usd(nanos: i64) -> f64 {
    nanos as f64 / NANOS_PER_USD
}

pub fn nanos(usd: f64) -> i64 {
    (usd * NANOS_PER_USD)
        .round()
        .clamp(i64::MIN as f64, i64::MAX as f64) as i64
}

/// Where a price came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PriceSource {
    Builtin,
    /// Set through the API; replaces or adds to the built-in table.
    Override,
}

/// One priced model as listed by the API.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PricedModel {
    pub model: String,
    pub provider: String,
    #[serde(flatten)]
    pub price: Price,
    pub source: PriceSource,
}

/// Built-in prices in USD per million tokens (input, output, cached input), as the
/// providers publish them (checked 2026-11). Dated snapshots such as
/// `gpt-4o-2024-08-06` resolve to their family by [`PriceBook::lookup`].
pub const BUILTIN_PRICES: &[(&str, &str, Price)] = &[
    // OpenAI
    ("openai", "gpt-5", Price::new(1.25, 10.0, 0.125)),
    ("openai", "gpt-5-mini", Price::new(0.25, 2.0, 0.025)),
    ("openai", "gpt-5-nano", Price::new(0.05, 0.40, 0.005)),
    ("openai", "gpt-4.1", Price::new(2.0, 8.0, 0.50)),
    ("openai", "gpt-4.1-mini", Price::new(0.40, 1.60, 0.10)),
    ("openai", "gpt-4.1-nano", Price::new(0.10, 0.40, 0.025)),
    ("openai", "gpt-4o", Price::new(2.50, 10.0, 1.25)),
    ("openai", "gpt-4o-mini", Price::new(0.15, 0.60, 0.075)),
    ("openai", "gpt-4-turbo", Price::new(10.0, 30.0, 10.0)),
    ("openai", "gpt-4", Price::new(30.0, 60.0, 30.0)),
    ("openai", "gpt-3.5-turbo", Price::new(0.50, 1.50, 0.50)),
    ("openai", "o1", Price::new(15.0, 60.0, 7.50)),
    ("openai", "o1-mini", Price::new(1.10, 4.40, 0.55)),
    ("openai", "o3", Price::new(2.0, 8.0, 0.50)),
    ("openai", "o3-mini", Price::new(1.10, 4.40, 0.55)),
    ("openai", "o3-pro", Price::new(20.0, 80.0, 20.0)),
    ("openai", "o4-mini", Price::new(1.10, 4.40, 0.275)),
    (
        "openai",
        "text-embedding-3-small",
        Price::new(0.02, 0.0, 0.02),
    ),
    (
        "openai",
        "text-embedding-3-large",
        Price::new(0.13, 0.0, 0.13),
    ),
    (
        "openai",
        "text-embedding-ada-002",
        Price::new(0.10, 0.0, 0.10),
    ),
    // Anthropic (cached input = cache reads)
    ("anthropic", "claude-opus-4-5", Price::new(5.0, 25.0, 0.50)),
    ("anthropic", "claude-opus-4-1", Price::new(15.0, 75.0, 1.50)),
    ("anthropic", "claude-opus-4", Price::new(15.0, 75.0, 1.50)),
    (
        "anthropic",
        "claude-sonnet-4-5",
        Price::new(3.0, 15.0, 0.30),
    ),
    ("anthropic", "claude-sonnet-4", Price::new(3.0, 15.0, 0.30)),
    ("anthropic", "claude-haiku-4-5", Price::new(1.0, 5.0, 0.10)),
    (
        "anthropic",
        "claude-3-7-sonnet",
        Price::new(3.0, 15.0, 0.30),
    ),
    (
        "anthropic",
        "claude-3-5-sonnet",
        Price::new(3.0, 15.0, 0.30),
    ),
    ("anthropic", "claude-3-5-haiku", Price::new(0.80, 4.0, 0.08)),
    ("anthropic", "claude-3-opus", Price::new(15.0, 75.0, 1.50)),
    ("anthropic", "claude-3-haiku", Price::new(0.25, 1.25, 0.03)),
    // Google
    ("google", "gemini-2.5-pro", Price::new(1.25, 10.0, 0.31)),
    ("google", "gemini-2.5-flash", Price::new(0.30, 2.50, 0.075)),
    (
        "google",
        "gemini-2.5-flash-lite",
        Price::new(0.10, 0.40, 0.025),
    ),
    ("google", "gemini-2.0-flash", Price::new(0.10, 0.40, 0.025)),
    (
        "google",
        "gemini-2.0-flash-lite",
        Price::new(0.075, 0.30, 0.075),
    ),
    ("google", "gemini-1.5-pro", Price::new(1.25, 5.0, 0.3125)),
    (
        "google",
        "gemini-1.5-flash",
        Price::new(0.075, 0.30, 0.01875),
    ),
    // Mistral
    ("mistral", "mistral-large", Price::new(2.0, 6.0, 2.0)),
    ("mistral", "mistral-medium", Price::new(0.40, 2.0, 0.40)),
    ("mistral", "mistral-small", Price::new(0.10, 0.30, 0.10)),
    ("mistral", "codestral", Price::new(0.30, 0.90, 0.30)),
    ("mistral", "ministral-8b", Price::new(0.10, 0.10, 0.10)),
    ("mistral", "open-mistral-nemo", Price::new(0.15, 0.15, 0.15)),
    ("mistral", "mistral-embed", Price::new(0.10, 0.0, 0.10)),
    // Others
    ("deepseek", "deepseek-chat", Price::new(0.27, 1.10, 0.07)),
    (
        "deepseek",
        "deepseek-reasoner",
        Price::new(0.55, 2.19, 0.14),
    ),
    ("xai", "grok-4", Price::new(3.0, 15.0, 0.75)),
    ("xai", "grok-3", Price::new(3.0, 15.0, 0.75)),
    ("xai", "grok-3-mini", Price::new(0.30, 0.50, 0.075)),
    ("cohere", "command-r-plus", Price::new(2.50, 10.0, 2.50)),
    ("cohere", "command-r", Price::new(0.15, 0.60, 0.15)),
    ("meta", "llama-3.3-70b", Price::new(0.59, 0.79, 0.59)),
    ("meta", "llama-3.1-8b", Price::new(0.05, 0.08, 0.05)),
];

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    provider: String,
    price: Price,
    source: PriceSource,
}

/// The built-in table with overrides applied; resolved once, shared read-only by
/// the request path.
#[derive(Debug, Clone, Default)]
pub struct PriceBook {
    entries: HashMap<String, Entry>,
}

/// An operator's price for a model (replaces a built-in one of the same name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PriceOverride {
    pub model: String,
    #[serde(default = "custom_provider")]
    pub provider: String,
    #[serde(flatten)]
    pub price: Price,
}

fn custom_provider() -> String {
    "custom".into()
}

impl PriceBook {
    pub fn new(overrides: &[PriceOverride]) -> Self {
        let mut entries: HashMap<String, Entry> = BUILTIN_PRICES
            .iter()
            .map(|(provider, model, price)| {
                (
                    (*model).to_owned(),
                    Entry {
                        provider: (*provider).to_owned(),
                        price: *price,
                        source: PriceSource::Builtin,
                    },
                )
            })
            .collect();
        for o in overrides {
            entries.insert(
                o.model.to_ascii_lowercase(),
                Entry {
                    provider: o.provider.clone(),
                    price: o.price,
                    source: PriceSource::Override,
                },
            );
        }
        Self { entries }
    }

    /// The price of `model` and the table entry that matched. A provider prefix
    /// (`openai/gpt-4o`) is ignored; a dated or suffixed name
    /// (`gpt-4o-2024-08-06`, `claude-sonnet-4-20250514`) matches the longest entry
    /// it extends at a `-` boundary.
    pub fn lookup(&self, model: &str) -> Option<(&str, Price)> {
        let lowered = model.trim().to_ascii_lowercase();
        let name = lowered.rsplit('/').next().unwrap_or(&lowered);
        if let Some((key, e)) = self.entries.get_key_value(name) {
            return Some((key.as_str(), e.price));
        }
        let mut cut = name.len();
        while let Some(i) = name[..cut].rfind('-') {
            if let Some((key, e)) = self.entries.get_key_value(&name[..i]) {
                return Some((key.as_str(), e.price));
            }
            cut = i;
        }
        None
    }

    /// Every priced model, sorted by provider then name.
    pub fn list(&self) -> Vec<PricedModel> {
        let mut all: Vec<PricedModel> = self
            .entries
            .iter()
            .map(|(model, e)| PricedModel {
                model: model.clone(),
                provider: e.provider.clone(),
                price: e.price,
                source: e.source,
            })
            .collect();
        all.sort_by(|a, b| (&a.provider, &a.model).cmp(&(&b.provider, &b.model)));
        all
    }
}

/// Model names as the API accepts them for overrides.
pub fn valid_model_name(model: &str) -> bool {
    !model.is_empty()
        && model.len() <= 128
        && model
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:/@".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dated_and_prefixed_names_resolve_to_their_family() {
        let book = PriceBook::new(&[]);
        assert_eq!(
            book.lookup("gpt-4o-2024-08-06").map(|m| m.0),
            Some("gpt-4o")
        );
        assert_eq!(
            book.lookup("gpt-4o-mini-2024-07-18").map(|m| m.0),
            Some("gpt-4o-mini")
        );
        assert_eq!(
            book.lookup("openai/GPT-4o-mini").map(|m| m.0),
            Some("gpt-4o-mini")
        );
        assert_eq!(
            book.lookup("claude-sonnet-4-20250514").map(|m| m.0),
            Some("claude-sonnet-4")
        );
        assert_eq!(
            book.lookup("claude-sonnet-4-5-20250929").map(|m| m.0),
            Some("claude-sonnet-4-5")
        );
        assert_eq!(
            book.lookup("mistral-large-latest").map(|m| m.0),
            Some("mistral-large")
        );
        assert_eq!(book.lookup("my-private-model"), None);
        assert_eq!(book.lookup("gpt"), None);
    }

    #[test]
    fn cost_prices_cache_reads_apart_from_fresh_input() {
        let p = Price::new(2.50, 10.0, 1.25);
        // 1M fresh input = $2.50 = 2.5e9 nanos.
        assert_eq!(p.cost_nanos(1_000_000, 0, 0), 2_500_000_000);
        // 1,000 input of which 400 cached, 100 output:
        // (600*2.5 + 400*1.25 + 100*10) / 1e6 = $0.003.
        assert_eq!(p.cost_nanos(1_000, 400, 100), 3_000_000);
        // More cached than input (bad usage report) cannot make cost negative.
        assert_eq!(p.cost_nanos(10, 50, 0), 12_500);
        assert!((usd(p.cost_nanos(1_000, 400, 100)) - 0.003).abs() < 1e-12);
    }

    #[test]
    fn overrides_replace_and_extend_the_builtin_table() {
        let book = PriceBook::new(&[
            PriceOverride {
                model: "gpt-4o".into(),
                provider: "openai".into(),
                price: Price::new(1.0, 2.0, 0.5),
            },
            PriceOverride {
                model: "Local-Llama".into(),
                provider: "custom".into(),
                price: Price::new(0.0, 0.0, 0.0),
            },
        ]);
        assert_eq!(
            book.lookup("gpt-4o-2024-08-06").map(|m| m.1.input),
            Some(1.0)
        );
        assert_eq!(book.lookup("local-llama").map(|m| m.1.output), Some(0.0));
        let listed = book.list();
        assert!(listed
            .iter()
            .any(|m| m.model == "gpt-4o" && m.source == PriceSource::Override));
        assert!(listed
            .iter()
            .any(|m| m.model == "gpt-4o-mini" && m.source == PriceSource::Builtin));
    }

    #[test]
    fn builtin_table_is_valid_and_has_no_duplicates() {
        let mut seen = std::collections::HashSet::new();
        for (provider, model, price) in BUILTIN_PRICES {
            assert!(price.is_valid(), "{model}");
            assert!(valid_model_name(model), "{model}");
            assert!(seen.insert(*model), "duplicate {model}");
            assert!(!provider.is_empty());
        }
        for provider in ["openai", "anthropic", "google", "mistral"] {
            assert!(BUILTIN_PRICES.iter().any(|p| p.0 == provider));
        }
        assert!(!Price::new(-1.0, 0.0, 0.0).is_valid());
        assert!(!Price::new(f64::NAN, 0.0, 0.0).is_valid());
    }
}
