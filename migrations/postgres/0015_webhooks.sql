-- Schema version 15 (migrations/0015_webhooks.sql): webhooks.
CREATE TABLE webhooks (
    id          TEXT COLLATE "C" PRIMARY KEY,
    team_id     TEXT COLLATE "C" NOT NULL REFERENCES teams(id),
    url         TEXT COLLATE "C" NOT NULL,
    secret      TEXT COLLATE "C" NOT NULL,
    events      TEXT COLLATE "C" NOT NULL,
    created_by  TEXT COLLATE "C" NOT NULL REFERENCES users(id),
    created_at  TEXT COLLATE "C" NOT NULL,
    sending_by    TEXT COLLATE "C",
    sending_until TEXT COLLATE "C"
);
CREATE INDEX webhooks_team ON webhooks(team_id);

CREATE TABLE webhook_deliveries (
    id           TEXT COLLATE "C" PRIMARY KEY,
    webhook_id   TEXT COLLATE "C" NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_id     TEXT COLLATE "C" NOT NULL,
    event        TEXT COLLATE "C" NOT NULL,
    payload      TEXT COLLATE "C" NOT NULL,
    state        TEXT COLLATE "C" NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    created_at   TEXT COLLATE "C" NOT NULL,
    delivered_at TEXT COLLATE "C",
    next_attempt_at TEXT COLLATE "C"
);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries(webhook_id, created_at);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries(webhook_id, created_at) WHERE state = 'pending';

CREATE TABLE webhook_attempts (
    delivery_id TEXT COLLATE "C" NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempt     BIGINT NOT NULL,
    at          TEXT COLLATE "C" NOT NULL,
    status      BIGINT,
    latency_ms  BIGINT NOT NULL,
    error       TEXT COLLATE "C",
    PRIMARY KEY (delivery_id, attempt)
);
