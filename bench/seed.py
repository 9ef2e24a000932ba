#!/usr/bin/env python3
"""Seed a stopped modelreg data directory with N models, straight into SQLite.

    seed.py DATA_DIR N

Calling the API a million times would take longer than the whole benchmark,
so the rows go in directly, in one transaction, shaped as the Octomil create
route writes them (src/registry/models.rs: create_model). The team and the
creator are taken from the admin user that `serve` bootstrapped. The data
directory must not be in use by a server while this runs.

Running it again adds N more. Prints the id of one model in the middle of the
range it added.
"""

import datetime
import json
import sqlite3
import sys
import uuid


def main() -> None:
    data_dir, count = sys.argv[1], int(sys.argv[2])
    db = sqlite3.connect(f"{data_dir}/modelreg.db", isolation_level=None)
    # A bulk load: no journal, a big page cache, and ids inserted in order so
    # the primary-key b-tree is appended to rather than split at random.
    # The server's own settings (WAL) are restored at the end.
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-1000000")
    team_id, user_id = db.execute("SELECT team_id, id FROM users ORDER BY created_at LIMIT 1").fetchone()
    # One model a second from 2025-01-01, carrying on after rows already there,
    # so created_at is unique and older than anything the API creates.
    existing = db.execute("SELECT COUNT(*) FROM models").fetchone()[0]
    start = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(seconds=existing)
    frameworks = ["pytorch", "tensorflow", "xgboost", "sklearn"]

    ids = sorted(str(uuid.uuid4()) for _ in range(count))

    def rows():
        for i, model_id in enumerate(ids):
            at = (start + datetime.timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
            attrs = json.dumps({"framework": frameworks[i % 4], "framework_version": "2.1.0", "is_baseline": False},
                               separators=(",", ":"))
            yield (model_id, team_id, "", f"seeded model {i}", user_id, at, at, attrs)

    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO models (id, team_id, name, description, created_by, created_at, modified_at, attrs) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        rows(),
    )
    db.execute("COMMIT")
    middle = db.execute(
        "SELECT id FROM models WHERE team_id = ? ORDER BY created_at LIMIT 1 OFFSET ?", (team_id, existing + count // 2)
    ).fetchone()[0]
    db.execute("PRAGMA journal_mode=WAL")
    db.close()
    print(middle)


if __name__ == "__main__":
    main()
