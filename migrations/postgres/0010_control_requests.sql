-- Control actions (pause, resume, stop, acknowledge) for a run that another process
-- executes: the requester leaves one here, the executing process takes it, applies it
-- and answers, and the requester reads the answer and deletes the row.
CREATE TABLE control_requests (
    id           UUID PRIMARY KEY,
    execution_id UUID NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    action       TEXT NOT NULL,
    block_id     TEXT,
    requested_by TEXT NOT NULL,
    requested_at TIMESTAMPTZ NOT NULL,
    taken_at     TIMESTAMPTZ,
    answered_at  TIMESTAMPTZ,
    status       TEXT,   -- the run's state after an applied action
    refusal      TEXT    -- why the action was not applied
);
CREATE INDEX control_requests_untaken ON control_requests (execution_id, requested_at)
    WHERE taken_at IS NULL;
CREATE INDEX control_requests_by_time ON control_requests (requested_at);
