-- Remote repositories (issue 15): git repositories a team's admins register,
-- from which custom model versions are pulled (`versions/fromRepository/`).
-- `source_type` is DataRobot's (github, gitlab-cloud, bitbucket-server) or
-- modelreg's `git` (a local path or file:// URL an operator allowed).
-- `token` is the secret for private repositories: handed to git through an
-- askpass helper and the environment, never rendered; `credential_id` is
-- the opaque id DataRobot's Terraform provider sends, kept as it is.
CREATE TABLE remote_repositories (
    id            TEXT PRIMARY KEY,
    team_id       TEXT NOT NULL REFERENCES teams(id),
    name          TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    location      TEXT NOT NULL,
    source_type   TEXT NOT NULL,
    credential_id TEXT,
    token         TEXT,
    created_by    TEXT NOT NULL REFERENCES users(id),
    created_at    TEXT NOT NULL
);
CREATE INDEX remote_repositories_team_created ON remote_repositories(team_id, created_at, id);
