-- 0001_init.sql - the jobs table on PostgreSQL (rule for adding a migration: core/db.c;
-- core/queue_pg.c applies these under an advisory lock)
CREATE TABLE jobs (
    seq              BIGSERIAL UNIQUE,               -- insertion order (SQLite's rowid)
    id               TEXT PRIMARY KEY CHECK (length(id) = 36),  -- UUID v4, lowercase
    name             TEXT NOT NULL DEFAULT '',
    status           TEXT NOT NULL
                     CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    stage            TEXT NOT NULL DEFAULT '',
    progress         DOUBLE PRECISION NOT NULL DEFAULT 0,
    owner            TEXT NOT NULL DEFAULT '',
    attempts         INTEGER NOT NULL DEFAULT 0,     -- runs interrupted (dead daemon, expired lease)
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at       DOUBLE PRECISION NOT NULL,      -- unix seconds
    started_at       DOUBLE PRECISION,               -- NULL until claimed
    finished_at      DOUBLE PRECISION,               -- NULL until succeeded, failed or cancelled
    updated_at       DOUBLE PRECISION NOT NULL,
    request          TEXT NOT NULL,                  -- JSON, every default filled in
    stages           TEXT NOT NULL DEFAULT '[]',     -- JSON [{"stage","started_at","finished_at"}]
    result           TEXT,                           -- JSON of result.json
    error            TEXT,
    idem_key         TEXT,                           -- Idempotency-Key, per owner
    files_deleted    INTEGER NOT NULL DEFAULT 0,     -- retention removed the files
    claimed_by       TEXT,                           -- host:pid:start of the last claimer
    lease_until      DOUBLE PRECISION,               -- database clock, unix seconds
    fence            BIGINT NOT NULL DEFAULT 0,      -- fencing token of the last claim
    UNIQUE (owner, idem_key)
);

-- fencing tokens: one sequence, so a token is never handed out twice
CREATE SEQUENCE jobs_fence;

-- queue_claim: the oldest queued job
CREATE INDEX jobs_queued ON jobs (created_at, seq) WHERE status = 'queued';
-- queue_rescue: running jobs by lease
CREATE INDEX jobs_lease ON jobs (lease_until) WHERE status = 'running';
-- queue_list: newest first, optionally by status
CREATE INDEX jobs_created ON jobs (created_at, seq);
CREATE INDEX jobs_status_created ON jobs (status, created_at, seq);
-- queue_expired: finished jobs by finish time
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
