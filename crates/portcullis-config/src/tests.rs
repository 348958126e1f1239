use super::*;
use std::io::Write;

fn vars(list: &[(&str, &str)]) -> VarList {
    VarList(
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn load_yaml(yaml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let mut file = tempfile::NamedTempFile::new().map_err(|source| ConfigError::Read {
        path: "tmp".into(),
        source,
    })?;
    file.write_all(yaml.as_bytes())
        .map_err(|source| ConfigError::Read {
            path: "tmp".into(),
            source,
        })?;
    load(Some(file.path()), &vars(env), &Overrides::default())
}

fn message(result: Result<Config, ConfigError>) -> String {
    match result {
        Ok(_) => String::from("<accepted>"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn defaults_without_file_or_env() {
    let config = load(None, &vars(&[]), &Overrides::default());
    let Ok(config) = config else {
        panic!("defaults must load")
    };
    assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
    assert!(
        matches!(config.database, Database::Sqlite { ref path } if path.ends_with("portcullis.db"))
    );
    assert_eq!(config.auth.token_ttl.as_secs(), 3600);
}

#[test]
fn env_overrides_file_and_flags_override_env() {
    let yaml = "listen: 127.0.0.1:9000\nauth:\n  token_ttl_secs: 600\n";
    let config = load_yaml(
        yaml,
        &[
            ("PORTCULLIS_AUTH_TOKEN_TTL_SECS", "120"),
            ("PORTCULLIS_LISTEN", "127.0.0.1:9001"),
        ],
    );
    let Ok(config) = config else {
        panic!("valid config")
    };
    assert_eq!(config.auth.token_ttl.as_secs(), 120);
    assert_eq!(config.listen.port(), 9001);

    let flags = Overrides {
        listen: Some("127.0.0.1:9002".into()),
        ..Default::default()
    };
    let config = load(
        None,
        &vars(&[("PORTCULLIS_LISTEN", "127.0.0.1:9001")]),
        &flags,
    );
    assert_eq!(config.map(|c| c.listen.port()).ok(), Some(9002));
}

#[test]
fn unknown_keys_are_named() {
    let msg = message(load_yaml("auth:\n  token_tll_secs: 5\n", &[]));
    assert!(
        msg.contains("auth") && msg.contains("token_tll_secs"),
        "{msg}"
    );
    let msg = message(load_yaml("listn: x\n", &[]));
    assert!(msg.contains("listn"), "{msg}");
}

#[test]
fn unknown_variables_and_bad_values_are_named() {
    let msg = message(load(
        None,
        &vars(&[("PORTCULLIS_LISTN", "x")]),
        &Overrides::default(),
    ));
    assert!(msg.contains("PORTCULLIS_LISTN"), "{msg}");
    let msg = message(load(
        None,
        &vars(&[("PORTCULLIS_AUTH_TOKEN_TTL_SECS", "soon")]),
        &Overrides::default(),
    ));
    assert!(
        msg.contains("PORTCULLIS_AUTH_TOKEN_TTL_SECS") && msg.contains("integer"),
        "{msg}"
    );
    let msg = message(load_yaml("auth:\n  token_ttl_secs: soon\n", &[]));
    assert!(msg.contains("auth.token_ttl_secs"), "{msg}");
    let msg = message(load_yaml("listen: nowhere\nlog_format: xml\n", &[]));
    assert!(
        msg.contains("listen") && msg.contains("log_format"),
        "{msg}"
    );
}

#[test]
fn secrets_are_checked_and_never_printed() {
    let msg = message(load(
        None,
        &vars(&[("PORTCULLIS_ENCRYPTION_KEY", "tooshort")]),
        &Overrides::default(),
    ));
    assert!(
        msg.contains("encryption_key") && !msg.contains("tooshort"),
        "{msg}"
    );
    let ok = load(
        None,
        &vars(&[(
            "PORTCULLIS_DATABASE_URL",
            "postgres://u:hunter2@127.0.0.1/test",
        )]),
        &Overrides::default(),
    );
    let Ok(config) = ok else {
        panic!("postgres url accepted")
    };
    assert!(!format!("{config:?}").contains("hunter2"));
}

#[test]
fn every_scalar_key_has_a_variable() {
    let names: Vec<String> = all_variables().into_iter().map(|(v, _)| v).collect();
    for expected in [
        "PORTCULLIS_LISTEN",
        "PORTCULLIS_DATA_DIR",
        "PORTCULLIS_DATABASE_URL",
        "PORTCULLIS_JWT_SECRET",
        "PORTCULLIS_ENCRYPTION_KEY",
        "PORTCULLIS_ADMIN_PASSWORD",
        "PORTCULLIS_LIMITS_ADMIN_BODY_BYTES",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
}

#[test]
fn the_example_config_in_the_repo_loads() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../portcullis.example.yaml");
    let result = load(Some(&path), &vars(&[]), &Overrides::default());
    assert!(result.is_ok(), "{}", message(result));
}

#[test]
fn every_variable_is_documented() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
    let doc = std::fs::read_to_string(path).unwrap_or_default();
    for (var, key) in all_variables() {
        assert!(
            doc.contains(&format!("`{var}`")),
            "{var} is missing from docs/configuration.md"
        );
        assert!(
            doc.contains(&format!("`{key}`")),
            "{key} is missing from docs/configuration.md"
        );
    }
}

const DECLARED: &str = r#"
groups:
  - name: research
    rate_limits: {rpm: 600, tpm: 100000}
credentials:
  - name: openai
    provider: openai
    secret: ${OPENAI_KEY}
keys:
  - name: ci
    group: research
    key: ${CI_KEY}
    scopes: [llm]
    rate_limits: {rpm: 10}
proxies:
  - name: main
    provider: openai
    upstream_url: https://api.openai.com
    credential: openai
    listen_port: 9001
"#;

const CI_KEY: &str = "pcx_abcdefgh0123456789abcdefghij0123456789ab";

#[test]
fn declared_resources_resolve_their_secrets() {
    let config = load_yaml(DECLARED, &[("OPENAI_KEY", "sk-live-1"), ("CI_KEY", CI_KEY)]);
    let Ok(config) = config else {
        panic!("{}", message(config))
    };
    let d = &config.declared;
    assert_eq!(d.credentials[0].secret.expose(), "sk-live-1");
    assert_eq!(d.keys[0].key.expose(), CI_KEY);
    assert_eq!(d.proxies[0].spec.listen_port, Some(9001));
    assert_eq!(d.groups[0].rate_limits.tpm, Some(100_000));
    assert_eq!(
        (d.keys[0].rate_limits.rpm, d.keys[0].rate_limits.tpm),
        (Some(10), None)
    );
    assert_eq!(config.redis_prefix, "portcullis");
    assert_eq!(d.proxies[0].credential.as_deref(), Some("openai"));
    assert!(!format!("{config:?}").contains("sk-live-1"));
}

#[test]
fn declared_resources_report_every_problem() {
    let bad = r#"
groups: [{name: a}, {name: a, rate_limits: {rpm: 0}}]
credentials:
  - {name: c, provider: openai, secret: sk-literal}
  - {name: d, provider: openai, secret: "${MISSING_VAR}"}
keys:
  - {name: k, group: nobody, key: "${NOT_A_KEY}", rate_limits: {tpm: 0}}
proxies:
  - {name: p, provider: openai, upstream_url: "ftp://x", credential: zzz, bogus: 1}
  - {name: q, provider: openai, upstream_url: "http://127.0.0.1:1", listen_port: 0}
"#;
    let msg = message(load_yaml(bad, &[("NOT_A_KEY", "hello")]));
    for expected in [
        "declared twice",
        "credentials[0].secret",
        "MISSING_VAR",
        "keys[0].group",
        "keys[0].key",
        "groups[1].rate_limits.rpm",
        "keys[0].rate_limits.tpm",
        "proxies[0].bogus",
        "proxies[1].listen_port",
    ] {
        assert!(msg.contains(expected), "{expected} missing in: {msg}");
    }
}

#[test]
fn alert_threshold_defaults_to_high_and_is_checked() {
    use portcullis_core::alert::Severity;
    let Ok(config) = load(None, &vars(&[]), &Overrides::default()) else {
        panic!("defaults must load")
    };
    assert_eq!(config.alerts.min_severity, Severity::High);
    let Ok(config) = load_yaml(
        "alerts:\n  min_severity: low\n",
        &[("PORTCULLIS_ALERTS_MIN_SEVERITY", "critical")],
    ) else {
        panic!("a valid severity must load")
    };
    assert_eq!(config.alerts.min_severity, Severity::Critical);
    let msg = message(load_yaml("alerts:\n  min_severity: severe\n", &[]));
    assert!(msg.contains("alerts.min_severity"), "{msg}");
}

#[test]
fn organization_is_optional_trimmed_and_bounded() {
    let Ok(config) = load(None, &vars(&[]), &Overrides::default()) else {
        panic!("defaults must load")
    };
    assert_eq!(config.organization, "");
    let Ok(config) = load_yaml("organization: ' Acme Corp '\n", &[]) else {
        panic!("an organization must load")
    };
    assert_eq!(config.organization, "Acme Corp");
    let Ok(config) = load_yaml(
        "organization: Acme\n",
        &[("PORTCULLIS_ORGANIZATION", "Globex")],
    ) else {
        panic!("the variable must load")
    };
    assert_eq!(config.organization, "Globex");
    let long = format!("organization: {}\n", "x".repeat(129));
    let msg = message(load_yaml(&long, &[]));
    assert!(msg.contains("organization"), "{msg}");
}

#[test]
fn redis_prefix_is_checked() {
    let config = load(
        None,
        &vars(&[("PORTCULLIS_REDIS_PREFIX", "pcx-test:1")]),
        &Overrides::default(),
    );
    assert!(config.is_ok_and(|c| c.redis_prefix == "pcx-test:1"));
    let msg = message(load_yaml("redis_prefix: \"has space\"\n", &[]));
    assert!(msg.contains("redis_prefix"), "{msg}");
}

#[test]
fn a2a_network_policy_defaults_to_deny_and_is_checked() {
    let Ok(config) = load(None, &vars(&[]), &Overrides::default()) else {
        panic!("defaults must load")
    };
    assert!(!config.a2a_network.allow_private);
    assert!(config.a2a_network.allowed.is_empty());
    assert_eq!(
        config.a2a_refresh,
        Some(std::time::Duration::from_secs(3600))
    );
    let off = load(
        None,
        &vars(&[("PORTCULLIS_A2A_REFRESH_INTERVAL_SECS", "0")]),
        &Overrides::default(),
    );
    assert!(off.is_ok_and(|c| c.a2a_refresh.is_none()));
    let msg = message(load_yaml("a2a:\n  refresh_interval_secs: 99999999\n", &[]));
    assert!(msg.contains("a2a.refresh_interval_secs"), "{msg}");
    let Ok(config) = load_yaml(
        "a2a:\n  allowed_networks: [10.20.0.0/16, 'fd00::/8']\n",
        &[("PORTCULLIS_A2A_ALLOW_PRIVATE_NETWORKS", "true")],
    ) else {
        panic!("a valid a2a section must load")
    };
    assert!(config.a2a_network.allow_private);
    assert_eq!(config.a2a_network.allowed.len(), 2);
    let msg = message(load_yaml(
        "a2a:\n  allowed_networks: [10.0.0.0/8, 10.0.0.0/99]\n",
        &[],
    ));
    assert!(msg.contains("a2a.allowed_networks[1]"), "{msg}");
}
