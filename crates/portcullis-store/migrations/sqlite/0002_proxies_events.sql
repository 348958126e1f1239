-- LLM proxies and the events of the exchanges they relay.
CREATE TABLE proxies (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    provider TEXT NOT NULL,
    upstream_url TEXT NOT NULL,
    credential_id TEXT REFERENCES credentials(id) ON DELETE RESTRICT,
    listen_port INTEGER UNIQUE,
    auth_mode TEXT NOT NULL,
    auto_start INTEGER NOT NULL DEFAULT 0,
    connect_timeout_ms INTEGER NOT NULL,
    first_byte_timeout_ms INTEGER NOT NULL,
    idle_timeout_ms INTEGER NOT NULL,
    max_body_bytes INTEGER NOT NULL,
    policies TEXT NOT NULL DEFAULT '[]',
    managed_by TEXT NOT NULL DEFAULT 'api',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE events (
    id TEXT PRIMARY KEY,
    at INTEGER NOT NULL,
    proxy_id TEXT NOT NULL,
    proxy_name TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    key_id TEXT,
    group_id TEXT,
    end_user TEXT,
    model TEXT,
    status INTEGER NOT NULL,
    decision TEXT NOT NULL,
    error TEXT,
    stream INTEGER NOT NULL DEFAULT 0,
    latency_us INTEGER NOT NULL,
    ttft_us INTEGER,
    overhead_us INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cached_tokens INTEGER NOT NULL DEFAULT 0,
    request_bytes INTEGER NOT NULL DEFAULT 0,
    response_bytes INTEGER NOT NULL DEFAULT 0,
    findings TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX events_at ON events(at);
CREATE INDEX events_proxy_at ON events(proxy_id, at);
CREATE INDEX events_group_at ON events(group_id, at);
CREATE INDEX events_key_at ON events(key_id, at);
CREATE INDEX events_model_at ON events(model, at);
