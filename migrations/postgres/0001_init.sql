-- Runbook Studio schema, PostgreSQL flavour (the shared team store).

CREATE TABLE runbooks (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    tags        JSONB NOT NULL,
    search_text TEXT NOT NULL,
    content     JSONB NOT NULL,
    version     BIGINT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    updated_by  TEXT NOT NULL,
    deleted_at  TIMESTAMPTZ
);
CREATE INDEX runbooks_live_by_name ON runbooks (name, id) WHERE deleted_at IS NULL;

CREATE TABLE runbook_tags (
    runbook_id UUID NOT NULL REFERENCES runbooks (id),
    tag        TEXT NOT NULL,
    PRIMARY KEY (tag, runbook_id)
);

CREATE TABLE runbook_versions (
    runbook_id UUID NOT NULL REFERENCES runbooks (id),
    version    BIGINT NOT NULL,
    content    JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    created_by TEXT NOT NULL,
    message    TEXT NOT NULL,
    PRIMARY KEY (runbook_id, version)
);

CREATE TABLE executions (
    id              UUID PRIMARY KEY,
    runbook_id      UUID NOT NULL,
    runbook_version BIGINT NOT NULL,
    runbook_name    TEXT NOT NULL,
    status          TEXT NOT NULL,
    params          JSONB NOT NULL,
    started_by      TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    started_at      TIMESTAMPTZ,
    finished_at     TIMESTAMPTZ,
    runner_id       UUID,              -- the process running it
    heartbeat_at    TIMESTAMPTZ                -- last sign of life from that process
);
CREATE INDEX executions_by_created ON executions (created_at DESC);
CREATE INDEX executions_by_runbook ON executions (runbook_id, created_at DESC);
CREATE INDEX executions_by_status ON executions (status);

CREATE TABLE execution_steps (
    execution_id UUID NOT NULL REFERENCES executions (id),
    idx          INTEGER NOT NULL,
    block_id     TEXT NOT NULL,
    status       TEXT NOT NULL,
    exit_code    INTEGER,
    http_status  INTEGER,
    started_at   TIMESTAMPTZ,
    finished_at  TIMESTAMPTZ,
    output_bytes BIGINT NOT NULL DEFAULT 0,
    error        TEXT,
    PRIMARY KEY (execution_id, idx)
);

CREATE TABLE execution_output (
    execution_id UUID NOT NULL REFERENCES executions (id),
    byte_offset  BIGINT NOT NULL,
    data         BYTEA NOT NULL,
    PRIMARY KEY (execution_id, byte_offset)
);

CREATE TABLE api_keys (
    id           UUID PRIMARY KEY,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ,
    expires_at   TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);
