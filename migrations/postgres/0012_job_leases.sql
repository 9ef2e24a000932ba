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

-- jobs_queue (state, kind, team_id, run_after) serves what jobs_running_team
-- (state, team_id) did, a count of running jobs per team, and the index
-- that was left made PostgreSQL's generic plan for "the next team with
-- queued jobs of this kind" walk 25,000 rows of other kinds per step (45
-- claims per second with 100,000 queued, instead of 750).
DROP INDEX jobs_running_team;
