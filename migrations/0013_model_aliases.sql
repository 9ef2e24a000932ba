-- Schema version 13: aliases (issue 24). A model's alias names one of its
-- versions (`champion` -> version 3); `@champion` works wherever a version
-- is named. Setting an existing alias moves it. Deleting the version or the
-- model removes its aliases.
CREATE TABLE model_aliases (
    model_id    TEXT NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    alias       TEXT NOT NULL,
    version_id  TEXT NOT NULL REFERENCES model_versions(id) ON DELETE CASCADE,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (model_id, alias)
);
-- Deleting a version finds its aliases through this index.
CREATE INDEX model_aliases_version ON model_aliases(version_id);
