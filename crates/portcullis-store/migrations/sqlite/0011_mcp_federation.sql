-- MCP federations: a proxy may front several Streamable HTTP servers (JSON array
-- of {name, upstream_url, credential_id}), with the separator and prefix mode of
-- their names. The tool inventory is kept per (proxy, server, name): `server` is
-- empty for a proxy with one server. SQLite cannot change a UNIQUE constraint in
-- place, so the inventory table is rebuilt.
ALTER TABLE proxies ADD COLUMN mcp_servers TEXT NOT NULL DEFAULT '[]';
ALTER TABLE proxies ADD COLUMN mcp_separator TEXT;
ALTER TABLE proxies ADD COLUMN mcp_prefix_mode TEXT;

CREATE TABLE mcp_tools_0011 (
    id TEXT PRIMARY KEY,
    proxy_id TEXT NOT NULL REFERENCES proxies(id) ON DELETE CASCADE,
    server TEXT NOT NULL DEFAULT '',
    name TEXT NOT NULL,
    definition TEXT NOT NULL,
    hash TEXT NOT NULL,
    status TEXT NOT NULL,
    approved_hash TEXT,
    approved_definition TEXT,
    flagged_rules TEXT NOT NULL DEFAULT '[]',
    first_seen_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    approved_by TEXT,
    approved_at INTEGER,
    status_changed_at INTEGER NOT NULL,
    UNIQUE (proxy_id, server, name)
);
INSERT INTO mcp_tools_0011 (id, proxy_id, server, name, definition, hash, status, approved_hash,
    approved_definition, flagged_rules, first_seen_at, last_seen_at, approved_by, approved_at,
    status_changed_at)
SELECT id, proxy_id, '', name, definition, hash, status, approved_hash, approved_definition,
    flagged_rules, first_seen_at, last_seen_at, approved_by, approved_at, status_changed_at
FROM mcp_tools;
DROP TABLE mcp_tools;
ALTER TABLE mcp_tools_0011 RENAME TO mcp_tools;
CREATE INDEX mcp_tools_status ON mcp_tools(status);
