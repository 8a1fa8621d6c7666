-- Who asked for a run to stop, and when: set once the executing process accepts the
-- stop, so every view shows the run being stopped during its grace period.
ALTER TABLE executions ADD COLUMN stop_requested_by TEXT;
ALTER TABLE executions ADD COLUMN stop_requested_at TIMESTAMPTZ;
