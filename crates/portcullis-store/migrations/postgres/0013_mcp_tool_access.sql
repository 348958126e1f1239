-- MCP tool access: allow and deny lists of tool names or globs (JSON arrays) and
-- per-key calls per minute by tool name or glob (JSON object) on MCP proxies.
ALTER TABLE proxies ADD COLUMN mcp_tool_allow TEXT NOT NULL DEFAULT '[]';
ALTER TABLE proxies ADD COLUMN mcp_tool_deny TEXT NOT NULL DEFAULT '[]';
ALTER TABLE proxies ADD COLUMN mcp_tool_rate_limits TEXT NOT NULL DEFAULT '{}';

-- Per group: allow and deny lists of MCP tool names or globs for its keys.
ALTER TABLE groups ADD COLUMN mcp_tool_allow TEXT NOT NULL DEFAULT '[]';
ALTER TABLE groups ADD COLUMN mcp_tool_deny TEXT NOT NULL DEFAULT '[]';
