-- MCP federations: a proxy may front several Streamable HTTP servers (JSON array
-- of {name, upstream_url, credential_id}), with the separator and prefix mode of
-- their names. The tool inventory is kept per (proxy, server, name): `server` is
-- empty for a proxy with one server.
ALTER TABLE proxies ADD COLUMN mcp_servers TEXT NOT NULL DEFAULT '[]';
ALTER TABLE proxies ADD COLUMN mcp_separator TEXT;
ALTER TABLE proxies ADD COLUMN mcp_prefix_mode TEXT;

ALTER TABLE mcp_tools ADD COLUMN server TEXT NOT NULL DEFAULT '';
ALTER TABLE mcp_tools DROP CONSTRAINT mcp_tools_proxy_id_name_key;
ALTER TABLE mcp_tools ADD CONSTRAINT mcp_tools_proxy_server_name_key UNIQUE (proxy_id, server, name);
