//! The DataRobot compute half against the real binary and a real DRUM
//! runtime (issue 9's acceptance): custom model tests and their checks,
//! configuration, logs and status route; cancel (no DRUM process left);
//! team isolation; memory and egress containment; requiredMetadataValues;
//! unstructured models; dependency builds; job lanes; the CLI offline and
//! with `--server`; and the answer of a server with no runtime.
//!
//! Models are tiny `custom.py` files under fixtures/compute/, using only
//! pandas (which DRUM brings). Asynchronous outcomes are polled with a
//! deadline; no test sleeps to wait for one.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::datarobot::*;
use common::{as_user, ok, Server};
use serde_json::json;


// ----------------------------------------------------------------------------
// Processes, for cancel.

/// A process as seen once: its pid and start time (so a reused pid is not
/// mistaken for it).
#[derive(Clone, Debug, PartialEq)]
struct Proc {
    pid: u32,
    start: String,
    cmdline: String,
}

fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the rest follows its ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    Some(rest.split_whitespace().map(String::from).collect())
}

fn all_processes() -> Vec<(Proc, u32)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Some(fields) = stat_fields(pid) else { continue };
        // fields[0] is the state, [1] the parent, [19] the start time.
        if fields[0] == "Z" {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        out.push((Proc { pid, start: fields[19].clone(), cmdline }, fields[1].parse().unwrap_or(0)));
    }
    out
}

/// Processes whose command line mentions `needle`, and their descendants.
fn process_tree(needle: &str) -> Vec<Proc> {
    let all = all_processes();
    let mut found: Vec<Proc> = all.iter().filter(|(p, _)| p.cmdline.contains(needle)).map(|(p, _)| p.clone()).collect();
    loop {
        let more: Vec<Proc> = all
            .iter()
            .filter(|(p, parent)| found.iter().any(|f| f.pid == *parent) && !found.contains(p))
            .map(|(p, _)| p.clone())
            .collect();
        if more.is_empty() {
            return found;
        }
        found.extend(more);
    }
}

/// Where a server's jobs keep their folders (a test's code folder among
/// them). The server's own command line names only its data directory.
fn jobs_folder(s: &Server) -> String {
    format!("{}/", s.data_dir().join("jobs").display())
}

/// Waits until DRUM's gunicorn has forked its worker (which then sleeps in
/// `load_model`) under a job folder, and returns the process tree then:
/// `contain`, DRUM (exec'd into gunicorn's master) and the worker.
fn wait_for_worker(jobs_folder: &str) -> Vec<Proc> {
    poll("the DRUM worker to boot", Duration::from_secs(120), || {
        let tree = process_tree(jobs_folder);
        if tree.iter().filter(|p| p.cmdline.contains("gunicorn")).count() >= 2 {
            Ok(tree)
        } else {
            Err(format!("{tree:?}"))
        }
    })
}

/// Waits until none of the processes `seen` runs (checked by pid and start
/// time) and no process under the jobs folder is left either.
fn wait_until_gone(what: &str, seen: &[Proc], jobs_folder: &str) {
    poll(what, Duration::from_secs(30), || {
        let left: Vec<&Proc> = seen.iter().filter(|p| still_running(p)).collect();
        let stray = process_tree(jobs_folder);
        if left.is_empty() && stray.is_empty() {
            Ok(())
        } else {
            Err(format!("still running: {left:?}; under the jobs folder: {stray:?}"))
        }
    });
}

/// Whether the process seen as `p` still runs (a zombie does not).
fn still_running(p: &Proc) -> bool {
    stat_fields(p.pid).is_some_and(|f| f[0] != "Z" && f[19] == p.start)
}

// ----------------------------------------------------------------------------
// The checks.

/// Acceptance 1: a model that needs no ML library passes every check, and
/// the test's routes answer as the client and the seed expect.
#[test]
fn a_plain_model_passes_every_check_and_the_routes_answer() {
    let s = Server::start_compute(&[]);
    let setup = regression_setup(&s, "passing");
    let started = start_test(&s, &test_body(&setup, &setup.version, json!({})));
    // Right after the POST the test is listed first (and only).
    let listed = ok(&s.get(&format!("{API}/customModelTests/?customModelId={}", setup.model)), 200);
    assert_eq!(listed["totalCount"], 1, "{listed}");
    assert_eq!(listed["data"][0]["customModelVersion"]["id"], setup.version.as_str());
    wait_status_303(&s, &started);
    let test = get_test(&s, &started.id);
    // The model raises if it sees the target column y: it was dropped.
    assert_overall(&s, &test, "succeeded");
    assert_eq!(statuses(&test, &SEED_CHECKS), ["succeeded"; 4], "{test}");
    assert!(!test["customModelImageId"].as_str().unwrap().is_empty(), "{test}");
    assert!(!test["imageType"].as_str().unwrap().is_empty(), "{test}");
    assert_eq!(test["datasetId"], setup.dataset.as_deref().unwrap());
    assert_eq!(test["executionEnvironment"]["id"], setup.env.as_str());
    assert!(!test["completedAt"].as_str().unwrap().is_empty());

    let base = format!("{API}/customModelTests/{}", started.id);
    let log = s.get(&format!("{base}/log/"));
    assert_eq!(log.status, 200);
    assert!(log.header("Content-Type").unwrap().starts_with("text/plain"), "{:?}", log.header("Content-Type"));
    assert!(log.header("Content-Disposition").unwrap().starts_with("attachment"), "{:?}", log.header("Content-Disposition"));
    let text = String::from_utf8(log.body).unwrap();
    assert!(text.contains("dropped: y"), "the log says the target was dropped:\n{text}");

    let tail = ok(&s.get(&format!("{base}/tail/?lines=3")), 200);
    let tail = tail["log"].as_str().unwrap();
    assert!(!tail.is_empty() && tail.lines().count() <= 3, "{tail:?}");
    assert!(text.trim_end().ends_with(tail.trim_end()), "the tail is the log's end: {tail:?}");
    assert_eq!(s.get(&format!("{base}/tail/?lines=0")).status, 400);
    assert_eq!(s.get(&format!("{base}/tail/?lines=1001")).status, 400);

    // Every route answers without the trailing slash too.
    assert_eq!(ok(&s.get(&base), 200)["id"], started.id.as_str());
    assert_eq!(s.get(&format!("{base}/log")).status, 200);
    assert_eq!(ok(&s.get(&format!("{base}/tail?lines=3")), 200)["log"], tail);
    let listed = ok(&s.get(&format!("{API}/customModelTests?customModelId={}", setup.model)), 200);
    assert_eq!(listed["data"][0]["id"], started.id.as_str());
    let status_path = path_of(&s, &started.status_url).trim_end_matches('/').to_string();
    assert_eq!(s.get_unfollowed(&status_path).status, 303);
    let again = s.post_json(&format!("{API}/customModelTests"), &test_body(&setup, &setup.version, json!({})));
    assert_eq!(again.status, 202, "{}", String::from_utf8_lossy(&again.body));
    // One running test per model.
    let third = s.post_json(&format!("{API}/customModelTests/"), &test_body(&setup, &setup.version, json!({})));
    assert_eq!(third.status, 422, "{}", String::from_utf8_lossy(&third.body));
    let second = ok(&s.get(&format!("{API}/customModelTests/?customModelId={}", setup.model)), 200)["data"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(s.delete(&format!("{API}/customModelTests/{second}")).status, 204);
}

/// A Binary model runs with its class labels (DRUM refuses predictions
/// whose columns are not the labels it was started with).
#[test]
fn a_binary_model_runs_with_its_labels() {
    let s = Server::start_compute(&[]);
    let model = json!({"name": "yes or no", "targetType": "Binary", "targetName": "y", "positiveClassLabel": "yes", "negativeClassLabel": "no"});
    let setup = setup(&s, model, &fixture("binary"), &[], Some(&rows_csv(None)));
    let test = run_setup(&s, &setup, json!({}));
    assert_overall(&s, &test, "succeeded");
    assert_eq!(statuses(&test, &SEED_CHECKS), ["succeeded"; 4], "{test}");
    let log = test_log(&s, test["id"].as_str().unwrap());
    assert!(log.contains("--positive-class-label yes --negative-class-label no"), "{log}");
}

/// Acceptance 2: a model that cannot score a blank x2 warns by default and
/// fails under `fail`, naming x2 (and not x1); the checks after it abort.
#[test]
fn null_imputation_names_the_feature_and_fail_aborts_the_rest() {
    let s = Server::start_compute(&[]);
    let setup = regression_setup(&s, "nan_x2");
    let test = run_setup(&s, &setup, json!({}));
    assert_overall(&s, &test, "warning");
    let message = check_is(&test, "nullValueImputation", "warning");
    assert!(message.contains("x2") && !message.contains("x1"), "{message}");
    assert_eq!(statuses(&test, &["errorCheck", "longRunningService", "sideEffects"]), ["succeeded"; 3], "{test}");

    let test = run_setup(&s, &setup, json!({"configuration": {"nullValueImputation": "fail"}}));
    assert_overall(&s, &test, "failed");
    let message = check_is(&test, "nullValueImputation", "failed");
    assert!(message.contains("x2") && !message.contains("x1"), "{message}");
    check_is(&test, "sideEffects", "aborted");
    check_is(&test, "errorCheck", "succeeded");
    assert_eq!(test["configuration"]["nullValueImputation"], "fail");
}

/// Acceptance 3: a model that always raises fails errorCheck with DRUM's
/// error text and aborts the checks after it.
#[test]
fn a_model_that_always_raises_fails_error_check_and_aborts_the_rest() {
    let s = Server::start_compute(&[]);
    let setup = regression_setup(&s, "always_raises");
    let test = run_setup(&s, &setup, json!({}));
    assert_overall(&s, &test, "failed");
    let message = check_is(&test, "errorCheck", "failed");
    assert!(message.contains("this model always fails"), "DRUM's error text: {message}");
    assert_eq!(statuses(&test, &["nullValueImputation", "sideEffects"]), ["aborted"; 2], "{test}");
}

/// Acceptance 4: sideEffects catches a model whose batch and single-row
/// predictions differ, naming the rows.
#[test]
fn side_effects_catch_batch_dependent_predictions() {
    let s = Server::start_compute(&[]);
    let setup = regression_setup(&s, "side_effects");
    let test = run_setup(&s, &setup, json!({}));
    assert_overall(&s, &test, "warning");
    let message = check_is(&test, "sideEffects", "warning");
    assert!(message.contains("row 1:") && message.contains("20 of 20 rows differ"), "{message}");
    assert_eq!(statuses(&test, &["errorCheck", "nullValueImputation"]), ["succeeded"; 2], "{test}");
}

// ----------------------------------------------------------------------------
// Dependency builds.

/// A requirements.txt naming a package no index has.
const MISSING_PACKAGE: &[u8] = b"modelreg-no-such-package-3f9a2c==1.0.0\n";

/// Acceptance 5: a small pinned package builds and the model imports it;
/// a package that does not exist fails with pip's message; the routes'
/// 422s and 409.
#[test]
fn dependency_builds_install_the_requirements_the_model_imports() {
    let s = Server::start_compute(&[]);
    // The runtime alone cannot import tabulate: only the build brings it.
    let bare = Command::new(common::drum_python()).args(["-c", "import tabulate"]).output().unwrap();
    assert!(!bare.status.success(), "tabulate is in the runtime already, so this test would prove nothing");
    let setup = regression_setup(&s, "uses_tabulate");
    let build_path = |version: &str| format!("{API}/customModels/{}/versions/{version}/dependencyBuild/", setup.model);
    // Nothing built yet: GET and the log are 422.
    assert_eq!(s.get(&build_path(&setup.version)).status, 422);
    let log_path = format!("{API}/customModels/{}/versions/{}/dependencyBuildLog/", setup.model, setup.version);
    assert_eq!(s.get(&log_path).status, 422);
    // A version without requirements.txt has nothing to build.
    let plain = add_version(&s, &setup.model, &setup.env, &fixture("passing"), &[]);
    assert_eq!(s.post_json(&build_path(&plain), &json!({})).status, 422);

    let r = s.request("POST", &build_path(&setup.version), &[], None);
    let started = ok(&r, 202);
    assert!(r.header("Location").is_none());
    assert!(matches!(started["buildStatus"].as_str(), Some("submitted" | "processing" | "success")), "{started}");
    assert!(started["buildStart"].is_string());
    let build = wait_dependency_build(&s, &setup.model, &setup.version);
    let log = dependency_build_log(&s, &setup.model, &setup.version);
    assert_eq!(build["buildStatus"], "success", "{build}\n--- log\n{log}");
    assert!(build["buildEnd"].is_string());
    assert_eq!(build["buildLogLocation"], format!("http://{}{log_path}", s.addr).as_str());
    assert!(log.contains("tabulate"), "{log}");
    // Without the trailing slash too; a finished build cannot be cancelled.
    assert_eq!(ok(&s.get(build_path(&setup.version).trim_end_matches('/')), 200)["buildStatus"], "success");
    assert_eq!(s.get(log_path.trim_end_matches('/')).status, 200);
    assert_eq!(s.delete(&build_path(&setup.version)).status, 409);

    // The model imports tabulate in load_model: it runs in the built environment.
    let test = run_setup(&s, &setup, json!({}));
    assert_overall(&s, &test, "succeeded");

    // A package that does not exist: pip's error, and the build failed.
    let missing = add_version(&s, &setup.model, &setup.env, &fixture_with("passing", "requirements.txt", MISSING_PACKAGE), &[]);
    ok(&s.request("POST", &build_path(&missing), &[], None), 202);
    let build = wait_dependency_build(&s, &setup.model, &missing);
    let log = dependency_build_log(&s, &setup.model, &missing);
    assert_eq!(build["buildStatus"], "failed", "{build}\n--- log\n{log}");
    assert!(log.contains("modelreg-no-such-package-3f9a2c"), "{log}");
    assert!(log.contains("No matching distribution") || log.contains("Could not find a version"), "pip's error: {log}");
    assert_eq!(s.delete(&build_path(&missing)).status, 409);
}

// ----------------------------------------------------------------------------
// Cancel, teams, containment.

/// Acceptance 6: DELETE stops the DRUM processes (checked by pid) and the
/// test ends `canceled`; a second DELETE is 409.
#[test]
fn cancel_stops_every_drum_process() {
    let s = Server::start_compute(&[]);
    let setup = regression_setup(&s, "slow_load");
    let started = start_test(&s, &test_body(&setup, &setup.version, json!({})));
    let needle = jobs_folder(&s);
    let seen = wait_for_worker(&needle);
    assert_eq!(get_test(&s, &started.id)["overallStatus"], "in_progress");

    assert_eq!(s.delete(&format!("{API}/customModelTests/{}/", started.id)).status, 204);
    let canceled = get_test(&s, &started.id);
    assert_eq!(canceled["overallStatus"], "canceled", "{canceled}");
    wait_until_gone("every DRUM process to stop", &seen, &needle);
    assert_eq!(s.delete(&format!("{API}/customModelTests/{}/", started.id)).status, 409);
    // The status says ABORTED (the client then re-reads the listed test),
    // and the cancel is final: the job ends without overwriting it.
    let status = poll("the cancelled job to end", Duration::from_secs(30), || {
        let r = ok(&s.get_unfollowed(path_of(&s, &started.status_url)), 200);
        if r["status"] == "ABORTED" {
            Ok(r)
        } else {
            Err(r.to_string())
        }
    });
    assert_eq!(status["status"], "ABORTED");
    let test = get_test(&s, &started.id);
    assert_eq!(test["overallStatus"], "canceled", "{test}");
    assert_eq!(statuses(&test, &SEED_CHECKS), ["canceled"; 4], "{test}");
    // The log a person reads ends as the test did.
    let log = test_log(&s, &started.id);
    let verdict = log.lines().rfind(|l| l.starts_with("Overall:"));
    assert_eq!(verdict, Some("Overall: canceled"), "{log}");
}

/// No DRUM process outlives modelreg: killed with SIGKILL mid-test, it
/// takes every model process with it (PR_SET_PDEATHSIG and the PID
/// namespace), so nothing is left holding memory or a port.
#[test]
fn no_drum_process_outlives_a_killed_server() {
    let s = Server::start_compute(&[]);
    let setup = regression_setup(&s, "slow_load");
    start_test(&s, &test_body(&setup, &setup.version, json!({})));
    let folder = jobs_folder(&s);
    let seen = wait_for_worker(&folder);
    let _data = s.kill();
    wait_until_gone("every DRUM process to die with the server", &seen, &folder);
}

/// A person watching a hung model's test reads `tail/`: it must show what
/// the model server printed last (gunicorn booting the worker that hangs
/// in load_model), not wait for output that never comes.
#[test]
fn a_running_tests_tail_shows_its_latest_lines() {
    let s = Server::start_compute(&[]);
    let setup = regression_setup(&s, "slow_load");
    let started = start_test(&s, &test_body(&setup, &setup.version, json!({})));
    wait_for_worker(&jobs_folder(&s));
    // The worker has booted and gunicorn said so; the job reads the
    // server's output every 200 ms and flushes its log at least every second.
    poll("the tail to show the worker booting", Duration::from_secs(10), || {
        let tail = ok(&s.get(&format!("{API}/customModelTests/{}/tail/?lines=5", started.id)), 200);
        let tail = tail["log"].as_str().unwrap_or_default().to_string();
        if tail.contains("Booting worker") {
            Ok(())
        } else {
            Err(tail)
        }
    });
    assert_eq!(s.delete(&format!("{API}/customModelTests/{}/", started.id)).status, 204);
}

/// Acceptance 7: another team's test is 404 everywhere, and so is a test
/// of another team's model.
#[test]
fn another_teams_tests_and_models_are_not_found() {
    let s = Server::start_compute(&[]);
    let setup = regression_setup(&s, "always_raises");
    let carol = other_team_key(&s);
    let started = start_test(&s, &test_body(&setup, &setup.version, json!({})));
    let base = format!("{API}/customModelTests/{}", started.id);
    for (method, path) in [("GET", format!("{base}/")), ("GET", format!("{base}/log/")), ("GET", format!("{base}/tail/")), ("DELETE", format!("{base}/"))] {
        let r = as_user(&s, &carol, method, &path, None);
        assert_eq!(r.status, 404, "{method} {path}: {}", String::from_utf8_lossy(&r.body));
    }
    assert_eq!(as_user(&s, &carol, "GET", &format!("{API}/customModelTests/?customModelId={}", setup.model), None).status, 404);
    // A test of the other team's model, even on carol's own dataset.
    let theirs = dataset_as(&s, Some(&carol), &rows_csv(None));
    let body = json!({"customModelId": setup.model, "customModelVersionId": setup.version, "datasetId": theirs});
    let r = as_user(&s, &carol, "POST", &format!("{API}/customModelTests/"), Some(&body));
    assert_eq!(r.status, 404, "{}", String::from_utf8_lossy(&r.body));
    // The owner's test was not disturbed by any of that.
    wait_status_303(&s, &started);
    assert_eq!(get_test(&s, &started.id)["overallStatus"], "failed");
}

/// Acceptance 8: `maximumMemory` is enforced: a model that writes ~600 MB
/// under a 128 MiB limit fails, saying it was killed for memory.
#[test]
fn a_model_over_its_memory_limit_fails_saying_so() {
    let s = Server::start_compute(&[]);
    let setup = regression_setup(&s, "memory_hog");
    let test = run_setup(&s, &setup, json!({"maximumMemory": 134217728}));
    let log = test_log(&s, test["id"].as_str().unwrap());
    // Which limit the model ran under: a cgroup, or where the host allows
    // none, setrlimit. Less than the host allows fails anywhere; a host
    // that allows no cgroup is the weaker branch outside CI only.
    let report = containment(&log);
    let cgroup = report.ends_with("; memory cgroup");
    if cgroup {
        common::host_note("a_model_over_its_memory_limit_fails_saying_so", "limited by a memory cgroup");
    } else {
        assert!(report.contains("memory rlimit-data"), "the memory was limited neither by a cgroup nor by setrlimit: {report}\n--- log\n{log}");
        let host = host_can_make_memory_cgroup();
        let note = format!("no memory cgroup, only setrlimit ({report}); the host {}", match &host {
            Ok(()) => "CAN make a memory cgroup".to_string(),
            Err(e) => format!("cannot make a memory cgroup either ({e})"),
        });
        assert!(host.is_err(), "{note}\n--- log\n{log}");
        assert!(!common::under_ci(), "under CI the host must allow a memory cgroup: {note}\n--- log\n{log}");
        common::host_note("a_model_over_its_memory_limit_fails_saying_so", &note);
    }
    assert_eq!(test["overallStatus"], "failed", "{test}\n--- log\n{log}");
    assert_eq!(test["maximumMemory"], 134217728);
    // The server started: it was scoring that broke the limit.
    assert!(log.contains("answered GET /"), "{log}");
    let message = check_is(&test, "errorCheck", "failed");
    if cgroup {
        // The check a person reads says why, not just "disconnected".
        assert!(message.contains("killed for exceeding its memory limit (maximumMemory 134217728 bytes)"), "{message}\n--- log\n{log}");
    } else {
        // Only setrlimit: Python raises MemoryError, which DRUM reports.
        assert!(message.contains("MemoryError") || log.contains("MemoryError"), "{message}\n--- log\n{log}");
    }
}

/// A model in its own PID namespace sees a /proc of that namespace: DRUM's
/// resource monitor calls psutil.Process(), which reads /proc/<getpid()>.
/// `/proc/self == getpid()` also holds with no namespace at all, so the
/// containment report in the log says whether there was one. A host that
/// can make one (probed with `unshare`) must get one; under CI every host
/// must.
#[test]
fn a_model_sees_its_own_pid_namespace_in_proc() {
    let s = Server::start_compute(&[]);
    let setup = regression_setup(&s, "own_pid");
    let test = run_setup(&s, &setup, json!({}));
    assert_overall(&s, &test, "succeeded");
    let log = test_log(&s, test["id"].as_str().unwrap());
    let report = containment(&log);
    if report.contains("pid namespace yes") {
        common::host_note("a_model_sees_its_own_pid_namespace_in_proc", "ran in a PID namespace of its own");
        return;
    }
    assert!(report.contains("pid namespace NO"), "the containment report says nothing of a PID namespace: {report}\n--- log\n{log}");
    let host = host_can_unshare(&["--pid", "--fork", "--mount-proc"]);
    let note = format!("no PID namespace ({report}); the host {}", match &host {
        Ok(()) => "CAN make one (unshare --pid --fork --mount-proc)".to_string(),
        Err(e) => format!("cannot make one either ({e})"),
    });
    // Less than the host allows fails anywhere; a host that allows none
    // is a skip outside CI only.
    assert!(host.is_err(), "{note}\n--- log\n{log}");
    assert!(!common::under_ci(), "under CI the host must allow a PID namespace: {note}\n--- log\n{log}");
    common::host_note("a_model_sees_its_own_pid_namespace_in_proc", &note);
}

/// The `Containment: ` line of a job log: what `modelreg contain` reported
/// it achieved. Panics (with the log) where there is none.
fn containment(log: &str) -> &str {
    log.lines()
        .find_map(|l| l.split_once("Containment: ").map(|(_, r)| r))
        .unwrap_or_else(|| panic!("no containment report in the log:\n{log}"))
}

/// Whether the host lets this test's user run `unshare FLAGS true`: the
/// host's ability, probed apart from modelreg.
fn host_can_unshare(flags: &[&str]) -> Result<(), String> {
    match Command::new("unshare").args(flags).arg("true").output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!("unshare {}: {} {}", flags.join(" "), out.status, String::from_utf8_lossy(&out.stderr).trim())),
        Err(e) => Err(format!("unshare: {e}")),
    }
}

/// Whether the host lets this test's user make a memory cgroup with a
/// limit, where modelreg would (cgroup v2 with the memory controller, else
/// v1's memory hierarchy): probed apart from modelreg, in a cgroup of the
/// probe's own that it removes.
fn host_can_make_memory_cgroup() -> Result<(), String> {
    let v2 = Path::new("/sys/fs/cgroup");
    let v2_ok = std::fs::read_to_string(v2.join("cgroup.controllers")).is_ok_and(|c| c.split_whitespace().any(|c| c == "memory"));
    let (root, limit_file) = if v2_ok { (v2.to_path_buf(), "memory.max") } else { (v2.join("memory"), "memory.limit_in_bytes") };
    let dir = root.join(format!("modelreg-probe-{}", std::process::id()));
    std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let written = std::fs::write(dir.join(limit_file), "134217728").map_err(|e| format!("{limit_file}: {e}"));
    let _ = std::fs::remove_dir(&dir);
    written
}

fn has_non_loopback_interface() -> bool {
    std::fs::read_dir("/sys/class/net").unwrap().flatten().any(|e| e.file_name() != "lo")
}

/// Acceptance 9: egress NONE leaves the model only the loopback interface;
/// PUBLIC shows it the host's (where the host has any).
#[test]
fn egress_none_leaves_only_loopback() {
    let s = Server::start_compute(&[]);
    let setup = regression_setup(&s, "loopback_only");
    let test = run_setup(&s, &setup, json!({"networkEgressPolicy": "NONE"}));
    assert_overall(&s, &test, "succeeded");
    assert_eq!(test["networkEgressPolicy"], "NONE");
    let log = test_log(&s, test["id"].as_str().unwrap());
    assert!(containment(&log).contains("network none"), "NONE was not a network namespace:\n{log}");
    // PUBLIC runs either way; what the model sees depends on the host.
    let test = run_setup(&s, &setup, json!({"networkEgressPolicy": "PUBLIC"}));
    let log = test_log(&s, test["id"].as_str().unwrap());
    assert!(containment(&log).contains("network shared"), "PUBLIC was not the host's network:\n{log}");
    if has_non_loopback_interface() {
        assert_overall(&s, &test, "failed");
        let message = check_is(&test, "errorCheck", "failed");
        assert!(message.contains("network interfaces visible to the model"), "{message}");
        common::host_note("egress_none_leaves_only_loopback", "PUBLIC saw the host's interfaces");
    } else {
        // A loopback-only host cannot tell PUBLIC from NONE by interfaces.
        let note = "the host has only loopback: PUBLIC could not be told from NONE by what the model sees";
        assert!(!common::under_ci(), "under CI: {note}");
        assert_overall(&s, &test, "succeeded");
        common::host_note("egress_none_leaves_only_loopback", note);
    }
}

/// Acceptance 10: requiredMetadataValues are the model's environment
/// variables, shown by predictionVerificationCheck against a column of
/// expected values (dropped before scoring).
#[test]
fn required_metadata_values_become_environment_variables() {
    let s = Server::start_compute(&[]);
    let metadata = r#"[{"fieldName": "SCALE", "value": "3"}]"#;
    let right = rows_csv(Some(3.0));
    let setup = setup(&s, regression(), &fixture("scaled"), &[("requiredMetadataValues", metadata)], Some(&right));
    let verify = json!({
        "configuration": {"predictionVerificationCheck": "fail"},
        "parameters": {"predictionVerificationCheck": {"predictionsColumn": "expected"}},
    });
    let test = run_setup(&s, &setup, verify.clone());
    assert_overall(&s, &test, "succeeded");
    let message = check_is(&test, "predictionVerificationCheck", "succeeded");
    assert!(message.contains("20 of 20"), "{message}");

    let wrong = dataset(&s, &rows_csv(Some(2.0)));
    let mut body = test_body(&setup, &setup.version, verify);
    body["datasetId"] = json!(wrong);
    let test = run_test(&s, &body);
    assert_overall(&s, &test, "failed");
    check_is(&test, "predictionVerificationCheck", "failed");
}

/// A model runs with the data directory (every team's blobs, the database,
/// the keys) hidden and no capabilities to undo that.
#[test]
fn a_model_cannot_reach_the_data_directory() {
    let s = Server::start_compute(&[]);
    let metadata = format!(r#"[{{"fieldName": "DATA_DIR", "value": "{}"}}]"#, s.data_dir().display());
    let setup = setup(&s, regression(), &fixture("snoop"), &[("requiredMetadataValues", &metadata)], Some(&rows_csv(None)));
    let test = run_setup(&s, &setup, json!({}));
    assert_overall(&s, &test, "succeeded");
    let log = test_log(&s, test["id"].as_str().unwrap());
    assert!(log.contains("hidden but for the job's"), "{log}");
}

/// Acceptance 11: an unstructured model needs no dataset; it is started
/// and called once, and the structured checks are skipped.
#[test]
fn an_unstructured_model_runs_without_a_dataset() {
    let s = Server::start_compute(&[]);
    let setup = setup(&s, json!({"name": "text in, text out", "targetType": "Unstructured", "language": "python"}), &fixture("unstructured"), &[], None);
    let test = run_setup(&s, &setup, json!({}));
    assert_overall(&s, &test, "succeeded");
    assert_eq!(statuses(&test, &["longRunningService", "errorCheck"]), ["succeeded"; 2], "{test}");
    assert_eq!(statuses(&test, &["nullValueImputation", "sideEffects"]), ["skipped"; 2], "{test}");
    assert!(test["datasetId"].is_null(), "{test}");
}

// ----------------------------------------------------------------------------
// Lanes.

/// Acceptance "while tests and builds run": with one compute slot held by a
/// slow model test and an environment build queued behind it, another
/// team's machine transition and model create do not wait. Judged by order
/// (both finish while the test still loads its model, two minutes, and the
/// build still waits) and by a ratio to the same steps timed in this test
/// before compute was busy, not by a wall clock a busy host could break.
#[test]
fn bookkeeping_does_not_wait_behind_compute() {
    let dir = tempfile::tempdir().unwrap();
    // Builds are quick unless the Dockerfile says SLOW; models run on DRUM.
    let builder = common::fake_docker(dir.path());
    let s = Server::start_compute(&["--compute-slots", "1", "--machine-delay-ms", "200", "--image-builder", &builder]);
    let carol = other_team_key(&s);
    // A model create, and a machine from request to ready (its 200 ms delay
    // included, so the time is never near zero); `busy` is checked at
    // every poll and stops the wait when compute finished first.
    let bookkeeping = |busy: &dyn Fn() -> Result<(), String>| -> Duration {
        let began = Instant::now();
        ok(&as_user(&s, &carol, "POST", &format!("{API}/customModels/"), Some(&regression())), 201);
        let r = as_user(&s, &carol, "POST", "/v1/machines", Some(&json!({"name": "m", "machineType": "P4000", "templateId": "tz0ireoj", "diskSize": 50, "region": "East Coast (NY2)"})));
        let machine = id_of(&ok(&r, 200)["data"], "id");
        poll("the machine to be ready", Duration::from_secs(300), || {
            let m = ok(&as_user(&s, &carol, "GET", &format!("/v1/machines/{machine}"), None), 200);
            if m["state"] == "ready" {
                return Ok(());
            }
            if let Err(e) = busy() {
                panic!("compute finished before the machine was ready (bookkeeping waited behind it): {e}; machine {}", m["state"]);
            }
            Err(m["state"].to_string())
        });
        began.elapsed()
    };
    let idle = bookkeeping(&|| Ok(()));

    let setup = regression_setup(&s, "slow_load");
    let started = start_test(&s, &test_body(&setup, &setup.version, json!({})));
    // The slot is taken: the test's model server is loading.
    poll("the slow test to start its model server", Duration::from_secs(120), || {
        match get_test(&s, &started.id)["testingStatus"]["longRunningService"]["status"].as_str() {
            Some("in_progress") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    let slow_build = post_environment_version(&s, &setup.env, "FROM python:3.11-slim\n# SLOW\n");
    let compute_busy = || -> Result<(), String> {
        match get_test(&s, &started.id)["overallStatus"].as_str() {
            Some("in_progress") => Ok(()),
            other => Err(format!("the slow test is {other:?}")),
        }
    };
    let loaded = bookkeeping(&compute_busy);
    // Both happened while compute was busy.
    assert_eq!(get_test(&s, &started.id)["overallStatus"], "in_progress");
    assert_ne!(environment_build_status(&s, &setup.env, &slow_build), "success");
    // And about as fast as without it: queued behind the model's two
    // minutes it would be hundreds of times slower.
    assert!(loaded <= idle * 10, "with compute busy, bookkeeping took {loaded:?}; without, {idle:?}");
    common::host_note("bookkeeping_does_not_wait_behind_compute", &format!("bookkeeping took {idle:?} idle, {loaded:?} with compute busy"));
    assert_eq!(s.delete(&format!("{API}/customModelTests/{}/", started.id)).status, 204);
}

/// With `serve --image-builder`, a model runs in its environment's image
/// (`docker run`, code mounted read-only, egress and memory as docker
/// options) and its dependencies become an image FROM it. No engine runs
/// here: the fake CLI records the calls and runs DRUM on this host.
#[test]
fn with_an_image_builder_models_run_in_their_environments_image() {
    let dir = tempfile::tempdir().unwrap();
    let builder = common::fake_docker(dir.path());
    // No --python: a server that builds images needs no local runtime.
    let s = Server::start_with(&["--image-builder", &builder]);
    let setup = regression_setup(&s, "passing");
    let env_version = id_of(&ok(&s.get(&format!("{API}/executionEnvironments/{}/", setup.env)), 200)["latestVersion"], "id");
    let test = run_setup(&s, &setup, json!({"networkEgressPolicy": "NONE", "maximumMemory": 268435456}));
    assert_eq!(test["overallStatus"], "succeeded", "{test}\n{}", test_log(&s, test["id"].as_str().unwrap()));
    let calls = std::fs::read_to_string(dir.path().join("calls")).unwrap();
    let run = calls.lines().find(|l| l.starts_with("run ")).unwrap_or_else(|| panic!("no docker run in {calls}"));
    for part in [
        "--network modelreg-no-egress".to_string(),
        "--memory 268435456 --memory-swap 268435456".to_string(),
        ":/opt/code:ro".to_string(),
        format!("modelreg-env:{env_version} drum server --code-dir /opt/code --address 0.0.0.0:"),
        "--target-type regression".to_string(),
    ] {
        assert!(run.contains(&part), "{part:?} not in {run}");
    }
    assert!(calls.contains("network create --internal modelreg-no-egress"), "{calls}");
    let container = run.split_whitespace().nth(2).unwrap();
    assert!(calls.contains(&format!("rm -f {container}")), "the container was not removed: {calls}");
    assert!(test_log(&s, test["id"].as_str().unwrap()).contains(&format!("Containment: container {container}")));

    // Dependencies: an image FROM the environment's, with pip install.
    let mut files = fixture("passing");
    files.push(("requirements.txt".into(), b"tabulate==0.9.0\n".to_vec()));
    let version = add_version(&s, &setup.model, &setup.env, &files, &[]);
    let test = run_test(&s, &test_body(&setup, &version, json!({})));
    assert_eq!(test["overallStatus"], "succeeded");
    let log = test_log(&s, test["id"].as_str().unwrap());
    assert!(log.contains(&format!("FROM modelreg-env:{env_version}")) && log.contains("pip install --no-input -r"), "{log}");
    let calls = std::fs::read_to_string(dir.path().join("calls")).unwrap();
    let run = calls.lines().rfind(|l| l.starts_with("run ")).unwrap();
    assert!(run.contains(" modelreg-deps:"), "the dependency image did not run: {run}");
}

// ----------------------------------------------------------------------------
// The CLI.

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The CLI on `data`, with `env` (what reaches its blob store).
fn cli_in(data: &Path, env: &[(String, String)], args: &[&str]) -> Output {
    Command::new(common::BIN).arg("--data-dir").arg(data).envs(env.iter().map(|(k, v)| (k, v))).args(args).output().unwrap()
}

/// Exit code 0 or 1 as `expected`, with the output in the message.
fn assert_exit(out: &Output, expected: i32, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(expected), "{what}\n--- stdout\n{stdout}\n--- stderr\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// Acceptance (CLI): `custom-models test` prints each check and exits 0 on
/// success, 1 on failure; `custom-models build-deps` likewise; offline
/// (the CLI runs the job itself) and with `--server`.
#[test]
fn the_cli_tests_and_builds_offline_and_with_a_server() {
    let s = Server::start_compute(&[]);
    let python = common::drum_python();
    let python = python.to_str().unwrap();
    let setup = regression_setup(&s, "passing");
    let failing = add_version(&s, &setup.model, &setup.env, &fixture("always_raises"), &[]);
    let with_deps = add_version(&s, &setup.model, &setup.env, &fixture("uses_tabulate"), &[]);
    let missing = add_version(&s, &setup.model, &setup.env, &fixture_with("passing", "requirements.txt", MISSING_PACKAGE), &[]);
    let dataset = setup.dataset.clone().unwrap();
    let test_args = |version: &str| -> Vec<String> {
        ["custom-models", "test", &setup.model, version, "--dataset", &dataset].map(String::from).to_vec()
    };
    let build_args = |version: &str| -> Vec<String> { ["custom-models", "build-deps", &setup.model, version].map(String::from).to_vec() };

    // Offline, with no server running on the data directory.
    let store_env: Vec<(String, String)> = s.store_env().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let data = s.kill();
    let offline = |mut args: Vec<String>| {
        args.extend(["--python".to_string(), python.to_string()]);
        cli_in(data.path(), &store_env, &strs(&args))
    };
    let out = assert_exit(&offline(test_args(&setup.version)), 0, "offline test of a passing version");
    for check in SEED_CHECKS {
        assert!(out.lines().any(|l| l.starts_with(check) && l.contains("succeeded")), "{check} is printed:\n{out}");
    }
    assert!(out.contains("overall: succeeded"), "{out}");
    let out = assert_exit(&offline(test_args(&failing)), 1, "offline test of a failing version");
    assert!(out.lines().any(|l| l.starts_with("errorCheck") && l.contains("failed") && l.contains("this model always fails")), "{out}");
    assert!(out.contains("overall: failed"), "{out}");
    let out = assert_exit(&offline(build_args(&with_deps)), 0, "offline build of tabulate");
    assert!(out.contains("dependency build: success"), "{out}");
    let out = offline(build_args(&missing));
    assert_exit(&out, 1, "offline build of a missing package");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("No matching distribution") || stderr.contains("Could not find a version"), "pip's log: {stderr}");

    // With --server: the server runs the jobs.
    let s = Server::start_in(data, &["--python", python]);
    let out = assert_exit(&s.cli_remote(&strs(&test_args(&setup.version))), 0, "remote test of a passing version");
    for check in SEED_CHECKS {
        assert!(out.lines().any(|l| l.starts_with(check) && l.contains("succeeded")), "{check} is printed:\n{out}");
    }
    let out = assert_exit(&s.cli_remote(&strs(&test_args(&failing))), 1, "remote test of a failing version");
    assert!(out.contains("overall: failed"), "{out}");
    let out = assert_exit(&s.cli_remote(&strs(&build_args(&with_deps))), 0, "remote build of tabulate");
    assert!(out.contains("dependency build: success"), "{out}");
    let out = s.cli_remote(&strs(&build_args(&missing)));
    assert_exit(&out, 1, "remote build of a missing package (built again after its failure)");
    assert!(String::from_utf8_lossy(&out.stderr).contains("modelreg-no-such-package-3f9a2c"));
}

// ----------------------------------------------------------------------------
// No runtime.

/// Acceptance "never a fake success": a server with no runtime refuses
/// tests and dependency builds with a 422 that names the command to run.
#[test]
fn without_a_runtime_compute_requests_say_what_to_run() {
    let s = Server::start();
    let setup = regression_setup(&s, "uses_tabulate");
    let r = s.post_json(&format!("{API}/customModelTests/"), &test_body(&setup, &setup.version, json!({})));
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["message"].as_str().unwrap().contains("modelreg runtime install"), "{}", r.json());
    let listed = ok(&s.get(&format!("{API}/customModelTests/?customModelId={}", setup.model)), 200);
    assert_eq!(listed["totalCount"], 0, "no test was recorded: {listed}");
    let r = s.request("POST", &format!("{API}/customModels/{}/versions/{}/dependencyBuild/", setup.model, setup.version), &[], None);
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["message"].as_str().unwrap().contains("modelreg runtime install"), "{}", r.json());
    assert_eq!(s.get(&format!("{API}/customModels/{}/versions/{}/dependencyBuild/", setup.model, setup.version)).status, 422);
}
