-- Cost per event, operator prices, and spend budgets on groups and keys.

-- USD; NULL when tokens were used but the model has no price.
ALTER TABLE events ADD COLUMN cost_usd DOUBLE PRECISION;

CREATE TABLE model_prices (
    model TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    input_usd DOUBLE PRECISION NOT NULL,
    output_usd DOUBLE PRECISION NOT NULL,
    cached_input_usd DOUBLE PRECISION NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE budgets (
    id TEXT PRIMARY KEY,
    scope TEXT NOT NULL,
    target_id TEXT NOT NULL,
    limit_usd DOUBLE PRECISION NOT NULL,
    warn_percent BIGINT NOT NULL,
    enforcement TEXT NOT NULL,
    timezone TEXT NOT NULL,
    reset_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (scope, target_id)
);

-- Manual resets: each starts a new period (the history is computed from these,
-- the calendar and the events' costs).
CREATE TABLE budget_resets (
    budget_id TEXT NOT NULL REFERENCES budgets(id) ON DELETE CASCADE,
    at BIGINT NOT NULL,
    by_user TEXT NOT NULL,
    PRIMARY KEY (budget_id, at)
);
