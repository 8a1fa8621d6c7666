-- What a step produced for later steps (outputs, captured streams, HTTP response,
-- branch taken), and the link from a retry to the run it retries.
ALTER TABLE execution_steps ADD COLUMN detail TEXT;       -- JSON object
ALTER TABLE executions ADD COLUMN retry_of TEXT;
ALTER TABLE executions ADD COLUMN retry_from TEXT;
