-- The hosts an api_call may send an HTTP credential to, as a JSON array of host
-- patterns. Empty: only to a host written in the runbook's URL itself.
ALTER TABLE credentials ADD COLUMN hosts TEXT NOT NULL DEFAULT '[]';
