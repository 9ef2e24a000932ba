-- The registry's schema on PostgreSQL, at schema version 11: the tables of
-- schema.sql and migrations/0002…0011 as SQLite has them after those steps,
-- written once for PostgreSQL. A later schema version is a step in both
-- engines: a file in migrations/ for SQLite and one in migrations/postgres/
-- (store/sql/postgres.rs refuses to build a list that skips one).
--
-- What differs from SQLite, and why:
-- * Text compares byte by byte (COLLATE "C"), as SQLite's BINARY does, so
--   keyset pages and name orders are the same on both engines whatever
--   locale the cluster was created with.
-- * Integers are BIGINT: sizes pass 2 GiB. Flags stay integers (0/1)
--   rather than boolean, because the registry's statements compare them
--   with 0 and 1 and one text serves both engines.
-- * JSON documents stay TEXT, as the client sent them: jsonb would reorder
--   their keys and drop duplicate ones, and a model's attributes read back
--   byte for byte on either engine.
-- * jobs and environment_versions have a `rowid` identity: SQLite's
--   implicit rowid orders rows created within one timestamp, and the
--   registry's ORDER BY names it.
-- * SQLite's instr(), json_each() over an array and json_extract() of one
--   key are small SQL functions below, so the few statements that use them
--   stay one text.

CREATE FUNCTION instr(haystack text, needle text) RETURNS integer
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT strpos(haystack, needle) $$;

-- The value at `$."key"` (or `$.key`) of a JSON object, as SQLite's
-- json_extract gives it to a comparison: text for a string or number, 1 or
-- 0 for a boolean, NULL for null or a missing key.
CREATE FUNCTION json_extract(document text, path text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$
        SELECT CASE jsonb_typeof(v)
                   WHEN 'boolean' THEN CASE WHEN v = 'true'::jsonb THEN '1' ELSE '0' END
                   WHEN 'null' THEN NULL
                   ELSE v #>> '{}'
               END
        FROM (SELECT document::jsonb -> (regexp_match(path, '^\$\."?(.*?)"?$'))[1] AS v) AS picked
    $$;

-- The elements of a JSON array as SQLite's json_each gives them: `key`,
-- the position from 0, and `value`, as text (only arrays are asked of it).
CREATE FUNCTION json_each(document text) RETURNS TABLE (key bigint, value text)
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT position - 1, element FROM jsonb_array_elements_text(document::jsonb) WITH ORDINALITY AS e(element, position) $$;

CREATE TABLE teams (
    id          TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT COLLATE "C" NOT NULL UNIQUE,
    created_at  TEXT COLLATE "C" NOT NULL
);
CREATE TABLE users (
    id          TEXT COLLATE "C" PRIMARY KEY,
    team_id     TEXT COLLATE "C" NOT NULL REFERENCES teams(id),
    username    TEXT COLLATE "C" NOT NULL UNIQUE,
    email       TEXT COLLATE "C",
    first_name  TEXT COLLATE "C",
    last_name   TEXT COLLATE "C",
    is_admin    BIGINT NOT NULL DEFAULT 0,
    created_at  TEXT COLLATE "C" NOT NULL
);
CREATE INDEX users_team ON users(team_id, created_at, id);
CREATE TABLE api_keys (
    id          TEXT COLLATE "C" PRIMARY KEY,
    user_id     TEXT COLLATE "C" NOT NULL REFERENCES users(id),
    secret_hash TEXT COLLATE "C" NOT NULL UNIQUE,
    label       TEXT COLLATE "C" NOT NULL DEFAULT '',
    created_at  TEXT COLLATE "C" NOT NULL,
    revoked_at  TEXT COLLATE "C"
);
CREATE INDEX api_keys_user ON api_keys(user_id);
CREATE TABLE blobs (
    sha256      TEXT COLLATE "C" PRIMARY KEY,
    size        BIGINT NOT NULL,
    created_at  TEXT COLLATE "C" NOT NULL
);
CREATE TABLE models (
    id          TEXT COLLATE "C" PRIMARY KEY,
    team_id     TEXT COLLATE "C" NOT NULL REFERENCES teams(id),
    -- '' when the dialect that created it has no name (Octomil).
    name        TEXT COLLATE "C" NOT NULL DEFAULT '',
    description TEXT COLLATE "C",
    created_by  TEXT COLLATE "C" NOT NULL REFERENCES users(id),
    created_at  TEXT COLLATE "C" NOT NULL,
    modified_at TEXT COLLATE "C" NOT NULL,
    attrs       TEXT COLLATE "C" NOT NULL DEFAULT '{}'
    , origin TEXT COLLATE "C" NOT NULL DEFAULT 'octomil'
    CHECK (origin IN ('octomil', 'datarobot', 'paperspace')), last_version_number BIGINT NOT NULL DEFAULT 0);
CREATE INDEX models_team_created ON models(team_id, created_at, id);
CREATE INDEX models_team_modified ON models(team_id, modified_at, id);
CREATE INDEX models_team_name ON models(team_id, name, id);
CREATE TABLE team_model_counts (
    team_id     TEXT COLLATE "C" PRIMARY KEY REFERENCES teams(id),
    models      BIGINT NOT NULL
);
CREATE TABLE model_versions (
    id          TEXT COLLATE "C" PRIMARY KEY,
    model_id    TEXT COLLATE "C" NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    number      BIGINT NOT NULL,
    description TEXT COLLATE "C",
    created_by  TEXT COLLATE "C" NOT NULL REFERENCES users(id),
    created_at  TEXT COLLATE "C" NOT NULL,
    attrs       TEXT COLLATE "C" NOT NULL DEFAULT '{}', status TEXT COLLATE "C" NOT NULL DEFAULT 'active'
    CHECK (status IN ('active', 'published', 'deprecated')), label TEXT COLLATE "C", metrics TEXT COLLATE "C" NOT NULL DEFAULT '{}',
    UNIQUE (model_id, number)
);
CREATE TABLE version_files (
    id          TEXT COLLATE "C" PRIMARY KEY,
    version_id  TEXT COLLATE "C" NOT NULL REFERENCES model_versions(id) ON DELETE CASCADE,
    position    BIGINT NOT NULL,
    path        TEXT COLLATE "C" NOT NULL,
    sha256      TEXT COLLATE "C" NOT NULL REFERENCES blobs(sha256),
    size        BIGINT NOT NULL,
    created_at  TEXT COLLATE "C" NOT NULL,
    UNIQUE (version_id, path)
);
CREATE INDEX version_files_blob ON version_files(sha256);
CREATE TABLE jobs (
    -- insertion order, as SQLite's implicit rowid: ties of created_at
    rowid       BIGINT GENERATED ALWAYS AS IDENTITY,
    id          TEXT COLLATE "C" PRIMARY KEY,
    team_id     TEXT COLLATE "C" NOT NULL REFERENCES teams(id),
    kind        TEXT COLLATE "C" NOT NULL,
    state       TEXT COLLATE "C" NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    subject_id  TEXT COLLATE "C",
    input       TEXT COLLATE "C" NOT NULL DEFAULT '{}',
    result      TEXT COLLATE "C",
    error       TEXT COLLATE "C",
    log         TEXT COLLATE "C" NOT NULL DEFAULT '',
    run_after   TEXT COLLATE "C" NOT NULL,
    created_at  TEXT COLLATE "C" NOT NULL,
    started_at  TEXT COLLATE "C",
    finished_at TEXT COLLATE "C"
    , cancel_requested BIGINT NOT NULL DEFAULT 0);
CREATE INDEX jobs_pending ON jobs(state, run_after);
CREATE INDEX jobs_subject ON jobs(subject_id);
CREATE TABLE templates (
    id              TEXT COLLATE "C" PRIMARY KEY,
    team_id         TEXT COLLATE "C" NOT NULL REFERENCES teams(id),
    name            TEXT COLLATE "C" NOT NULL,
    -- The OS a machine made from it runs, and its short label.
    os              TEXT COLLATE "C" NOT NULL,
    agent_type      TEXT COLLATE "C" NOT NULL,
    os_label        TEXT COLLATE "C" NOT NULL,
    region          TEXT COLLATE "C",
    default_size_gb BIGINT NOT NULL,
    -- JSON array of machine-type labels the template can run on.
    machine_types   TEXT COLLATE "C" NOT NULL DEFAULT '[]',
    created_at      TEXT COLLATE "C" NOT NULL
);
CREATE INDEX templates_team_created ON templates(team_id, created_at, id);
CREATE TABLE machines (
    id                    TEXT COLLATE "C" PRIMARY KEY,
    team_id               TEXT COLLATE "C" NOT NULL REFERENCES teams(id),
    -- The user the machine is assigned to.
    user_id               TEXT COLLATE "C" NOT NULL REFERENCES users(id),
    name                  TEXT COLLATE "C" NOT NULL,
    -- provisioning, ready, stopping, off, starting, restarting.
    state                 TEXT COLLATE "C" NOT NULL,
    machine_type          TEXT COLLATE "C" NOT NULL,
    -- Not a foreign key: OS templates are not rows.
    template_id           TEXT COLLATE "C" NOT NULL,
    os                    TEXT COLLATE "C" NOT NULL,
    agent_type            TEXT COLLATE "C" NOT NULL,
    region                TEXT COLLATE "C" NOT NULL,
    disk_size_gb          BIGINT NOT NULL,
    auto_shutdown_enabled BIGINT NOT NULL DEFAULT 0,
    auto_shutdown_timeout BIGINT,
    public_ip_type        TEXT COLLATE "C" NOT NULL DEFAULT 'none',
    created_at            TEXT COLLATE "C" NOT NULL,
    modified_at           TEXT COLLATE "C" NOT NULL
);
CREATE INDEX machines_team_created ON machines(team_id, created_at, id);
CREATE INDEX machines_team_name ON machines(team_id, name, id);
CREATE TABLE machine_events (
    id          TEXT COLLATE "C" PRIMARY KEY,
    machine_id  TEXT COLLATE "C" NOT NULL REFERENCES machines(id) ON DELETE CASCADE,
    name        TEXT COLLATE "C" NOT NULL,
    state       TEXT COLLATE "C" NOT NULL,
    created_at  TEXT COLLATE "C" NOT NULL,
    started_at  TEXT COLLATE "C",
    finished_at TEXT COLLATE "C",
    error       TEXT COLLATE "C"
);
CREATE INDEX machine_events_machine ON machine_events(machine_id, created_at, id);
CREATE TABLE environments (
    id                   TEXT COLLATE "C" PRIMARY KEY,
    team_id              TEXT COLLATE "C" NOT NULL REFERENCES teams(id),
    name                 TEXT COLLATE "C" NOT NULL,
    description          TEXT COLLATE "C" NOT NULL DEFAULT '',
    programming_language TEXT COLLATE "C" NOT NULL DEFAULT 'other',
    is_public            BIGINT NOT NULL DEFAULT 0,
    use_cases            TEXT COLLATE "C" NOT NULL DEFAULT '[]',
    required_metadata_keys TEXT COLLATE "C" NOT NULL DEFAULT '[]',
    created_by           TEXT COLLATE "C" NOT NULL REFERENCES users(id),
    created_at           TEXT COLLATE "C" NOT NULL,
    deleted_at           TEXT COLLATE "C"
);
CREATE INDEX environments_team_created ON environments(team_id, created_at, id);
CREATE TABLE environment_versions (
    rowid             BIGINT GENERATED ALWAYS AS IDENTITY,
    id                TEXT COLLATE "C" PRIMARY KEY,
    environment_id    TEXT COLLATE "C" NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    label             TEXT COLLATE "C" NOT NULL DEFAULT '',
    description       TEXT COLLATE "C" NOT NULL DEFAULT '',
    context_sha256    TEXT COLLATE "C" REFERENCES blobs(sha256),
    context_size      BIGINT,
    context_filename  TEXT COLLATE "C",
    image_sha256      TEXT COLLATE "C" REFERENCES blobs(sha256),
    image_size        BIGINT,
    docker_image_uri  TEXT COLLATE "C",
    build_status      TEXT COLLATE "C" NOT NULL CHECK (build_status IN ('submitted', 'processing', 'success', 'failed')),
    image_id          TEXT COLLATE "C",
    base_image        TEXT COLLATE "C",
    created_by        TEXT COLLATE "C" NOT NULL REFERENCES users(id),
    created_at        TEXT COLLATE "C" NOT NULL
);
CREATE INDEX environment_versions_env ON environment_versions(environment_id, created_at, id);
CREATE INDEX environment_versions_context ON environment_versions(context_sha256);
CREATE INDEX environment_versions_image ON environment_versions(image_sha256);
CREATE TABLE access_roles (
    kind        TEXT COLLATE "C" NOT NULL CHECK (kind IN ('model', 'environment')),
    entity_id   TEXT COLLATE "C" NOT NULL,
    user_id     TEXT COLLATE "C" NOT NULL REFERENCES users(id),
    role        TEXT COLLATE "C" NOT NULL,
    can_share   BIGINT NOT NULL DEFAULT 1,
    can_use_data BIGINT NOT NULL DEFAULT 1,
    PRIMARY KEY (kind, entity_id, user_id)
);
CREATE INDEX access_roles_user ON access_roles(user_id, kind);
CREATE INDEX jobs_running_team ON jobs(state, team_id);
CREATE TABLE datasets (
    id          TEXT COLLATE "C" PRIMARY KEY,
    team_id     TEXT COLLATE "C" NOT NULL REFERENCES teams(id),
    version_id  TEXT COLLATE "C" NOT NULL UNIQUE,
    name        TEXT COLLATE "C" NOT NULL,
    file_name   TEXT COLLATE "C" NOT NULL,
    sha256      TEXT COLLATE "C" NOT NULL REFERENCES blobs(sha256),
    size        BIGINT NOT NULL,
    state       TEXT COLLATE "C" NOT NULL CHECK (state IN ('RUNNING', 'COMPLETED', 'ERROR')),
    error       TEXT COLLATE "C",
    -- JSON array of column names, once COMPLETED.
    columns     TEXT COLLATE "C",
    row_count   BIGINT,
    categories  TEXT COLLATE "C" NOT NULL DEFAULT '[]',
    created_by  TEXT COLLATE "C" NOT NULL REFERENCES users(id),
    created_at  TEXT COLLATE "C" NOT NULL
);
CREATE INDEX datasets_team_created ON datasets(team_id, created_at, id);
CREATE INDEX datasets_blob ON datasets(sha256);
CREATE TABLE team_dataset_counts (
    team_id     TEXT COLLATE "C" PRIMARY KEY REFERENCES teams(id),
    datasets    BIGINT NOT NULL
);
CREATE TABLE model_tests (
    id                 TEXT COLLATE "C" PRIMARY KEY,
    team_id            TEXT COLLATE "C" NOT NULL REFERENCES teams(id),
    model_id           TEXT COLLATE "C" NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    version_id         TEXT COLLATE "C" NOT NULL REFERENCES model_versions(id) ON DELETE CASCADE,
    -- Not foreign keys: a test outlives the dataset it read.
    dataset_id         TEXT COLLATE "C",
    dataset_version_id TEXT COLLATE "C",
    environment_id     TEXT COLLATE "C",
    environment_version_id TEXT COLLATE "C",
    image_id           TEXT COLLATE "C" NOT NULL,
    job_id             TEXT COLLATE "C" NOT NULL,
    overall_status     TEXT COLLATE "C" NOT NULL,
    checks             TEXT COLLATE "C" NOT NULL,
    configuration      TEXT COLLATE "C" NOT NULL DEFAULT '{}',
    settings           TEXT COLLATE "C" NOT NULL DEFAULT '{}',
    created_by         TEXT COLLATE "C" NOT NULL REFERENCES users(id),
    created_at         TEXT COLLATE "C" NOT NULL,
    completed_at       TEXT COLLATE "C"
);
CREATE INDEX model_tests_model ON model_tests(model_id, created_at, id);
CREATE INDEX model_tests_image ON model_tests(image_id);
CREATE TABLE dependency_builds (
    version_id  TEXT COLLATE "C" PRIMARY KEY REFERENCES model_versions(id) ON DELETE CASCADE,
    team_id     TEXT COLLATE "C" NOT NULL REFERENCES teams(id),
    status      TEXT COLLATE "C" NOT NULL CHECK (status IN ('submitted', 'processing', 'success', 'failed')),
    -- Known once the build has asked the runtime who it is.
    env_key     TEXT COLLATE "C",
    job_id      TEXT COLLATE "C" NOT NULL,
    build_start TEXT COLLATE "C" NOT NULL,
    build_end   TEXT COLLATE "C"
);
CREATE TABLE conversions (
    id                   TEXT COLLATE "C" PRIMARY KEY,
    team_id              TEXT COLLATE "C" NOT NULL REFERENCES teams(id),
    model_id             TEXT COLLATE "C" NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    version_id           TEXT COLLATE "C" NOT NULL REFERENCES model_versions(id) ON DELETE CASCADE,
    -- An item id of the version's files (a `.java` file).
    main_program_item_id TEXT COLLATE "C" NOT NULL,
    -- The JAR's Main-Class: the main file's package and name.
    main_class           TEXT COLLATE "C" NOT NULL,
    state                TEXT COLLATE "C" NOT NULL CHECK (state IN ('running', 'succeeded', 'failed', 'stopped')),
    job_id               TEXT COLLATE "C" NOT NULL,
    jar_sha256           TEXT COLLATE "C" REFERENCES blobs(sha256),
    jar_size             BIGINT,
    created_by           TEXT COLLATE "C" NOT NULL REFERENCES users(id),
    created_at           TEXT COLLATE "C" NOT NULL,
    finished_at          TEXT COLLATE "C"
);
CREATE INDEX conversions_version ON conversions(version_id, created_at, id);
CREATE INDEX conversions_jar ON conversions(jar_sha256) WHERE jar_sha256 IS NOT NULL;
CREATE TABLE remote_repositories (
    id            TEXT COLLATE "C" PRIMARY KEY,
    team_id       TEXT COLLATE "C" NOT NULL REFERENCES teams(id),
    name          TEXT COLLATE "C" NOT NULL,
    description   TEXT COLLATE "C" NOT NULL DEFAULT '',
    location      TEXT COLLATE "C" NOT NULL,
    source_type   TEXT COLLATE "C" NOT NULL,
    credential_id TEXT COLLATE "C",
    token         TEXT COLLATE "C",
    created_by    TEXT COLLATE "C" NOT NULL REFERENCES users(id),
    created_at    TEXT COLLATE "C" NOT NULL
);
CREATE INDEX remote_repositories_team_created ON remote_repositories(team_id, created_at, id);
CREATE TABLE custom_templates (
    id                          TEXT COLLATE "C" PRIMARY KEY,
    team_id                     TEXT COLLATE "C" NOT NULL REFERENCES teams(id),
    name                        TEXT COLLATE "C" NOT NULL,
    description                 TEXT COLLATE "C" NOT NULL,
    template_type               TEXT COLLATE "C" NOT NULL,
    template_sub_type           TEXT COLLATE "C" NOT NULL,
    -- JSON object, as the client sent it (its known keys type-checked).
    template_metadata           TEXT COLLATE "C" NOT NULL DEFAULT '{}',
    -- JSON {environmentId, environmentVersionId}.
    default_environment         TEXT COLLATE "C" NOT NULL,
    default_resource_bundle_id  TEXT COLLATE "C",
    enabled                     BIGINT NOT NULL DEFAULT 1,
    is_hidden                   BIGINT NOT NULL DEFAULT 0,
    created_by                  TEXT COLLATE "C" NOT NULL REFERENCES users(id),
    created_at                  TEXT COLLATE "C" NOT NULL,
    updated_at                  TEXT COLLATE "C" NOT NULL
);
CREATE INDEX custom_templates_team ON custom_templates(team_id, created_at, id);
CREATE TABLE custom_template_files (
    id           TEXT COLLATE "C" PRIMARY KEY,
    template_id  TEXT COLLATE "C" NOT NULL REFERENCES custom_templates(id) ON DELETE CASCADE,
    position     BIGINT NOT NULL,
    path         TEXT COLLATE "C" NOT NULL,
    sha256       TEXT COLLATE "C" NOT NULL REFERENCES blobs(sha256),
    size         BIGINT NOT NULL,
    UNIQUE (template_id, path)
);
CREATE INDEX custom_template_files_blob ON custom_template_files(sha256);
CREATE TABLE version_insights (
    version_id  TEXT COLLATE "C" NOT NULL REFERENCES model_versions(id) ON DELETE CASCADE,
    team_id     TEXT COLLATE "C" NOT NULL REFERENCES teams(id),
    -- 'featureImpact' or 'predictionExplanations'.
    kind        TEXT COLLATE "C" NOT NULL,
    -- running, done or failed.
    state       TEXT COLLATE "C" NOT NULL CHECK (state IN ('running', 'done', 'failed')),
    job_id      TEXT COLLATE "C" NOT NULL,
    params      TEXT COLLATE "C" NOT NULL DEFAULT '{}',
    result      TEXT COLLATE "C",
    error       TEXT COLLATE "C",
    created_at  TEXT COLLATE "C" NOT NULL,
    finished_at TEXT COLLATE "C",
    PRIMARY KEY (version_id, kind)
);
CREATE UNIQUE INDEX model_versions_label ON model_versions(model_id, label) WHERE label IS NOT NULL;
CREATE TABLE signed_urls (
    token_hash   TEXT COLLATE "C" PRIMARY KEY,
    kind         TEXT COLLATE "C" NOT NULL CHECK (kind IN ('upload', 'download')),
    team_id      TEXT COLLATE "C" NOT NULL REFERENCES teams(id),
    user_id      TEXT COLLATE "C" NOT NULL REFERENCES users(id),
    key_id       TEXT COLLATE "C",
    -- Upload: the model as the client named it (an id, or a name to create
    -- at confirmation). Download: the model's id.
    model_ref    TEXT COLLATE "C" NOT NULL,
    -- Upload: the client's version string. Download: the version number.
    version      TEXT COLLATE "C" NOT NULL,
    -- Upload: the file name. Download: the format asked for.
    detail       TEXT COLLATE "C" NOT NULL,
    state        TEXT COLLATE "C" NOT NULL DEFAULT 'issued' CHECK (state IN ('issued', 'receiving', 'uploaded', 'confirmed')),
    sha256       TEXT COLLATE "C",
    size         BIGINT,
    created_at   TEXT COLLATE "C" NOT NULL,
    expires_at   TEXT COLLATE "C" NOT NULL,
    -- The lifetime it was issued with; an upload's confirmation gets as
    -- long again from the end of its PUT.
    ttl_ms       BIGINT NOT NULL
);
CREATE INDEX signed_urls_expiry ON signed_urls(expires_at);
CREATE TABLE format_artifacts (
    id            TEXT COLLATE "C" PRIMARY KEY,
    team_id       TEXT COLLATE "C" NOT NULL REFERENCES teams(id),
    model_id      TEXT COLLATE "C" NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    version_id    TEXT COLLATE "C" NOT NULL REFERENCES model_versions(id) ON DELETE CASCADE,
    format        TEXT COLLATE "C" NOT NULL,
    state         TEXT COLLATE "C" NOT NULL CHECK (state IN ('queued', 'running', 'ready', 'failed')),
    -- The original file's digest at the time of the request.
    source_sha256 TEXT COLLATE "C" NOT NULL,
    -- JSON array of integers: the input shape a TorchScript export needs.
    input_shape   TEXT COLLATE "C",
    reason        TEXT COLLATE "C",
    job_id        TEXT COLLATE "C" NOT NULL,
    sha256        TEXT COLLATE "C" REFERENCES blobs(sha256),
    size          BIGINT,
    -- JSON: converter and its version, verification figures, source digest, when.
    provenance    TEXT COLLATE "C",
    created_by    TEXT COLLATE "C" NOT NULL REFERENCES users(id),
    created_at    TEXT COLLATE "C" NOT NULL,
    finished_at   TEXT COLLATE "C",
    UNIQUE (version_id, format)
);
CREATE INDEX format_artifacts_blob ON format_artifacts(sha256) WHERE sha256 IS NOT NULL;
CREATE VIEW blob_references AS
    SELECT sha256 FROM version_files
    UNION ALL SELECT context_sha256 FROM environment_versions WHERE context_sha256 IS NOT NULL
    UNION ALL SELECT image_sha256 FROM environment_versions WHERE image_sha256 IS NOT NULL
    UNION ALL SELECT sha256 FROM datasets
    UNION ALL SELECT jar_sha256 FROM conversions WHERE jar_sha256 IS NOT NULL
    UNION ALL SELECT sha256 FROM custom_template_files
    UNION ALL SELECT sha256 FROM signed_urls WHERE sha256 IS NOT NULL
    UNION ALL SELECT sha256 FROM format_artifacts WHERE sha256 IS NOT NULL
;
CREATE TABLE blob_contents (
    sha256      TEXT COLLATE "C" PRIMARY KEY,
    bytes       BYTEA NOT NULL,
    created_at  TEXT COLLATE "C" NOT NULL
);
CREATE TABLE registry_settings (
    name  TEXT COLLATE "C" PRIMARY KEY,
    value TEXT COLLATE "C" NOT NULL
);
CREATE INDEX jobs_queue ON jobs(state, kind, team_id, run_after);
CREATE INDEX jobs_due ON jobs(state, kind, run_after);

-- SQLite's triggers, as PL/pgSQL.
CREATE FUNCTION count_team_model() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO team_model_counts (team_id, models) VALUES (NEW.team_id, 1)
            ON CONFLICT (team_id) DO UPDATE SET models = team_model_counts.models + 1;
    ELSE
        UPDATE team_model_counts SET models = models - 1 WHERE team_id = OLD.team_id;
        DELETE FROM access_roles WHERE kind = 'model' AND entity_id = OLD.id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER models_count AFTER INSERT OR DELETE ON models
    FOR EACH ROW EXECUTE FUNCTION count_team_model();

CREATE FUNCTION count_team_dataset() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO team_dataset_counts (team_id, datasets) VALUES (NEW.team_id, 1)
            ON CONFLICT (team_id) DO UPDATE SET datasets = team_dataset_counts.datasets + 1;
    ELSE
        UPDATE team_dataset_counts SET datasets = datasets - 1 WHERE team_id = OLD.team_id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER datasets_count AFTER INSERT OR DELETE ON datasets
    FOR EACH ROW EXECUTE FUNCTION count_team_dataset();

CREATE FUNCTION forget_environment_roles() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM access_roles WHERE kind = 'environment' AND entity_id = OLD.id;
    RETURN NULL;
END $$;
CREATE TRIGGER environments_forget_roles AFTER DELETE ON environments
    FOR EACH ROW EXECUTE FUNCTION forget_environment_roles();
