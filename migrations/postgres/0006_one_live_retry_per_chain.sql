-- A retry of a retry belongs to the chain of the run first retried (its root). Every
-- run of a chain that has not succeeded can be retried, and each would run the same
-- remaining steps: one live retry per retried run is not enough, there must be one
-- live retry per chain, or a retry of the original and a retry of its failed retry
-- run side by side.
ALTER TABLE executions ADD COLUMN retry_root UUID;

-- Existing retries: the earliest run of their chain (or, past a missing run, the
-- earliest one known).
WITH RECURSIVE up (id, ancestor) AS (
    SELECT id, retry_of FROM executions WHERE retry_of IS NOT NULL
    UNION
    SELECT up.id, e.retry_of FROM up JOIN executions e ON e.id = up.ancestor
    WHERE e.retry_of IS NOT NULL
)
UPDATE executions SET retry_root = COALESCE(
    (SELECT up.ancestor FROM up LEFT JOIN executions a ON a.id = up.ancestor
     WHERE up.id = executions.id AND a.retry_of IS NULL LIMIT 1),
    retry_of)
WHERE retry_of IS NOT NULL;

-- Should two retries of one chain be live already (as the single index allowed), the
-- later ones (by creation) leave the chain rather than fail the migration; each is still one live
-- retry of the run it retries (executions_one_live_retry).
UPDATE executions SET retry_root = NULL
WHERE retry_root IS NOT NULL AND status IN ('queued', 'running', 'paused', 'waiting')
  AND EXISTS (
      SELECT 1 FROM executions o
      WHERE o.retry_root = executions.retry_root
        AND (o.created_at < executions.created_at
             OR (o.created_at = executions.created_at AND o.id < executions.id))
        AND o.status IN ('queued', 'running', 'paused', 'waiting'));

CREATE UNIQUE INDEX executions_one_live_retry_per_chain ON executions (retry_root)
    WHERE retry_root IS NOT NULL AND status IN ('queued', 'running', 'paused', 'waiting');
