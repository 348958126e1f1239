-- A2A access control: per agent, the groups that may call it with the skills each
-- sees (JSON list of {group_id, skills}; empty: nobody), requests per minute per
-- key, and a stored credential the gateway sends upstream (sealed in credentials).
ALTER TABLE a2a_agents ADD COLUMN access TEXT NOT NULL DEFAULT '[]';
ALTER TABLE a2a_agents ADD COLUMN rate_limit_rpm BIGINT;
ALTER TABLE a2a_agents ADD COLUMN credential_id TEXT;
ALTER TABLE a2a_agents ADD COLUMN credential_header TEXT;

-- A2A tasks seen through the gateway: one row per agent and task id, owned by the
-- key whose call first showed it; the current state and the states seen, in order
-- (JSON list of {state, at}).
CREATE TABLE a2a_tasks (
    id TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL REFERENCES a2a_agents(id) ON DELETE CASCADE,
    task_id TEXT NOT NULL,
    context_id TEXT,
    key_id TEXT NOT NULL,
    group_id TEXT NOT NULL,
    state TEXT NOT NULL,
    history TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (agent_id, task_id)
);
CREATE INDEX a2a_tasks_updated ON a2a_tasks (updated_at);
CREATE INDEX a2a_tasks_key ON a2a_tasks (key_id, updated_at);
