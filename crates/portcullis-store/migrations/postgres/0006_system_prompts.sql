-- Governed system prompts and where they apply. A binding targets a proxy or a
-- group by id; deleting either removes its bindings in the same transaction
-- (see delete_proxy / delete_group), deleting a template removes them here.
CREATE TABLE system_prompts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    content TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE system_prompt_bindings (
    template_id TEXT NOT NULL REFERENCES system_prompts(id) ON DELETE CASCADE,
    target_kind TEXT NOT NULL CHECK (target_kind IN ('proxy', 'group')),
    target_id TEXT NOT NULL,
    priority BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (template_id, target_kind, target_id)
);
CREATE INDEX system_prompt_bindings_target ON system_prompt_bindings(target_kind, target_id);
