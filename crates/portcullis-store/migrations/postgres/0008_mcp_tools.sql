-- MCP proxies: the auto-approve setting and the tool inventory (every tool seen per
-- proxy, its whole definition, the SHA-256 of its canonical JSON, its review status).
ALTER TABLE proxies ADD COLUMN mcp_auto_approve BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE mcp_tools (
    id TEXT PRIMARY KEY,
    proxy_id TEXT NOT NULL REFERENCES proxies(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    definition TEXT NOT NULL,
    hash TEXT NOT NULL,
    status TEXT NOT NULL,
    approved_hash TEXT,
    approved_definition TEXT,
    flagged_rules TEXT NOT NULL DEFAULT '[]',
    first_seen_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    approved_by TEXT,
    approved_at BIGINT,
    status_changed_at BIGINT NOT NULL,
    UNIQUE (proxy_id, name)
);
CREATE INDEX mcp_tools_status ON mcp_tools(status);
