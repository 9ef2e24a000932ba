-- Schema version 8: format artifacts (issue 16). An Octomil version's weights
-- converted into another format (ONNX, TFLite) by the converter of their
-- ecosystem and checked against the original before they are served. The
-- version stays as it was: the artifact is a blob the row owns.

-- One row per version and target format. `state` is queued, running, ready
-- (the artifact is stored: sha256, size, provenance) or failed (`reason`
-- says why; the job's log has the converter's own output). A failed row
-- stays failed until someone asks for the conversion again explicitly
-- (`versions convert`, POST …/formats/{format}), so a download never
-- restarts a conversion that cannot succeed.
CREATE TABLE format_artifacts (
    id            TEXT PRIMARY KEY,
    team_id       TEXT NOT NULL REFERENCES teams(id),
    model_id      TEXT NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    version_id    TEXT NOT NULL REFERENCES model_versions(id) ON DELETE CASCADE,
    format        TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('queued', 'running', 'ready', 'failed')),
    -- The original file's digest at the time of the request.
    source_sha256 TEXT NOT NULL,
    -- JSON array of integers: the input shape a TorchScript export needs.
    input_shape   TEXT,
    reason        TEXT,
    job_id        TEXT NOT NULL,
    sha256        TEXT REFERENCES blobs(sha256),
    size          INTEGER,
    -- JSON: converter and its version, verification figures, source digest, when.
    provenance    TEXT,
    created_by    TEXT NOT NULL REFERENCES users(id),
    created_at    TEXT NOT NULL,
    finished_at   TEXT,
    UNIQUE (version_id, format)
);
CREATE INDEX format_artifacts_blob ON format_artifacts(sha256) WHERE sha256 IS NOT NULL;

DROP VIEW blob_references;
CREATE VIEW blob_references AS
    SELECT sha256 FROM version_files
    UNION ALL SELECT context_sha256 FROM environment_versions WHERE context_sha256 IS NOT NULL
    UNION ALL SELECT image_sha256 FROM environment_versions WHERE image_sha256 IS NOT NULL
    UNION ALL SELECT sha256 FROM datasets
    UNION ALL SELECT jar_sha256 FROM conversions WHERE jar_sha256 IS NOT NULL
    UNION ALL SELECT sha256 FROM custom_template_files
    UNION ALL SELECT sha256 FROM signed_urls WHERE sha256 IS NOT NULL
    UNION ALL SELECT sha256 FROM format_artifacts WHERE sha256 IS NOT NULL;
