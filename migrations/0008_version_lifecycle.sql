-- The registry's version workflow (issue 10), shared by every door.

-- A version's lifecycle status: `active` when made; `published` and
-- `deprecated` are set through Octomil's publish/deprecate. A deprecated
-- version stays downloadable but is never a model's "latest".
ALTER TABLE model_versions ADD COLUMN status TEXT NOT NULL DEFAULT 'active'
    CHECK (status IN ('active', 'published', 'deprecated'));
-- The version string a client chose (the Octomil SDK's `version`, such as
-- "1.0.0"), an alias of the number; unique within a model when set.
ALTER TABLE model_versions ADD COLUMN label TEXT;
CREATE UNIQUE INDEX model_versions_label ON model_versions(model_id, label) WHERE label IS NOT NULL;
-- Evaluation metrics reported for the version (a JSON object), mutable.
ALTER TABLE model_versions ADD COLUMN metrics TEXT NOT NULL DEFAULT '{}';

-- The highest version number a model ever had: a deleted version's number
-- is never given again, so a number names one set of bytes for good.
ALTER TABLE models ADD COLUMN last_version_number INTEGER NOT NULL DEFAULT 0;
UPDATE models SET last_version_number =
    COALESCE((SELECT max(number) FROM model_versions v WHERE v.model_id = models.id), 0);

-- Short-lived URLs that carry their own authority (Octomil's upload-url and
-- download-url): a random token acting for the user who asked for it.
-- An upload token is single-use: `issued` until its PUT begins
-- (`receiving`), `uploaded` once the blob is stored (with sha256 and size),
-- then `confirmed` when confirm-upload turns it into a version. A token
-- dies with the API key that asked for it. gc deletes expired rows, and
-- with them the hold on an unconfirmed upload's blob.
CREATE TABLE signed_urls (
    token_hash   TEXT PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('upload', 'download')),
    team_id      TEXT NOT NULL REFERENCES teams(id),
    user_id      TEXT NOT NULL REFERENCES users(id),
    key_id       TEXT,
    -- Upload: the model as the client named it (an id, or a name to create
    -- at confirmation). Download: the model's id.
    model_ref    TEXT NOT NULL,
    -- Upload: the client's version string. Download: the version number.
    version      TEXT NOT NULL,
    -- Upload: the file name. Download: the format asked for.
    detail       TEXT NOT NULL,
    state        TEXT NOT NULL DEFAULT 'issued' CHECK (state IN ('issued', 'receiving', 'uploaded', 'confirmed')),
    sha256       TEXT,
    size         INTEGER,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    -- The lifetime it was issued with; an upload's confirmation gets as
    -- long again from the end of its PUT.
    ttl_ms       INTEGER NOT NULL
);
CREATE INDEX signed_urls_expiry ON signed_urls(expires_at);

-- gc keeps every blob this view lists: the sources of 0006, plus uploads
-- waiting for their confirmation.
DROP VIEW blob_references;
CREATE VIEW blob_references AS
    SELECT sha256 FROM version_files
    UNION ALL SELECT context_sha256 FROM environment_versions WHERE context_sha256 IS NOT NULL
    UNION ALL SELECT image_sha256 FROM environment_versions WHERE image_sha256 IS NOT NULL
    UNION ALL SELECT sha256 FROM datasets
    UNION ALL SELECT jar_sha256 FROM conversions WHERE jar_sha256 IS NOT NULL
    UNION ALL SELECT sha256 FROM custom_template_files
    UNION ALL SELECT sha256 FROM signed_urls WHERE sha256 IS NOT NULL;
