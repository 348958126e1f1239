//! Mapping `PORTCULLIS_*` variables onto configuration keys.

use crate::raw::RawConfig;
use serde_json::{Map, Value};

/// Where variables come from: the process, or a list in tests.
pub trait EnvSource {
    fn vars(&self) -> Vec<(String, String)>;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn vars(&self) -> Vec<(String, String)> {
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect()
    }
}

/// A fixed list of variables.
#[derive(Debug, Default, Clone)]
pub struct VarList(pub Vec<(String, String)>);

impl EnvSource for VarList {
    fn vars(&self) -> Vec<(String, String)> {
        self.0.clone()
    }
}

/// One overridable key: its path and the JSON type of its default.
struct Leaf {
    path: Vec<String>,
    default: Value,
}

fn leaves() -> Vec<Leaf> {
    fn walk(value: &Value, path: &mut Vec<String>, out: &mut Vec<Leaf>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    path.push(key.clone());
                    walk(child, path, out);
                    path.pop();
                }
            }
            // Lists of records (proxies and the like) are file-only.
            Value::Array(_) => {}
            leaf => out.push(Leaf {
                path: path.clone(),
                default: leaf.clone(),
            }),
        }
    }
    let defaults = serde_json::to_value(RawConfig::default()).unwrap_or(Value::Null);
    let mut out = Vec::new();
    walk(&defaults, &mut Vec::new(), &mut out);
    out
}

pub(crate) fn var_name(path: &[String]) -> String {
    format!("PORTCULLIS_{}", path.join("_").to_uppercase())
}

/// Writes every `PORTCULLIS_*` variable into the tree; returns the problems found.
pub(crate) fn apply(tree: &mut Value, env: &dyn EnvSource) -> Vec<String> {
    let leaves = leaves();
    let mut errors = Vec::new();
    let mut vars = env.vars();
    vars.sort();
    for (name, text) in vars {
        if !name.starts_with("PORTCULLIS_") || crate::RESERVED_VARS.contains(&name.as_str()) {
            continue;
        }
        let Some(leaf) = leaves.iter().find(|l| var_name(&l.path) == name) else {
            errors.push(format!(
                "{name}: unknown variable (no such configuration key)"
            ));
            continue;
        };
        match typed(&leaf.default, &text) {
            Ok(value) => set(tree, &leaf.path, value),
            Err(expected) => errors.push(format!(
                "{name} ({}): expected {expected}, got {text:?}",
                leaf.path.join(".")
            )),
        }
    }
    errors
}

fn typed(default: &Value, text: &str) -> Result<Value, &'static str> {
    match default {
        Value::Bool(_) => match text.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Value::Bool(true)),
            "false" | "0" | "no" | "off" => Ok(Value::Bool(false)),
            _ => Err("true or false"),
        },
        Value::Number(_) => text
            .trim()
            .parse::<u64>()
            .map(Value::from)
            .map_err(|_| "a non-negative integer"),
        _ => Ok(Value::String(text.to_owned())),
    }
}

fn set(tree: &mut Value, path: &[String], value: Value) {
    let mut node = tree;
    for (i, key) in path.iter().enumerate() {
        if !node.is_object() {
            *node = Value::Object(Map::new());
        }
        let Value::Object(map) = node else { return };
        if i + 1 == path.len() {
            map.insert(key.clone(), value);
            return;
        }
        node = map
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

/// Every variable name with its key, for documentation and `--help`.
pub fn all_variables() -> Vec<(String, String)> {
    leaves()
        .into_iter()
        .map(|l| (var_name(&l.path), l.path.join(".")))
        .collect()
}
