//! The command line: `modelreg serve`, administration of the data
//! directory, and the registry operations, offline on the data directory or
//! against a server with `--server`.

mod admin;
mod custom_templates;
mod machines;
mod datarobot;
mod datasets;
mod download;
mod local;
mod models;
mod progress;
mod remote;
mod repositories;
mod runtime;
mod table;
mod version_handle;
mod webhooks;
mod workflow;

use std::path::PathBuf;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::http::{RateLimit, ServerOptions};
use crate::registry::{Error, Principal, Registry};

/// The port `modelreg serve` listens on unless told otherwise.
pub const DEFAULT_BIND: &str = "127.0.0.1:8420";

#[derive(Parser)]
#[command(name = "modelreg", version, about = "A self-hosted model registry that speaks the Octomil, Paperspace and DataRobot APIs")]
#[command(after_help = "Examples:\n  \
    modelreg init && modelreg serve\n  \
    modelreg --server https://models.example.com --token \"$MODELREG_KEY\" versions download fraud-xgb@champion -o model.json")]
pub struct Cli {
    /// The data directory (database and blobs). Default: the platform's data directory for modelreg.
    #[arg(long, global = true, env = "MODELREG_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Talk to a running server at this URL instead of the data directory.
    #[arg(long, global = true, env = "MODELREG_SERVER")]
    server: Option<String>,
    /// API key for --server (default: the data directory's admin.key).
    #[arg(long, global = true, env = "MODELREG_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print machine-readable JSON (errors too: one JSON object on stderr).
    #[arg(long, global = true)]
    json: bool,
    /// How S3 requests name the bucket: `path` (https://HOST/BUCKET/key) or `virtual-host`
    /// (https://BUCKET.HOST/key). Default: path when AWS_ENDPOINT_URL is set, else virtual-host.
    #[arg(long, global = true, env = "MODELREG_S3_URL_STYLE", value_parser = parse_url_style, value_name = "STYLE")]
    s3_url_style: Option<crate::registry::UrlStyle>,
    /// Keep the registry's records in this PostgreSQL database
    /// (postgres://USER:PASSWORD@HOST:PORT/DB), shared by several servers and workers,
    /// instead of SQLite in the data directory.
    #[arg(long, global = true, env = "MODELREG_DATABASE_URL", hide_env_values = true, value_name = "URL")]
    database: Option<String>,
    /// At most this many connections to a --database, per process.
    #[arg(long, global = true, env = "MODELREG_DB_POOL", default_value_t = crate::registry::database::DEFAULT_POOL, value_name = "N")]
    db_pool: usize,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum DbCommand {
    /// Copy the data directory's SQLite database into an empty PostgreSQL database
    /// (postgres://USER:PASSWORD@HOST:PORT/DB), compare every table's row count and checksum
    /// there, and say how to switch. Stop the server on this data directory first; the SQLite
    /// file is left as it was.
    #[command(after_help = "Example:\n  modelreg db migrate --to postgres://modelreg:secret@db:5432/modelreg")]
    Migrate {
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

#[derive(Subcommand)]
enum BlobsCommand {
    /// Copy every blob to another store (`s3://BUCKET[/PREFIX]`, or `local`), read each back
    /// there and check its sha256, then switch the registry to it. Interrupted, run it again:
    /// what is already there is kept. It switches only when no server runs on the data
    /// directory; the old store is left as it was.
    #[command(after_help = "Example:\n  modelreg blobs migrate --to s3://models/registry")]
    Migrate {
        #[arg(long, value_parser = crate::registry::BlobLocation::parse, value_name = "STORE")]
        to: crate::registry::BlobLocation,
    },
}

/// Where a new registry keeps its bytes (`init`, `serve`).
#[derive(clap::Args)]
struct StoreArgs {
    /// `local` (the data directory's blobs/, the default) or `s3://BUCKET[/PREFIX]`, reached
    /// through AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. The
    /// registry records it; a registry holding blobs is moved with `blobs migrate`, not this.
    #[arg(long, env = "MODELREG_BLOB_STORE", value_parser = crate::registry::BlobLocation::parse, value_name = "STORE")]
    blob_store: Option<crate::registry::BlobLocation>,
}

fn parse_url_style(text: &str) -> Result<crate::registry::UrlStyle, String> {
    match text {
        "path" => Ok(crate::registry::UrlStyle::Path),
        "virtual-host" => Ok(crate::registry::UrlStyle::VirtualHost),
        other => Err(format!("{other:?}: expected `path` or `virtual-host`")),
    }
}

/// `1048576`, `512M`, `10G`: a byte count with an optional binary suffix.
fn parse_byte_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, shift) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(format!("{text:?}: the suffix must be K, M, G or T")),
            };
            (&text[..i], shift)
        }
        _ => (text, 0),
    };
    let n: u64 = digits.trim().parse().map_err(|_| format!("{text:?}: expected a number of bytes, such as 10G"))?;
    n.checked_mul(1 << shift).ok_or_else(|| format!("{text:?} is too large"))
}

fn parse_on_off(text: &str) -> Result<bool, String> {
    match text {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(format!("{other:?}: expected `on` or `off`")),
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (creates the data directory if needed, and makes it private).
    #[command(after_help = "Examples:\n  \
        modelreg serve --data-dir /var/lib/modelreg --bind 0.0.0.0:8420\n  \
        modelreg serve --blob-store s3://models/registry --database postgres://modelreg:secret@db:5432/modelreg --no-jobs")]
    Serve(Box<ServeArgs>),
    /// Run jobs only (builds, model tests, conversions, machine state changes), no HTTP: a
    /// compute machine of a registry whose --database and --blob-store several processes share.
    #[command(after_help = "Example:\n  \
        modelreg worker --database postgres://modelreg:secret@db:5432/modelreg --blob-store s3://models/registry --compute-slots 4")]
    Worker(Box<WorkerArgs>),
    /// Create the data directory, its first team, user and API key; on an existing one, make its
    /// files private again. Only `init` and `serve` create a data directory.
    #[command(after_help = "Examples:\n  modelreg init --data-dir /var/lib/modelreg\n  modelreg init --blob-store s3://models/registry")]
    Init(StoreArgs),
    /// Manage teams (with --server: the /api/modelreg/v1/ admin routes; creating a team needs an
    /// admin key of the first team).
    #[command(subcommand, after_help = "Examples:\n  \
        modelreg teams add research\n  \
        modelreg --server https://models.example.com teams list")]
    Teams(admin::TeamsCommand),
    /// Manage users (with --server: a team admin's key manages its own team).
    #[command(subcommand, after_help = "Examples:\n  \
        modelreg users add alice --team research --email alice@example.com --admin\n  \
        modelreg users list --team research")]
    Users(admin::UsersCommand),
    /// Manage API keys (with --server: any key manages its own user's keys, a team admin's its team's).
    #[command(subcommand, after_help = "Examples:\n  modelreg keys create --user alice --label laptop\n  modelreg keys list")]
    Keys(admin::KeysCommand),
    /// Send the team's events (new versions, alias moves, deletions, finished tests and
    /// conversions) to a URL, signed (with --server: a team admin's key).
    #[command(subcommand, after_help = "Examples:\n  \
        modelreg webhooks create https://ci.example.com/hooks/modelreg --secret \"$HOOK_SECRET\" --event version.created\n  \
        modelreg webhooks deliveries 0192f3c1-…")]
    Webhooks(webhooks::WebhooksCommand),
    /// Re-hash every blob, check that referenced blobs exist, and check the database.
    /// Works on the data directory only (not with --server).
    #[command(after_help = "Examples:\n  modelreg verify\n  modelreg --json verify | jq .problems")]
    Verify,
    /// Copy the registry, while it runs, into DEST (a new or empty directory): the database
    /// through SQLite's backup API, then every blob it references (hard links when DEST is on
    /// the same file system). DEST is then a data directory of its own. Not with --server.
    #[command(after_help = "Examples:\n  modelreg backup /backups/modelreg-$(date +%F)\n  modelreg backup /backups/modelreg --with-blobs")]
    Backup {
        /// Where to put the backup; must not exist, or be empty.
        dest: PathBuf,
        /// On a registry whose blobs are in an object store, copy them into the backup too
        /// (which is then a local registry of its own); without it, the backup holds the
        /// database and says where the blobs are.
        #[arg(long)]
        with_blobs: bool,
    },
    /// Where the registry keeps its bytes. Works on the data directory only (not with --server).
    #[command(subcommand, after_help = "Example:\n  modelreg blobs migrate --to s3://models/registry")]
    Blobs(BlobsCommand),
    /// Where the registry keeps its records. Works on the data directory only (not with --server).
    #[command(subcommand, after_help = "Example:\n  modelreg db migrate --to postgres://modelreg:secret@db:5432/modelreg")]
    Db(DbCommand),
    /// Restore a backup made by `modelreg backup` as the data directory (--data-dir), which
    /// must not exist or be empty. Stop the server first; not with --server.
    #[command(after_help = "Example:\n  modelreg restore /backups/modelreg-2025-01-31 --data-dir /var/lib/modelreg")]
    Restore {
        /// The backup directory.
        backup: PathBuf,
    },
    /// Remove blobs no version references, and temp files left by crashes.
    /// Works on the data directory only (not with --server); waits for a running backup.
    #[command(after_help = "Examples:\n  modelreg gc --dry-run\n  modelreg gc --grace-secs 0")]
    Gc {
        /// Only report what would be removed.
        #[arg(long)]
        dry_run: bool,
        /// Leave alone anything younger than this many seconds.
        #[arg(long, default_value_t = 3600)]
        grace_secs: u64,
    },
    /// Models in the registry.
    #[command(subcommand, after_help = "Examples:\n  modelreg models list --search fraud\n  modelreg models show fraud-xgb")]
    Models(models::ModelsCommand),
    /// Versions of a model (their weight files).
    #[command(subcommand, after_help = "Examples:\n  \
        modelreg versions upload fraud-xgb model.json\n  \
        modelreg versions download fraud-xgb@champion -o model.json")]
    Versions(models::VersionsCommand),
    /// Paperspace machines: records with an emulated lifecycle (no hardware is provisioned).
    ///
    /// Offline, a state change (create, start, stop, restart) completes before the command
    /// returns. With --server the command returns what the server answers: the machine in its
    /// transitional state (provisioning, starting, stopping, restarting); the server finishes
    /// the change after its --machine-delay-ms.
    #[command(subcommand, after_help = "Examples:\n  \
        modelreg machines create --name trainer --machine-type A4000 --template t0nspur5\n  \
        modelreg machines list")]
    Machines(machines::MachinesCommand),
    /// Paperspace machine templates: the built-in OS templates and the team's custom ones.
    #[command(subcommand, after_help = "Examples:\n  \
        modelreg templates list --public\n  \
        modelreg templates create --name golden --machine psuyxelq2vbf")]
    Templates(machines::TemplatesCommand),
    /// DataRobot custom models and their versions (with --server: the /api/v2/customModels/ routes).
    #[command(subcommand, after_help = "Examples:\n  \
        modelreg custom-models create --name churn --target-type Binary --target-name churned\n  \
        modelreg custom-models versions create churn ./model --base-environment-id 0192f3c1-…")]
    CustomModels(datarobot::CustomModelsCommand),
    /// DataRobot custom templates: the built-in catalogue and the team's own (with --server:
    /// the /api/v2/customTemplates/ routes). `custom-models create --from-template` uses them.
    #[command(subcommand, after_help = "Examples:\n  \
        modelreg custom-templates list --template-sub-type Binary\n  \
        modelreg custom-models create --from-template python3-binary --resource-bundle-id cpu.small --secret-config-id none")]
    CustomTemplates(custom_templates::CustomTemplatesCommand),
    /// DataRobot execution environments (with --server: the /api/v2/executionEnvironments/ routes).
    #[command(subcommand, after_help = "Examples:\n  \
        modelreg environments create --name py311 --programming-language python\n  \
        modelreg environments add-version 0192f3c1-… context.tar.gz --label 3.11")]
    Environments(datarobot::EnvironmentsCommand),
    /// DataRobot datasets: uploaded CSV files, ingested for their columns and row count
    /// (with --server: the /api/v2/datasets/ routes).
    #[command(subcommand, after_help = "Examples:\n  modelreg datasets upload houses.csv --name Houses\n  modelreg datasets list")]
    Datasets(datasets::DatasetsCommand),
    /// Remote git repositories that custom model versions are pulled from
    /// (with --server: the /api/v2/remoteRepositories/ routes).
    #[command(subcommand, after_help = "Examples:\n  \
        modelreg repositories add --name models --location https://github.com/acme/models\n  \
        modelreg custom-models versions create churn --from-repository 0192f3c1-… --ref main --path churn/")]
    Repositories(repositories::RepositoriesCommand),
    /// The Python runtime (DataRobot's DRUM) that runs custom model tests and dependency builds.
    #[command(subcommand, after_help = "Examples:\n  modelreg runtime install --with scikit-learn\n  modelreg runtime show")]
    Runtime(runtime::RuntimeCommand),
    /// Internal: runs a model server in namespaces of its own (see src/compute/contain.rs).
    #[command(hide = true)]
    Contain(crate::compute::contain::ContainArgs),
}

/// How this process reaches an S3 store: `serve` and `worker` alike.
#[derive(clap::Args)]
struct S3Args {
    /// How long a request to the S3 store may wait for progress (to connect, for the next bytes
    /// of an answer, to send) before the store counts as unavailable (503). E.g. 30s, 500ms.
    #[arg(long, env = "MODELREG_S3_TIMEOUT", default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    s3_timeout: Duration,
    /// Where jobs (model tests, conversions) keep their copies of an S3 registry's blobs.
    /// Default: cache/blobs in the data directory.
    #[arg(long, env = "MODELREG_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// How large that cache may grow before the least recently used blobs leave: bytes, or
    /// with K, M, G or T (powers of 1024). Default: 10G.
    #[arg(long, env = "MODELREG_CACHE_SIZE", value_parser = parse_byte_size, value_name = "SIZE")]
    cache_size: Option<u64>,
}

/// How this process runs jobs: `serve` (unless --no-jobs) and `worker` alike.
#[derive(clap::Args)]
struct JobArgs {
    /// How long an emulated Paperspace machine takes to change state, in milliseconds.
    /// Given twice, the last wins.
    #[arg(long, env = "MODELREG_MACHINE_DELAY_MS", default_value_t = 3000, overrides_with = "machine_delay_ms")]
    machine_delay_ms: u64,
    /// Build execution environment images with this engine (`docker`); default: validate only.
    #[arg(long, env = "MODELREG_IMAGE_BUILDER")]
    image_builder: Option<String>,
    /// How many compute jobs (environment and dependency builds, model tests) run at once.
    #[arg(long, env = "MODELREG_COMPUTE_SLOTS", default_value_t = 2)]
    compute_slots: usize,
    /// The Python interpreter that runs models (it must have datarobot-drum); default: the
    /// runtime `modelreg runtime install` put in the data directory.
    #[arg(long, env = "MODELREG_PYTHON")]
    python: Option<PathBuf>,
    /// Allow local git repositories (remoteRepositories of sourceType `git`) under this folder.
    /// Repeatable (in the environment: separated by commas); none by default, so team admins
    /// can only register https repositories.
    #[arg(long = "allow-git-path", env = "MODELREG_ALLOW_GIT_PATHS", value_delimiter = ',', value_name = "DIR")]
    allow_git_paths: Vec<PathBuf>,
    /// How long a job this process claimed stays its own without a heartbeat (sent every third
    /// of it): if the process dies, another `serve` or `worker` on the same database takes the
    /// job after this long. E.g. 30s, 2m.
    #[arg(long, env = "MODELREG_JOB_LEASE", default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    job_lease: Duration,
    /// The longest one webhook delivery attempt may take, connecting included.
    #[arg(long, env = "MODELREG_WEBHOOK_TIMEOUT", default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    webhook_timeout: Duration,
    /// How long after a failed webhook delivery the next attempt comes; each later wait doubles
    /// (at most an hour), for 24 hours after the event.
    #[arg(long, env = "MODELREG_WEBHOOK_FIRST_RETRY", default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    webhook_first_retry: Duration,
    /// Make and serve no Core ML conversions (Octomil's `?format=coreml`): nothing on Linux can
    /// run a Core ML model, so modelreg serves one unverified, marked so. With it, asking for one
    /// is a 403 saying the operator turned Core ML off, and a job that asks fails. Give servers
    /// and workers of one database the same choice.
    #[arg(long, env = "MODELREG_NO_COREML")]
    no_coreml: bool,
}

#[derive(clap::Args)]
struct WorkerArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    s3: S3Args,
    #[command(flatten)]
    jobs: JobArgs,
    /// The most bytes one pull from a remote repository may bring; 0: no cap.
    #[arg(long, env = "MODELREG_MAX_UPLOAD_BYTES", default_value_t = 64 * 1024 * 1024 * 1024)]
    max_upload_bytes: u64,
}

#[derive(clap::Args)]
struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The S3 endpoint as clients reach it, for the presigned URLs they are given (download-url,
    /// redirects), when the server reaches the store at an internal name.
    #[arg(long, env = "MODELREG_S3_PUBLIC_ENDPOINT", value_name = "URL")]
    s3_public_endpoint: Option<String>,
    /// `on`: authenticated downloads of an S3 registry answer 307 to a presigned GET of the
    /// store; `off` (default): they stream through modelreg, since some clients (the Octomil
    /// SDK) do not follow redirects.
    #[arg(long, env = "MODELREG_S3_REDIRECT", action = clap::ArgAction::Set, value_parser = parse_on_off, default_value = "off", value_name = "on|off")]
    s3_redirect: bool,
    #[command(flatten)]
    s3: S3Args,
    /// Address to listen on.
    #[arg(long, env = "MODELREG_BIND", default_value = DEFAULT_BIND)]
    bind: String,
    /// No longer used: each request runs on its connection's thread (bounded by
    /// --max-connections). Accepted so that existing scripts keep working.
    #[arg(long, hide = true, env = "MODELREG_WORKERS")]
    workers: Option<usize>,
    /// Largest accepted upload, in bytes.
    #[arg(long, env = "MODELREG_MAX_UPLOAD_BYTES", default_value_t = 64 * 1024 * 1024 * 1024)]
    max_upload_bytes: u64,
    /// Largest accepted JSON body, in bytes.
    #[arg(long, env = "MODELREG_MAX_JSON_BYTES", default_value_t = 1024 * 1024)]
    max_json_bytes: u64,
    /// Close a connection whose client sends or reads nothing for this long, in milliseconds.
    #[arg(long, env = "MODELREG_IO_TIMEOUT_MS", default_value_t = 30_000)]
    io_timeout_ms: u64,
    /// Most client connections served at once; further ones wait to be accepted.
    #[arg(long, env = "MODELREG_MAX_CONNECTIONS", default_value_t = 512)]
    max_connections: usize,
    /// Most connections open at once from one client address; further ones get 503 and are
    /// closed. 0: no limit (behind a reverse proxy every client has the proxy's address).
    #[arg(long, env = "MODELREG_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 64)]
    max_connections_per_address: usize,
    /// A request head (request line and headers) must arrive whole within this many
    /// milliseconds: of the connection's start for its first request, of its first byte
    /// for later ones. Separate from --io-timeout-ms, which bounds each wait for body bytes.
    #[arg(long, env = "MODELREG_HEAD_TIMEOUT_MS", default_value_t = 10_000)]
    head_timeout_ms: u64,
    /// After SIGTERM or SIGINT the listening socket closes at once; requests in flight get
    /// this long to finish before the process exits (0). E.g. 30s, 500ms; a bare number is
    /// seconds.
    #[arg(long, env = "MODELREG_SHUTDOWN_GRACE", default_value = "30s", value_parser = parse_duration)]
    shutdown_grace: Duration,
    /// How often gc runs while serving (it removes blobs nothing references, older than an
    /// hour, and temp files of uploads that died); `off` never. E.g. 6h, 30m; a bare number
    /// is seconds. Temp files no live upload owns are also swept at start.
    #[arg(long, env = "MODELREG_GC_INTERVAL", default_value = "6h", value_parser = parse_interval)]
    gc_interval: Interval,
    /// Per-key rate limit: REQUESTS_PER_SECOND or REQUESTS_PER_SECOND/BURST. Off by default.
    #[arg(long, env = "MODELREG_RATE_LIMIT")]
    rate_limit: Option<RateLimit>,
    /// Run no jobs here (builds, model tests, conversions, machine state changes): leave them
    /// to `modelreg worker` processes on the same --database, so compute stays off API servers.
    #[arg(long, env = "MODELREG_NO_JOBS")]
    no_jobs: bool,
    #[command(flatten)]
    jobs: JobArgs,
    /// The URL clients reach modelreg at, when it differs from what they send in Host (behind a
    /// TLS proxy: https://models.example.com). Used for every absolute URL modelreg returns.
    #[arg(long, env = "MODELREG_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,
    /// Trust X-Forwarded-Proto, -Host and -For from this proxy address or CIDR block
    /// (repeatable; in the environment: separated by commas): absolute URLs follow them, and
    /// the access log shows the client behind it.
    #[arg(long = "trusted-proxy", env = "MODELREG_TRUSTED_PROXIES", value_delimiter = ',', value_name = "ADDR")]
    trusted_proxies: Vec<crate::http::forwarded::Cidr>,
    /// How long the signed URLs of Octomil's upload-url and download-url work, in seconds.
    #[arg(long, env = "MODELREG_SIGNED_URL_TTL_SECS", default_value_t = 900)]
    signed_url_ttl_secs: u64,
    /// Do not convert Octomil uploads to ONNX as they arrive (by default they are, when the
    /// runtime has the converters); a download of a missing format still converts it.
    #[arg(long, env = "MODELREG_NO_CONVERT_ON_UPLOAD")]
    no_convert_on_upload: bool,
    /// The access log's form on stderr: `text` (one line per request) or `json` (one object per line).
    #[arg(long, env = "MODELREG_LOG_FORMAT", value_enum, default_value_t = crate::http::access_log::LogFormat::Text)]
    log_format: crate::http::access_log::LogFormat,
    /// A bearer token that may read /metrics and nothing else (for a Prometheus scrape job),
    /// read from this file. Without it, only admin keys of the first team read /metrics.
    #[arg(long, env = "MODELREG_METRICS_TOKEN_FILE", value_name = "FILE")]
    metrics_token_file: Option<PathBuf>,
}

pub fn main() -> i32 {
    let matches = Cli::command().get_matches();
    let server_from_env = matches.value_source("server") == Some(ValueSource::EnvVariable);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if !matches!(cli.command, Command::Serve(_) | Command::Contain(_)) {
        die_quietly_on_broken_pipe();
    }
    let as_json = cli.json;
    match run(cli, server_from_env) {
        Ok(code) => code,
        Err(e) => {
            report_error(&e, as_json);
            1
        }
    }
}

/// `modelreg … | head` closes stdout early; like any Unix tool, the command
/// should then just end. Rust ignores SIGPIPE, so `println!` would panic
/// instead (exit 101); restoring the default makes the write end the
/// process. Only for the CLI: the server must survive a client that hangs
/// up, and its sockets never raise SIGPIPE anyway (Rust sends with
/// MSG_NOSIGNAL).
fn die_quietly_on_broken_pipe() {
    // SAFETY: setting a signal's disposition to its default has no
    // preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// An error on stderr: a line of text, or with --json one JSON object
/// (`error`, `message`, and `field` or `details` when the error has them),
/// so that a script reading JSON can read failures too.
fn report_error(error: &Error, as_json: bool) {
    if !as_json {
        eprintln!("error: {error}");
        return;
    }
    let code = match error {
        Error::NotFound(_) | Error::NoRoute(_) => "not_found",
        Error::Conflict(_) => "conflict",
        Error::Invalid { .. } => "invalid",
        Error::Forbidden(_) => "forbidden",
        Error::TooLarge(_) => "too_large",
        Error::Unauthorized(_) => "unauthorized",
        Error::RateLimited { .. } => "rate_limited",
        Error::MethodNotAllowed { .. } => "method_not_allowed",
        Error::Unprocessable { .. } => "unprocessable",
        Error::InsufficientStorage(_) => "insufficient_storage",
        Error::Unavailable(_) => "unavailable",
        Error::Internal(_) => "internal",
    };
    let mut body = serde_json::json!({"error": code, "message": error.message()});
    match error {
        Error::Invalid { field, .. } => body["field"] = field.clone().into(),
        Error::Unprocessable { details, .. } if !details.is_null() => body["details"] = details.clone(),
        _ => {}
    }
    eprintln!("{body}");
}

/// Commands that act on the files of a data directory cannot act through a
/// server; saying so beats acting on a local directory the user did not mean.
fn local_only(command: &str, server: Option<&str>, from_env: bool) -> Result<(), Error> {
    let Some(server) = server else { return Ok(()) };
    let how = if from_env { " (it comes from MODELREG_SERVER; unset it)" } else { "" };
    Err(Error::invalid(
        "server",
        format!(
            "`modelreg {command}` works on the data directory of the machine it runs on and cannot run against \
             a server; run it on the server's machine without --server {server}{how}"
        ),
    ))
}

/// Says what `init` and `serve` did to the data directory.
fn announce_prepared(prepared: &crate::registry::Prepared) {
    let dir = prepared.registry.data_dir();
    if prepared.created {
        eprintln!("modelreg: created the data directory {} (readable by its owner only)", dir.display());
    }
    if !prepared.fixed.is_empty() {
        eprintln!(
            "modelreg: made {} file(s) and folder(s) in {} private (mode 0600/0700; group or others could read them), e.g. {}",
            prepared.fixed.len(),
            dir.display(),
            prepared.fixed[0].display()
        );
    }
}

fn default_data_dir() -> Result<PathBuf, Error> {
    directories::ProjectDirs::from("", "", "modelreg")
        .map(|dirs| dirs.data_dir().to_path_buf())
        .ok_or_else(|| Error::Internal("no home directory to put the data in; pass --data-dir".into()))
}

fn run(cli: Cli, server_from_env: bool) -> Result<i32, Error> {
    let data_dir = match &cli.data_dir {
        Some(dir) => dir.clone(),
        None => default_data_dir()?,
    };
    let server = cli.server.as_deref();
    if let Some(url) = &cli.database {
        if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
            return Err(Error::Invalid {
                field: "--database".into(),
                message: "must be a PostgreSQL URL, postgres://USER:PASSWORD@HOST:PORT/DB (without it, the registry is SQLite in the data directory)".into(),
            });
        }
        if cli.db_pool == 0 {
            return Err(Error::Invalid { field: "--db-pool".into(), message: "must be at least 1".into() });
        }
        crate::registry::database::use_postgres(url, cli.db_pool);
    }
    if !matches!(cli.command, Command::Serve(_) | Command::Init(_)) {
        crate::registry::storage::configure_s3(crate::registry::S3Options { url_style: cli.s3_url_style, ..Default::default() });
    }
    let admin_target = || -> Result<admin::Admin, Error> {
        Ok(match server {
            Some(url) => admin::Admin::Remote(remote::connect(&data_dir, url, cli.token.as_deref())?),
            None => admin::Admin::Local(Box::new(Registry::open_existing(&data_dir)?)),
        })
    };
    match cli.command {
        Command::Serve(args) => {
            local_only("serve", server, server_from_env)?;
            serve(data_dir, *args, cli.s3_url_style)
        }
        Command::Worker(args) => {
            local_only("worker", server, server_from_env)?;
            worker(data_dir, *args, cli.s3_url_style)
        }
        Command::Init(store) => {
            local_only("init", server, server_from_env)?;
            crate::registry::storage::configure_s3(crate::registry::S3Options { url_style: cli.s3_url_style, ..Default::default() });
            let prepared = Registry::prepare(&data_dir, store.blob_store.as_ref())?;
            announce_prepared(&prepared);
            admin::announce_bootstrap(&prepared.registry)?;
            Ok(0)
        }
        Command::Teams(cmd) => admin::teams(&admin_target()?, cmd, cli.json),
        Command::Users(cmd) => admin::users(&admin_target()?, cmd, cli.json),
        Command::Keys(cmd) => admin::keys(&admin_target()?, cmd, cli.json),
        Command::Webhooks(cmd) => webhooks::webhooks(&target(&data_dir, cli.server.as_deref(), cli.token.as_deref())?, cmd, cli.json),
        Command::Verify => {
            local_only("verify", server, server_from_env)?;
            admin::verify(&Registry::open_existing(&data_dir)?, cli.json)
        }
        Command::Backup { dest, with_blobs } => {
            local_only("backup", server, server_from_env)?;
            admin::backup(&Registry::open_existing(&data_dir)?, &dest, with_blobs, cli.json)
        }
        Command::Blobs(BlobsCommand::Migrate { to }) => {
            local_only("blobs migrate", server, server_from_env)?;
            admin::migrate_blobs(&mut Registry::open_existing(&data_dir)?, &to, cli.json)
        }
        Command::Db(DbCommand::Migrate { to }) => {
            local_only("db migrate", server, server_from_env)?;
            admin::migrate_database(&Registry::open_existing(&data_dir)?, &to, cli.json)
        }
        Command::Restore { backup } => {
            local_only("restore", server, server_from_env)?;
            admin::restore(&backup, &data_dir, cli.json)
        }
        Command::Gc { dry_run, grace_secs } => {
            local_only("gc", server, server_from_env)?;
            admin::gc(&Registry::open_existing(&data_dir)?, Duration::from_secs(grace_secs), dry_run, cli.json)
        }
        Command::Models(cmd) => {
            let backend = models::backend(&data_dir, cli.server.as_deref(), cli.token.as_deref())?;
            models::models(backend.as_ref(), cmd, cli.json)
        }
        Command::Versions(cmd) => {
            let backend = models::backend(&data_dir, cli.server.as_deref(), cli.token.as_deref())?;
            models::versions(backend.as_ref(), cmd, cli.json)
        }
        Command::Machines(cmd) => {
            machines::machines(&target(&data_dir, cli.server.as_deref(), cli.token.as_deref())?, cmd, cli.json)
        }
        Command::Templates(cmd) => {
            machines::templates(&target(&data_dir, cli.server.as_deref(), cli.token.as_deref())?, cmd, cli.json)
        }
        Command::CustomModels(cmd) => {
            datarobot::custom_models(&target(&data_dir, cli.server.as_deref(), cli.token.as_deref())?, cmd, cli.json)
        }
        Command::CustomTemplates(cmd) => custom_templates::custom_templates(
            &target(&data_dir, cli.server.as_deref(), cli.token.as_deref())?,
            cmd,
            cli.json,
        ),
        Command::Environments(cmd) => {
            datarobot::environments(&target(&data_dir, cli.server.as_deref(), cli.token.as_deref())?, cmd, cli.json)
        }
        Command::Datasets(cmd) => {
            datasets::datasets(&target(&data_dir, cli.server.as_deref(), cli.token.as_deref())?, cmd, cli.json)
        }
        Command::Repositories(cmd) => {
            repositories::repositories(&target(&data_dir, cli.server.as_deref(), cli.token.as_deref())?, cmd, cli.json)
        }
        Command::Runtime(cmd) => {
            if server.is_none() && !data_dir.is_dir() {
                // The runtime lives in the data directory; making it is for
                // `init` (a directory that holds only a shared runtime, with
                // no registry, is fine: runtime commands never open one).
                return Err(Error::NotFound(format!(
                    "no data directory at {}; create one with `modelreg init`, or pass --data-dir",
                    data_dir.display()
                )));
            }
            runtime::runtime(&data_dir, server, cmd, cli.json)
        }
        Command::Contain(args) => Ok(crate::compute::contain::main(args)),
    }
}

/// Where a registry command runs: on the data directory as its first admin
/// user, or against a server with `--server`.
pub(crate) enum Target {
    Local { registry: Box<Registry>, who: Principal },
    Remote(remote::Remote),
}

pub(crate) fn target(data_dir: &std::path::Path, server: Option<&str>, token: Option<&str>) -> Result<Target, Error> {
    match server {
        Some(url) => Ok(Target::Remote(remote::connect(data_dir, url, token)?)),
        None => {
            let registry = Registry::open_existing(data_dir)?;
            let who = registry.operator()?;
            Ok(Target::Local { registry: Box::new(registry), who })
        }
    }
}

fn serve(data_dir: PathBuf, args: ServeArgs, s3_url_style: Option<crate::registry::UrlStyle>) -> Result<i32, Error> {
    let s3 = crate::registry::S3Options {
        public_endpoint: args.s3_public_endpoint.clone(),
        redirect_downloads: args.s3_redirect,
        ..args.s3.options(s3_url_style)
    };
    let (store, _serving) = prepare_to_run(&data_dir, args.store.blob_store.as_ref(), s3, true)?;
    crate::http::access_log::set_format(args.log_format);
    crate::http::metrics::set_scrape_token(read_metrics_token(args.metrics_token_file.as_deref())?);
    let jobs = crate::jobs::JobSettings { runs_jobs: !args.no_jobs, ..args.jobs.settings(&data_dir, args.max_upload_bytes)? };
    let options = ServerOptions {
        jobs,
        bind: args.bind,
        json_limit: args.max_json_bytes,
        upload_limit: args.max_upload_bytes,
        io_timeout: Duration::from_millis(args.io_timeout_ms.max(1)),
        max_connections: args.max_connections,
        max_connections_per_address: args.max_connections_per_address,
        head_timeout: Duration::from_millis(args.head_timeout_ms.max(1)),
        shutdown_grace: args.shutdown_grace,
        gc_interval: args.gc_interval.0,
        rate_limit: args.rate_limit,
        proxying: crate::http::forwarded::Proxying {
            public_url: args.public_url.as_deref().map(crate::http::forwarded::Proxying::parse_public_url).transpose().map_err(|e| Error::invalid("public-url", e))?,
            trusted: args.trusted_proxies,
        },
        signed_url_ttl: Duration::from_secs(args.signed_url_ttl_secs.max(1)),
        convert_on_upload: !args.no_convert_on_upload,
    };
    if args.no_jobs {
        eprintln!("modelreg: running no jobs here (--no-jobs): `modelreg worker` processes on this database run them");
    } else {
        crate::jobs::start(&options.jobs)?;
    }
    let database = crate::registry::database::describe(&data_dir)?;
    crate::http::serve(options, crate::server::router(), |addr| {
        // Tests and scripts wait for this line to know the port.
        eprintln!("modelreg: listening on http://{addr} (data directory {}, database {database}, blobs {store})", data_dir.display());
    })?;
    Ok(0)
}

impl S3Args {
    fn options(&self, url_style: Option<crate::registry::UrlStyle>) -> crate::registry::S3Options {
        crate::registry::S3Options {
            url_style,
            cache_dir: self.cache_dir.clone(),
            cache_bytes: self.cache_size,
            timeout: Some(self.s3_timeout),
            ..Default::default()
        }
    }
}

impl JobArgs {
    fn settings(self, data_dir: &std::path::Path, pull_limit: u64) -> Result<crate::jobs::JobSettings, Error> {
        if self.job_lease < Duration::from_secs(1) {
            return Err(Error::invalid("job-lease", "must be at least 1s"));
        }
        Ok(crate::jobs::JobSettings {
            data_dir: data_dir.to_path_buf(),
            machine_delay: Duration::from_millis(self.machine_delay_ms),
            image_builder: self.image_builder,
            compute_slots: self.compute_slots.max(1),
            python: self.python,
            git_paths: crate::registry::catalogue::repositories::GitPaths::Under(allowed_git_paths(&self.allow_git_paths)?),
            pull_limit,
            lease: self.job_lease,
            runs_jobs: true,
            webhooks: crate::compute::webhooks::DeliverySettings { timeout: self.webhook_timeout, first_retry: self.webhook_first_retry },
            coreml: !self.no_coreml,
        })
    }
}

/// What `serve` and `worker` do before they run: a private file creation
/// mask, more open files, the S3 choices, the data directory prepared (and,
/// for `serve`, the first team made), the blob store checked, and
/// `serve.lock` held so that `blobs migrate` does not switch the store under
/// them. Returns the store and the held lock.
fn prepare_to_run(
    data_dir: &std::path::Path,
    blob_store: Option<&crate::registry::BlobLocation>,
    s3: crate::registry::S3Options,
    bootstrap: bool,
) -> Result<(crate::registry::BlobLocation, std::fs::File), Error> {
    raise_open_file_limit();
    // Whatever the process and its jobs create (job folders, runtimes, git
    // caches) is the service's alone, like the database and blobs.
    // SAFETY: umask only sets the process's file creation mask.
    unsafe {
        libc::umask(0o077);
    }
    crate::registry::storage::configure_s3(s3);
    let prepared = Registry::prepare(data_dir, blob_store)?;
    announce_prepared(&prepared);
    if bootstrap {
        admin::announce_bootstrap(&prepared.registry)?;
    }
    // A bucket that is missing or refuses our credentials is a mistake to
    // report now, not at the first upload.
    prepared.registry.check_blob_store()?;
    let store = prepared.registry.blob_location()?;
    drop(prepared);
    Ok((store, crate::registry::operations::blob_migration::hold_serve_lock(data_dir)?))
}

/// `modelreg worker`: the job lanes of `serve`, with no listener, until
/// SIGTERM or SIGINT.
fn worker(data_dir: PathBuf, args: WorkerArgs, s3_url_style: Option<crate::registry::UrlStyle>) -> Result<i32, Error> {
    let (store, _running) = prepare_to_run(&data_dir, args.store.blob_store.as_ref(), args.s3.options(s3_url_style), false)?;
    let settings = args.jobs.settings(&data_dir, args.max_upload_bytes)?;
    let slots = settings.compute_slots;
    crate::jobs::start(&settings)?;
    let database = crate::registry::database::describe(&data_dir)?;
    // Scripts and tests wait for this line to know the worker is claiming.
    eprintln!("modelreg: worker running jobs ({slots} compute slot(s); data directory {}, database {database}, blobs {store})", data_dir.display());
    let stopping = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, std::sync::Arc::clone(&stopping))
            .map_err(|e| Error::Internal(format!("cannot install signal handler: {e}")))?;
    }
    while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(crate::process::POLL);
    }
    // The jobs it ran are queued again by the next runner to look (their
    // owner is gone); their processes go with it.
    crate::process::kill_all();
    Ok(0)
}

/// `30s`, `500ms`, `5m`, `6h`, or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("{text:?} is not a duration such as 30s, 500ms, 5m or 6h"))?;
    let seconds = match unit {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return Err(format!("{text:?}: the unit must be ms, s, m or h")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

/// A period, or `off`.
#[derive(Clone, Copy, Debug)]
struct Interval(Option<Duration>);

fn parse_interval(text: &str) -> Result<Interval, String> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(Interval(None));
    }
    let every = parse_duration(text)?;
    if every.is_zero() {
        return Err("the interval must be longer than zero; `off` turns it off".into());
    }
    Ok(Interval(Some(every)))
}

/// The scrape token's file holds the token (surrounding whitespace is not
/// part of it); a file that is empty is a mistake worth stopping for.
fn read_metrics_token(file: Option<&std::path::Path>) -> Result<Option<String>, Error> {
    let Some(file) = file else { return Ok(None) };
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::invalid("metrics-token-file", format!("cannot read {}: {e}", file.display())))?;
    let token = text.trim();
    if token.len() < 16 {
        return Err(Error::invalid("metrics-token-file", format!("{} must hold a token of at least 16 characters", file.display())));
    }
    Ok(Some(token.to_string()))
}

/// `--allow-git-path` folders by their real paths, so that a repository is
/// compared with what the folder is, not with how it was written.
fn allowed_git_paths(dirs: &[PathBuf]) -> Result<Vec<PathBuf>, Error> {
    dirs.iter()
        .map(|dir| {
            std::fs::canonicalize(dir)
                .ok()
                .filter(|real| real.is_dir())
                .ok_or_else(|| Error::invalid("allow-git-path", format!("{} is not a folder", dir.display())))
        })
        .collect()
}

/// Each connection takes two file descriptors, and the common soft limit of
/// 1024 would cap the server below `--max-connections`: raise the soft limit
/// to the hard one, as servers usually do.
fn raise_open_file_limit() {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// The commands, their paths as typed (`custom-models versions list`),
    /// whose help shows no example of themselves: an `after_help` starting
    /// `Example:` or `Examples:`, then command lines indented two spaces, one
    /// of which runs the command.
    fn without_examples(command: &clap::Command, path: &str, seen: &mut Vec<String>, missing: &mut Vec<String>) {
        seen.push(path.to_string());
        let help = command.get_after_help().map(|h| h.to_string()).unwrap_or_default();
        let (head, examples) = help.split_once('\n').unwrap_or((help.as_str(), ""));
        let lines: Vec<&str> = examples.lines().take_while(|l| l.starts_with("  ")).collect();
        let runs_itself = lines.iter().any(|l| {
            let l = l.trim_start();
            l.starts_with("modelreg ") && (l.contains(&format!(" {path} ")) || l.ends_with(&format!(" {path}")) || path.is_empty())
        });
        if !matches!(head, "Example:" | "Examples:") || !runs_itself {
            missing.push(format!("modelreg {path}").trim_end().to_string());
        }
        for sub in command.get_subcommands().filter(|c| !c.is_hide_set() && c.get_name() != "help") {
            without_examples(sub, format!("{path} {}", sub.get_name()).trim_start(), seen, missing);
        }
    }

    #[test]
    fn every_command_shows_an_example() {
        let (mut seen, mut missing) = (Vec::new(), Vec::new());
        without_examples(&Cli::command(), "", &mut seen, &mut missing);
        // The walk reaches the leaves three levels down.
        assert!(seen.iter().any(|p| p == "custom-models conversions download"), "{seen:?}");
        assert!(
            missing.is_empty(),
            "these commands' help shows no example of running them (give each an `after_help` of \
             \"Example:\\n  modelreg …\"): {}",
            missing.join(", ")
        );
    }
}
