//! Issue 4: the Paperspace front door (`/v1/`), against the real binary.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{Reply, Server};
use serde_json::{json, Value};

/// Seed 003's create example, verbatim.
fn seed_machine() -> Value {
    json!({"name": "test machine", "machineType": "P4000", "templateId": "tz0ireoj", "diskSize": 50,
           "region": "East Coast (NY2)", "autoShutdownEnabled": "true", "autoShutdownTimeout": "6"})
}

/// An error body is exactly `{code, message}` plus an optional `issues`:
/// the official CLI rejects any other key.
fn assert_error(reply: &Reply, status: u16, code: &str) -> String {
    let text = String::from_utf8_lossy(&reply.body).to_string();
    assert_eq!(reply.status, status, "{text}");
    let body = reply.json();
    let keys: HashSet<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    assert!(keys.is_subset(&HashSet::from(["code", "message", "issues"])), "{text}");
    assert!(keys.contains("message"), "{text}");
    assert_eq!(body["code"], code, "{text}");
    if let Some(issues) = body.get("issues") {
        for issue in issues.as_array().unwrap() {
            assert!(issue["message"].is_string());
        }
    }
    body["message"].as_str().unwrap().to_string()
}

/// A 400 whose message names `field`.
fn assert_invalid(reply: &Reply, field: &str) {
    let message = assert_error(reply, 400, "BAD_REQUEST");
    assert!(message.contains(field), "message {message:?} does not name {field}");
}

fn assert_model_shape(m: &Value) {
    for key in ["dtCreated", "dtModified", "id", "name", "teamId"] {
        assert!(m[key].is_string(), "{key} in {m}");
    }
    assert!(m["isPublic"].is_boolean(), "{m}");
    for key in ["description", "projectId", "storageProviderId"] {
        assert!(m.get(key).is_some_and(|v| v.is_string() || v.is_null()), "{key} in {m}");
    }
}

fn create_model(s: &Server, name: &str) -> Value {
    let r = s.post_json("/v1/models", &json!({"name": name, "isPublic": false}));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

/// Every id of a listing, following `nextPage` to the end.
fn walk(s: &Server, query: &str, mut between_pages: impl FnMut(usize)) -> Vec<Value> {
    let mut items = Vec::new();
    let mut after: Option<String> = None;
    for page in 0.. {
        let path = match &after {
            Some(a) => format!("/v1/models?{query}&after={a}"),
            None => format!("/v1/models?{query}"),
        };
        let r = s.get(&path);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let body = r.json();
        let got = body["items"].as_array().unwrap().clone();
        assert!(got.len() <= 7);
        assert_eq!(body["hasMore"].as_bool().unwrap(), body["nextPage"].is_string(), "{body}");
        if body["hasMore"].as_bool().unwrap() {
            assert_eq!(got.len(), 7, "a page that says more follow is full");
        }
        items.extend(got);
        match body["nextPage"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => break,
        }
        between_pages(page);
    }
    items
}

fn ids(items: &[Value]) -> Vec<String> {
    items.iter().map(|m| m["id"].as_str().unwrap().to_string()).collect()
}

fn sort_key(m: &Value, field: &str) -> (String, String) {
    (m[field].as_str().unwrap().to_string(), m["id"].as_str().unwrap().to_string())
}

fn wait_state(s: &Server, id: &str, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let m = s.get(&format!("/v1/machines/{id}")).json();
        if m["state"] == state {
            return m;
        }
        assert!(Instant::now() < deadline, "machine {id} stuck in {} (waiting for {state})", m["state"]);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the CLI on the server's data directory and returns stdout.
fn cli_ok(s: &Server, args: &[&str]) -> String {
    let out = s.cli(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A second team with its own user and key, made with the CLI.
fn second_team_key(s: &Server) -> String {
    cli_ok(s, &["teams", "add", "t2"]);
    cli_ok(s, &["users", "add", "bob", "--team", "t2"]);
    cli_ok(s, &["keys", "create", "--user", "bob"]).trim().to_string()
}

#[test]
fn seed_001_model_examples_round_trip() {
    let s = Server::start();
    // Seed 001's create example.
    let r = s.post_json("/v1/models", &json!({"isPublic": true, "name": "string", "projectId": "string", "storageProviderId": "string"}));
    assert_eq!(r.status, 200);
    let m = r.json();
    assert_model_shape(&m);
    assert_eq!(m["isPublic"], true);
    assert_eq!(m["projectId"], "string");
    assert_eq!(m["storageProviderId"], "string");
    assert_eq!(m["description"], Value::Null);
    assert!(m.get("modelType").is_none() && m.get("url").is_none(), "unset 000 fields are not rendered: {m}");
    let id = m["id"].as_str().unwrap();

    let got = s.get(&format!("/v1/models/{id}")).json();
    assert_eq!(got, m);
    let list = s.get("/v1/models").json();
    assert_eq!(list["hasMore"], false);
    assert_eq!(list["nextPage"], Value::Null);
    assert_eq!(list["items"], json!([m]));

    let r = s.delete(&format!("/v1/models/{id}"));
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"id": id}));
    assert_error(&s.get(&format!("/v1/models/{id}")), 404, "NOT_FOUND");
    assert_error(&s.delete(&format!("/v1/models/{id}")), 404, "NOT_FOUND");
}

#[test]
fn seed_000_fields_are_accepted_and_echoed() {
    let s = Server::start();
    let r = s.post_json(
        "/v1/models",
        &json!({"name": "legacy", "modelType": "Tensorflow", "url": "s3://bucket/model", "projectId": "pr1", "unknown": 1}),
    );
    assert_eq!(r.status, 200);
    let m = r.json();
    assert_model_shape(&m);
    assert_eq!(m["isPublic"], false, "a missing isPublic is false");
    assert_eq!(m["modelType"], "Tensorflow");
    assert_eq!(m["url"], "s3://bucket/model");
    let other = create_model(&s, "other");
    // description may be the CLI's `{}`, meaning null.
    let r = s.post_json("/v1/models", &json!({"name": "d", "description": {}}));
    assert_eq!(r.json()["description"], Value::Null);

    let list = s.get("/v1/models?projectId=pr1").json();
    assert_eq!(ids(list["items"].as_array().unwrap()), vec![m["id"].as_str().unwrap()]);
    assert_eq!(list["items"][0]["modelType"], "Tensorflow");
    assert!(s.get(&format!("/v1/models/{}", other["id"].as_str().unwrap())).json().get("modelType").is_none());
}

#[test]
fn bad_model_input_is_a_400_naming_the_field() {
    let s = Server::start();
    let long = "x".repeat(256);
    for (body, field) in [
        (json!({}), "name"),
        (json!({"name": ""}), "name"),
        (json!({"name": "   "}), "name"),
        (json!({"name": long}), "name"),
        (json!({"name": 5}), "name"),
        (json!({"name": "a", "isPublic": "yes"}), "isPublic"),
        (json!({"name": "a", "description": 3}), "description"),
        (json!({"name": "a", "projectId": 3}), "projectId"),
        (json!({"name": "a", "storageProviderId": true}), "storageProviderId"),
        (json!({"name": "a", "modelType": "PyTorch"}), "modelType"),
        (json!({"name": "a", "url": 1}), "url"),
        (json!([1, 2]), "body"),
    ] {
        assert_invalid(&s.post_json("/v1/models", &body), field);
    }
    let r = s.request("POST", "/v1/models", &[("Content-Type", "application/json")], Some(b"{not json".to_vec()));
    assert_invalid(&r, "body");
    assert!(s.post_json("/v1/models", &json!({"name": "x".repeat(255)})).status == 200);
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=121", "limit"),
        ("limit=abc", "limit"),
        ("limit=1.5", "limit"),
        ("orderBy=size", "orderBy"),
        ("order=up", "order"),
        ("after=zz", "after"),
        ("after=6162", "after"),
        // A well-formed cursor whose key is not a time, on a time order.
        ("after=616263006964", "after"),
    ] {
        assert_invalid(&s.get(&format!("/v1/models?{query}")), field);
    }
    for ok in ["limit=1", "limit=120", "orderBy=name&order=asc", "orderBy=dtModified", "after="] {
        assert_eq!(s.get(&format!("/v1/models?{ok}")).status, 200, "{ok}");
    }
}

#[test]
fn paging_250_models_by_cursor() {
    let s = Server::start();
    // Names in a scrambled order, so that orderBy=name differs from creation order.
    let mut all = Vec::new();
    for i in 0..250 {
        all.push(create_model(&s, &format!("model-{:03}", (i * 97) % 250)));
    }
    let all_ids: HashSet<String> = ids(&all).into_iter().collect();
    let mut listings = Vec::new();
    for (query, field) in [
        ("limit=7", "dtCreated"),
        ("limit=7&order=asc", "dtCreated"),
        ("limit=7&orderBy=name&order=asc", "name"),
        ("limit=7&orderBy=name", "name"),
        ("limit=7&orderBy=dtModified&order=asc", "dtModified"),
    ] {
        let items = walk(&s, query, |_| {});
        let got = ids(&items);
        assert_eq!(got.len(), 250, "{query}");
        assert_eq!(got.iter().cloned().collect::<HashSet<_>>(), all_ids, "{query}: each exactly once");
        let keys: Vec<_> = items.iter().map(|m| sort_key(m, field)).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        if !query.contains("order=asc") {
            sorted.reverse();
        }
        assert_eq!(keys, sorted, "{query}: in order");
        listings.push(got);
    }
    let mut reversed = listings[1].clone();
    reversed.reverse();
    assert_eq!(listings[0], reversed, "asc is exactly the reverse of desc");
    let mut reversed = listings[3].clone();
    reversed.reverse();
    assert_eq!(listings[2], reversed);
}

#[test]
fn paging_survives_inserts_and_deletes_between_pages() {
    let s = Server::start();
    for i in 0..60 {
        create_model(&s, &format!("m{:02}", (i * 7) % 60));
    }
    for (query, field, descending) in [
        ("limit=7", "dtCreated", true),
        ("limit=7&order=asc", "dtCreated", false),
        ("limit=7&orderBy=name&order=asc", "name", false),
    ] {
        let before = walk(&s, query, |_| {});
        let mut deleted = HashSet::new();
        let mut inserted = HashSet::new();
        let seen = walk(&s, query, |page| {
            if page == 2 {
                // Delete a row already served and three not yet served;
                // insert rows that sort before, among and after the rest.
                for victim in [&before[3], &before[30], &before[31], &before[50]] {
                    let id = victim["id"].as_str().unwrap();
                    assert_eq!(s.delete(&format!("/v1/models/{id}")).status, 200);
                    deleted.insert(id.to_string());
                }
                for name in ["m00a", "m30a", "zzz"] {
                    inserted.insert(create_model(&s, name)["id"].as_str().unwrap().to_string());
                }
            }
        });
        let seen_ids = ids(&seen);
        assert_eq!(seen_ids.len(), seen_ids.iter().collect::<HashSet<_>>().len(), "{query}: no duplicates");
        // Every original row not deleted before it was reached is served, in order.
        let expected: Vec<String> = ids(&before)
            .into_iter()
            .enumerate()
            .filter(|(i, id)| *i < 21 || !deleted.contains(id))
            .map(|(_, id)| id)
            .collect();
        let originals: Vec<String> = seen_ids.iter().filter(|id| !inserted.contains(*id)).cloned().collect();
        assert_eq!(originals, expected, "{query}: no gaps");
        let keys: Vec<_> = seen.iter().map(|m| sort_key(m, field)).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        if descending {
            sorted.reverse();
        }
        assert_eq!(keys, sorted, "{query}: still in order");
        // Restore the 60 rows for the next order.
        for id in &inserted {
            s.delete(&format!("/v1/models/{id}"));
        }
        for i in 0..deleted.len() {
            create_model(&s, &format!("refill{i}"));
        }
    }
}

#[test]
fn models_are_shared_with_octomil_and_the_cli() {
    let s = Server::start();
    let m = s.post_json("/v1/models", &json!({"name": "from-paperspace", "description": "d"})).json();
    let id = m["id"].as_str().unwrap();
    let o = s.get(&format!("/api/v1/models/{id}"));
    assert_eq!(o.status, 200);
    assert_eq!(o.json()["name"], "from-paperspace");
    let shown: Value = serde_json::from_str(&cli_ok(&s, &["--json", "models", "show", id])).unwrap();
    assert_eq!(shown["name"], "from-paperspace");

    let o = s.post_json("/api/v1/models", &json!({"name": "from-octomil", "framework": "pytorch"}));
    assert_eq!(o.status, 201);
    let oid = o.json()["id"].as_str().unwrap().to_string();
    let p = s.get(&format!("/v1/models/{oid}")).json();
    assert_model_shape(&p);
    assert_eq!(p["name"], "from-octomil");
    assert_eq!(p["isPublic"], false);

    let c: Value = serde_json::from_str(&cli_ok(&s, &["--json", "models", "create", "--name", "from-cli"])).unwrap();
    let cid = c["id"].as_str().unwrap();
    assert_eq!(s.get(&format!("/v1/models/{cid}")).json()["name"], "from-cli");
    let listed = ids(s.get("/v1/models").json()["items"].as_array().unwrap());
    assert_eq!(listed.len(), 3);
    // Deleted here, gone there.
    assert_eq!(s.delete(&format!("/v1/models/{oid}")).status, 200);
    assert_eq!(s.get(&format!("/api/v1/models/{oid}")).status, 404);
}

#[test]
fn seed_003_machine_walks_its_lifecycle() {
    let s = Server::start();
    let r = s.post_json("/v1/machines", &seed_machine());
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let body = r.json();
    assert_eq!(body.as_object().unwrap().len(), 2, "exactly {{event, data}}");
    let (event, data) = (&body["event"], &body["data"]);
    let id = data["id"].as_str().unwrap().to_string();
    assert_eq!(event["name"], "create");
    assert_eq!(event["state"], "new");
    assert_eq!(event["machineId"], id.as_str());
    assert!(event["id"].is_string() && event["dtCreated"].is_string());
    for key in ["dtStarted", "dtFinished", "error"] {
        assert_eq!(event[key], Value::Null, "{key}");
    }
    assert_eq!(data["name"], "test machine");
    assert_eq!(data["state"], "provisioning");
    assert_eq!(data["os"], "Ubuntu 20.04 Desktop");
    assert_eq!(data["machineType"], "P4000");
    assert_eq!(data["agentType"], "LinuxDesktop");
    assert!(data["cpus"].is_u64());
    for key in ["ram", "storageTotal", "storageUsed"] {
        assert!(data[key].as_str().unwrap().parse::<u64>().is_ok(), "{key} is a string of digits");
    }
    assert_eq!(data["accelerators"], json!([{"name": "Quadro P4000", "memory": "8589934592", "count": 1}]));
    assert_eq!(data["region"], "East Coast (NY2)");
    for key in ["privateIp", "networkId", "publicIp"] {
        assert_eq!(data[key], Value::Null, "{key}");
    }
    assert_eq!(data["publicIpType"], "none");
    assert_eq!(data["autoShutdownEnabled"], true, "the string form becomes a boolean");
    assert_eq!(data["autoShutdownTimeout"], 6, "the string form becomes a number");

    wait_state(&s, &id, "ready");
    let events = s.get(&format!("/v1/machines/{id}/events")).json();
    let create = &events["items"][0];
    assert_eq!(create["state"], "done");
    assert!(create["dtStarted"].is_string() && create["dtFinished"].is_string());

    // Invalid transitions say why.
    assert_invalid(&s.request("PATCH", &format!("/v1/machines/{id}/start"), &[], None), "state");
    for (action, during, end) in [("stop", "stopping", "off"), ("start", "starting", "ready"), ("restart", "restarting", "ready")] {
        let r = s.request("PATCH", &format!("/v1/machines/{id}/{action}"), &[], None);
        assert_eq!(r.status, 200, "{action}: {}", String::from_utf8_lossy(&r.body));
        let b = r.json();
        assert_eq!(b["event"]["name"], action);
        assert_eq!(b["event"]["state"], "new");
        assert_eq!(b["data"]["state"], during);
        wait_state(&s, &id, end);
        if end == "off" {
            assert_invalid(&s.request("PATCH", &format!("/v1/machines/{id}/stop"), &[], None), "state");
            assert_invalid(&s.request("PATCH", &format!("/v1/machines/{id}/restart"), &[], None), "state");
        }
    }
    let events = s.get(&format!("/v1/machines/{id}/events")).json();
    let names: Vec<&str> = events["items"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["restart", "start", "stop", "create"]);
    // Paging the events with a cursor.
    let first = s.get(&format!("/v1/machines/{id}/events?limit=3")).json();
    assert_eq!(first["hasMore"], true);
    let rest = s.get(&format!("/v1/machines/{id}/events?limit=3&after={}", first["nextPage"].as_str().unwrap())).json();
    assert_eq!(rest["items"][0]["name"], "create");
    assert_eq!(rest["nextPage"], Value::Null);

    // PUT renames and changes auto-shutdown; null clears the timeout.
    let r = s.send_json("PUT", &format!("/v1/machines/{id}"), &json!({"name": "renamed", "autoShutdownEnabled": false, "autoShutdownTimeout": null}));
    assert_eq!(r.status, 200);
    let m = r.json();
    assert_eq!((m["name"].as_str(), m["autoShutdownEnabled"].as_bool(), &m["autoShutdownTimeout"]), (Some("renamed"), Some(false), &Value::Null));
    assert_invalid(&s.send_json("PUT", &format!("/v1/machines/{id}"), &json!({"name": ""})), "name");
    assert_invalid(&s.send_json("PUT", &format!("/v1/machines/{id}"), &json!({"autoShutdownTimeout": 0})), "autoShutdownTimeout");

    let list = s.get("/v1/machines").json();
    assert_eq!(list["items"][0]["id"], id.as_str());
    assert_eq!(list["hasMore"], false);
    assert_eq!(s.delete(&format!("/v1/machines/{id}")).status, 200);
    assert_error(&s.get(&format!("/v1/machines/{id}")), 404, "NOT_FOUND");
    assert_error(&s.get(&format!("/v1/machines/{id}/events")), 404, "NOT_FOUND");
}

#[test]
fn machine_paging_and_delete_during_provisioning() {
    let s = Server::start_with(&["--machine-delay-ms", "60000"]);
    let mut made = Vec::new();
    for i in 0..5 {
        let mut body = seed_machine();
        body["name"] = json!(format!("box{i}"));
        let r = s.post_json("/v1/machines", &body).json();
        made.push(r["data"]["id"].as_str().unwrap().to_string());
    }
    // The long delay keeps them provisioning: no action is valid yet.
    assert_invalid(&s.request("PATCH", &format!("/v1/machines/{}/stop", made[0]), &[], None), "state");
    let mut seen = Vec::new();
    let mut path = "/v1/machines?limit=2&orderBy=name&order=asc".to_string();
    loop {
        let page = s.get(&path).json();
        seen.extend(page["items"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap().to_string()));
        match page["nextPage"].as_str() {
            Some(next) => path = format!("/v1/machines?limit=2&orderBy=name&order=asc&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, ["box0", "box1", "box2", "box3", "box4"]);
    assert_eq!(s.delete(&format!("/v1/machines/{}", made[0])).status, 200);
    assert_eq!(s.get("/v1/machines").json()["items"].as_array().unwrap().len(), 4);
}

#[test]
fn bad_machine_input_is_a_400_naming_the_field() {
    let s = Server::start();
    let with = |key: &str, value: Value| {
        let mut body = seed_machine();
        body[key] = value;
        body
    };
    let without = |key: &str| {
        let mut body = seed_machine();
        body.as_object_mut().unwrap().remove(key);
        body
    };
    let mut cases = vec![];
    for field in ["name", "machineType", "templateId", "diskSize", "region"] {
        cases.push((without(field), field));
    }
    cases.extend([
        (with("name", json!("")), "name"),
        (with("name", json!(7)), "name"),
        (with("machineType", json!("P9999")), "machineType"),
        // The Windows template does not offer the A100/H100 family.
        (with("templateId", json!("twnlo3zj")).tap("machineType", json!("H100")), "machineType"),
        (with("templateId", json!("nope1234")), "templateId"),
        (with("diskSize", json!("fifty")), "diskSize"),
        (with("diskSize", json!(0)), "diskSize"),
        (with("diskSize", json!(50.5)), "diskSize"),
        (with("region", json!("Mars (MRS1)")), "region"),
        (with("autoShutdownEnabled", json!("maybe")), "autoShutdownEnabled"),
        (with("autoShutdownEnabled", json!(3)), "autoShutdownEnabled"),
        (with("autoShutdownTimeout", json!("six")), "autoShutdownTimeout"),
        (with("autoShutdownTimeout", json!(-1)), "autoShutdownTimeout"),
        (with("publicIpType", json!("fancy")), "publicIpType"),
        (with("userId", json!("no-such-user")), "userId"),
        (with("email", json!("new@example.com")), "password"),
        (with("email", json!("new@example.com")).tap("password", json!("pw")), "firstName"),
        (with("userId", json!("x")).tap("email", json!("a@b.c")), "userId"),
    ]);
    for (body, field) in cases {
        assert_invalid(&s.post_json("/v1/machines", &body), field);
    }
    assert_invalid(&s.post_json("/v1/machines", &json!("text")), "body");
    assert_eq!(s.get("/v1/machines").json()["items"], json!([]), "no half-made machine");

    // The numeric and boolean forms are as good as the string forms.
    let r = s.post_json("/v1/machines", &with("autoShutdownEnabled", json!(true)).tap("autoShutdownTimeout", json!(6)));
    assert_eq!(r.status, 200);
}

trait Tap {
    fn tap(self, key: &str, value: Value) -> Value;
}

impl Tap for Value {
    fn tap(mut self, key: &str, value: Value) -> Value {
        self[key] = value;
        self
    }
}

#[test]
fn machines_can_be_assigned_by_team_admins() {
    let s = Server::start();
    cli_ok(&s, &["users", "add", "carol", "--email", "carol@example.com"]);
    let carol = s.post_json("/v1/machines", &seed_machine().tap("userId", json!("carol"))).json();
    let users: Value = serde_json::from_str(&cli_ok(&s, &["--json", "users", "list"])).unwrap();
    let carol_id = users.as_array().unwrap().iter().find(|u| u["username"] == "carol").unwrap()["id"].clone();
    assert_eq!(carol["data"]["userId"], carol_id);

    let new_user = seed_machine()
        .tap("email", json!("dave@example.com"))
        .tap("password", json!("secret"))
        .tap("firstName", json!("Dave"))
        .tap("lastName", json!("Doe"));
    let r = s.post_json("/v1/machines", &new_user);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let users: Value = serde_json::from_str(&cli_ok(&s, &["--json", "users", "list"])).unwrap();
    let dave = users.as_array().unwrap().iter().find(|u| u["email"] == "dave@example.com").expect("dave was created");
    assert_eq!(r.json()["data"]["userId"], dave["id"]);
    // The same email again is a user-creation error.
    let message = assert_error(&s.post_json("/v1/machines", &new_user), 400, "BAD_REQUEST");
    assert!(message.contains("email") && message.contains("already"), "{message}");

    // A non-admin may not assign machines to others.
    let key = cli_ok(&s, &["keys", "create", "--user", "carol"]).trim().to_string();
    let auth = format!("Bearer {key}");
    let body = seed_machine().tap("userId", json!("admin")).to_string().into_bytes();
    let r = s.request("POST", "/v1/machines", &[("Authorization", &auth), ("Content-Type", "application/json")], Some(body));
    assert_error(&r, 403, "FORBIDDEN");
    let body = seed_machine().to_string().into_bytes();
    let r = s.request("POST", "/v1/machines", &[("Authorization", &auth), ("Content-Type", "application/json")], Some(body));
    assert_eq!(r.status, 200);
}

#[test]
fn templates_os_custom_and_aliases() {
    let s = Server::start();
    let custom = s.get("/v1/templates").json();
    assert_eq!(custom, json!({"hasMore": false, "items": [], "nextPage": null}));
    let os = s.get("/v1/templates?isPublic=true&limit=120").json();
    let items = os["items"].as_array().unwrap();
    assert!(items.len() >= 4);
    let ubuntu = items.iter().find(|t| t["id"] == "tz0ireoj").expect("seed 003's template");
    assert_eq!(ubuntu["isPublic"], true);
    assert_eq!(ubuntu["agentType"], "LinuxDesktop");
    assert!(ubuntu["operatingSystemLabel"].is_string() && ubuntu["defaultSizeGb"].is_u64());
    let types = ubuntu["availableMachineTypes"].as_array().unwrap();
    for label in ["P4000", "A100-80G", "A100-80Gx8", "H100x8", "C5"] {
        assert!(types.iter().any(|t| t["machineTypeLabel"] == label && t["isAvailable"] == true), "{label}");
    }
    assert_eq!(s.get("/v1/os-templates?limit=120").json()["items"], os["items"]);
    // Paged two at a time, the OS templates come out each once.
    let mut seen = Vec::new();
    let mut path = "/v1/os-templates?limit=2".to_string();
    loop {
        let page = s.get(&path).json();
        seen.extend(ids(page["items"].as_array().unwrap()));
        match page["nextPage"].as_str() {
            Some(next) => path = format!("/v1/os-templates?limit=2&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, ids(items));
    assert_invalid(&s.get("/v1/templates?isPublic=maybe"), "isPublic");
    assert_invalid(&s.get("/v1/templates?limit=500"), "limit");

    // A custom template from a machine, usable for new machines.
    let machine = s.post_json("/v1/machines", &seed_machine()).json();
    let mid = machine["data"]["id"].as_str().unwrap();
    let r = s.post_json("/v1/templates", &json!({"name": "Test Template", "machineId": mid}));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let t = r.json();
    assert_eq!(t["isPublic"], false);
    assert_eq!(t["region"], "East Coast (NY2)");
    assert_eq!(t["defaultSizeGb"], 50);
    let tid = t["id"].as_str().unwrap();
    assert_eq!(s.get("/v1/templates").json()["items"], json!([t.clone()]));
    assert_eq!(s.get("/v1/custom-templates").json()["items"], json!([t.clone()]));
    assert_eq!(s.get(&format!("/v1/templates/{tid}")).json(), t);
    let r = s.post_json("/v1/machines", &seed_machine().tap("templateId", json!(tid)));
    assert_eq!(r.status, 200);
    assert_invalid(&s.post_json("/v1/templates", &json!({"name": "x"})), "machineId");
    assert_invalid(&s.post_json("/v1/templates", &json!({"name": "x", "machineId": "nope"})), "machineId");
    assert_invalid(&s.post_json("/v1/templates", &json!({"name": "", "templateId": "tz0ireoj"})), "name");
    assert_invalid(&s.post_json("/v1/templates", &json!({"name": "x", "templateId": "tz0ireoj", "region": "Moon"})), "region");
}

#[test]
fn other_methods_get_405_with_allow_and_unknown_paths_404() {
    let s = Server::start();
    let m = create_model(&s, "m");
    let id = m["id"].as_str().unwrap();
    for path in [
        "/v1/models".to_string(),
        format!("/v1/models/{id}"),
        "/v1/machines".into(),
        "/v1/machines/x".into(),
        "/v1/machines/x/stop".into(),
        "/v1/machines/x/events".into(),
        "/v1/templates".into(),
        "/v1/os-templates".into(),
    ] {
        for method in ["TRACE", "QUERY", "PATCH", "CONNECTX"] {
            let raw = s.raw(
                format!("{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", s.key)
                    .as_bytes(),
                Duration::from_secs(5),
            );
            if method == "PATCH" && path.ends_with("/stop") {
                continue;
            }
            assert!(raw.starts_with("HTTP/1.1 405"), "{method} {path}: {raw}");
            assert!(raw.to_ascii_lowercase().contains("\r\nallow: "), "{method} {path}: {raw}");
            let body: Value = serde_json::from_str(raw.split("\r\n\r\n").nth(1).unwrap()).unwrap();
            assert_eq!(body["code"], "METHOD_NOT_SUPPORTED");
            assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
        }
    }
    let r = s.request("DELETE", "/v1/templates", &[], None);
    assert_error(&r, 405, "METHOD_NOT_SUPPORTED");
    assert_eq!(r.header("Allow"), Some("GET, HEAD, POST"));
    assert_error(&s.get("/v1/nothing-here"), 404, "NOT_FOUND");
    assert_error(&s.request("GET", "/v1/models", &[("Authorization", "")], None), 401, "UNAUTHORIZED");
    assert_error(&s.request("GET", "/v1/machines", &[("Authorization", "Bearer wrong")], None), 401, "UNAUTHORIZED");
}

#[test]
fn another_team_sees_404_everywhere() {
    let s = Server::start();
    let model = create_model(&s, "mine");
    let mid = model["id"].as_str().unwrap().to_string();
    let machine = s.post_json("/v1/machines", &seed_machine()).json()["data"]["id"].as_str().unwrap().to_string();
    let template = s.post_json("/v1/templates", &json!({"name": "t", "machineId": machine})).json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let bob = format!("Bearer {}", second_team_key(&s));
    let as_bob = |method: &str, path: &str, body: Option<Value>| {
        s.request(
            method,
            path,
            &[("Authorization", &bob), ("Content-Type", "application/json")],
            body.map(|b| b.to_string().into_bytes()),
        )
    };
    for (method, path, body) in [
        ("GET", format!("/v1/models/{mid}"), None),
        ("DELETE", format!("/v1/models/{mid}"), None),
        ("GET", format!("/v1/templates/{template}"), None),
        ("GET", format!("/v1/custom-templates/{template}"), None),
        ("GET", format!("/v1/machines/{machine}"), None),
        ("PUT", format!("/v1/machines/{machine}"), Some(json!({"name": "stolen"}))),
        ("PATCH", format!("/v1/machines/{machine}/stop"), None),
        ("PATCH", format!("/v1/machines/{machine}/start"), None),
        ("PATCH", format!("/v1/machines/{machine}/restart"), None),
        ("GET", format!("/v1/machines/{machine}/events"), None),
        ("DELETE", format!("/v1/machines/{machine}"), None),
    ] {
        assert_error(&as_bob(method, &path, body), 404, "NOT_FOUND");
    }
    for path in ["/v1/models", "/v1/machines", "/v1/templates", "/v1/custom-templates"] {
        assert_eq!(as_bob("GET", path, None).json()["items"], json!([]), "{path}");
    }
    // Another team's template cannot be used to create a machine.
    assert_invalid(&as_bob("POST", "/v1/machines", Some(seed_machine().tap("templateId", json!(template)))), "templateId");
    // Bob's own model is his team's.
    let b = as_bob("POST", "/v1/models", Some(json!({"name": "bobs"}))).json();
    assert_ne!(b["teamId"], model["teamId"]);
    assert_error(&s.get(&format!("/v1/models/{}", b["id"].as_str().unwrap())), 404, "NOT_FOUND");
    // Everything of the first team is still there.
    assert_eq!(s.get(&format!("/v1/models/{mid}")).status, 200);
    assert_eq!(s.get(&format!("/v1/machines/{machine}")).json()["name"], "test machine");
}

#[test]
fn cli_machines_and_templates() {
    let s = Server::start();
    let created: Value = serde_json::from_str(&cli_ok(
        &s,
        &["--json", "machines", "create", "--name", "cli box", "--machine-type", "A4000", "--template", "t0nspur5"],
    ))
    .unwrap();
    let id = created["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(created["event"]["name"], "create");
    // Offline, the change completes before the command returns; the server
    // sees the same record.
    assert_eq!(created["data"]["state"], "ready");
    assert_eq!(s.get(&format!("/v1/machines/{id}")).json()["state"], "ready");
    assert!(cli_ok(&s, &["machines", "list"]).contains(&id));
    let stopped: Value = serde_json::from_str(&cli_ok(&s, &["--json", "machines", "stop", &id])).unwrap();
    assert_eq!(stopped["data"]["state"], "off");
    let out = s.cli(&["machines", "stop", &id]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("off"));
    let started: Value = serde_json::from_str(&cli_ok(&s, &["--json", "machines", "start", &id])).unwrap();
    assert_eq!(started["data"]["state"], "ready");
    let shown: Value = serde_json::from_str(&cli_ok(&s, &["--json", "machines", "show", &id])).unwrap();
    assert_eq!(shown["events"].as_array().unwrap().len(), 3);

    let t: Value =
        serde_json::from_str(&cli_ok(&s, &["--json", "templates", "create", "--name", "golden", "--machine", &id])).unwrap();
    let tid = t["id"].as_str().unwrap();
    assert_eq!(s.get("/v1/templates").json()["items"][0]["id"], tid);
    assert!(cli_ok(&s, &["templates", "list", "--public"]).contains("tz0ireoj"));
    assert!(cli_ok(&s, &["templates", "list"]).contains(tid));

    // A machine the server created is seen by the CLI, and the other way round.
    let r = s.post_json("/v1/machines", &seed_machine()).json();
    let sid = r["data"]["id"].as_str().unwrap().to_string();
    wait_state(&s, &sid, "ready");
    cli_ok(&s, &["machines", "delete", &sid]);
    assert_eq!(s.get(&format!("/v1/machines/{sid}")).status, 404);

    // --server is covered by tests/cli_server.rs; an unreachable one fails.
    let out = s.cli(&["--server", "http://127.0.0.1:1", "machines", "list"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach"));
}

/// The offline CLI carries out its own machine's state changes at once, and
/// leaves a running server's emulated delays alone.
#[test]
fn the_offline_cli_does_not_run_the_servers_machine_jobs() {
    let s = Server::start_with(&["--machine-delay-ms", "600000"]);
    let served = s.post_json("/v1/machines", &seed_machine());
    assert_eq!(served.status, 200);
    let served_id = served.json()["data"]["id"].as_str().unwrap().to_string();
    let out = s.cli(&[
        "--json", "machines", "create", "--name", "offline", "--machine-type", "P4000", "--template", "tz0ireoj",
        "--disk-size", "50", "--region", "East Coast (NY2)",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let offline: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(offline["data"]["state"], "ready");
    // Ten minutes of emulated provisioning are still ahead of the server's machine.
    assert_eq!(s.get(&format!("/v1/machines/{served_id}")).json()["state"], "provisioning");
}
