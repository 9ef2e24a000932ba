-- modelreg metadata schema, version 1.
--
-- Applied by src/store/db.rs to a new database; then every step under
-- migrations/ runs in order (0002_compute.sql takes it to version 2...), on a
-- new database and an old one alike, so each table is defined once. A schema
-- change is a new file there, never an edit of this one.
--
-- Invariants:
-- * every row belongs to a team (directly, or through its parent row);
-- * times are RFC 3339 UTC strings with millisecond precision and a `Z`, so
--   that they sort as text;
-- * a blob row exists for every digest any table references, and the blob's
--   file was fsynced before the row committed.

CREATE TABLE teams (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);

CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    team_id     TEXT NOT NULL REFERENCES teams(id),
    username    TEXT NOT NULL UNIQUE,
    email       TEXT,
    first_name  TEXT,
    last_name   TEXT,
    is_admin    INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL
);
CREATE INDEX users_team ON users(team_id, created_at, id);

-- API keys are stored as the sha256 of the secret; the secret itself is shown
-- once, when the key is created.
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id),
    secret_hash TEXT NOT NULL UNIQUE,
    label       TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE INDEX api_keys_user ON api_keys(user_id);

CREATE TABLE blobs (
    sha256      TEXT PRIMARY KEY,
    size        INTEGER NOT NULL,
    created_at  TEXT NOT NULL
);

-- A model is shared by every dialect. Fields that only one dialect knows live
-- in `attrs` (a JSON object); the common ones are columns.
CREATE TABLE models (
    id          TEXT PRIMARY KEY,
    team_id     TEXT NOT NULL REFERENCES teams(id),
    -- '' when the dialect that created it has no name (Octomil).
    name        TEXT NOT NULL DEFAULT '',
    description TEXT,
    created_by  TEXT NOT NULL REFERENCES users(id),
    created_at  TEXT NOT NULL,
    modified_at TEXT NOT NULL,
    attrs       TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX models_team_created ON models(team_id, created_at, id);
CREATE INDEX models_team_modified ON models(team_id, modified_at, id);
CREATE INDEX models_team_name ON models(team_id, name, id);

-- How many models each team has, kept by triggers, so that an unfiltered
-- list's total is one row read rather than a count over a million.
CREATE TABLE team_model_counts (
    team_id     TEXT PRIMARY KEY REFERENCES teams(id),
    models      INTEGER NOT NULL
);
CREATE TRIGGER models_count_insert AFTER INSERT ON models BEGIN
    INSERT INTO team_model_counts (team_id, models) VALUES (NEW.team_id, 1)
        ON CONFLICT (team_id) DO UPDATE SET models = models + 1;
END;
CREATE TRIGGER models_count_delete AFTER DELETE ON models BEGIN
    UPDATE team_model_counts SET models = models - 1 WHERE team_id = OLD.team_id;
END;

-- A version is immutable once created: an ordered set of (path -> blob).
-- `number` counts 1, 2, 3... per model with no gaps; it is assigned inside the
-- write transaction that inserts the row.
CREATE TABLE model_versions (
    id          TEXT PRIMARY KEY,
    model_id    TEXT NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    number      INTEGER NOT NULL,
    description TEXT,
    created_by  TEXT NOT NULL REFERENCES users(id),
    created_at  TEXT NOT NULL,
    attrs       TEXT NOT NULL DEFAULT '{}',
    UNIQUE (model_id, number)
);

CREATE TABLE version_files (
    id          TEXT PRIMARY KEY,
    version_id  TEXT NOT NULL REFERENCES model_versions(id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    path        TEXT NOT NULL,
    sha256      TEXT NOT NULL REFERENCES blobs(sha256),
    size        INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    UNIQUE (version_id, path)
);
CREATE INDEX version_files_blob ON version_files(sha256);

-- Long-running work (environment builds, machine lifecycles, tests...). The
-- state lives here so that it survives a restart and every dialect can report
-- it. `kind` names the worker that runs it; `input` and `result` are JSON.
CREATE TABLE jobs (
    id          TEXT PRIMARY KEY,
    team_id     TEXT NOT NULL REFERENCES teams(id),
    kind        TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    subject_id  TEXT,
    input       TEXT NOT NULL DEFAULT '{}',
    result      TEXT,
    error       TEXT,
    log         TEXT NOT NULL DEFAULT '',
    run_after   TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    started_at  TEXT,
    finished_at TEXT
);
CREATE INDEX jobs_pending ON jobs(state, run_after);
CREATE INDEX jobs_subject ON jobs(subject_id);

-- Every column that holds a blob digest is listed here, so that gc and verify
-- have one place to ask "is this blob referenced?". A table added later that
-- references blobs must be added to this view in the same migration.
CREATE VIEW blob_references AS
    SELECT sha256 FROM version_files
    UNION ALL SELECT context_sha256 FROM environment_versions WHERE context_sha256 IS NOT NULL
    UNION ALL SELECT image_sha256 FROM environment_versions WHERE image_sha256 IS NOT NULL;

-- ---------------------------------------------------------------------------
-- Paperspace machines and templates (issue 4). modelreg provisions no
-- hardware: a machine is a record whose state changes are emulated by jobs
-- of kind `machine-event`, so that scripts written against the hosted API can
-- be developed offline. The built-in OS templates and the machine-type
-- catalogue are static data in src/registry/machines.rs; only a team's custom
-- templates are rows.

CREATE TABLE templates (
    id              TEXT PRIMARY KEY,
    team_id         TEXT NOT NULL REFERENCES teams(id),
    name            TEXT NOT NULL,
    -- The OS a machine made from it runs, and its short label.
    os              TEXT NOT NULL,
    agent_type      TEXT NOT NULL,
    os_label        TEXT NOT NULL,
    region          TEXT,
    default_size_gb INTEGER NOT NULL,
    -- JSON array of machine-type labels the template can run on.
    machine_types   TEXT NOT NULL DEFAULT '[]',
    created_at      TEXT NOT NULL
);
CREATE INDEX templates_team_created ON templates(team_id, created_at, id);

CREATE TABLE machines (
    id                    TEXT PRIMARY KEY,
    team_id               TEXT NOT NULL REFERENCES teams(id),
    -- The user the machine is assigned to.
    user_id               TEXT NOT NULL REFERENCES users(id),
    name                  TEXT NOT NULL,
    -- provisioning, ready, stopping, off, starting, restarting.
    state                 TEXT NOT NULL,
    machine_type          TEXT NOT NULL,
    -- Not a foreign key: OS templates are not rows.
    template_id           TEXT NOT NULL,
    os                    TEXT NOT NULL,
    agent_type            TEXT NOT NULL,
    region                TEXT NOT NULL,
    disk_size_gb          INTEGER NOT NULL,
    auto_shutdown_enabled INTEGER NOT NULL DEFAULT 0,
    auto_shutdown_timeout INTEGER,
    public_ip_type        TEXT NOT NULL DEFAULT 'none',
    created_at            TEXT NOT NULL,
    modified_at           TEXT NOT NULL
);
CREATE INDEX machines_team_created ON machines(team_id, created_at, id);
CREATE INDEX machines_team_name ON machines(team_id, name, id);

-- One row per requested state change (create, stop, start, restart):
-- new -> in progress -> done.
CREATE TABLE machine_events (
    id          TEXT PRIMARY KEY,
    machine_id  TEXT NOT NULL REFERENCES machines(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    state       TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    started_at  TEXT,
    finished_at TEXT,
    error       TEXT
);
CREATE INDEX machine_events_machine ON machine_events(machine_id, created_at, id);

-- ---------------------------------------------------------------------------
-- DataRobot dialect: execution environments and access control (issue 5).
-- ---------------------------------------------------------------------------

-- An execution environment: a named series of docker contexts. Deleting one
-- is soft (`deleted_at`), as DataRobot documents; a permanent delete removes
-- the rows, and gc then sweeps the blobs.
CREATE TABLE environments (
    id                   TEXT PRIMARY KEY,
    team_id              TEXT NOT NULL REFERENCES teams(id),
    name                 TEXT NOT NULL,
    description          TEXT NOT NULL DEFAULT '',
    programming_language TEXT NOT NULL DEFAULT 'other',
    is_public            INTEGER NOT NULL DEFAULT 0,
    use_cases            TEXT NOT NULL DEFAULT '[]',
    required_metadata_keys TEXT NOT NULL DEFAULT '[]',
    created_by           TEXT NOT NULL REFERENCES users(id),
    created_at           TEXT NOT NULL,
    deleted_at           TEXT
);
CREATE INDEX environments_team_created ON environments(team_id, created_at, id);

-- A version of an environment: an uploaded docker context (and/or image tar,
-- and/or an image URI). `build_status` is submitted, processing, success or
-- failed; the build is a job whose subject is the version id.
CREATE TABLE environment_versions (
    id                TEXT PRIMARY KEY,
    environment_id    TEXT NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    label             TEXT NOT NULL DEFAULT '',
    description       TEXT NOT NULL DEFAULT '',
    context_sha256    TEXT REFERENCES blobs(sha256),
    context_size      INTEGER,
    context_filename  TEXT,
    image_sha256      TEXT REFERENCES blobs(sha256),
    image_size        INTEGER,
    docker_image_uri  TEXT,
    build_status      TEXT NOT NULL CHECK (build_status IN ('submitted', 'processing', 'success', 'failed')),
    image_id          TEXT,
    base_image        TEXT,
    created_by        TEXT NOT NULL REFERENCES users(id),
    created_at        TEXT NOT NULL
);
CREATE INDEX environment_versions_env ON environment_versions(environment_id, created_at, id);
CREATE INDEX environment_versions_context ON environment_versions(context_sha256);
CREATE INDEX environment_versions_image ON environment_versions(image_sha256);

-- Who may do what with a custom model or an environment. `kind` is 'model'
-- or 'environment'. A model with no rows here (created by another dialect)
-- is visible to its whole team, with its creator as the owner.
CREATE TABLE access_roles (
    kind        TEXT NOT NULL CHECK (kind IN ('model', 'environment')),
    entity_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users(id),
    role        TEXT NOT NULL,
    can_share   INTEGER NOT NULL DEFAULT 1,
    can_use_data INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (kind, entity_id, user_id)
);
CREATE INDEX access_roles_user ON access_roles(user_id, kind);
-- Roles go with their entity, whichever dialect deletes it.
CREATE TRIGGER models_forget_roles AFTER DELETE ON models
BEGIN
    DELETE FROM access_roles WHERE kind = 'model' AND entity_id = OLD.id;
END;
CREATE TRIGGER environments_forget_roles AFTER DELETE ON environments
BEGIN
    DELETE FROM access_roles WHERE kind = 'environment' AND entity_id = OLD.id;
END;
