-- Schema version 3: conversions (issue 15). A custom model version's Java
-- main program compiled with the host's JDK and packaged as a runnable JAR.
-- The version stays as it was: the JAR is a blob owned by the conversion.

-- `state` is running (queued or compiling), succeeded (the JAR is stored:
-- jar_sha256, jar_size), failed (the tools' output in the job's log says
-- why) or stopped (DELETE while running; final at once, and the job kills
-- javac or jar when it next looks). The log is the job's (`job_id`).
CREATE TABLE conversions (
    id                   TEXT PRIMARY KEY,
    team_id              TEXT NOT NULL REFERENCES teams(id),
    model_id             TEXT NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    version_id           TEXT NOT NULL REFERENCES model_versions(id) ON DELETE CASCADE,
    -- An item id of the version's files (a `.java` file).
    main_program_item_id TEXT NOT NULL,
    -- The JAR's Main-Class: the main file's package and name.
    main_class           TEXT NOT NULL,
    state                TEXT NOT NULL CHECK (state IN ('running', 'succeeded', 'failed', 'stopped')),
    job_id               TEXT NOT NULL,
    jar_sha256           TEXT REFERENCES blobs(sha256),
    jar_size             INTEGER,
    created_by           TEXT NOT NULL REFERENCES users(id),
    created_at           TEXT NOT NULL,
    finished_at          TEXT
);
CREATE INDEX conversions_version ON conversions(version_id, created_at, id);
CREATE INDEX conversions_jar ON conversions(jar_sha256) WHERE jar_sha256 IS NOT NULL;

DROP VIEW blob_references;
CREATE VIEW blob_references AS
    SELECT sha256 FROM version_files
    UNION ALL SELECT context_sha256 FROM environment_versions WHERE context_sha256 IS NOT NULL
    UNION ALL SELECT image_sha256 FROM environment_versions WHERE image_sha256 IS NOT NULL
    UNION ALL SELECT sha256 FROM datasets
    UNION ALL SELECT jar_sha256 FROM conversions WHERE jar_sha256 IS NOT NULL;
