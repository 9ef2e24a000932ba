-- Schema version 5: DataRobot custom model templates (issue 15). The built-in
-- templates are static data compiled into the binary (templates/ at the
-- repository top, loaded by src/registry/custom_templates.rs); only the
-- templates a team's admins add are rows. (Not `templates`: that table holds
-- Paperspace machine templates.)

CREATE TABLE custom_templates (
    id                          TEXT PRIMARY KEY,
    team_id                     TEXT NOT NULL REFERENCES teams(id),
    name                        TEXT NOT NULL,
    description                 TEXT NOT NULL,
    template_type               TEXT NOT NULL,
    template_sub_type           TEXT NOT NULL,
    -- JSON object, as the client sent it (its known keys type-checked).
    template_metadata           TEXT NOT NULL DEFAULT '{}',
    -- JSON {environmentId, environmentVersionId}.
    default_environment         TEXT NOT NULL,
    default_resource_bundle_id  TEXT,
    enabled                     INTEGER NOT NULL DEFAULT 1,
    is_hidden                   INTEGER NOT NULL DEFAULT 0,
    created_by                  TEXT NOT NULL REFERENCES users(id),
    created_at                  TEXT NOT NULL,
    updated_at                  TEXT NOT NULL
);
CREATE INDEX custom_templates_team ON custom_templates(team_id, created_at, id);

-- A template's files: path -> blob, like a version's. Replaced as a whole
-- when a PATCH sends files.
CREATE TABLE custom_template_files (
    id           TEXT PRIMARY KEY,
    template_id  TEXT NOT NULL REFERENCES custom_templates(id) ON DELETE CASCADE,
    position     INTEGER NOT NULL,
    path         TEXT NOT NULL,
    sha256       TEXT NOT NULL REFERENCES blobs(sha256),
    size         INTEGER NOT NULL,
    UNIQUE (template_id, path)
);
CREATE INDEX custom_template_files_blob ON custom_template_files(sha256);

-- gc keeps every blob this view lists: the sources of 0002 plus template files.
DROP VIEW blob_references;
CREATE VIEW blob_references AS
    SELECT sha256 FROM version_files
    UNION ALL SELECT context_sha256 FROM environment_versions WHERE context_sha256 IS NOT NULL
    UNION ALL SELECT image_sha256 FROM environment_versions WHERE image_sha256 IS NOT NULL
    UNION ALL SELECT sha256 FROM datasets
    UNION ALL SELECT jar_sha256 FROM conversions WHERE jar_sha256 IS NOT NULL
    UNION ALL SELECT sha256 FROM custom_template_files;
