//! The registry's records on PostgreSQL beyond what the suites compiled
//! again as tests/pg_*.rs cover: moving a SQLite registry there
//! (`modelreg db migrate`), and backing one up. A real PostgreSQL server,
//! started by the tests (tests/common/postgres.rs).

mod common;

use std::process::Output;

use common::{ok, Part, Server};
use serde_json::{json, Value};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// What a client sees of a registry: every model with its versions, and
/// each version's bytes.
fn everything(server: &Server) -> Vec<(Value, Vec<(Value, Vec<u8>)>)> {
    let models = ok(&server.get("/api/v1/models?limit=100"), 200);
    let mut all = Vec::new();
    for model in models["models"].as_array().unwrap() {
        let id = model["id"].as_str().unwrap();
        let versions = ok(&server.get(&format!("/api/v1/models/{id}/versions")), 200);
        let mut seen = Vec::new();
        for version in versions["versions"].as_array().unwrap() {
            let number = version["version"].as_i64().unwrap();
            let download = server.get(&format!("/api/v1/models/{id}/versions/{number}/download"));
            assert_eq!(download.status, 200, "{}", download.text());
            seen.push((version.clone(), download.body));
        }
        all.push((model.clone(), seen));
    }
    all
}

#[test]
fn db_migrate_moves_a_sqlite_registry_to_postgres_whole() {
    let Some((_, url)) = common::postgres::fresh_database() else { return };
    let server = Server::start();
    for (name, sizes) in [("fraud", &[100_000usize, 3][..]), ("churn", &[70_000][..])] {
        let model = ok(&server.post_json("/api/v1/models", &json!({"name": name, "framework": "pytorch"})), 201);
        let id = model["id"].as_str().unwrap();
        for (n, size) in sizes.iter().enumerate() {
            let bytes = common::pseudo_random(n as u64 + 1, *size);
            let reply = server.post_multipart(
                &format!("/api/v1/models/{id}/versions/upload"),
                &[Part::File { name: "file", filename: "model.pt", bytes: &bytes }],
            );
            ok(&reply, 201);
        }
    }
    // a DataRobot model and a machine, so other tables and a job are copied too
    ok(&server.post_json("/api/v2/customModels/", &json!({"name": "cm", "targetType": "Regression", "targetName": "y"})), 201);
    // and a model card, the one row of its table
    let card_path = "/api/modelreg/v1/models/fraud/versions/1/card";
    let card = ok(&server.send_json("PUT", card_path, &json!({"markdown": "# Fraud\n\nScores card payments.\n"})), 200);
    let before = everything(&server);

    let refused = server.cli(&["db", "migrate", "--to", &url]);
    assert!(!refused.status.success() && stderr(&refused).contains("a server is running"), "{}", stderr(&refused));

    let data = server.kill();
    let cli = |args: &[&str]| std::process::Command::new(common::BIN).arg("--data-dir").arg(data.path()).args(args).output().unwrap();
    let migrated = cli(&["--json", "db", "migrate", "--to", &url]);
    assert!(migrated.status.success(), "{}", stderr(&migrated));
    let report: Value = serde_json::from_slice(&migrated.stdout).unwrap();
    let rows = |table: &str| report["tables"].as_array().unwrap().iter().find(|t| t["table"] == table).unwrap()["rows"].as_u64().unwrap();
    assert_eq!((rows("models"), rows("model_versions"), rows("team_model_counts"), rows("version_cards")), (3, 3, 1, 1), "{report}");
    let to = report["to"].as_str().unwrap();
    assert!(to.starts_with("postgres://") && !url.starts_with(to), "the report names the target without its password: {to}");

    let again = cli(&["db", "migrate", "--to", &url]);
    assert!(!again.status.success() && stderr(&again).contains("already holds a registry"), "{}", stderr(&again));

    // the same data directory (its blobs, its admin key) on the PostgreSQL database
    let server = Server::start_in(data, &["--database", &url]);
    assert_eq!(everything(&server), before, "every model, version and byte reads back the same from PostgreSQL");
    assert_eq!(ok(&server.get(card_path), 200), card, "the model card reads back the same");
    let listed = server.cli(&["--database", &url, "--json", "custom-models", "list"]);
    assert!(stdout(&listed).contains("\"cm\""), "{}{}", stdout(&listed), stderr(&listed));
    // and it takes new writes: numbering goes on from the copied versions
    let fraud = before.iter().find(|(m, _)| m["name"] == "fraud").unwrap().0["id"].as_str().unwrap().to_string();
    let bytes = common::pseudo_random(9, 10);
    let next = ok(
        &server.post_multipart(&format!("/api/v1/models/{fraud}/versions/upload"), &[Part::File { name: "file", filename: "model.pt", bytes: &bytes }]),
        201,
    );
    assert_eq!(next["version"], 3, "{next}");
    // the server wrote to PostgreSQL, not to the SQLite file it left behind
    let postgres = common::postgres::shared().unwrap();
    assert_eq!(postgres.try_psql(&url, "SELECT COUNT(*) FROM model_versions").unwrap(), "4");
    let sqlite = rusqlite::Connection::open(server.data_dir().join("modelreg.db")).unwrap();
    assert_eq!(sqlite.query_row("SELECT COUNT(*) FROM model_versions", [], |r| r.get::<_, i64>(0)).unwrap(), 3);
}

#[test]
fn a_postgres_registry_is_backed_up_with_pg_dump_and_restored_into_an_empty_database() {
    let Some((_, url)) = common::postgres::fresh_database() else { return };
    let server = Server::start_in(tempfile::tempdir().unwrap(), &["--database", &url]);
    let model = ok(&server.post_json("/api/v1/models", &json!({"name": "fraud", "framework": "pytorch"})), 201);
    let id = model["id"].as_str().unwrap();
    for (seed, size) in [(1, 200_000usize), (2, 5)] {
        let bytes = common::pseudo_random(seed, size);
        ok(&server.post_multipart(&format!("/api/v1/models/{id}/versions/upload"), &[Part::File { name: "file", filename: "model.pt", bytes: &bytes }]), 201);
    }
    let before = everything(&server);

    // online: the server keeps running
    let backup = tempfile::tempdir().unwrap();
    let dest = backup.path().join("b");
    // pg_dump and pg_restore of the cluster's own version, as an operator's PATH would have them
    let pg_bin = common::postgres::bin_dir().unwrap();
    let out = server.cli_command().env("MODELREG_PG_BIN", &pg_bin).args(["--database", &url, "--json", "backup"]).arg(&dest).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["blobs"], 2, "{report}");
    assert!(dest.join("modelreg.pgdump").is_file() && !dest.join("modelreg.db").exists());

    let target = common::postgres::shared().unwrap().create_database(&format!("restored_{}", std::process::id()));
    let restored = tempfile::tempdir().unwrap();
    let data = restored.path().join("data");
    let restore = |database: Option<&str>| {
        let mut command = std::process::Command::new(common::BIN);
        command.env("MODELREG_PG_BIN", &pg_bin).arg("--data-dir").arg(&data);
        if let Some(url) = database {
            command.args(["--database", url]);
        }
        command.arg("restore").arg(&dest).output().unwrap()
    };
    let refused = restore(None);
    assert!(!refused.status.success() && stderr(&refused).contains("--database"), "{}", stderr(&refused));
    let out = restore(Some(&target));
    assert!(out.status.success(), "{}", stderr(&out));
    drop(server);
    let again = restore(Some(&target));
    assert!(!again.status.success(), "a restore never mixes with a live registry");

    let restored_dir = tempfile::TempDir::new_in(restored.path()).unwrap();
    std::fs::remove_dir(restored_dir.path()).unwrap();
    std::fs::rename(&data, restored_dir.path()).unwrap();
    let server = Server::start_in(restored_dir, &["--database", &target]);
    assert_eq!(everything(&server), before, "the restored registry reads back the same");
}
