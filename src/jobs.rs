//! The background runner for long work. A job's state lives in the `jobs`
//! table (see `registry::jobs`); this module only takes due jobs and runs the
//! function registered for their kind, on threads of its own, each with its
//! own registry handle.
//!
//! Jobs run in three lanes with threads of their own, so that short
//! bookkeeping (a machine's next state) never waits behind a build or a
//! model run, nor either behind a webhook receiver that does not answer. The compute lane has `serve --compute-slots` threads, and
//! within a lane the team with the fewest running jobs goes first
//! (`Registry::claim_job`).
//!
//! Adding a kind of job: write `fn(&JobContext, &Job) -> Result<Value, String>`
//! next to the domain code it belongs to and add it to `HANDLERS`.

use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

use serde_json::Value;

use crate::registry::catalogue::repositories::GitPaths;
use crate::registry::compute::jobs::Lease;
use crate::registry::{Job, Registry};

/// How jobs run: what `serve` was told, or what the offline CLI assumes
/// (`JobSettings::offline`).
#[derive(Clone, Debug)]
pub struct JobSettings {
    pub data_dir: PathBuf,
    /// How long an emulated machine takes to change state.
    pub machine_delay: Duration,
    /// `docker` to build environment images for real; None to only validate.
    pub image_builder: Option<String>,
    /// How many compute jobs (builds, model tests) run at once.
    pub compute_slots: usize,
    /// The Python that runs models (`serve --python`); None: the managed
    /// runtime under the data directory, when installed.
    pub python: Option<PathBuf>,
    /// Where local (`git`) repositories may be registered and pulled from
    /// (`serve --allow-git-path`; the offline CLI's operator: anywhere).
    pub git_paths: GitPaths,
    /// The most bytes one pull from a repository may bring, as an upload
    /// may (`serve --max-upload-bytes`); 0: no cap.
    pub pull_limit: u64,
    /// How long a claimed job stays this process's without a heartbeat
    /// (`--job-lease`): after that, another runner may take it.
    pub lease: Duration,
    /// False for `serve --no-jobs`: the jobs it queues run on workers, with
    /// their runtimes, not this machine's.
    pub runs_jobs: bool,
    /// How webhook deliveries are sent and retried.
    pub webhooks: crate::compute::webhooks::DeliverySettings,
    /// False for `--no-coreml`: Core ML conversions, which are served
    /// unverified, are refused (the offline CLI's operator: allowed).
    pub coreml: bool,
}

/// The lease `--job-lease` gives when it is not set: long enough that a
/// database slow for a moment does not cost a worker its job (heartbeats
/// come every third of it), short enough that a dead machine's jobs are
/// picked up within a minute.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

impl JobSettings {
    /// The settings under which the offline CLI runs jobs itself: no delay
    /// for emulated machines, no image builder, no size cap, and local
    /// repositories anywhere (its user is the operator).
    pub fn offline(data_dir: &Path, python: Option<PathBuf>) -> JobSettings {
        JobSettings {
            data_dir: data_dir.to_path_buf(),
            machine_delay: Duration::ZERO,
            image_builder: None,
            compute_slots: 1,
            python,
            git_paths: GitPaths::Any,
            pull_limit: 0,
            lease: DEFAULT_LEASE,
            runs_jobs: true,
            webhooks: Default::default(),
            coreml: true,
        }
    }

    /// The lease this process's runners take their jobs under.
    pub fn lease(&self) -> Lease {
        Lease { owner: this_runner().to_string(), length: self.lease }
    }

    /// What the compute handlers (model servers, builds, conversions) need.
    pub fn compute(&self) -> crate::compute::jobs::Settings<'_> {
        crate::compute::jobs::Settings {
            data_dir: &self.data_dir,
            python: self.python.as_deref(),
            image_builder: self.image_builder.as_deref(),
            runs_jobs: self.runs_jobs,
            coreml: self.coreml,
        }
    }
}

pub struct JobContext<'a> {
    pub registry: &'a Registry,
    pub options: &'a JobSettings,
    pub lease: &'a Lease,
}

pub type JobFn = fn(&JobContext, &Job) -> Result<Value, String>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// Quick steps that people wait on interactively.
    Bookkeeping,
    /// Builds and model runs: seconds to minutes each, bounded in number.
    Compute,
    /// Webhook deliveries: each waits on a receiver for up to
    /// `--webhook-timeout`, so a dead receiver holds a thread of this lane
    /// and never one of the others.
    Deliveries,
}

/// Threads of the bookkeeping lane: its jobs take milliseconds.
const BOOKKEEPING_THREADS: usize = 2;
/// Threads of the deliveries lane. A team sends at most two webhooks at
/// once (`registry::webhooks::take_webhook`), and each webhook one delivery
/// at a time, so a team whose receivers are dead holds at most two of them.
const DELIVERY_THREADS: usize = 8;

/// Every kind of job, its lane, and the function that runs it.
const HANDLERS: &[(&str, Lane, JobFn)] = &[
    (crate::registry::MACHINE_JOB, Lane::Bookkeeping, advance_machine),
    (crate::registry::compute::environments::BUILD_JOB, Lane::Compute, build_environment),
    // Compute: reading a large CSV takes as long as the file is big.
    (crate::registry::compute::datasets::INGEST_JOB, Lane::Compute, ingest_dataset),
    (crate::registry::compute::dependency_builds::DEPENDENCY_BUILD_JOB, Lane::Compute, build_dependencies),
    (crate::registry::compute::model_tests::TEST_JOB, Lane::Compute, test_model),
    (crate::registry::compute::insights::INSIGHT_JOB, Lane::Compute, compute_insight),
    // Compute: a fetch takes as long as the network and the repository.
    (crate::registry::catalogue::repositories::PULL_JOB, Lane::Compute, pull_from_repository),
    (crate::registry::compute::conversions::CONVERSION_JOB, Lane::Compute, convert),
    (crate::registry::compute::formats::FORMAT_JOB, Lane::Compute, convert_format),
    (crate::registry::webhooks::DELIVERY_JOB, Lane::Deliveries, deliver_webhook),
];

fn kinds_of(lane: Lane) -> Vec<&'static str> {
    HANDLERS.iter().filter(|(_, l, _)| *l == lane).map(|(kind, _, _)| *kind).collect()
}

fn advance_machine(ctx: &JobContext, job: &Job) -> Result<Value, String> {
    ctx.registry.advance_machine_event(job, ctx.options.machine_delay).map_err(|e| e.to_string())
}

fn build_environment(ctx: &JobContext, job: &Job) -> Result<Value, String> {
    crate::registry::compute::envbuild::run_build(ctx.registry, ctx.options.image_builder.as_deref(), job)
}

fn ingest_dataset(ctx: &JobContext, job: &Job) -> Result<Value, String> {
    crate::registry::compute::datasets::run_ingest(ctx.registry, job)
}

fn build_dependencies(ctx: &JobContext, job: &Job) -> Result<Value, String> {
    crate::compute::jobs::run_dependency_build(ctx.registry, &ctx.options.compute(), job)
}

fn compute_insight(ctx: &JobContext, job: &Job) -> Result<Value, String> {
    crate::compute::jobs::run_insight(ctx.registry, &ctx.options.compute(), job)
}

fn test_model(ctx: &JobContext, job: &Job) -> Result<Value, String> {
    crate::compute::jobs::run_model_test(ctx.registry, &ctx.options.compute(), job)
}

fn pull_from_repository(ctx: &JobContext, job: &Job) -> Result<Value, String> {
    let limits = crate::git::pull::PullLimits { git_paths: &ctx.options.git_paths, max_bytes: ctx.options.pull_limit };
    crate::git::pull::run_pull(ctx.registry, &limits, job)
}

fn convert(ctx: &JobContext, job: &Job) -> Result<Value, String> {
    crate::compute::convert::run(ctx.registry, &ctx.options.compute(), job)
}

fn convert_format(ctx: &JobContext, job: &Job) -> Result<Value, String> {
    crate::compute::formats::run(ctx.registry, &ctx.options.compute(), job)
}

fn deliver_webhook(ctx: &JobContext, job: &Job) -> Result<Value, String> {
    crate::compute::webhooks::run(ctx.registry, &ctx.options.webhooks, job)
}

/// How long an idle runner sleeps at most before looking again. Enqueuers
/// call `wake`, so this only bounds the delay for jobs queued by another
/// process (the offline CLI).
const IDLE_POLL: Duration = Duration::from_millis(500);

fn bell() -> &'static (Mutex<u64>, Condvar) {
    static BELL: OnceLock<(Mutex<u64>, Condvar)> = OnceLock::new();
    BELL.get_or_init(|| (Mutex::new(0), Condvar::new()))
}

/// Tells the runners that a job was queued.
pub fn wake() {
    let (count, condvar) = bell();
    *count.lock().unwrap_or_else(|p| p.into_inner()) += 1;
    condvar.notify_all();
}

/// Starts the runner threads of both lanes and their heartbeat. Jobs whose
/// runner is gone (a previous process of this machine, a worker whose lease
/// ran out) are queued again first.
pub fn start(options: &JobSettings) -> crate::registry::Result<()> {
    let registry = Registry::open(&options.data_dir)?;
    let lease = options.lease();
    requeue_abandoned(&registry);
    let lanes = [
        (Lane::Bookkeeping, BOOKKEEPING_THREADS),
        (Lane::Compute, options.compute_slots.max(1)),
        (Lane::Deliveries, DELIVERY_THREADS),
    ];
    for (lane, threads) in lanes {
        let kinds = kinds_of(lane);
        for n in 0..threads {
            let registry = Registry::open(&options.data_dir)?;
            let options = options.clone();
            let kinds = kinds.clone();
            let lease = lease.clone();
            std::thread::Builder::new()
                .name(format!("jobs-{lane:?}-{n}").to_lowercase())
                .spawn(move || run_forever(&JobContext { registry: &registry, options: &options, lease: &lease }, &kinds))
                .map_err(|e| crate::registry::Error::Internal(format!("cannot start job thread: {e}")))?;
        }
    }
    std::thread::Builder::new()
        .name("jobs-heartbeat".into())
        .spawn(move || heartbeat(&registry, &lease))
        .map_err(|e| crate::registry::Error::Internal(format!("cannot start job thread: {e}")))?;
    Ok(())
}

/// Every third of a lease: renews the leases of the jobs this process
/// runs, and queues again the jobs of runners that are gone.
fn heartbeat(registry: &Registry, lease: &Lease) {
    loop {
        std::thread::sleep(lease.length / 3);
        if let Err(e) = registry.renew_job_leases(lease) {
            eprintln!("modelreg: renewing the leases of this process's jobs failed: {e}");
        }
        requeue_abandoned(registry);
    }
}

fn requeue_abandoned(registry: &Registry) {
    match registry.requeue_abandoned_jobs(&owner_is_gone) {
        Ok(0) => {}
        Ok(n) => {
            eprintln!("modelreg: {n} job(s) whose runner is gone queued again");
            wake();
        }
        Err(e) => eprintln!("modelreg: looking for jobs whose runner is gone failed: {e}"),
    }
}

/// This process as the holder of job leases: the kernel's boot, its PID
/// namespace, its pid and its start time. Two processes never share it,
/// even with a reused pid, and another process that shares the first two
/// can tell from /proc whether it still runs (`owner_is_gone`).
fn this_runner() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let pid = std::process::id();
        format!("{}/{}/{pid}/{}", boot_id(), pid_namespace(), start_time(pid).unwrap_or_default())
    })
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|s| s.trim().to_string()).unwrap_or_default()
}

fn pid_namespace() -> String {
    std::fs::read_link("/proc/self/ns/pid").map(|p| p.display().to_string()).unwrap_or_default()
}

/// A process's start time in clock ticks since boot (field 22 of its stat).
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name (field 2) may hold spaces and parentheses: count from its end
    stat.rsplit_once(')')?.1.split_whitespace().nth(19).map(String::from)
}

/// Whether the runner named `owner` (see `this_runner`) is known to have
/// exited: it ran under this kernel and PID namespace, and no process with
/// its pid and start time runs now. A runner elsewhere is never known to be
/// gone here; its lease says when it is.
fn owner_is_gone(owner: &str) -> bool {
    let mut parts = owner.split('/');
    let (Some(boot), Some(namespace), Some(pid), Some(started)) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(pid), true) = (pid.parse::<u32>(), !boot.is_empty()) else { return false };
    boot == boot_id() && namespace == pid_namespace() && start_time(pid).as_deref() != Some(started)
}

fn run_forever(ctx: &JobContext, kinds: &[&str]) {
    loop {
        let (count, condvar) = bell();
        let seen = *count.lock().unwrap_or_else(|p| p.into_inner());
        match ctx.registry.claim_job(kinds, ctx.lease) {
            Ok(Some(job)) => {
                run_one(ctx, &job);
                continue;
            }
            Ok(None) => {}
            Err(e) => eprintln!("modelreg: claiming a job failed: {e}"),
        }
        let wait = match ctx.registry.next_job_due(kinds) {
            Ok(Some(due)) => until(&due).min(IDLE_POLL),
            _ => IDLE_POLL,
        };
        let guard = count.lock().unwrap_or_else(|p| p.into_inner());
        if *guard == seen {
            let _ = condvar.wait_timeout(guard, wait);
        }
    }
}

/// Runs one claimed job to its end and records the outcome. Also used by
/// the offline CLI for the jobs it queued itself.
pub fn run_one(ctx: &JobContext, job: &Job) {
    let started = std::time::Instant::now();
    let handler = HANDLERS.iter().find(|(kind, _, _)| *kind == job.kind).map(|(_, _, f)| *f);
    let outcome = match handler {
        // A panicking job (a bug, or a library choking on hostile input)
        // fails that job instead of killing the runner thread.
        Some(run) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(ctx, job)))
            .unwrap_or_else(|_| Err("the job failed unexpectedly (it panicked); see the server log".into())),
        None => Err(format!("no worker for jobs of kind {}", job.kind)),
    };
    crate::metrics::observe_job(&job.kind, outcome.is_ok(), started.elapsed());
    if let Err(e) = ctx.registry.finish_job(&job.id, ctx.lease, outcome) {
        eprintln!("modelreg: recording the end of job {} failed: {e}", job.id);
    }
}

/// Runs, in this process, the queued jobs about `subject`: the offline CLI
/// finishes the work it queued itself and leaves everyone else's alone.
pub fn run_jobs_about(registry: &Registry, options: &JobSettings, subject: &str) -> crate::registry::Result<()> {
    let kinds: Vec<&str> = HANDLERS.iter().map(|(kind, _, _)| *kind).collect();
    let lease = options.lease();
    while let Some(job) = registry.claim_job_about(&kinds, subject, &lease)? {
        run_one(&JobContext { registry, options, lease: &lease }, &job);
    }
    Ok(())
}

/// Time from now until an RFC 3339 instant (zero if it is past).
fn until(rfc3339: &str) -> Duration {
    let format = time::format_description::well_known::Rfc3339;
    match time::OffsetDateTime::parse(rfc3339, &format) {
        Ok(t) => {
            let delta = t - time::OffsetDateTime::now_utc();
            if delta.is_negative() {
                Duration::ZERO
            } else {
                delta.unsigned_abs()
            }
        }
        Err(_) => Duration::ZERO,
    }
}
