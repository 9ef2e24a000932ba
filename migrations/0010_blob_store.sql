-- Schema version 10: where the registry keeps its bytes (issue 22).
-- `blob_store` is `local` (the data directory's blobs/) or
-- `s3://BUCKET[/PREFIX]`; a registry without the row is local. Only the
-- location is kept: how to reach a bucket (endpoint, credentials) is the
-- environment's, so that a laptop and a server open the same registry.
-- Blobs of at most 64 KiB are kept here instead of in the blob store
-- (store/blobs/inline.rs); `created_at` is refreshed when the content is
-- stored again, and gc removes only rows older than its grace period.
CREATE TABLE blob_contents (
    sha256      TEXT PRIMARY KEY,
    bytes       BLOB NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE registry_settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
