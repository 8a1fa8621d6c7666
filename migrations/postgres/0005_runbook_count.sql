-- The number of live runbooks, kept by a trigger in the same transaction as every change
-- to the table, so an unfiltered listing reads its total instead of counting every row.

CREATE TABLE runbook_count (
    only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    live     BIGINT NOT NULL
);
INSERT INTO runbook_count (live) SELECT COUNT(*) FROM runbooks WHERE deleted_at IS NULL;

CREATE FUNCTION runbook_count_follow() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    was_live BOOLEAN := FALSE;
    is_live  BOOLEAN := FALSE;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        was_live := OLD.deleted_at IS NULL;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        is_live := NEW.deleted_at IS NULL;
    END IF;
    IF is_live AND NOT was_live THEN
        UPDATE runbook_count SET live = live + 1;
    ELSIF was_live AND NOT is_live THEN
        UPDATE runbook_count SET live = live - 1;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER runbooks_follow_count
    AFTER INSERT OR UPDATE OF deleted_at OR DELETE ON runbooks
    FOR EACH ROW EXECUTE FUNCTION runbook_count_follow();
