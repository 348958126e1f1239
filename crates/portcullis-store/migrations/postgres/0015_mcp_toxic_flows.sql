-- Toxic flows on MCP proxies: tool labels by tool name or glob (JSON object of
-- label arrays) and the session flow rules (JSON array; NULL: the defaults).
ALTER TABLE proxies ADD COLUMN mcp_tool_labels TEXT NOT NULL DEFAULT '{}';
ALTER TABLE proxies ADD COLUMN mcp_flow_rules TEXT;
