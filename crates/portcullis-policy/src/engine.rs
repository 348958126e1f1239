//! Packs compiled for matching. Compiled once per policy load: per location, one
//! `RegexSet` over every pattern says which rules fire in a single pass over the
//! text, so the cost of a scan grows with the text, not with the number of rules;
//! only the rules that fired run again to find their spans and checksums.

use crate::literals::{self, Gate, TextForm};
use crate::normalize::{normalize, Limits, Normalized};
use crate::pack::{Action, Location, Pack, Severity};
use crate::redact::Treatment;
use crate::scorer::{Model, Shape};
use crate::validators::Validator;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use regex::bytes::{RegexSet, RegexSetBuilder};
use regex::{Regex, RegexBuilder};
use regex_automata::util::syntax;
use regex_automata::{meta, Anchored, Input};
use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

/// Compiled-size ceiling per pattern, so one pack cannot exhaust memory.
const PATTERN_SIZE_LIMIT: usize = 2 * 1024 * 1024;

/// Lazy-DFA cache per pattern set and thread. Too small and the cache is cleared
/// and rebuilt over and over on ordinary text (most of a scan went to
/// determinisation at the default).
const DFA_CACHE_BYTES: usize = 32 * 1024 * 1024;

pub(crate) fn compile_pattern(pattern: &str, case_sensitive: bool) -> Result<Regex, regex::Error> {
    RegexBuilder::new(&ascii_classes(pattern))
        .case_insensitive(!case_sensitive)
        .size_limit(PATTERN_SIZE_LIMIT)
        .build()
}

/// Patterns per set automaton. One set over hundreds of patterns with bounded
/// gaps (`.{0,50}`) makes the lazy DFA's states so large that it gives up and the
/// search falls back to the PikeVM, 100 times slower; slices keep every set small.
const PATTERNS_PER_SET: usize = 32;

/// The form a pattern takes inside a set (which matches bytes): `.` and negated
/// ASCII classes match one byte instead of one UTF-8 sequence, which keeps the
/// automata small. A bounded gap then counts bytes, not characters.
pub(crate) fn set_form(pattern: &str) -> String {
    let ascii = ascii_classes(pattern);
    let mut out = String::with_capacity(ascii.len() + 16);
    let chars: Vec<char> = ascii.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                out.push(c);
                if let Some(&n) = chars.get(i + 1) {
                    out.push(n);
                }
                i += 2;
            }
            // Only gaps (`.*`, `.+`, `.{m,n}`) go byte-wide: a lone `.` keeps
            // standing for one character (`num.ro` must match "numéro").
            '.' if matches!(chars.get(i + 1), Some('{' | '*' | '+')) => {
                out.push_str("(?-u:[^\\n])");
                i += 1;
            }
            '[' => {
                // Find the end of this class; `]` first (or after `^`) is literal.
                let mut j = i + 1;
                if chars.get(j) == Some(&'^') {
                    j += 1;
                }
                if chars.get(j) == Some(&']') {
                    j += 1;
                }
                let mut nested = false;
                while j < chars.len() && chars[j] != ']' {
                    if chars[j] == '\\' {
                        j += 1;
                    } else if chars[j] == '[' {
                        nested = true;
                    }
                    j += 1;
                }
                let class: String = chars[i..(j + 1).min(chars.len())].iter().collect();
                let negated = chars.get(i + 1) == Some(&'^');
                if negated && !nested && class.is_ascii() && class.ends_with(']') {
                    out.push_str("(?-u:");
                    out.push_str(&class);
                    out.push(')');
                } else {
                    out.push_str(&class);
                }
                i = j + 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Rewrites `\b \d \s \w` (and their negations outside classes) to their ASCII
/// forms. Unicode-aware Perl classes multiply the automata several times over
/// (the built-in packs compiled to ~9 MB with them), and the text they match is
/// folded towards ASCII by the normaliser anyway.
pub(crate) fn ascii_classes(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(next) = chars.next() else {
                    out.push(c);
                    break;
                };
                let replacement = match (in_class, next) {
                    (false, 'b') => Some(r"(?-u:\b)"),
                    (false, 'B') => Some(r"(?-u:\B)"),
                    (false, 'd') => Some("[0-9]"),
                    (false, 'D') => Some("[^0-9]"),
                    (false, 's') => Some(r"[\t\n\x0B\x0C\r ]"),
                    (false, 'S') => Some(r"[^\t\n\x0B\x0C\r ]"),
                    (false, 'w') => Some("[0-9A-Za-z_]"),
                    (false, 'W') => Some("[^0-9A-Za-z_]"),
                    (true, 'd') => Some("0-9"),
                    (true, 's') => Some(r"\t\n\x0B\x0C\r "),
                    (true, 'w') => Some("0-9A-Za-z_"),
                    _ => None,
                };
                match replacement {
                    Some(r) => out.push_str(r),
                    None => {
                        out.push('\\');
                        out.push(next);
                    }
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push(c);
                // A `]` right after `[` or `[^` is a literal, not the end.
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
                if chars.peek() == Some(&']') {
                    out.push(']');
                    chars.next();
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

#[derive(Debug)]
struct CompiledRule {
    id: Arc<str>,
    category: Arc<str>,
    severity: Severity,
    action: Action,
    entity: Option<Arc<str>>,
    validator: Option<Validator>,
    case_sensitive: bool,
    locations: Vec<Location>,
    patterns: Vec<String>,
    /// Compiled on the first match: most rules never fire, and the set already
    /// holds every pattern.
    regexes: std::sync::OnceLock<Vec<Regex>>,
}

impl CompiledRule {
    fn regexes(&self) -> &[Regex] {
        self.regexes.get_or_init(|| {
            self.patterns
                .iter()
                .filter_map(|p| compile_pattern(p, self.case_sensitive).ok())
                .collect()
        })
    }
}

/// A pack's classifier, ready to score.
#[derive(Debug)]
struct CompiledClassifier {
    id: Arc<str>,
    category: Arc<str>,
    severity: Severity,
    action: Action,
    threshold: u8,
    locations: Vec<Location>,
    model: &'static Model,
}

/// The shape the scorer assumes for text met at a location: what people type,
/// or content the model reads.
fn shape_at(location: Location, text: &str) -> Shape {
    match location {
        Location::Request | Location::AgentMessage => Shape::of(text),
        Location::Response
        | Location::ToolCall
        | Location::ToolResult
        | Location::ToolDescription => Shape::Document,
    }
}

/// A pattern that runs only when one of its gate literals occurs.
#[derive(Debug)]
struct GatedPattern {
    regex: meta::Regex,
    rule: usize,
    gate: Gate,
}

impl GatedPattern {
    /// Whether the pattern matches `text`, given where its gate literals occur
    /// (in text order). Bounded patterns search only the stretches around the
    /// literals; unbounded ones whose matches start at most a few bytes before
    /// their literal try an anchored match at each such start (it dies within a
    /// few bytes where nothing matches); others search once, from before the
    /// first literal to the end.
    fn matches(
        &self,
        text: &[u8],
        literal_starts: &[usize],
        scratch: &mut Vec<Range<usize>>,
    ) -> bool {
        if let (None, Some(lead)) = (self.gate.max_len, self.gate.max_offset) {
            if lead <= MAX_ANCHORED_LEAD && literal_starts.len() <= MAX_WINDOWS {
                return self.matches_anchored(text, literal_starts, lead);
            }
        }
        scratch.clear();
        let windowed = literal_starts.len() <= MAX_WINDOWS
            && literal_starts
                .iter()
                .all(|&start| match self.gate.window(start, text.len()) {
                    Some(window) => {
                        scratch.push(window);
                        true
                    }
                    None => false,
                });
        if !windowed {
            let from = literal_starts
                .first()
                .map_or(0, |&start| self.gate.search_from(start));
            return self.regex.is_match(Input::new(text).range(from..));
        }
        // Overlapping stretches are searched as one; look-around still sees the
        // text on either side of a stretch.
        scratch.sort_by_key(|w| w.start);
        let mut merged: Option<Range<usize>> = None;
        for window in scratch.iter() {
            match &mut merged {
                Some(m) if window.start <= m.end => m.end = m.end.max(window.end),
                _ => {
                    if let Some(done) = merged.replace(window.clone()) {
                        if self.regex.is_match(Input::new(text).range(done)) {
                            return true;
                        }
                    }
                }
            }
        }
        merged.is_some_and(|m| self.regex.is_match(Input::new(text).range(m)))
    }

    /// Every match starts within `lead` bytes before one of the literals: an
    /// anchored attempt at each such position finds it. Look-behind (`\b`) still
    /// sees the text before the attempt.
    fn matches_anchored(&self, text: &[u8], literal_starts: &[usize], lead: usize) -> bool {
        let mut next_untried = 0;
        for &start in literal_starts {
            let from = start.saturating_sub(lead).max(next_untried);
            for at in from..=start.min(text.len()) {
                let input = Input::new(text).range(at..).anchored(Anchored::Yes);
                if self.regex.is_match(input) {
                    return true;
                }
            }
            next_untried = next_untried.max(start + 1);
        }
        false
    }
}

/// More literal hits than this and a gated pattern searches the rest of the
/// text once instead of stretch by stretch.
const MAX_WINDOWS: usize = 32;

/// Unbounded patterns whose matches start at most this many bytes before their
/// literal are tried anchored at each possible start instead of searched to the
/// end of the text.
const MAX_ANCHORED_LEAD: usize = 4;

/// The patterns of one text form. Most patterns contain one of a few known
/// words: one Aho-Corasick pass over the text finds which of those words occur,
/// and only the patterns that need them run. The rest run as small sets.
#[derive(Debug)]
struct PatternSet {
    /// Patterns without usable gate literals, in slices.
    sets: Vec<UngatedSet>,
    /// Every gate literal of the other patterns, and whose it is.
    prefilter: Option<AhoCorasick>,
    literal_owner: Vec<usize>,
    /// Patterns run only when one of their literals occurs.
    gated: Vec<GatedPattern>,
}

/// A slice of ungated patterns, run as one automaton.
#[derive(Debug)]
struct UngatedSet {
    set: RegexSet,
    /// The rule of each pattern in the set.
    rules: Vec<usize>,
    /// Every match of every pattern holds a non-ASCII character (invisible
    /// characters, homoglyph ranges): nothing to find in ASCII text.
    non_ascii_only: bool,
}

impl PatternSet {
    /// The rule of every pattern that matches `text` (with repeats).
    fn matching_rules(&self, text: &str, out: &mut Vec<usize>) {
        let bytes = text.as_bytes();
        let ascii = text.is_ascii();
        for slice in self.sets.iter().filter(|s| !(ascii && s.non_ascii_only)) {
            out.extend(slice.set.matches(bytes).iter().map(|p| slice.rules[p]));
        }
        let Some(prefilter) = &self.prefilter else {
            return;
        };
        // (pattern, literal start) for every gate literal in the text.
        let mut hits: Vec<(usize, usize)> = prefilter
            .find_overlapping_iter(bytes)
            .map(|m| (self.literal_owner[m.pattern().as_usize()], m.start()))
            .collect();
        hits.sort_unstable();
        let mut starts = Vec::new();
        let mut scratch = Vec::new();
        for group in hits.chunk_by(|a, b| a.0 == b.0) {
            let gated = &self.gated[group[0].0];
            starts.clear();
            starts.extend(group.iter().map(|h| h.1));
            if gated.matches(bytes, &starts, &mut scratch) {
                out.push(gated.rule);
            }
        }
    }
}

/// One rule that fired on one text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule_id: Arc<str>,
    pub category: Arc<str>,
    pub severity: Severity,
    pub action: Action,
    pub location: Location,
    pub entity: Option<Arc<str>>,
    /// Byte ranges in the scanned text, for case-sensitive rules (redaction uses
    /// them); empty when the match was in a folded or decoded view.
    pub spans: Vec<(usize, usize)>,
    /// A classifier's score (0–100); `None` for pattern rules.
    pub score: Option<u8>,
}

/// What [`Engine::scan_remembered`] found, and whether it was remembered from an
/// earlier sighting of the same text rather than scanned now.
#[derive(Debug, Clone)]
pub struct Scanned {
    pub findings: Arc<[Finding]>,
    pub remembered: bool,
}

/// Findings and the highest classifier score of one text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assessment {
    pub findings: Vec<Finding>,
    /// The highest classifier score at this location, fired or not.
    pub model_score: Option<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Pack(#[from] crate::pack::PackError),
    #[error("rule {rule} appears in more than one pack")]
    DuplicateRule { rule: String },
    #[error("the {form} patterns do not compile together: {message}")]
    Set { form: &'static str, message: String },
}

#[derive(Debug, Default)]
pub struct Engine {
    rules: Vec<CompiledRule>,
    classifiers: Vec<CompiledClassifier>,
    entities: std::collections::HashMap<String, Treatment>,
    exact: Option<PatternSet>,
    folded: Option<PatternSet>,
    exact_locations: HashSet<Location>,
    folded_locations: HashSet<Location>,
    limits: Limits,
    /// Findings of texts met again (system prompts, chat history).
    memo: crate::memo::Memo,
    /// What ends a match of a blocking response rule, for streamed answers.
    closers: crate::closers::Closers,
}

impl Engine {
    pub fn compile(packs: &[Pack]) -> Result<Engine, EngineError> {
        let mut rules = Vec::new();
        let mut classifiers = Vec::new();
        let mut entities = std::collections::HashMap::new();
        let mut seen = std::collections::HashSet::new();
        // One pattern list per text form; locations are filtered after matching, so
        // a rule that applies in five places is compiled once, not five times.
        let mut exact: (Vec<String>, Vec<usize>) = Default::default();
        let mut folded: (Vec<String>, Vec<usize>) = Default::default();
        for pack in packs {
            pack.validate()?;
            for (entity, treatment) in &pack.entities {
                // Across packs the strictest treatment wins.
                let slot = entities.entry(entity.clone()).or_insert(*treatment);
                if strictness(*treatment) > strictness(*slot) {
                    *slot = *treatment;
                }
            }
            for c in &pack.classifiers {
                if !seen.insert(c.id.clone()) {
                    return Err(EngineError::DuplicateRule { rule: c.id.clone() });
                }
                classifiers.push(CompiledClassifier {
                    id: Arc::from(c.id.as_str()),
                    category: Arc::from(c.category.as_str()),
                    severity: c.severity,
                    action: c.action,
                    threshold: c.threshold,
                    locations: c.applies_to.clone(),
                    // Validation admits only `prompt-injection`.
                    model: Model::builtin(),
                });
            }
            for rule in &pack.rules {
                if !seen.insert(rule.id.clone()) {
                    return Err(EngineError::DuplicateRule {
                        rule: rule.id.clone(),
                    });
                }
                let index = rules.len();
                let list = if rule.case_sensitive {
                    &mut exact
                } else {
                    &mut folded
                };
                for p in &rule.patterns {
                    list.0.push(set_form(p));
                    list.1.push(index);
                }
                rules.push(CompiledRule {
                    id: Arc::from(rule.id.as_str()),
                    category: Arc::from(rule.category.as_str()),
                    severity: rule.severity,
                    action: rule.action,
                    entity: rule.entity.as_deref().map(Arc::from),
                    validator: rule.validator,
                    case_sensitive: rule.case_sensitive,
                    locations: rule.applies_to.clone(),
                    patterns: rule.patterns.clone(),
                    regexes: std::sync::OnceLock::new(),
                });
            }
        }
        let build = |(patterns, rule_of): (Vec<String>, Vec<usize>),
                     case_insensitive: bool,
                     form: &'static str|
         -> Result<Option<PatternSet>, EngineError> {
            if patterns.is_empty() {
                return Ok(None);
            }
            let mut ungated: Vec<String> = Vec::new();
            let mut ungated_rules = Vec::new();
            let mut literals: Vec<Vec<u8>> = Vec::new();
            let mut literal_owner = Vec::new();
            let mut gated = Vec::new();
            // Folded patterns run on folded views only; exact ones on raw text.
            let text_form = if case_insensitive {
                TextForm::SpaceCollapsed
            } else {
                TextForm::Raw
            };
            for (pattern, rule) in patterns.into_iter().zip(rule_of) {
                match literals::gate(&pattern, case_insensitive, text_form) {
                    Some(gate) => {
                        let hir = syntax::parse_with(
                            &pattern,
                            &syntax::Config::new()
                                .case_insensitive(case_insensitive)
                                .utf8(false),
                        )
                        .map_err(|e| EngineError::Set {
                            form,
                            message: e.to_string(),
                        })?;
                        // Folded views are lower case: no upper-case spellings
                        // to look for (see `lowercase`).
                        let hir = if case_insensitive {
                            crate::lowercase::narrow(&hir)
                        } else {
                            hir
                        };
                        let regex = meta::Regex::builder()
                            .configure(
                                meta::Config::new()
                                    // Gates only ask whether a stretch matches:
                                    // no capture states, no engines for them.
                                    .which_captures(
                                        regex_automata::nfa::thompson::WhichCaptures::None,
                                    )
                                    .onepass(false)
                                    .backtrack(false)
                                    .utf8_empty(false)
                                    .nfa_size_limit(Some(PATTERN_SIZE_LIMIT))
                                    .hybrid_cache_capacity(PATTERN_SIZE_LIMIT),
                            )
                            .build_from_hir(&hir)
                            .map_err(|e| EngineError::Set {
                                form,
                                message: e.to_string(),
                            })?;
                        for lit in &gate.literals {
                            literals.push(lit.clone());
                            literal_owner.push(gated.len());
                        }
                        gated.push(GatedPattern { regex, rule, gate });
                    }
                    None => {
                        ungated.push(pattern);
                        ungated_rules.push(rule);
                    }
                }
            }
            let prefilter = if literals.is_empty() {
                None
            } else {
                Some(
                    AhoCorasickBuilder::new()
                        .match_kind(MatchKind::Standard)
                        // A full DFA: the overlapping search the NFA would do
                        // costs several times more per byte.
                        .kind(Some(AhoCorasickKind::DFA))
                        .ascii_case_insensitive(true)
                        .build(&literals)
                        .map_err(|e| EngineError::Set {
                            form,
                            message: e.to_string(),
                        })?,
                )
            };
            // Patterns that only match non-ASCII text get sets of their own,
            // skipped on ASCII text (most traffic).
            let (non_ascii, other): (Vec<_>, Vec<_>) = ungated
                .into_iter()
                .zip(ungated_rules)
                .partition(|(pattern, _)| literals::needs_non_ascii(pattern, case_insensitive));
            let mut sets = Vec::new();
            for (group, non_ascii_only) in [(other, false), (non_ascii, true)] {
                for slice in group.chunks(PATTERNS_PER_SET) {
                    let set = RegexSetBuilder::new(slice.iter().map(|(p, _)| p))
                        .case_insensitive(case_insensitive)
                        .size_limit(PATTERN_SIZE_LIMIT * 4)
                        .dfa_size_limit(DFA_CACHE_BYTES)
                        .build()
                        .map_err(|e| EngineError::Set {
                            form,
                            message: e.to_string(),
                        })?;
                    sets.push(UngatedSet {
                        set,
                        rules: slice.iter().map(|(_, rule)| *rule).collect(),
                        non_ascii_only,
                    });
                }
            }
            Ok(Some(PatternSet {
                sets,
                prefilter,
                literal_owner,
                gated,
            }))
        };
        let locations_of = |case_sensitive: bool| -> HashSet<Location> {
            rules
                .iter()
                .filter(|r: &&CompiledRule| r.case_sensitive == case_sensitive)
                .flat_map(|r| r.locations.iter().copied())
                .collect()
        };
        let exact_locations = locations_of(true);
        let folded_locations = locations_of(false);
        Ok(Engine {
            exact: build(exact, false, "exact")?,
            folded: build(folded, true, "folded")?,
            exact_locations,
            folded_locations,
            rules,
            classifiers,
            entities,
            limits: Limits::default(),
            memo: crate::memo::Memo::default(),
            closers: crate::closers::Closers::of(packs),
        })
    }

    /// Whether any rule or classifier looks at `location`.
    pub fn applies_at(&self, location: Location) -> bool {
        self.exact_locations.contains(&location)
            || self.folded_locations.contains(&location)
            || self
                .classifiers
                .iter()
                .any(|c| c.locations.contains(&location))
    }

    /// What to do with a redacting finding of this entity label.
    pub fn treatment(&self, entity: &str) -> Treatment {
        self.entities.get(entity).copied().unwrap_or_default()
    }

    /// What ends and starts the matches of blocking response rules, for
    /// streamed answers (see [`crate::closers`]).
    pub(crate) fn closers(&self) -> &crate::closers::Closers {
        &self.closers
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len() + self.classifiers.len()
    }

    /// Every rule that fires on `text` at `location`, once each, most severe first.
    pub fn scan(&self, location: Location, text: &str) -> Vec<Finding> {
        self.assess(location, text).findings
    }

    /// [`Engine::scan`] for texts that come again, as a chat's system prompt and
    /// history do on every turn: their findings are remembered (bounded in
    /// memory, exact text compared; see [`crate::memo`]).
    pub fn scan_remembered(&self, location: Location, text: &str) -> Scanned {
        let (findings, remembered) = self
            .memo
            .findings(location, text, || self.scan(location, text));
        Scanned {
            findings,
            remembered,
        }
    }

    /// Findings and classifier score of `text` at `location`. The text is
    /// normalised at most once, for folded rules and classifiers together.
    pub fn assess(&self, location: Location, text: &str) -> Assessment {
        let mut fired: Vec<Finding> = Vec::new();
        let classifiers: Vec<&CompiledClassifier> = self
            .classifiers
            .iter()
            .filter(|c| c.locations.contains(&location))
            .collect();
        let folded_here = self.folded.is_some() && self.folded_locations.contains(&location);
        let normalized: Option<Normalized> =
            (folded_here || !classifiers.is_empty()).then(|| normalize(text, &self.limits));
        let here = |index: &usize| self.rules[*index].locations.contains(&location);
        if let Some(exact) = self
            .exact
            .as_ref()
            .filter(|_| self.exact_locations.contains(&location))
        {
            let mut hit = Vec::new();
            exact.matching_rules(text, &mut hit);
            for index in dedup_rules(hit.into_iter()).into_iter().filter(here) {
                let rule = &self.rules[index];
                let spans: Vec<(usize, usize)> = rule
                    .regexes()
                    .iter()
                    .flat_map(|r| value_matches(r, text))
                    .filter(|m| rule.validator.is_none_or(|v| v.check(m.as_str())))
                    .map(|m| (m.start(), m.end()))
                    .collect();
                if !spans.is_empty() {
                    fired.push(self.finding(rule, location, spans));
                }
            }
        }
        if let (Some(folded), Some(normalized)) = (
            self.folded
                .as_ref()
                .filter(|_| self.folded_locations.contains(&location)),
            normalized.as_ref(),
        ) {
            let mut hit = Vec::new();
            for view in &normalized.views {
                folded.matching_rules(&view.text, &mut hit);
            }
            for index in dedup_rules(hit.into_iter()).into_iter().filter(here) {
                let rule = &self.rules[index];
                // A checksum rule must also pass on some view's match.
                let valid = rule.validator.is_none_or(|v| {
                    normalized.views.iter().any(|view| {
                        rule.regexes()
                            .iter()
                            .flat_map(|r| value_matches(r, &view.text))
                            .any(|m| v.check(m.as_str()))
                    })
                });
                if valid {
                    fired.push(self.finding(rule, location, Vec::new()));
                }
            }
        }
        let mut model_score = None;
        if let (Some(normalized), Some(first)) = (normalized.as_ref(), classifiers.first()) {
            let shape = shape_at(location, text);
            // Every classifier names the same model today; score once.
            let score = first.model.score_views(&normalized.views, shape);
            model_score = Some(score);
            for c in classifiers.iter().filter(|c| score >= c.threshold) {
                fired.push(Finding {
                    rule_id: c.id.clone(),
                    category: c.category.clone(),
                    severity: c.severity,
                    action: c.action,
                    location,
                    entity: None,
                    spans: Vec::new(),
                    score: Some(score),
                });
            }
        }
        fired.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then_with(|| a.rule_id.cmp(&b.rule_id))
        });
        Assessment {
            findings: fired,
            model_score,
        }
    }

    fn finding(
        &self,
        rule: &CompiledRule,
        location: Location,
        spans: Vec<(usize, usize)>,
    ) -> Finding {
        Finding {
            rule_id: rule.id.clone(),
            category: rule.category.clone(),
            severity: rule.severity,
            action: rule.action,
            location,
            entity: rule.entity.clone(),
            spans,
            score: None,
        }
    }
}

/// Seconds each pattern takes alone over `texts`, as a set of one (slowest first).
/// A development aid for pack authors (`detection-eval speed --per-pattern`).
#[doc(hidden)]
pub fn pattern_costs(packs: &[Pack], texts: &[&str]) -> Vec<(String, String, f64)> {
    let mut out = Vec::new();
    for rule in packs.iter().flat_map(|p| &p.rules) {
        for pattern in &rule.patterns {
            let Ok(set) = RegexSetBuilder::new([set_form(pattern)])
                .case_insensitive(!rule.case_sensitive)
                .dfa_size_limit(DFA_CACHE_BYTES)
                .build()
            else {
                continue;
            };
            let start = std::time::Instant::now();
            for t in texts {
                std::hint::black_box(set.matches(t.as_bytes()));
            }
            out.push((
                rule.id.clone(),
                pattern.clone(),
                start.elapsed().as_secs_f64(),
            ));
        }
    }
    out.sort_by(|a, b| b.2.total_cmp(&a.2));
    out
}

fn strictness(t: Treatment) -> u8 {
    match t {
        Treatment::Allow => 0,
        Treatment::Restore => 1,
        Treatment::Mask => 2,
        Treatment::Block => 3,
    }
}

fn dedup_rules(indices: impl Iterator<Item = usize>) -> Vec<usize> {
    let mut v: Vec<usize> = indices.collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The matches of `regex` in `text`; when the pattern has a group named `value`,
/// that group's part only, so context words around a value (`fax:`, `call me at`)
/// help find it without being redacted with it.
fn value_matches<'t>(regex: &Regex, text: &'t str) -> Vec<regex::Match<'t>> {
    if regex.capture_names().any(|n| n == Some("value")) {
        regex
            .captures_iter(text)
            .filter_map(|c| c.name("value"))
            .collect()
    } else {
        regex.find_iter(text).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::{ascii_classes, set_form, Engine};
    use crate::normalize::{normalize, Limits};
    use regex::bytes::RegexBuilder;

    /// Gating is an optimisation only: on every rule example, alone and inside
    /// ordinary text, the rules found through gates and sets are exactly those
    /// whose patterns match when each is run on its own.
    /// A remembered verdict is the verdict: every rule example, padded past the
    /// memo's minimum size, scans the same the first time and the second.
    #[test]
    fn remembered_findings_are_the_scanned_ones() {
        let packs = crate::builtin::packs().unwrap_or_default();
        let engine = Engine::compile(&packs).unwrap_or_default();
        let pad = "Please read the text that follows and answer briefly, thank you. ";
        let mut remembered = 0;
        for rule in packs.iter().flat_map(|p| &p.rules) {
            for example in rule.examples.positive.iter().chain(&rule.examples.negative) {
                let text = format!("{pad}{example}");
                for location in [crate::Location::Request, crate::Location::Response] {
                    let scanned = engine.scan(location, &text);
                    // Kept from the second sighting on: the third is remembered.
                    for _ in 0..3 {
                        assert_eq!(
                            &*engine.scan_remembered(location, &text).findings,
                            &scanned[..]
                        );
                    }
                    remembered += usize::from(!scanned.is_empty());
                }
            }
        }
        assert!(remembered > 250, "only {remembered} texts with findings");
        assert!(engine.memo.bytes_held() > 0, "nothing was remembered");
    }

    #[test]
    fn gated_matching_agrees_with_running_every_pattern() {
        let packs = crate::builtin::packs().unwrap_or_default();
        let engine = Engine::compile(&packs).unwrap_or_default();
        assert!(engine.rules.len() > 250, "built-in packs load");
        let lone: Vec<(Vec<regex::bytes::Regex>, bool)> = engine
            .rules
            .iter()
            .map(|rule| {
                let regexes = rule
                    .patterns
                    .iter()
                    .filter_map(|p| {
                        RegexBuilder::new(&set_form(p))
                            .case_insensitive(!rule.case_sensitive)
                            .size_limit(1 << 24)
                            .build()
                            .ok()
                    })
                    .collect();
                (regexes, rule.case_sensitive)
            })
            .collect();
        let filler = "The quarterly review covered onboarding and the backlog; \
                      then   we\tmoved on.\n| a | b |\n";
        let mut texts = Vec::new();
        for rule in packs.iter().flat_map(|p| &p.rules) {
            for example in rule.examples.positive.iter().chain(&rule.examples.negative) {
                texts.push(example.clone());
                texts.push(format!("{filler}{example} {filler}"));
            }
        }
        for text in &texts {
            let mut views = vec![(text.clone(), true)];
            views.extend(
                normalize(text, &Limits::default())
                    .views
                    .into_iter()
                    .map(|v| (v.text, false)),
            );
            for (view, raw) in &views {
                let set = if *raw { &engine.exact } else { &engine.folded };
                let Some(set) = set else { continue };
                let mut got = Vec::new();
                set.matching_rules(view, &mut got);
                got.sort_unstable();
                got.dedup();
                let want: Vec<usize> = lone
                    .iter()
                    .enumerate()
                    .filter(|(_, (_, case_sensitive))| *case_sensitive == *raw)
                    .filter(|(_, (regexes, _))| regexes.iter().any(|r| r.is_match(view.as_bytes())))
                    .map(|(i, _)| i)
                    .collect();
                let name = |ids: &[usize]| -> Vec<String> {
                    ids.iter()
                        .map(|&i| engine.rules[i].id.to_string())
                        .collect()
                };
                assert_eq!(name(&got), name(&want), "on {view:?}");
            }
        }
    }

    #[test]
    fn set_form_makes_gaps_and_negated_ascii_classes_byte_wide() {
        assert_eq!(set_form("a.{0,5}b"), "a(?-u:[^\\n]){0,5}b");
        assert_eq!(
            set_form("num.ro"),
            "num.ro",
            "a lone dot stays one character"
        );
        assert_eq!(set_form("[^>]*"), "(?-u:[^>])*");
        assert_eq!(set_form("[^é]"), "[^é]", "non-ASCII classes keep Unicode");
        assert_eq!(set_form(r"\.x"), r"\.x");
    }

    #[test]
    fn perl_classes_become_ascii_inside_and_outside_brackets() {
        assert_eq!(
            ascii_classes(r"\bab\d+\s"),
            r"(?-u:\b)ab[0-9]+[\t\n\x0B\x0C\r ]"
        );
        assert_eq!(ascii_classes(r"[^\s:@/]+"), r"[^\t\n\x0B\x0C\r :@/]+");
        assert_eq!(ascii_classes(r"[\w.-]"), r"[0-9A-Za-z_.-]");
        assert_eq!(
            ascii_classes(r"\\d"),
            r"\\d",
            "an escaped backslash is left alone"
        );
        assert_eq!(ascii_classes(r"[]\d]"), r"[]0-9]");
        assert_eq!(ascii_classes(r"\."), r"\.");
    }
}
