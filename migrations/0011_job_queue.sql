-- Schema version 11: claims that do not read the backlog (issue 23). A
-- claim looked at every due job and counted each one's team's running jobs:
-- 282 ms at 176k queued. Now a lane asks, per kind, which teams have queued
-- jobs (a skip through jobs_queue: one seek per team) and each team's oldest
-- (one more seek), and picks among those few.
CREATE INDEX jobs_queue ON jobs(state, kind, team_id, run_after);
-- When a lane's next job is due: the first entry per kind.
CREATE INDEX jobs_due ON jobs(state, kind, run_after);
