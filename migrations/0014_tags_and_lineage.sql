-- Schema version 14: tags and lineage (issue 24).
--
-- A tag is a key with a text value, on a model or on one version
-- (`stage: production`, `dataset: churn-2026-11`). Setting a key again
-- replaces its value. `GET /api/modelreg/v1/models?tag=KEY:VALUE` finds
-- models by their tags through model_tags_lookup.
CREATE TABLE model_tags (
    model_id    TEXT NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (model_id, key)
);
CREATE INDEX model_tags_lookup ON model_tags(key, value, model_id);

CREATE TABLE version_tags (
    version_id  TEXT NOT NULL REFERENCES model_versions(id) ON DELETE CASCADE,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (version_id, key)
);

-- Where a version came from, as a JSON object of the fields
-- `registry::catalogue::lineage::Lineage` knows: source_commit, dataset,
-- run_url and parent_version (the parent's version id).
ALTER TABLE model_versions ADD COLUMN lineage TEXT NOT NULL DEFAULT '{}';
