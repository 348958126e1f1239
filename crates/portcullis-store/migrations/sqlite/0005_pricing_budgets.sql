-- Cost per event, operator prices, and spend budgets on groups and keys.

-- USD; NULL when tokens were used but the model has no price.
ALTER TABLE events ADD COLUMN cost_usd REAL;

CREATE TABLE model_prices (
    model TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    input_usd REAL NOT NULL,
    output_usd REAL NOT NULL,
    cached_input_usd REAL NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE budgets (
    id TEXT PRIMARY KEY,
    scope TEXT NOT NULL,
    target_id TEXT NOT NULL,
    limit_usd REAL NOT NULL,
    warn_percent INTEGER NOT NULL,
    enforcement TEXT NOT NULL,
    timezone TEXT NOT NULL,
    reset_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (scope, target_id)
);

-- Manual resets: each starts a new period (the history is computed from these,
-- the calendar and the events' costs).
CREATE TABLE budget_resets (
    budget_id TEXT NOT NULL REFERENCES budgets(id) ON DELETE CASCADE,
    at INTEGER NOT NULL,
    by_user TEXT NOT NULL,
    PRIMARY KEY (budget_id, at)
);
