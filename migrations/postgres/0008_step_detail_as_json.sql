-- A step's detail holds the tail of what its command printed and of an HTTP response,
-- which may contain NUL characters (`find -print0`, a binary body). jsonb cannot hold
-- "\u0000" and refused the whole write, so the run's steps were never stored; json keeps
-- the text as written, as SQLite's TEXT column does.
ALTER TABLE execution_steps ALTER COLUMN detail TYPE JSON USING detail::json;
