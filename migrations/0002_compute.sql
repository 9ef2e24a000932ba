-- Schema version 2: the DataRobot compute half (issue 9). Datasets, custom
-- model tests, dependency builds, and cancellable jobs.

-- A job can be asked to stop: the runner polls this flag while its child
-- processes run, kills them, and records the job as cancelled.
ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
-- Fair queueing counts each team's running jobs.
CREATE INDEX jobs_running_team ON jobs(state, team_id);

-- An uploaded tabular dataset (CSV). `state` is RUNNING while the ingest job
-- parses it, then COMPLETED (columns and row_count known) or ERROR (error
-- says why). A dataset has one version; `version_id` is its id, which
-- DataRobot's clients carry next to the dataset id.
CREATE TABLE datasets (
    id          TEXT PRIMARY KEY,
    team_id     TEXT NOT NULL REFERENCES teams(id),
    version_id  TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    file_name   TEXT NOT NULL,
    sha256      TEXT NOT NULL REFERENCES blobs(sha256),
    size        INTEGER NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('RUNNING', 'COMPLETED', 'ERROR')),
    error       TEXT,
    -- JSON array of column names, once COMPLETED.
    columns     TEXT,
    row_count   INTEGER,
    categories  TEXT NOT NULL DEFAULT '[]',
    created_by  TEXT NOT NULL REFERENCES users(id),
    created_at  TEXT NOT NULL
);
CREATE INDEX datasets_team_created ON datasets(team_id, created_at, id);
CREATE INDEX datasets_blob ON datasets(sha256);
-- A list's totalCount without counting the team's datasets on every page,
-- as team_model_counts does for models.
CREATE TABLE team_dataset_counts (
    team_id     TEXT PRIMARY KEY REFERENCES teams(id),
    datasets    INTEGER NOT NULL
);
CREATE TRIGGER datasets_count_insert AFTER INSERT ON datasets BEGIN
    INSERT INTO team_dataset_counts (team_id, datasets) VALUES (NEW.team_id, 1)
        ON CONFLICT (team_id) DO UPDATE SET datasets = datasets + 1;
END;
CREATE TRIGGER datasets_count_delete AFTER DELETE ON datasets BEGIN
    UPDATE team_dataset_counts SET datasets = datasets - 1 WHERE team_id = OLD.team_id;
END;

-- A custom model test: one run of the checks against one version and one
-- dataset. `checks` is a JSON object {checkName: {status, message}};
-- `configuration` what was asked of each check; `settings` the resource
-- settings the run used. The log is the job's (`job_id`).
CREATE TABLE model_tests (
    id                 TEXT PRIMARY KEY,
    team_id            TEXT NOT NULL REFERENCES teams(id),
    model_id           TEXT NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    version_id         TEXT NOT NULL REFERENCES model_versions(id) ON DELETE CASCADE,
    -- Not foreign keys: a test outlives the dataset it read.
    dataset_id         TEXT,
    dataset_version_id TEXT,
    environment_id     TEXT,
    environment_version_id TEXT,
    image_id           TEXT NOT NULL,
    job_id             TEXT NOT NULL,
    overall_status     TEXT NOT NULL,
    checks             TEXT NOT NULL,
    configuration      TEXT NOT NULL DEFAULT '{}',
    settings           TEXT NOT NULL DEFAULT '{}',
    created_by         TEXT NOT NULL REFERENCES users(id),
    created_at         TEXT NOT NULL,
    completed_at       TEXT
);
CREATE INDEX model_tests_model ON model_tests(model_id, created_at, id);
CREATE INDEX model_tests_image ON model_tests(image_id);

-- A version's dependency build: its requirements.txt installed into an
-- environment layered over the base Python runtime. `env_key` is
-- sha256(base runtime, normalised requirements): versions with the same set
-- share one environment on disk.
CREATE TABLE dependency_builds (
    version_id  TEXT PRIMARY KEY REFERENCES model_versions(id) ON DELETE CASCADE,
    team_id     TEXT NOT NULL REFERENCES teams(id),
    status      TEXT NOT NULL CHECK (status IN ('submitted', 'processing', 'success', 'failed')),
    -- Known once the build has asked the runtime who it is.
    env_key     TEXT,
    job_id      TEXT NOT NULL,
    build_start TEXT NOT NULL,
    build_end   TEXT
);

DROP VIEW blob_references;
CREATE VIEW blob_references AS
    SELECT sha256 FROM version_files
    UNION ALL SELECT context_sha256 FROM environment_versions WHERE context_sha256 IS NOT NULL
    UNION ALL SELECT image_sha256 FROM environment_versions WHERE image_sha256 IS NOT NULL
    UNION ALL SELECT sha256 FROM datasets;
