-- A control request is taken only until it expires; the executing process audits the
-- request as the operator who made it, with the request id of their call.
ALTER TABLE control_requests ADD COLUMN expires_at TEXT;
ALTER TABLE control_requests ADD COLUMN request_id TEXT;
