-- Schema version 10: where the registry keeps its bytes (issue 22).
-- `blob_store` is `local` (the data directory's blobs/) or
-- `s3://BUCKET[/PREFIX]`; a registry without the row is local. Only the
-- location is kept: how to reach a bucket (endpoint, credentials) is the
-- environment's, so that a laptop and a server open the same registry.
CREATE TABLE registry_settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
