//! modelreg as a cluster (issue 23): two `serve --no-jobs` on one
//! PostgreSQL database and one S3 bucket (Garage), behind a real nginx that
//! balances round-robin between them, and `modelreg worker` processes that
//! run the jobs. Everything is a real process on loopback, started here
//! (tests/common/cluster.rs), and the failures are real too: a server or a
//! worker killed with SIGKILL mid-work, PostgreSQL stopped under traffic.
//!
//! Asynchronous outcomes are polled with generous deadlines; the deadlines
//! only turn a hang into a failure, and no verdict depends on a time.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::cluster::{owner_pid, Cluster, TAG_HEADER};
use common::converters_python;
use common::datarobot::{self, poll};
use common::postgres::{self, Postgres};
use common::{multipart_body, pseudo_random, sha256_hex, Part, Reply};
use serde_json::{json, Value};

/// The first column of each row of `sql` in the cluster's database.
fn psql(cluster: &Cluster, sql: &str) -> String {
    postgres::shared().expect("the shared PostgreSQL").try_psql(&cluster.database, sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// How many access log lines of a server or nginx name `needle`.
fn count_lines(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

// ----------------------------------------------------------------------------
// 1. The three clients through nginx.

/// tests/python/test_cross_dialect.py (the official `datarobot` client, the
/// Octomil SDK and Paperspace seed calls, each writing and reading the
/// others' models) passes against the nginx address of two servers that
/// share their records, with a worker building the environment it waits
/// for; both servers answered part of it.
#[test]
fn the_three_clients_work_through_nginx_on_two_servers() {
    let Some(python) = common::client_python_or_skip() else { return };
    let Some((_, database)) = postgres::fresh_database() else { return };
    let Some(mut cluster) = Cluster::start(&database, &[]) else { return };
    // The servers run no jobs: the environment build the DataRobot client
    // waits for is the worker's.
    cluster.start_worker(&["--job-lease", "3s"]);
    // The offline CLI on the first server's data directory writes into the
    // same database.
    common::run_every_client(&python, cluster.server(0), &cluster.url(), &cluster.key, &|| cluster.logs());
    // Both servers answered: each one's access log has requests of the
    // script (every one of its calls carries the admin key), and nginx
    // logged each as an upstream.
    let nginx = cluster.nginx_log();
    for n in 0..2 {
        let log = cluster.server_log(n);
        let answered = log.lines().filter(|l| l.contains(" rid=") && (l.contains("\"GET /api/") || l.contains("\"POST /api/"))).count();
        assert!(answered > 0, "server {n} answered no request of the script:\n{log}");
        let addr = &cluster.server_addrs[n];
        assert!(count_lines(&nginx, &format!("upstream={addr}")) > 0, "nginx sent nothing to server {n} ({addr}):\n{nginx}");
    }
    assert_eq!(cluster.answers_500(), Vec::<String>::new(), "{}", cluster.logs());
}

// ----------------------------------------------------------------------------
// 2. Concurrent uploads, a server killed under them.

const UPLOADERS: usize = 8;
const UPLOADS_EACH: usize = 10;
/// Acknowledged uploads before the kill: a quarter of the traffic.
const KILL_AFTER: usize = UPLOADERS * UPLOADS_EACH / 4;

/// What became of one upload.
#[derive(Debug)]
enum Outcome {
    /// 201, with the version number it was given.
    Acknowledged { number: i64, acked_after_kill: bool },
    /// Another status, with its body.
    Status(u16, String),
    /// No answer (the connection failed under it).
    Transport(String),
}

/// The bytes upload `(thread, n)` sends: some under the 64 KiB that are
/// kept in the database, most above (one PUT to the bucket), and one in
/// seven over 16 MiB (a multipart upload to the bucket, then a copy).
fn upload_bytes(thread: usize, n: usize) -> Vec<u8> {
    let seed = (thread * 1000 + n) as u64 + 1;
    let len = if (thread + n) % 7 == 3 { 17 * 1024 * 1024 + seed as usize } else { 1024 + (seed as usize * 7919) % (256 * 1024) };
    pseudo_random(seed, len)
}

/// Eight clients upload versions of one Octomil model through nginx while
/// one of the two servers is killed with SIGKILL: every upload answered 201
/// is listed, under the number it was given, and downloads byte for byte;
/// the numbers run 1..n without a gap or a repeat; an upload not answered
/// 201 was cut off by the kill (nginx's 502 for a request it had sent to
/// the killed server, or a broken connection), never a 500.
#[test]
fn concurrent_uploads_survive_a_server_killed_mid_traffic() {
    let Some((_, database)) = postgres::fresh_database() else { return };
    let Some(mut cluster) = Cluster::start(&database, &[]) else { return };
    let model = cluster.post_json("/api/v1/models", &json!({"name": "many-hands", "framework": "pytorch"}));
    assert_eq!(model.status, 201, "{}", model.text());
    let model = model.json()["id"].as_str().unwrap().to_string();

    let (client, path) = (cluster.client(), format!("/api/v1/models/{model}/versions/upload"));
    let acked = Arc::new(AtomicUsize::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let outcomes: Arc<Mutex<BTreeMap<String, Outcome>>> = Arc::new(Mutex::new(BTreeMap::new()));
    let threads: Vec<_> = (0..UPLOADERS)
        .map(|t| {
            let (client, path, acked, killed, outcomes) = (client.clone(), path.clone(), acked.clone(), killed.clone(), outcomes.clone());
            std::thread::spawn(move || {
                for n in 0..UPLOADS_EACH {
                    let tag = format!("t{t}-{n}");
                    let bytes = upload_bytes(t, n);
                    let filename = format!("{tag}.pt");
                    let (content_type, body) = multipart_body(&[Part::File { name: "file", filename: &filename, bytes: &bytes }]);
                    let outcome = match client.try_request("POST", &path, &[("Content-Type", &content_type), (TAG_HEADER, &tag)], Some(body)) {
                        Ok(reply) if reply.status == 201 => {
                            let after = killed.load(Ordering::SeqCst);
                            let number = reply.json()["version"].as_i64().unwrap_or_else(|| panic!("no version number: {}", reply.text()));
                            acked.fetch_add(1, Ordering::SeqCst);
                            Outcome::Acknowledged { number, acked_after_kill: after }
                        }
                        Ok(reply) => Outcome::Status(reply.status, reply.text()),
                        Err(e) => Outcome::Transport(e),
                    };
                    outcomes.lock().unwrap().insert(tag, outcome);
                }
            })
        })
        .collect();

    // Part way through, the first server dies.
    poll("a quarter of the uploads to be acknowledged", Duration::from_secs(120), || {
        let n = acked.load(Ordering::SeqCst);
        if n >= KILL_AFTER {
            Ok(())
        } else {
            Err(format!("{n} acknowledged"))
        }
    });
    cluster.kill_server(0);
    killed.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().expect("an uploader panicked");
    }
    let outcomes = Arc::try_unwrap(outcomes).unwrap().into_inner().unwrap();
    let nginx = cluster.nginx_log();
    let killed_addr = &cluster.server_addrs[0];

    // Nothing but 201 and what the kill explains.
    let mut by_number: BTreeMap<i64, String> = BTreeMap::new();
    for (tag, outcome) in &outcomes {
        match outcome {
            Outcome::Acknowledged { number, .. } => {
                if let Some(other) = by_number.insert(*number, tag.clone()) {
                    panic!("version {number} was acknowledged to both {other} and {tag}");
                }
            }
            Outcome::Status(status, body) => {
                assert_eq!(*status, 502, "upload {tag} answered {status} (only a 502 for the killed server is allowed): {body}\n{}", cluster.logs());
                let line = nginx.lines().find(|l| l.ends_with(&format!("tag={tag}"))).unwrap_or_else(|| panic!("nginx did not log {tag}:\n{nginx}"));
                assert!(line.contains(&format!("upstream={killed_addr}")), "upload {tag} got a 502 from a server that was not killed: {line}");
                eprintln!("upload {tag} answered 502 by nginx: {line}");
            }
            Outcome::Transport(e) => eprintln!("upload {tag} was cut off: {e}"),
        }
    }
    let after_kill = outcomes.values().filter(|o| matches!(o, Outcome::Acknowledged { acked_after_kill: true, .. })).count();
    assert!(after_kill > 0, "no upload was acknowledged after the kill: {outcomes:?}\n{}", cluster.logs());
    assert!(count_lines(&nginx, &format!("upstream={killed_addr}")) > 0, "the killed server had taken no request:\n{nginx}");

    // Every acknowledged version is listed under its number; the numbers
    // have neither gaps nor repeats (a version whose 201 was lost with the
    // server may be listed too).
    let mut listed: BTreeMap<i64, Value> = BTreeMap::new();
    let mut offset = 0;
    loop {
        let page = cluster.get(&format!("/api/v1/models/{model}/versions?limit=100&offset={offset}"));
        assert_eq!(page.status, 200, "{}", page.text());
        let page = page.json();
        let versions = page["versions"].as_array().unwrap().clone();
        if versions.is_empty() {
            break;
        }
        offset += versions.len();
        for v in versions {
            let number = v["version"].as_i64().unwrap();
            assert!(listed.insert(number, v.clone()).is_none(), "version {number} is listed twice");
        }
    }
    let numbers: Vec<i64> = listed.keys().copied().collect();
    assert_eq!(numbers, (1..=listed.len() as i64).collect::<Vec<_>>(), "the version numbers have a gap");
    for (number, tag) in &by_number {
        assert!(listed.contains_key(number), "acknowledged version {number} ({tag}) is not listed");
        let (t, n) = tag[1..].split_once('-').map(|(t, n)| (t.parse().unwrap(), n.parse().unwrap())).unwrap();
        let bytes = upload_bytes(t, n);
        assert_eq!(listed[number]["model_hash"], format!("sha256:{}", sha256_hex(&bytes)), "version {number} ({tag}) lists other bytes");
        let download = cluster.get(&format!("/api/v1/models/{model}/versions/{number}/download"));
        assert_eq!(download.status, 200, "{}", download.text());
        assert!(download.body == bytes, "version {number} ({tag}) downloads other bytes ({} of {})", download.body.len(), bytes.len());
    }
    assert_eq!(cluster.answers_500(), Vec::<String>::new(), "{}", cluster.logs());
    let lost = outcomes.len() - by_number.len();
    eprintln!("{} of {} uploads acknowledged ({after_kill} after the kill), {lost} cut off; {} versions listed", by_number.len(), outcomes.len(), listed.len());
}

// ----------------------------------------------------------------------------
// 3. Jobs across workers.

/// A job's state and the pid of the runner that holds (or last held) it,
/// read from the database: which process ran a job shows nowhere else.
fn job_row(cluster: &Cluster, kind: &str) -> Option<(String, String, Option<u32>)> {
    let row = psql(cluster, &format!("SELECT id || '|' || state || '|' || COALESCE(lease_owner, '') FROM jobs WHERE kind = '{kind}' ORDER BY created_at DESC LIMIT 1"));
    let mut parts = row.splitn(3, '|');
    let (id, state, owner) = (parts.next()?, parts.next()?, parts.next()?);
    (!id.is_empty()).then(|| (id.to_string(), state.to_string(), owner_pid(owner)))
}

/// The processes (but this one) whose command line mentions `needle`, as
/// (pid, command line); zombies are gone already.
fn processes_mentioning(needle: &str) -> Vec<(u32, String)> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            if stat.rsplit_once(')')?.1.split_whitespace().next() == Some("Z") {
                return None;
            }
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline.contains(needle).then_some((pid, cmdline))
        })
        .collect()
}

/// A sklearn pipeline pickle made by the converters runtime.
fn sklearn_pickle(python: &Path, dir: &Path) -> Vec<u8> {
    let code = "import pickle, sys, numpy as np\n\
                from sklearn.linear_model import LogisticRegression\n\
                X = np.random.default_rng(7).normal(size=(200, 4))\n\
                pickle.dump(LogisticRegression().fit(X, (X[:, 0] > 0).astype(int)), open(sys.argv[1], 'wb'))\n";
    let path = dir.join("model.pkl");
    let out = Command::new(python).args(["-c", code]).arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::read(path).unwrap()
}

/// Worker A takes a custom model test (a model that loads for seconds) and
/// is killed with SIGKILL while it runs it; its model server dies with it.
/// Worker B, started next, queues the job again at once (A's process is
/// gone, though its lease has not run out) and runs it to `succeeded`,
/// recorded under B's lease. Then an Octomil format conversion asked for through
/// nginx is made by a worker (the servers run none) and downloads.
#[test]
fn a_job_of_a_killed_worker_is_finished_by_another() {
    // As tests/compute.rs: DRUM is installed on first use, never skipped.
    let drum = common::drum_python();
    let converters = converters_python();
    let Some((_, database)) = postgres::fresh_database() else { return };
    // The servers have no runtime of their own (--python names none): with
    // --no-jobs they take conversion requests for the workers to run.
    let Some(mut cluster) = Cluster::start(&database, &["--python", "/nonexistent/python"]) else { return };
    // A's lease is the default 30 s, longer than the rest of the test
    // takes: the job can only come back to the queue at once because A's
    // process is known to be gone on this host.
    let a = cluster.start_worker(&["--python", drum.to_str().unwrap(), "--compute-slots", "1"]);
    let a_pid = cluster.worker(a).pid();

    // The environment build and the dataset ingest are A's too.
    let server = cluster.server(0);
    let setup = datarobot::regression_setup(server, "slow_start");
    let started = datarobot::start_test(server, &datarobot::test_body(&setup, &setup.version, json!({})));
    let (job, ..) = poll("worker A to take the test", Duration::from_secs(120), || match job_row(&cluster, "custom-model-test") {
        Some((id, state, Some(pid))) if state == "running" && pid == a_pid => Ok((id, state)),
        Some((_, state, _)) if state != "queued" && state != "running" => panic!("the test's job ended on A before it was killed: {state}\n{}", cluster.logs()),
        other => Err(format!("{other:?}")),
    });
    assert_eq!(datarobot::get_test(server, &started.id)["overallStatus"], "in_progress");
    // A's model server is up (it loads the model for seconds).
    let a_jobs = format!("{}/", cluster.worker(a).data.path().join("jobs").display());
    let a_children = poll("worker A's model server to start", Duration::from_secs(120), || {
        let found = processes_mentioning(&a_jobs);
        if found.iter().any(|(_, cmdline)| cmdline.contains("drum")) {
            Ok(found)
        } else {
            Err(format!("{found:?}"))
        }
    });
    cluster.kill_worker(a);
    // Killed mid-run: the row still says A runs it.
    let (_, state, owner) = job_row(&cluster, "custom-model-test").unwrap();
    assert_eq!((state.as_str(), owner), ("running", Some(a_pid)), "the job was not A's when A died");
    // A's model server died with it.
    poll("worker A's processes to die with it", Duration::from_secs(30), || {
        let left = processes_mentioning(&a_jobs);
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("still running: {left:?} (of {a_children:?})"))
        }
    });

    let b = cluster.start_worker(&["--python", converters.to_str().unwrap(), "--job-lease", "3s", "--compute-slots", "1"]);
    let b_pid = cluster.worker(b).pid();
    let server = cluster.server(0);
    datarobot::wait_status_303(server, &started);
    let test = datarobot::get_test(server, &started.id);
    assert_eq!(test["overallStatus"], "succeeded", "{test}\n--- test log\n{}\n{}", datarobot::test_log(server, &started.id), cluster.logs());
    let (id, state, owner) = job_row(&cluster, "custom-model-test").unwrap();
    assert_eq!(id, job, "another job ran the test");
    assert_eq!((state.as_str(), owner), ("succeeded", Some(b_pid)), "the test's job did not end on worker B (pid {b_pid})");
    // B queued it again as it started, before it claimed anything: A's
    // lease had not run out, but A's process was gone.
    let log = cluster.worker(b).log();
    let requeued = log.find("1 job(s) whose runner is gone queued again");
    let claiming = log.find("worker running jobs");
    assert!(requeued.is_some() && requeued < claiming, "B did not queue A's job again as it started:\n{log}");

    // A format conversion, asked for through nginx, made by the worker.
    let work = tempfile::tempdir().unwrap();
    let pickle = sklearn_pickle(&converters, work.path());
    let model = cluster.post_json("/api/v1/models", &json!({"name": "churn", "framework": "sklearn"}));
    assert_eq!(model.status, 201, "{}", model.text());
    let model = model.json()["id"].as_str().unwrap().to_string();
    let (content_type, body) = multipart_body(&[Part::File { name: "file", filename: "model.pkl", bytes: &pickle }]);
    let up = cluster.request("POST", &format!("/api/v1/models/{model}/versions/upload"), &[("Content-Type", &content_type)], Some(body));
    assert_eq!(up.status, 201, "{}", up.text());
    let asked = cluster.request("POST", &format!("/api/v1/models/{model}/versions/1/formats/onnx"), &[], None);
    assert!(matches!(asked.status, 200 | 202), "{} {}", asked.status, asked.text());
    poll("the ONNX conversion", Duration::from_secs(300), || {
        let m = cluster.get(&format!("/api/v1/models/{model}"));
        assert_eq!(m.status, 200, "{}", m.text());
        let conversion = m.json()["versions"][0]["format_conversions"]["onnx"].clone();
        match conversion["state"].as_str() {
            Some("ready") => Ok(()),
            Some("failed") => panic!("the conversion failed: {conversion}\n{}", cluster.logs()),
            _ => Err(conversion.to_string()),
        }
    });
    let onnx = cluster.get(&format!("/api/v1/models/{model}/versions/1/download?format=onnx"));
    assert_eq!(onnx.status, 200, "{}", onnx.text());
    assert_eq!(onnx.header("X-Model-Hash"), Some(sha256_hex(&onnx.body).as_str()));
    assert_ne!(onnx.body, pickle);
    let (_, state, owner) = job_row(&cluster, "format-conversion").unwrap();
    assert_eq!((state.as_str(), owner), ("succeeded", Some(b_pid)), "the conversion's job was not the worker's");
    assert_eq!(cluster.answers_500(), Vec::<String>::new(), "{}", cluster.logs());
}

// ----------------------------------------------------------------------------
// 4. PostgreSQL away and back.

/// What the clients saw, by phase.
#[derive(Default)]
struct Seen {
    ok: usize,
    unavailable: usize,
    /// Anything but 2xx or a 503 with a JSON error body.
    wrong: Vec<String>,
}

/// A few clients list and create Octomil models and upload versions
/// through nginx while PostgreSQL is stopped (a fast shutdown: connections
/// cut mid-use) and started again: every answer is 2xx or a 503 with the
/// dialect's JSON error body, none hangs, and the servers serve (reads,
/// writes, uploads) again without a restart.
#[test]
fn postgres_restarted_mid_traffic_gives_503s_then_recovers() {
    let Some(mut pg) = Postgres::start() else { return };
    let Some(cluster) = Cluster::start(&pg.url(), &[]) else { return };
    let model = cluster.post_json("/api/v1/models", &json!({"name": "uploaded-to", "framework": "pytorch"}));
    assert_eq!(model.status, 201, "{}", model.text());
    let upload_path = format!("/api/v1/models/{}/versions/upload", model.json()["id"].as_str().unwrap());
    const CLIENTS: usize = 4;
    /// A bound on each client's loop, whatever happens to the test.
    const MOST_REQUESTS: usize = 20_000;
    let stop = Arc::new(AtomicBool::new(false));
    // The clients stop when the test ends, passed or not.
    let _stop_clients = StopOnDrop(stop.clone());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|t| {
            let (client, stop, seen, upload_path) = (cluster.client(), stop.clone(), seen.clone(), upload_path.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) && n < MOST_REQUESTS {
                    n += 1;
                    // A read, a small write, and an upload (a blob in the
                    // bucket, then its row), in turn.
                    let reply = match n % 3 {
                        0 => client.try_request("GET", "/api/v1/models?limit=5", &[], None),
                        1 => {
                            let body = json!({"name": format!("c{t}-{n}"), "framework": "pytorch"}).to_string().into_bytes();
                            client.try_request("POST", "/api/v1/models", &[("Content-Type", "application/json")], Some(body))
                        }
                        _ => {
                            let bytes = pseudo_random((t * MOST_REQUESTS + n) as u64, 100 * 1024);
                            let (content_type, body) = multipart_body(&[Part::File { name: "file", filename: "w.pt", bytes: &bytes }]);
                            client.try_request("POST", &upload_path, &[("Content-Type", &content_type)], Some(body))
                        }
                    };
                    let mut seen = seen.lock().unwrap();
                    match reply {
                        Ok(r) if (200..300).contains(&r.status) => seen.ok += 1,
                        Ok(r) if r.status == 503 && is_error_body(&r) => seen.unavailable += 1,
                        Ok(r) => seen.wrong.push(format!("{} {}", r.status, r.text())),
                        Err(e) => seen.wrong.push(format!("no answer: {e}")),
                    }
                }
            })
        })
        .collect();
    let count = |f: fn(&Seen) -> usize| f(&seen.lock().unwrap());
    poll("the clients to get answers", Duration::from_secs(60), || if count(|s| s.ok) >= 20 { Ok(()) } else { Err(format!("{} ok", count(|s| s.ok))) });
    pg.stop();
    let before = count(|s| s.unavailable);
    poll("503s while PostgreSQL is stopped", Duration::from_secs(120), || {
        let n = count(|s| s.unavailable) - before;
        if n >= 20 {
            Ok(())
        } else {
            Err(format!("{n} 503s; wrong answers: {:?}", seen.lock().unwrap().wrong))
        }
    });
    pg.restart();
    // Both servers serve again: twenty successes in a row through nginx,
    // which alternates between them.
    let client = cluster.client();
    let mut in_a_row = 0;
    poll("requests to succeed again after the restart", Duration::from_secs(120), || {
        let r = client.try_request("GET", "/api/v1/models?limit=5", &[], None).map_err(|e| e.to_string())?;
        if (200..300).contains(&r.status) {
            in_a_row += 1;
        } else {
            in_a_row = 0;
        }
        if in_a_row >= 20 {
            Ok(())
        } else {
            Err(format!("{} {}", r.status, r.text()))
        }
    });
    let ok_before_end = count(|s| s.ok);
    poll("the clients to succeed again", Duration::from_secs(60), || {
        if count(|s| s.ok) > ok_before_end + 20 {
            Ok(())
        } else {
            Err(format!("{} ok", count(|s| s.ok)))
        }
    });
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    let seen = seen.lock().unwrap();
    assert!(seen.wrong.is_empty(), "answers other than 2xx or 503 with an error body: {:#?}\n{}", seen.wrong, cluster.logs());
    eprintln!("{} answered 2xx, {} answered 503", seen.ok, seen.unavailable);
    // A model created after the restart is read back through both servers.
    let made = cluster.post_json("/api/v1/models", &json!({"name": "after-the-restart", "framework": "pytorch"}));
    assert_eq!(made.status, 201, "{}", made.text());
    let id = made.json()["id"].as_str().unwrap().to_string();
    for _ in 0..2 {
        assert_eq!(cluster.get(&format!("/api/v1/models/{id}")).status, 200);
    }
    // So is a version uploaded after it, on each server in turn.
    for n in 0..2u64 {
        let bytes = pseudo_random(1_000_000 + n, 100 * 1024);
        let (content_type, body) = multipart_body(&[Part::File { name: "file", filename: "w.pt", bytes: &bytes }]);
        let up = cluster.request("POST", &format!("/api/v1/models/{id}/versions/upload"), &[("Content-Type", &content_type)], Some(body));
        assert_eq!(up.status, 201, "{}", up.text());
        let number = up.json()["version"].as_i64().unwrap();
        assert_eq!(cluster.get(&format!("/api/v1/models/{id}/versions/{number}/download")).body, bytes);
    }
    assert_eq!(cluster.answers_500(), Vec::<String>::new(), "{}", cluster.logs());
}

/// Sets its flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A 503's body is the dialect's JSON error: an object with a message.
fn is_error_body(reply: &Reply) -> bool {
    serde_json::from_slice::<Value>(&reply.body).is_ok_and(|v| v.is_object() && (v["message"].is_string() || v["detail"].is_string()))
}
