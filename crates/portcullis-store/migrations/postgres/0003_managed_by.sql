-- Who owns a record: the API, or the configuration file (then read-only in the API).
ALTER TABLE groups ADD COLUMN managed_by TEXT NOT NULL DEFAULT 'api';
ALTER TABLE credentials ADD COLUMN managed_by TEXT NOT NULL DEFAULT 'api';
ALTER TABLE api_keys ADD COLUMN managed_by TEXT NOT NULL DEFAULT 'api';
