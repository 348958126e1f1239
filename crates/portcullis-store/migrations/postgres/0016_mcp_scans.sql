-- Scans of MCP proxies' servers run from the admin API: one row per server
-- (federation member), its findings (JSON, never the matched text), the counts
-- per severity and what the server said it is (JSON).
CREATE TABLE mcp_scans (
    id TEXT PRIMARY KEY,
    proxy_id TEXT NOT NULL REFERENCES proxies(id) ON DELETE CASCADE,
    server TEXT NOT NULL DEFAULT '',
    transport TEXT NOT NULL,
    target TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    status TEXT NOT NULL,
    error TEXT,
    max_severity TEXT,
    critical_count BIGINT NOT NULL DEFAULT 0,
    high_count BIGINT NOT NULL DEFAULT 0,
    medium_count BIGINT NOT NULL DEFAULT 0,
    low_count BIGINT NOT NULL DEFAULT 0,
    info_count BIGINT NOT NULL DEFAULT 0,
    findings TEXT NOT NULL DEFAULT '[]',
    server_info TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX mcp_scans_proxy ON mcp_scans(proxy_id, id);
CREATE INDEX mcp_scans_status ON mcp_scans(status);
