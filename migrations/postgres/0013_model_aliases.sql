-- Schema version 13 (migrations/0013_model_aliases.sql): model aliases.
CREATE TABLE model_aliases (
    model_id    TEXT COLLATE "C" NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    alias       TEXT COLLATE "C" NOT NULL,
    version_id  TEXT COLLATE "C" NOT NULL REFERENCES model_versions(id) ON DELETE CASCADE,
    updated_at  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (model_id, alias)
);
CREATE INDEX model_aliases_version ON model_aliases(version_id);
