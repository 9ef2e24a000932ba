-- What modelreg computes about a version by
-- running it: feature impact, and the initialisation of prediction
-- explanations (issue 15). One row per version and kind, replaced by each
-- new run; `result` is the JSON the routes render.
CREATE TABLE version_insights (
    version_id  TEXT NOT NULL REFERENCES model_versions(id) ON DELETE CASCADE,
    team_id     TEXT NOT NULL REFERENCES teams(id),
    -- 'featureImpact' or 'predictionExplanations'.
    kind        TEXT NOT NULL,
    -- running, done or failed.
    state       TEXT NOT NULL CHECK (state IN ('running', 'done', 'failed')),
    job_id      TEXT NOT NULL,
    params      TEXT NOT NULL DEFAULT '{}',
    result      TEXT,
    error       TEXT,
    created_at  TEXT NOT NULL,
    finished_at TEXT,
    PRIMARY KEY (version_id, kind)
);
