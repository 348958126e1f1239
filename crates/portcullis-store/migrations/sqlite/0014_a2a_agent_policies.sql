-- The policy packs an A2A agent's messages and answers are scanned with (JSON list
-- of pack names); NULL: the gateway's default for agents (llm-critical-security).
ALTER TABLE a2a_agents ADD COLUMN policies TEXT;
