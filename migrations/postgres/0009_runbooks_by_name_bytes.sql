-- Runbooks are listed by the bytes of their names (COLLATE "C"), as SQLite lists them,
-- not by the database's collation, which differs between servers (en_US, ICU, C) and
-- between versions of the C library. The listing's index follows.
CREATE INDEX runbooks_live_by_name_bytes ON runbooks (name COLLATE "C", id)
    WHERE deleted_at IS NULL;
DROP INDEX runbooks_live_by_name;
