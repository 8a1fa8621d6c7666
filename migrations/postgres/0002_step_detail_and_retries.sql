-- What a step produced for later steps (outputs, captured streams, HTTP response,
-- branch taken), and the link from a retry to the run it retries.
ALTER TABLE execution_steps ADD COLUMN detail JSONB;
ALTER TABLE executions ADD COLUMN retry_of UUID;
ALTER TABLE executions ADD COLUMN retry_from TEXT;
