-- Schema version 12: jobs across machines (issue 23).
-- A running job is held by the process that claimed it (`lease_owner`:
-- host, pid and start time) until `lease_expires_at`, which that process
-- renews while it runs the job. A job whose lease ran out, or whose owner
-- on this host is gone, is queued again; a live worker's job never is.
ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
ALTER TABLE jobs ADD COLUMN lease_expires_at TEXT;
CREATE INDEX jobs_leases ON jobs(state, lease_expires_at);

-- A job's log as appended chunks, in order: appending writes one row
-- instead of rewriting the whole log (up to 10 MiB) each time. `jobs.log`
-- keeps what jobs logged before this version.
CREATE TABLE job_log_chunks (
    job_id  TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    text    TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
);

-- jobs_queue (state, kind, team_id, run_after) serves what jobs_running_team
-- (state, team_id) did, a count of running jobs per team, and the index
-- that was left made PostgreSQL's generic plan for "the next team with
-- queued jobs of this kind" walk 25,000 rows of other kinds per step (45
-- claims per second with 100,000 queued, instead of 750).
DROP INDEX jobs_running_team;
