-- Schema step 0016: model cards (issue 24). A card set through the API for
-- one version, in Markdown; it wins over the version's README.md. Rendering
-- and sanitising happen when it is read (registry::catalogue::cards), so
-- only the Markdown is kept. Deleting the version or the model removes it.
CREATE TABLE version_cards (
    version_id  TEXT PRIMARY KEY REFERENCES model_versions(id) ON DELETE CASCADE,
    markdown    TEXT NOT NULL,
    updated_by  TEXT NOT NULL REFERENCES users(id),
    updated_at  TEXT NOT NULL
);
