-- LLM proxies and the events of the exchanges they relay.
CREATE TABLE proxies (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    provider TEXT NOT NULL,
    upstream_url TEXT NOT NULL,
    credential_id TEXT REFERENCES credentials(id) ON DELETE RESTRICT,
    listen_port BIGINT UNIQUE,
    auth_mode TEXT NOT NULL,
    auto_start BOOLEAN NOT NULL DEFAULT FALSE,
    connect_timeout_ms BIGINT NOT NULL,
    first_byte_timeout_ms BIGINT NOT NULL,
    idle_timeout_ms BIGINT NOT NULL,
    max_body_bytes BIGINT NOT NULL,
    policies TEXT NOT NULL DEFAULT '[]',
    managed_by TEXT NOT NULL DEFAULT 'api',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE events (
    id TEXT PRIMARY KEY,
    at BIGINT NOT NULL,
    proxy_id TEXT NOT NULL,
    proxy_name TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    key_id TEXT,
    group_id TEXT,
    end_user TEXT,
    model TEXT,
    status BIGINT NOT NULL,
    decision TEXT NOT NULL,
    error TEXT,
    stream BOOLEAN NOT NULL DEFAULT FALSE,
    latency_us BIGINT NOT NULL,
    ttft_us BIGINT,
    overhead_us BIGINT NOT NULL,
    input_tokens BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    cached_tokens BIGINT NOT NULL DEFAULT 0,
    request_bytes BIGINT NOT NULL DEFAULT 0,
    response_bytes BIGINT NOT NULL DEFAULT 0,
    findings TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX events_at ON events(at);
CREATE INDEX events_proxy_at ON events(proxy_id, at);
CREATE INDEX events_group_at ON events(group_id, at);
CREATE INDEX events_key_at ON events(key_id, at);
CREATE INDEX events_model_at ON events(model, at);
