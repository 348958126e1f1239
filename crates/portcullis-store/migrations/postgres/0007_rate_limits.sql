-- Requests and tokens per minute, per group and per key (NULL: no limit).
ALTER TABLE groups ADD COLUMN rpm_limit BIGINT;
ALTER TABLE groups ADD COLUMN tpm_limit BIGINT;
ALTER TABLE api_keys ADD COLUMN rpm_limit BIGINT;
ALTER TABLE api_keys ADD COLUMN tpm_limit BIGINT;
