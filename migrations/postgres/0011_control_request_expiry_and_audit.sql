-- A control request is taken only until it expires (stamped by the database's clock, so
-- requester and executor need not agree on the time); the executing process audits
-- the request as the operator who made it, with the request id of their call.
ALTER TABLE control_requests ADD COLUMN expires_at TIMESTAMPTZ;
ALTER TABLE control_requests ADD COLUMN request_id TEXT;
