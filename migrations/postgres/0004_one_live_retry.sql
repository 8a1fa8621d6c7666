-- A run is retried by at most one live run at a time: two retries running the same
-- remaining steps side by side would repeat operational work. Once a retry ends
-- (whatever its outcome), the run can be retried again.
CREATE UNIQUE INDEX executions_one_live_retry ON executions (retry_of)
    WHERE retry_of IS NOT NULL AND status IN ('queued', 'running', 'paused', 'waiting');
