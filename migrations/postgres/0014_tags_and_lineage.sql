-- Schema version 14 (migrations/0014_tags_and_lineage.sql): tags and lineage.
CREATE TABLE model_tags (
    model_id    TEXT COLLATE "C" NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    key         TEXT COLLATE "C" NOT NULL,
    value       TEXT COLLATE "C" NOT NULL,
    updated_at  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (model_id, key)
);
CREATE INDEX model_tags_lookup ON model_tags(key, value, model_id);

CREATE TABLE version_tags (
    version_id  TEXT COLLATE "C" NOT NULL REFERENCES model_versions(id) ON DELETE CASCADE,
    key         TEXT COLLATE "C" NOT NULL,
    value       TEXT COLLATE "C" NOT NULL,
    updated_at  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (version_id, key)
);

ALTER TABLE model_versions ADD COLUMN lineage TEXT COLLATE "C" NOT NULL DEFAULT '{}';
