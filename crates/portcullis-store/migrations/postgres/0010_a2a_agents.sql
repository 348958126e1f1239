-- A2A agent registry: each agent's base URL, its AgentCard as fetched or pasted,
-- the SHA-256 of the card's canonical JSON, and its review status
-- (pending, approved, disabled, changed).
CREATE TABLE a2a_agents (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    base_url TEXT,
    card TEXT NOT NULL,
    card_hash TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    refreshed_at BIGINT NOT NULL
);
