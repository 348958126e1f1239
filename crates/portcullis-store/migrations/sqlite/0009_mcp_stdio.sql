-- MCP proxies whose server is a stdio process the gateway starts: its program,
-- arguments (JSON array) and environment (JSON object).
ALTER TABLE proxies ADD COLUMN upstream_command TEXT;
ALTER TABLE proxies ADD COLUMN upstream_args TEXT NOT NULL DEFAULT '[]';
ALTER TABLE proxies ADD COLUMN upstream_env TEXT NOT NULL DEFAULT '{}';
