-- Schema version 12 (migrations/0012_job_leases.sql): job leases and
-- append-only job logs.
ALTER TABLE jobs ADD COLUMN lease_owner TEXT COLLATE "C";
ALTER TABLE jobs ADD COLUMN lease_expires_at TEXT COLLATE "C";
CREATE INDEX jobs_leases ON jobs(state, lease_expires_at);

CREATE TABLE job_log_chunks (
    job_id  TEXT COLLATE "C" NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    seq     BIGINT NOT NULL,
    text    TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (job_id, seq)
);
