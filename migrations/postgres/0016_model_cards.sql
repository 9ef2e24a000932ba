-- Schema step 0016 (migrations/0016_model_cards.sql): model cards.
CREATE TABLE version_cards (
    version_id  TEXT COLLATE "C" PRIMARY KEY REFERENCES model_versions(id) ON DELETE CASCADE,
    markdown    TEXT COLLATE "C" NOT NULL,
    updated_by  TEXT COLLATE "C" NOT NULL REFERENCES users(id),
    updated_at  TEXT COLLATE "C" NOT NULL
);
