-- Runbook Studio schema, SQLite flavour (the embedded default store).

CREATE TABLE runbooks (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    tags        TEXT NOT NULL,              -- JSON array of strings
    search_text TEXT NOT NULL,              -- lowercased name, tags and description
    content     TEXT NOT NULL,              -- JSON of the current draft
    version     INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    updated_by  TEXT NOT NULL,
    deleted_at  TEXT
);
CREATE INDEX runbooks_live_by_name ON runbooks (name, id) WHERE deleted_at IS NULL;

CREATE TABLE runbook_tags (
    runbook_id TEXT NOT NULL REFERENCES runbooks (id),
    tag        TEXT NOT NULL,
    PRIMARY KEY (tag, runbook_id)
);

CREATE TABLE runbook_versions (
    runbook_id TEXT NOT NULL REFERENCES runbooks (id),
    version    INTEGER NOT NULL,
    content    TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    message    TEXT NOT NULL,
    PRIMARY KEY (runbook_id, version)
);

CREATE TABLE executions (
    id              TEXT PRIMARY KEY NOT NULL,
    runbook_id      TEXT NOT NULL,
    runbook_version INTEGER NOT NULL,
    runbook_name    TEXT NOT NULL,
    status          TEXT NOT NULL,
    params          TEXT NOT NULL,          -- JSON object
    started_by      TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    started_at      TEXT,
    finished_at     TEXT,
    runner_id       TEXT,              -- the process running it
    heartbeat_at    TEXT                -- last sign of life from that process
);
CREATE INDEX executions_by_created ON executions (created_at DESC);
CREATE INDEX executions_by_runbook ON executions (runbook_id, created_at DESC);
CREATE INDEX executions_by_status ON executions (status);

CREATE TABLE execution_steps (
    execution_id TEXT NOT NULL REFERENCES executions (id),
    idx          INTEGER NOT NULL,
    block_id     TEXT NOT NULL,
    status       TEXT NOT NULL,
    exit_code    INTEGER,
    http_status  INTEGER,
    started_at   TEXT,
    finished_at  TEXT,
    output_bytes INTEGER NOT NULL DEFAULT 0,
    error        TEXT,
    PRIMARY KEY (execution_id, idx)
);

CREATE TABLE execution_output (
    execution_id TEXT NOT NULL REFERENCES executions (id),
    byte_offset  INTEGER NOT NULL,
    data         BLOB NOT NULL,
    PRIMARY KEY (execution_id, byte_offset)
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    expires_at   TEXT,
    revoked_at   TEXT
);
