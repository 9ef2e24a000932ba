//! The PostgreSQL harness itself (tests/common/postgres.rs), checked by
//! speaking SQL to the clusters it starts: the PostgreSQL database's tests
//! will trust that a URL's password is needed and enough, that a database
//! is fresh, that an outage is an outage, and that a cluster does not
//! outlive its test binary, so each of those is shown here rather than
//! assumed. psql, from the cluster's own binaries, is the client.

mod common;

use std::net::TcpStream;
use std::time::Duration;

use common::child;
use common::postgres::{self, Postgres};

/// The database a URL names.
fn database(url: &str) -> String {
    url::Url::parse(url).unwrap().path().trim_start_matches('/').to_string()
}

/// `url` with another password, or none.
fn with_password(url: &str, password: Option<&str>) -> String {
    let mut url = url::Url::parse(url).unwrap();
    url.set_password(password).unwrap();
    url.to_string()
}

/// What PostgreSQL takes as an identifier without quotes, which is how
/// people and migrations will write a database's name.
fn assert_plain_identifier(name: &str) {
    assert!((1..=63).contains(&name.len()), "{name}: 1 to 63 bytes");
    assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'), "{name}: lowercase letters, digits and _");
    assert!(name.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b == b'_'), "{name}: begins with a letter or _");
}

#[test]
fn a_fresh_database_takes_writes_with_the_urls_password_and_no_other() {
    let Some((pg, url)) = postgres::fresh_database() else { return };
    let parsed = url::Url::parse(&url).unwrap();
    assert_eq!((parsed.scheme(), parsed.host_str(), parsed.port()), ("postgres", Some("127.0.0.1"), Some(pg.port())), "{url}");
    assert!(parsed.password().is_some_and(|p| p.len() >= 16), "{url}: no password, or a short one");
    assert_plain_identifier(&database(&url));

    let rows = pg.try_psql(
        &url,
        "CREATE TABLE models (id serial PRIMARY KEY, name text NOT NULL);\n\
         INSERT INTO models (name) VALUES ('first'), ('second');\n\
         SELECT id, name FROM models ORDER BY id;\n\
         SELECT current_database();",
    );
    assert_eq!(rows, Ok(format!("1|first\n2|second\n{}", database(&url))));

    // A server that trusts loopback connections would pass the rest of
    // this file too.
    let wrong = pg.try_psql(&with_password(&url, Some(&"0".repeat(32))), "SELECT 1").unwrap_err();
    assert!(wrong.contains("password authentication failed"), "a wrong password: {wrong}");
    let none = pg.try_psql(&with_password(&url, None), "SELECT 1").unwrap_err();
    assert!(none.contains("no password supplied"), "no password: {none}");
}

#[test]
fn fresh_databases_are_separate_empty_and_on_one_cluster() {
    let Some((pg, first)) = postgres::fresh_database() else { return };
    let Some((again, second)) = postgres::fresh_database() else { return };
    assert!(std::ptr::eq(pg, again), "one shared cluster per test binary");
    // Fast (nothing waits for the disk), but a commit still reaches the page cache before it returns.
    assert_eq!(pg.try_psql(&first, "SHOW fsync; SHOW synchronous_commit"), Ok("off\non".into()));
    assert_ne!(database(&first), database(&second));
    assert_plain_identifier(&database(&second));

    pg.try_psql(&first, "CREATE TABLE only_here (x int); INSERT INTO only_here VALUES (1);").unwrap();
    assert_eq!(pg.try_psql(&first, "SELECT x FROM only_here"), Ok("1".into()));
    let elsewhere = pg.try_psql(&second, "SELECT x FROM only_here").unwrap_err();
    assert!(elsewhere.contains("does not exist"), "{elsewhere}");
    let tables = "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')";
    assert_eq!(pg.try_psql(&second, tables), Ok("0".into()), "the second database is not empty");
}

#[test]
fn stop_refuses_connections_and_restart_brings_the_data_back() {
    // fsync on: the configuration the outage tests will use.
    let Some(mut pg) = Postgres::start() else { return };
    let url = pg.url();
    assert_eq!(pg.try_psql(&url, "SHOW fsync"), Ok("on".into()));
    pg.try_psql(&url, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (1);").unwrap();
    let port = pg.port();

    pg.stop();
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "the port still accepts connections after stop()");
    let refused = pg.try_psql(&url, "SELECT 1").unwrap_err();
    assert!(refused.contains("Connection refused"), "{refused}");
    assert!(pg.log_tail().contains("received fast shutdown request"), "{}", pg.log_tail());

    pg.restart();
    assert_eq!(pg.url(), url);
    assert_eq!(pg.try_psql(&url, "SELECT x FROM kept"), Ok("1".into()), "after restart");
    pg.try_psql(&url, "INSERT INTO kept VALUES (2)").unwrap();

    // A crash: every process of the cluster gone at once, and what was
    // committed back after recovery.
    pg.kill();
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "the port still accepts connections after kill()");
    assert_eq!(postgres::processes(pg.dir()), Vec::<u32>::new(), "processes of the killed cluster");
    pg.restart();
    assert!(pg.log_tail().contains("automatic recovery in progress"), "kill() was no crash:\n{}", pg.log_tail());
    assert_eq!(pg.try_psql(&url, "SELECT x FROM kept ORDER BY x"), Ok("1\n2".into()), "after a crash");

    // Restarting a running cluster stops it first.
    let before = pg.pid();
    pg.restart();
    assert_ne!(pg.pid(), before);
    assert_eq!(pg.psql("modelreg", "SELECT count(*) FROM kept"), "2");
}

/// The other half of the two tests below, in a test binary of its own that
/// they start (`child::probe`): it starts the shared cluster from a thread
/// that then ends (as a test's thread does), shows the cluster outlived
/// that thread, reports its pid and directory, and then returns or waits
/// to be killed.
#[test]
#[ignore = "a child process of the shared-cluster lifetime tests, which run it"]
fn shared_cluster_in_a_child_process() {
    let Some(file) = child::probe_file() else { return };
    let Some((pg, url)) = std::thread::spawn(postgres::fresh_database).join().unwrap() else { return };
    // A cluster that got its death signal with the thread is shutting down
    // by the time this is done.
    pg.create_database("later");
    pg.try_psql(&url, "SELECT 1").unwrap();
    assert!(!pg.log_tail().contains("shutdown request"), "{}", pg.log_tail());
    child::probe_report(&file, pg.pid(), pg.dir());
}

#[test]
fn the_shared_cluster_dies_with_a_killed_test_binary() {
    if postgres::bin_dir_or_skip().is_none() {
        return;
    }
    // (No other test here leaves an orphan.)
    child::become_subreaper();
    let (mut probe, pid, dir) = child::probe("shared_cluster_in_a_child_process", "kill");
    assert!(child::alive(pid) && child::program(pid).as_deref() == Some("postgres"), "{pid} is not a running postgres");
    let processes = postgres::processes(&dir);
    assert!(processes.contains(&pid) && processes.len() > 1, "no backends of {pid} among {processes:?}");
    // The System V segment: `<key> <id>` on line 7 of postmaster.pid.
    let lock = std::fs::read_to_string(dir.join("data/postmaster.pid")).unwrap();
    let shmid: libc::c_int = lock.lines().nth(6).and_then(|l| l.split_whitespace().nth(1)).and_then(|id| id.parse().ok()).unwrap();

    probe.0.kill().unwrap();
    probe.0.wait().unwrap();
    let Some(status) = child::wait_adopted(pid, Duration::from_secs(10)) else {
        panic!("postgres {pid} outlived its SIGKILLed test binary by 10 s");
    };
    let log = std::fs::read_to_string(dir.join("postgres.log")).unwrap();
    assert!(
        libc::WIFEXITED(status) && log.contains("received immediate shutdown request"),
        "postgres ended with wait status {status:#x}, not by the immediate shutdown PR_SET_PDEATHSIG's SIGQUIT asks for:\n{log}"
    );
    assert_eq!(postgres::processes(&dir), Vec::<u32>::new(), "processes of the cluster outlived its postmaster");
    // SAFETY: IPC_STAT into a struct of ours.
    let mut segment: libc::shmid_ds = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::shmctl(shmid, libc::IPC_STAT, &mut segment) }, -1, "shared memory segment {shmid} outlived the cluster");
    // Nothing ran at exit to delete it.
    assert!(dir.join("data/PG_VERSION").is_file(), "{}", dir.display());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_shared_cluster_and_its_directory_go_when_the_test_binary_exits() {
    if postgres::bin_dir_or_skip().is_none() {
        return;
    }
    let (mut probe, pid, dir) = child::probe("shared_cluster_in_a_child_process", "exit");
    let status = probe.0.wait().unwrap();
    assert!(status.success(), "the child test binary: {status}");
    if child::alive(pid) {
        // SAFETY: a signal to the postgres the child reported, not left running.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        panic!("postgres {pid} outlived its test binary");
    }
    assert!(!dir.exists(), "{} outlived its test binary", dir.display());
}
