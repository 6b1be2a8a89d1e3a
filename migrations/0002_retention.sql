-- 0002_retention.sql - retention: a job's files can be deleted while its row stays
ALTER TABLE jobs ADD COLUMN files_deleted INTEGER NOT NULL DEFAULT 0;

-- queue_expired: finished jobs by finish time
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
