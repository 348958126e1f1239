-- User rule packs (built-in packs live in the binary), and alerts raised from
-- findings at or above alerts.min_severity.
CREATE TABLE policies (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    rule_count INTEGER NOT NULL,
    pack TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE alerts (
    id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    proxy_id TEXT NOT NULL,
    proxy_name TEXT NOT NULL,
    rule TEXT NOT NULL,
    category TEXT NOT NULL,
    severity TEXT NOT NULL,
    severity_rank INTEGER NOT NULL,
    action TEXT NOT NULL,
    location TEXT NOT NULL,
    key_id TEXT,
    group_id TEXT,
    status TEXT NOT NULL DEFAULT 'open',
    status_changed_at INTEGER,
    status_changed_by TEXT,
    note TEXT
);
-- A replayed event batch raises nothing twice.
CREATE UNIQUE INDEX alerts_event_rule_location ON alerts(event_id, rule, location);
CREATE INDEX alerts_created_at ON alerts(created_at);
CREATE INDEX alerts_status_created_at ON alerts(status, created_at);
