//! Webhooks (issue 24): a team admin's webhook receives the team's events
//! as signed JSON POSTs, retried when the receiver fails, logged per
//! attempt; a receiver that does not answer delays no upload. The receiver
//! here is a small HTTP server of the test's own on a loopback port, which
//! records each request and answers as the test scripts it.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::Duration;

use common::{as_user, ok, user_key, Part, Server};
use hmac::{KeyInit, Mac};
use serde_json::{json, Value};

const HOOKS: &str = "/api/modelreg/v1/webhooks";
const SECRET: &str = "s3cret-for-tests";

/// What the receiver does with a request.
#[derive(Clone)]
enum Answer {
    Status(u16),
    /// Holds the request, unanswered, until the test sends on the channel.
    Hold(std::sync::Arc<std::sync::Mutex<Receiver<()>>>),
}

struct Received {
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A receiver on 127.0.0.1: answers each request with the next scripted
/// answer (the last one repeats) and hands what it got to `requests`.
struct Receiver_ {
    url: String,
    requests: Receiver<Received>,
}

fn receiver(script: Vec<Answer>) -> Receiver_ {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (sent, requests): (Sender<Received>, _) = channel();
    std::thread::spawn(move || {
        let mut n = 0;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let answer = script[n.min(script.len() - 1)].clone();
            n += 1;
            let sent = sent.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut headers = HashMap::new();
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                loop {
                    line.clear();
                    reader.read_line(&mut line).unwrap();
                    if line.trim().is_empty() {
                        break;
                    }
                    let (k, v) = line.split_once(':').unwrap();
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                }
                let len: usize = headers.get("content-length").map_or(0, |l| l.parse().unwrap());
                let mut body = vec![0; len];
                reader.read_exact(&mut body).unwrap();
                let _ = sent.send(Received { headers, body });
                let status = match answer {
                    Answer::Status(status) => status,
                    Answer::Hold(release) => {
                        let _ = release.lock().unwrap().recv();
                        200
                    }
                };
                let _ = write!(stream, "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            });
        }
    });
    Receiver_ { url, requests }
}

impl Receiver_ {
    fn next(&self) -> Received {
        self.requests.recv_timeout(Duration::from_secs(30)).expect("no delivery arrived within 30 s")
    }
}

fn expected_signature(body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    format!("sha256={}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn create_hook(s: &Server, url: &str, events: &[&str]) -> String {
    let created = ok(&s.post_json(HOOKS, &json!({"url": url, "secret": SECRET, "events": events})), 201);
    assert!(created.get("secret").is_none(), "the secret is never shown: {created}");
    created["id"].as_str().unwrap().to_string()
}

fn new_model(s: &Server, name: &str) -> String {
    ok(&s.post_json("/api/v1/models", &json!({"name": name, "framework": "pytorch"})), 201)["id"].as_str().unwrap().to_string()
}

fn upload(s: &Server, model: &str, bytes: &[u8]) -> Value {
    let reply = s.post_multipart(&format!("/api/v1/models/{model}/versions/upload"), &[Part::File { name: "file", filename: "model.pt", bytes }]);
    ok(&reply, 201)
}

/// A server whose retries come quickly, so that a test sees them.
fn server() -> Server {
    Server::start_with(&["--webhook-first-retry", "200ms", "--webhook-timeout", "3s"])
}

#[test]
fn a_new_version_is_delivered_signed_with_the_event_and_its_subject() {
    let s = server();
    let hook = receiver(vec![Answer::Status(204)]);
    create_hook(&s, &hook.url, &["version.created", "alias.moved"]);
    let model = new_model(&s, "hooked");
    upload(&s, &model, b"weights v1");

    let got = hook.next();
    assert_eq!(got.headers["x-modelreg-signature"], expected_signature(&got.body), "the signature is the HMAC of the raw body");
    assert_eq!(got.headers["x-modelreg-event"], "version.created");
    assert_eq!(got.headers["content-type"], "application/json");
    let event = got.json();
    assert_eq!(got.headers["x-modelreg-event-id"], event["id"].as_str().unwrap());
    assert_eq!(event["event"], "version.created");
    assert_eq!(event["model"], json!({"id": model, "name": "hooked"}));
    assert_eq!(event["version"]["number"], 1);
    // Nothing secret travels: not the webhook's secret, not an API key.
    let text = String::from_utf8_lossy(&got.body);
    assert!(!text.contains(SECRET) && !text.contains(s.key.as_str()), "{text}");

    // An alias move arrives too; an event the webhook did not ask for does not.
    ok(&s.send_json("PUT", &format!("/api/modelreg/v1/models/{model}/aliases/champion"), &json!({"version": 1})), 200);
    let moved = hook.next().json();
    assert_eq!((moved["event"].clone(), moved["data"]["alias"].clone()), (json!("alias.moved"), json!("champion")));
    assert_eq!(moved["version"]["number"], 1);
    ok(&s.post_json(&format!("/api/v1/models/{model}/versions/1/deprecate"), &json!({})), 200);
    upload(&s, &model, b"weights v2");
    let next = hook.next().json();
    assert_eq!((next["event"].clone(), next["version"]["number"].clone()), (json!("version.created"), json!(2)), "version.deprecated was not asked for");
}

#[test]
fn a_failing_receiver_is_retried_and_each_attempt_is_logged() {
    let s = server();
    let hook = receiver(vec![Answer::Status(500), Answer::Status(503), Answer::Status(200)]);
    let id = create_hook(&s, &hook.url, &["version.created"]);
    let model = new_model(&s, "retried");
    upload(&s, &model, b"weights");

    let attempts: Vec<Received> = (0..3).map(|_| hook.next()).collect();
    let event_ids: Vec<&String> = attempts.iter().map(|a| &a.headers["x-modelreg-event-id"]).collect();
    assert!(event_ids.iter().all(|e| *e == event_ids[0]), "every attempt carries the same event id: {event_ids:?}");
    assert!(attempts.iter().all(|a| a.body == attempts[0].body), "and the same body");

    // The log: one delivery, three attempts, the last one delivered. The
    // runner records the last attempt just after the receiver answered it.
    let log = common::datarobot::poll("the delivery to be recorded as delivered", Duration::from_secs(30), || {
        let log = ok(&s.get(&format!("{HOOKS}/{id}/deliveries")), 200);
        if log[0]["state"] == "delivered" { Ok(log) } else { Err(log.to_string()) }
    });
    assert_eq!(log.as_array().unwrap().len(), 1, "{log}");
    let statuses: Vec<Value> = log[0]["attempts"].as_array().unwrap().iter().map(|a| a["status"].clone()).collect();
    assert_eq!(statuses, [json!(500), json!(503), json!(200)]);
    assert!(log[0]["attempts"].as_array().unwrap().iter().all(|a| a["latency_ms"].is_i64()));
    assert_eq!(log[0]["event_id"].as_str(), Some(event_ids[0].as_str()));
}

#[test]
fn a_receiver_that_refuses_is_not_retried() {
    let s = server();
    let hook = receiver(vec![Answer::Status(401)]);
    let id = create_hook(&s, &hook.url, &["model.deleted"]);
    let model = new_model(&s, "doomed");
    ok(&s.delete(&format!("/api/v1/models/{model}")), 200);
    let got = hook.next().json();
    assert_eq!((got["event"].clone(), got["model"]["name"].clone()), (json!("model.deleted"), json!("doomed")));
    let log = common::datarobot::poll("the delivery to fail", Duration::from_secs(30), || {
        let log = ok(&s.get(&format!("{HOOKS}/{id}/deliveries")), 200);
        if log[0]["state"] == "failed" { Ok(log) } else { Err(log.to_string()) }
    });
    assert_eq!(log[0]["attempts"].as_array().unwrap().len(), 1, "a 401 is the receiver's answer, not a failure to reach it: {log}");
}

#[test]
fn a_receiver_that_never_answers_delays_no_upload() {
    let s = server();
    let (release, held) = channel();
    let hold = Answer::Hold(std::sync::Arc::new(std::sync::Mutex::new(held)));
    let hook = receiver(vec![hold]);
    create_hook(&s, &hook.url, &["version.created"]);
    let model = new_model(&s, "busy");
    upload(&s, &model, b"first");
    // The receiver now holds the first delivery, unanswered.
    hook.next();
    // Uploads go on while it does: each returns although no delivery has been answered.
    for n in 2..=4 {
        let started = std::time::Instant::now();
        assert_eq!(upload(&s, &model, format!("version {n}").as_bytes())["version"], n);
        eprintln!("upload {n} took {:?} while the receiver held a delivery", started.elapsed());
    }
    release.send(()).unwrap();
}

#[test]
fn only_team_admins_manage_webhooks_and_only_their_teams_events_are_sent() {
    let s = server();
    let ours = receiver(vec![Answer::Status(200)]);
    let id = create_hook(&s, &ours.url, &["version.created"]);

    // A member may not create, list, read or delete webhooks.
    let bob = user_key(&s, "bob", None);
    let created = as_user(&s, &bob, "POST", HOOKS, Some(&json!({"url": ours.url, "secret": SECRET, "events": ["version.created"]})));
    assert_eq!(created.status, 403, "{}", created.text());
    assert_eq!(as_user(&s, &bob, "GET", HOOKS, None).status, 403);
    assert_eq!(as_user(&s, &bob, "DELETE", &format!("{HOOKS}/{id}"), None).status, 403);

    // Another team's admin sees none of ours, and their events do not reach us.
    assert!(s.cli(&["teams", "add", "others"]).status.success());
    assert!(s.cli(&["users", "add", "olga", "--team", "others", "--admin"]).status.success());
    let theirs = s.cli(&["--json", "keys", "create", "--user", "olga"]);
    let olga: Value = serde_json::from_slice(&theirs.stdout).unwrap();
    let olga = olga["secret"].as_str().unwrap();
    assert_eq!(ok(&as_user(&s, olga, "GET", HOOKS, None), 200), json!([]));
    assert_eq!(as_user(&s, olga, "GET", &format!("{HOOKS}/{id}/deliveries"), None).status, 404);
    assert_eq!(as_user(&s, olga, "DELETE", &format!("{HOOKS}/{id}"), None).status, 404);
    let their_model = ok(&as_user(&s, olga, "POST", "/api/v1/models", Some(&json!({"name": "theirs"}))), 201);
    let reply = s.request(
        "POST",
        &format!("/api/v1/models/{}/versions/upload", their_model["id"].as_str().unwrap()),
        &[("Authorization", &format!("Token {olga}")), ("Content-Type", "multipart/form-data; boundary=b")],
        Some(b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"m.pt\"\r\n\r\nx\r\n--b--\r\n".to_vec()),
    );
    assert_eq!(reply.status, 201, "{}", reply.text());
    // Our own next event is the first our receiver gets.
    let model = new_model(&s, "ours");
    upload(&s, &model, b"ours");
    assert_eq!(ours.next().json()["model"]["name"], "ours");

    // Bad webhooks are 400s naming the field.
    for (body, field) in [
        (json!({"url": "ftp://x", "secret": SECRET, "events": ["version.created"]}), "url"),
        (json!({"url": ours.url, "secret": "short", "events": ["version.created"]}), "secret"),
        (json!({"url": ours.url, "secret": SECRET, "events": []}), "events"),
        (json!({"url": ours.url, "secret": SECRET, "events": ["version.made"]}), "events"),
        (json!({"url": ours.url, "events": ["version.created"]}), "secret"),
    ] {
        let reply = s.post_json(HOOKS, &body);
        assert_eq!(reply.status, 400, "{body}: {}", reply.text());
        assert!(reply.text().contains(field), "{body}: {}", reply.text());
    }
    // Deleting it stops deliveries and removes its log.
    assert_eq!(s.delete(&format!("{HOOKS}/{id}")).status, 204);
    assert_eq!(s.get(&format!("{HOOKS}/{id}/deliveries")).status, 404);
    assert_eq!(ok(&s.get(HOOKS), 200), json!([]));
}

#[test]
fn the_cli_creates_lists_and_deletes_webhooks() {
    let s = server();
    let hook = receiver(vec![Answer::Status(200)]);
    for remote in [false, true] {
        let run = |args: &[&str]| {
            let out = if remote { s.cli_remote(args) } else { s.cli(args) };
            assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap()
        };
        let created: Value =
            serde_json::from_str(&run(&["--json", "webhooks", "create", &hook.url, "--secret", SECRET, "--event", "version.created"])).unwrap();
        let id = created["id"].as_str().unwrap();
        assert!(run(&["webhooks", "list"]).contains(id));
        let model = new_model(&s, &format!("cli-{remote}"));
        upload(&s, &model, b"x");
        hook.next();
        let log = common::datarobot::poll("the delivery to be logged", Duration::from_secs(30), || {
            let text = run(&["webhooks", "deliveries", id]);
            if text.contains("delivered") { Ok(text) } else { Err(text) }
        });
        assert!(log.contains("version.created") && log.contains("200"), "{log}");
        run(&["webhooks", "delete", id]);
        assert!(!run(&["webhooks", "list"]).contains(id));
    }
}

#[test]
fn a_dead_receiver_holds_back_only_its_own_deliveries_which_arrive_in_order() {
    // Attempts may take 60 s here, so a held delivery stays held for the whole test.
    let s = Server::start_with(&["--webhook-first-retry", "200ms", "--webhook-timeout", "60s"]);
    let (release, held) = channel();
    let slow = receiver(vec![Answer::Hold(std::sync::Arc::new(std::sync::Mutex::new(held))), Answer::Status(200)]);
    create_hook(&s, &slow.url, &["version.created"]);
    let model = new_model(&s, "many-versions");
    for n in 1..=10 {
        upload(&s, &model, format!("version {n}").as_bytes());
    }
    let first = slow.next();
    assert_eq!(first.json()["version"]["number"], 1);

    // Another team's receiver gets its event while the first one still holds
    // version 1 and nine more wait behind it: the held receiver ties up one
    // sender, not the lane.
    assert!(s.cli(&["teams", "add", "others"]).status.success());
    assert!(s.cli(&["users", "add", "olga", "--team", "others", "--admin"]).status.success());
    let key: Value = serde_json::from_slice(&s.cli(&["--json", "keys", "create", "--user", "olga"]).stdout).unwrap();
    let olga = key["secret"].as_str().unwrap();
    let fast = receiver(vec![Answer::Status(200)]);
    let hook = as_user(&s, olga, "POST", HOOKS, Some(&json!({"url": fast.url, "secret": SECRET, "events": ["model.deleted"]})));
    ok(&hook, 201);
    let theirs = ok(&as_user(&s, olga, "POST", "/api/v1/models", Some(&json!({"name": "theirs"}))), 201);
    ok(&as_user(&s, olga, "DELETE", &format!("/api/v1/models/{}", theirs["id"].as_str().unwrap()), None), 200);
    let got = fast.requests.recv_timeout(Duration::from_secs(10)).expect("the other team's delivery waited behind the held one");
    assert_eq!(got.json()["model"]["name"], "theirs");
    assert!(slow.requests.try_recv().is_err(), "one delivery at a time per receiver");

    // Once it answers, the rest arrive, in the order the versions were made.
    release.send(()).unwrap();
    let numbers: Vec<i64> = (2..=10).map(|_| slow.next().json()["version"]["number"].as_i64().unwrap()).collect();
    assert_eq!(numbers, (2..=10).collect::<Vec<_>>());
}

#[test]
fn a_team_sends_two_webhooks_at_a_time_so_its_dead_receivers_leave_the_lane_to_others() {
    let s = Server::start_with(&["--webhook-first-retry", "200ms", "--webhook-timeout", "60s"]);
    let (release, held) = channel();
    let held = std::sync::Arc::new(std::sync::Mutex::new(held));
    let dead: Vec<Receiver_> = (0..3).map(|_| receiver(vec![Answer::Hold(held.clone()), Answer::Status(200)])).collect();
    for hook in &dead {
        create_hook(&s, &hook.url, &["version.created"]);
    }
    let model = new_model(&s, "three-hooks");
    upload(&s, &model, b"one event, three webhooks");
    // Two of the three receivers get the event and hold it.
    let mut got = [false; 3];
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while got.iter().filter(|g| **g).count() < 2 {
        assert!(std::time::Instant::now() < deadline, "two deliveries did not start");
        for (i, hook) in dead.iter().enumerate() {
            if !got[i] && hook.requests.recv_timeout(Duration::from_millis(50)).is_ok() {
                got[i] = true;
            }
        }
    }
    // Another team's event goes out meanwhile, and the third webhook of the
    // first team is still waiting for its team's turn.
    assert!(s.cli(&["teams", "add", "others"]).status.success());
    assert!(s.cli(&["users", "add", "olga", "--team", "others", "--admin"]).status.success());
    let key: Value = serde_json::from_slice(&s.cli(&["--json", "keys", "create", "--user", "olga"]).stdout).unwrap();
    let olga = key["secret"].as_str().unwrap();
    let fast = receiver(vec![Answer::Status(200)]);
    ok(&as_user(&s, olga, "POST", HOOKS, Some(&json!({"url": fast.url, "secret": SECRET, "events": ["model.deleted"]}))), 201);
    let theirs = ok(&as_user(&s, olga, "POST", "/api/v1/models", Some(&json!({"name": "theirs"}))), 201);
    ok(&as_user(&s, olga, "DELETE", &format!("/api/v1/models/{}", theirs["id"].as_str().unwrap()), None), 200);
    fast.requests.recv_timeout(Duration::from_secs(10)).expect("the other team's delivery waited");
    let third = got.iter().position(|g| !g).unwrap();
    assert!(dead[third].requests.try_recv().is_err(), "a third webhook of one team was sent while two held theirs");

    // Once the two answer, the third gets its turn.
    release.send(()).unwrap();
    release.send(()).unwrap();
    dead[third].next();
    release.send(()).unwrap();
}

#[test]
fn a_server_killed_while_sending_loses_no_delivery() {
    let args = ["--webhook-first-retry", "200ms", "--webhook-timeout", "2s"];
    let s = Server::start_with(&args);
    let (release, held) = channel();
    let hook = receiver(vec![Answer::Hold(std::sync::Arc::new(std::sync::Mutex::new(held))), Answer::Status(200)]);
    create_hook(&s, &hook.url, &["version.created"]);
    let model = new_model(&s, "interrupted");
    for n in 1..=3 {
        upload(&s, &model, format!("version {n}").as_bytes());
    }
    let first = hook.next();
    // kill -9 while the first delivery is on the wire and two wait behind it.
    let data = s.kill();
    let s = Server::start_in(data, &args);
    // The restarted server sends the interrupted one again, then the rest, in order.
    let again = hook.next();
    assert_eq!(again.headers["x-modelreg-event-id"], first.headers["x-modelreg-event-id"]);
    let rest: Vec<i64> = (0..2).map(|_| hook.next().json()["version"]["number"].as_i64().unwrap()).collect();
    assert_eq!((again.json()["version"]["number"].as_i64(), rest), (Some(1), vec![2, 3]));
    drop(s);
    release.send(()).unwrap();
}
