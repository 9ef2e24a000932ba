-- Schema version 15: webhooks (issue 24). A team admin's webhook gets the
-- team's events it names, each POSTed as signed JSON. An event writes one
-- delivery per webhook that wants it, in the transaction of the change it
-- announces; a job sends a webhook's deliveries one at a time, oldest first,
-- and records each attempt (registry::webhooks). The secret signs
-- deliveries, so it is kept as given; it is never shown.
CREATE TABLE webhooks (
    id          TEXT PRIMARY KEY,
    team_id     TEXT NOT NULL REFERENCES teams(id),
    url         TEXT NOT NULL,
    secret      TEXT NOT NULL,
    events      TEXT NOT NULL,
    created_by  TEXT NOT NULL REFERENCES users(id),
    created_at  TEXT NOT NULL,
    -- while a runner sends this webhook's deliveries: which, and until when
    sending_by    TEXT,
    sending_until TEXT
);
CREATE INDEX webhooks_team ON webhooks(team_id);

CREATE TABLE webhook_deliveries (
    id           TEXT PRIMARY KEY,
    webhook_id   TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    -- the same for every webhook the event went to: receivers deduplicate on it
    event_id     TEXT NOT NULL,
    event        TEXT NOT NULL,
    -- the body exactly as signed and sent
    payload      TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    created_at   TEXT NOT NULL,
    delivered_at TEXT,
    -- a pending delivery whose last attempt failed: not before this
    next_attempt_at TEXT
);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries(webhook_id, created_at);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries(webhook_id, created_at) WHERE state = 'pending';

CREATE TABLE webhook_attempts (
    delivery_id TEXT NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    at          TEXT NOT NULL,
    -- the receiver's HTTP status; NULL when none came
    status      INTEGER,
    latency_ms  INTEGER NOT NULL,
    error       TEXT,
    PRIMARY KEY (delivery_id, attempt)
);
