-- 0001_init.sql - the jobs table (see the rule for adding a migration in core/db.c)
CREATE TABLE jobs (
    id               TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),  -- UUID v4, lowercase
    name             TEXT NOT NULL DEFAULT '',
    status           TEXT NOT NULL
                     CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    stage            TEXT NOT NULL DEFAULT '',
    progress         REAL NOT NULL DEFAULT 0,
    owner            TEXT NOT NULL DEFAULT '',
    attempts         INTEGER NOT NULL DEFAULT 0,     -- runs interrupted by a dead daemon (or counted requeues)
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at       REAL NOT NULL,                  -- unix seconds
    started_at       REAL,                           -- NULL until claimed
    finished_at      REAL,                           -- NULL until succeeded, failed or cancelled
    updated_at       REAL NOT NULL,
    request          TEXT NOT NULL,                  -- JSON, every default filled in
    stages           TEXT NOT NULL DEFAULT '[]',     -- JSON [{"stage","started_at","finished_at"}]
    result           TEXT,                           -- JSON of result.json
    error            TEXT,
    idem_key         TEXT,                           -- Idempotency-Key, per owner
    UNIQUE (owner, idem_key)
);

-- queue_claim (oldest queued first) and queue_counts / status-filtered lists
CREATE INDEX jobs_status_created ON jobs (status, created_at);
-- queue_list without a filter: newest first (rowid is in every index)
CREATE INDEX jobs_created ON jobs (created_at);
