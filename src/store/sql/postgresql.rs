//! The PostgreSQL engine of the SQL seam: the one file that names the
//! `postgres` crate. A bounded pool of clients per process, the schema
//! and its steps under an advisory lock, SQLite's `?N` placeholders
//! rewritten to `$N`, seam values bound and read by the types PostgreSQL
//! reports, transactions, and the client's errors turned into `sql::Error`.
//!
//! A `Connection` owns no client. Each statement outside a transaction
//! takes one from the pool for as long as it runs; a transaction holds one
//! from BEGIN to COMMIT or ROLLBACK. So a server has as many database
//! sessions as it has statements and transactions in flight, bounded by
//! `--db-pool`, however many HTTP connections are open. Query results are
//! read whole before the client goes back: the registry's queries are pages
//! and lookups, and the few that read a table through (gc, verify) hold one
//! row per blob, as the SQLite engine's callers collect them anyway.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::error::Error as StdError;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use postgres::error::SqlState;
use postgres::types::{FromSql, IsNull, ToSql, Type};
use postgres::NoTls;

use super::{Column, Error, Params, Result, ValueRef};

/// The schema as of version 11 (migrations/postgres/0011_schema.sql), and
/// each later step. PostgreSQL registries began at 11, so there is no
/// older one to bring forward.
const SCHEMA: &str = include_str!("../../../migrations/postgres/0011_schema.sql");
const SCHEMA_BASE: i64 = 11;
/// Step i takes the schema from version SCHEMA_BASE + i to SCHEMA_BASE + i + 1.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/postgres/0012_job_leases.sql"),
    include_str!("../../../migrations/postgres/0013_model_aliases.sql"),
    include_str!("../../../migrations/postgres/0014_tags_and_lineage.sql"),
    include_str!("../../../migrations/postgres/0015_webhooks.sql"),
    include_str!("../../../migrations/postgres/0016_model_cards.sql"),
];
const _: () = assert!(
    SCHEMA_BASE + MIGRATIONS.len() as i64 == super::SCHEMA_VERSION,
    "a schema step for SQLite (migrations/) needs its PostgreSQL step (migrations/postgres/)"
);

/// Advisory lock keys, fixed so that every modelreg process agrees on them:
/// one for the schema steps, one for a write transaction's turn.
const MIGRATION_LOCK: i64 = 0x6d6f_6465_6c72_0001;
const WRITER_LOCK: i64 = 0x6d6f_6465_6c72_0002;

/// How long a statement waits for a free client before it is refused: far
/// longer than any statement runs, so only a pool too small for the load
/// (or a database that stopped answering) gets here.
const CHECKOUT_WAIT: Duration = Duration::from_secs(30);
/// A connection attempt that makes no progress for this long has failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Unacknowledged data on a socket for this long means the database is gone
/// (a machine that vanished sends no reset): the statement fails instead of
/// waiting for the kernel's default of about 15 minutes.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);
/// Prepared statements kept per client; past this the cache starts again
/// (SQL assembled at run time has many texts).
const STATEMENT_CACHE: usize = 512;

/// The clients of one database, at most `size` of them at once.
pub struct Pool {
    /// As given: pg_dump and pg_restore connect with it.
    url: String,
    config: postgres::Config,
    /// The URL without its password, for messages.
    described: String,
    size: usize,
    state: Mutex<PoolState>,
    freed: Condvar,
}

struct PoolState {
    idle: Vec<Client>,
    open: usize,
}

struct Client {
    inner: postgres::Client,
    statements: HashMap<String, postgres::Statement>,
}

impl Pool {
    /// Connects to the database at `url`, brings its schema to
    /// `SCHEMA_VERSION`, and keeps up to `size` clients.
    pub fn open(url: &str, size: usize) -> Result<Pool> {
        let mut config: postgres::Config =
            url.parse().map_err(|e| Error::Other(format!("the database URL is not a PostgreSQL URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.tcp_user_timeout(TCP_USER_TIMEOUT);
        config.application_name("modelreg");
        let pool = Pool {
            url: url.to_string(),
            described: describe(&config),
            config,
            size: size.max(1),
            state: Mutex::new(PoolState { idle: Vec::new(), open: 0 }),
            freed: Condvar::new(),
        };
        let mut client = pool.checkout()?;
        let migrated = migrate(&mut client.inner);
        pool.checkin(client);
        migrated.map_err(|e| pool.named(e))?;
        Ok(pool)
    }

    /// `user@host:port/database`: where the registry is, never the password.
    pub fn describe(&self) -> &str {
        &self.described
    }

    fn checkout(&self) -> Result<Client> {
        let deadline = Instant::now() + CHECKOUT_WAIT;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(client) = state.idle.pop() {
                return Ok(client);
            }
            if state.open < self.size {
                state.open += 1;
                drop(state);
                return self.config.connect(NoTls).map(|inner| Client { inner, statements: HashMap::new() }).map_err(|e| {
                    self.forget_one();
                    Error::Unavailable(format!("cannot reach the database {}: {}", self.described, message(&e)))
                });
            }
            let now = Instant::now();
            if now >= deadline {
                // load, not a fault: a 503 with Retry-After, as a store that is down
                return Err(Error::Unavailable(format!(
                    "all {} connections to the database {} stayed in use for {} s (raise --db-pool?)",
                    self.size,
                    self.described,
                    CHECKOUT_WAIT.as_secs()
                )));
            }
            state = self.freed.wait_timeout(state, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Gives a client back; one whose connection broke is dropped, and the
    /// next checkout connects afresh (a restarted database heals this way).
    fn checkin(&self, client: Client) {
        if client.inner.is_closed() {
            drop(client);
            self.forget_one();
            return;
        }
        self.state.lock().unwrap_or_else(|p| p.into_inner()).idle.push(client);
        self.freed.notify_one();
    }

    fn forget_one(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).open -= 1;
        self.freed.notify_one();
    }

    /// An error, with an unreachable database named.
    fn named(&self, e: Error) -> Error {
        match e {
            Error::Unavailable(m) => Error::Unavailable(format!("the database {}: {m}", self.described)),
            other => other,
        }
    }
}

fn describe(config: &postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(host)) => host.clone(),
        Some(postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or(config.get_user().unwrap_or(""))
    )
}

/// Creates the schema, or takes it through the steps it lacks, holding an
/// advisory lock: servers that start together migrate once, the others
/// wait and find it done.
fn migrate(client: &mut postgres::Client) -> Result<()> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS modelreg_schema (version BIGINT NOT NULL)")?;
    let version: Option<i64> = tx.query_opt("SELECT version FROM modelreg_schema", &[])?.map(|row| row.get(0));
    let version = match version {
        Some(version) => version,
        None => {
            tx.batch_execute(SCHEMA)?;
            tx.execute("INSERT INTO modelreg_schema (version) VALUES ($1)", &[&SCHEMA_BASE])?;
            SCHEMA_BASE
        }
    };
    if version > super::SCHEMA_VERSION {
        return Err(super::newer_schema(version));
    }
    for step in &MIGRATIONS[(version - SCHEMA_BASE) as usize..] {
        tx.batch_execute(step)?;
    }
    tx.execute("UPDATE modelreg_schema SET version = $1", &[&super::SCHEMA_VERSION])?;
    Ok(tx.commit()?)
}

// Backups: the server's own tools.

/// `pg_dump` (or `pg_restore`): `MODELREG_PG_BIN/<tool>` when set, else the
/// one on PATH. Debian's wrapper on PATH runs the newest installed version,
/// which reads any older server.
fn tool(name: &str) -> std::process::Command {
    match std::env::var_os("MODELREG_PG_BIN") {
        Some(dir) => std::process::Command::new(std::path::Path::new(&dir).join(name)),
        None => std::process::Command::new(name),
    }
}

fn run_tool(mut command: std::process::Command, what: &str) -> Result<()> {
    let output = command.stdin(std::process::Stdio::null()).output().map_err(|e| {
        Error::Other(format!("cannot run {what} (install PostgreSQL's client programs, or set MODELREG_PG_BIN): {e}"))
    })?;
    if !output.status.success() {
        return Err(Error::Other(format!("{what} failed: {}", String::from_utf8_lossy(&output.stderr).trim())));
    }
    Ok(())
}

/// Writes the database as of the open read transaction's snapshot to
/// `dest` (pg_dump's custom format, private, fsynced): what else the
/// transaction reads (the blobs to copy) is of the same moment.
pub(super) fn dump(conn: &Connection, dest: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if !conn.in_transaction() {
        return Err(Error::Other("a dump is taken inside a read transaction".into()));
    }
    let snapshot: String = conn.with_client(|client| Ok(client.inner.query_one("SELECT pg_export_snapshot()", &[])?.get(0)))?;
    let io = |e: std::io::Error| Error::Other(format!("{}: {e}", dest.display()));
    std::fs::OpenOptions::new().write(true).create_new(true).mode(crate::store::blobs::PRIVATE_FILE).open(dest).map_err(io)?;
    let mut command = tool("pg_dump");
    command.args(["--format=custom", "--no-owner", "--no-privileges", "--snapshot", &snapshot, "--file"]).arg(dest);
    command.arg("--dbname").arg(&conn.pool.url);
    run_tool(command, "pg_dump")?;
    std::fs::File::open(dest).and_then(|f| f.sync_all()).map_err(io)
}

/// Loads a dump written by `dump` into the database at `url`, which must be
/// empty, in one transaction.
pub(super) fn restore(url: &str, dump: &std::path::Path) -> Result<()> {
    let mut command = tool("pg_restore");
    command.args(["--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction", "--dbname", url]).arg(dump);
    run_tool(command, "pg_restore")
}

// Connections and transactions.

/// A connection to a PostgreSQL registry: the pool, and the client a
/// transaction holds while it is open.
pub(super) struct Connection {
    pool: Arc<Pool>,
    tx: RefCell<Option<Client>>,
    /// A statement of the open transaction failed: PostgreSQL has aborted
    /// it, and its COMMIT would quietly roll back.
    failed: Cell<bool>,
}

pub(super) fn connect(pool: &Arc<Pool>) -> Connection {
    Connection { pool: Arc::clone(pool), tx: RefCell::new(None), failed: Cell::new(false) }
}

impl Connection {
    /// Runs `f` on the transaction's client, or on one taken from the pool
    /// for the call.
    fn with_client<T>(&self, f: impl FnOnce(&mut Client) -> Result<T>) -> Result<T> {
        if let Some(client) = self.tx.borrow_mut().as_mut() {
            return f(client).map_err(|e| {
                self.failed.set(true);
                self.pool.named(e)
            });
        }
        let mut client = self.pool.checkout()?;
        let result = f(&mut client);
        self.pool.checkin(client);
        result.map_err(|e| self.pool.named(e))
    }

    pub(super) fn in_transaction(&self) -> bool {
        self.tx.borrow().is_some()
    }
}

/// BEGIN, and for a write the writer's advisory lock first: one write
/// transaction at a time across every server of the registry, which is
/// the promise SQLite's BEGIN IMMEDIATE makes and the registry's
/// read-then-write sequences (version numbers, state machines) rely on.
/// A read sees one snapshot (REPEATABLE READ), as SQLite's deferred
/// transaction does.
pub(super) fn begin(conn: &Connection, write: bool) -> Result<Transaction<'_>> {
    if conn.in_transaction() {
        return Err(Error::Other("cannot start a transaction within a transaction".into()));
    }
    let mut client = conn.pool.checkout()?;
    let begun = if write {
        client.inner.batch_execute(&format!("BEGIN; SELECT pg_advisory_xact_lock({WRITER_LOCK})"))
    } else {
        client.inner.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
    };
    if let Err(e) = begun {
        let _ = client.inner.batch_execute("ROLLBACK");
        conn.pool.checkin(client);
        return Err(conn.pool.named(e.into()));
    }
    conn.failed.set(false);
    *conn.tx.borrow_mut() = Some(client);
    Ok(Transaction { conn })
}

pub(super) struct Transaction<'c> {
    conn: &'c Connection,
}

impl Transaction<'_> {
    pub(super) fn commit(self) -> Result<()> {
        let result = if self.conn.failed.get() {
            Err(Error::Other("the transaction was rolled back: one of its statements failed".into()))
        } else {
            self.end("COMMIT")
        };
        // Drop finds no client left and does nothing.
        if self.conn.in_transaction() {
            let _ = self.end("ROLLBACK");
        }
        result
    }

    fn end(&self, command: &str) -> Result<()> {
        let Some(mut client) = self.conn.tx.borrow_mut().take() else { return Ok(()) };
        let result = client.inner.batch_execute(command);
        self.conn.pool.checkin(client);
        result.map_err(|e| self.conn.pool.named(e.into()))
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        let _ = self.end("ROLLBACK");
    }
}

// Statements, parameters and rows.

/// A statement: its text with PostgreSQL's placeholders. It is prepared on
/// whichever client runs it, once per client (each keeps a cache).
pub(super) struct Stmt<'c> {
    conn: &'c Connection,
    sql: String,
}

pub(super) fn prepare<'c>(conn: &'c Connection, sql: &str) -> Stmt<'c> {
    Stmt { conn, sql: placeholders(sql) }
}

impl Client {
    fn statement(&mut self, sql: &str) -> std::result::Result<postgres::Statement, postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.inner.prepare(sql)?;
        if self.statements.len() >= STATEMENT_CACHE {
            self.statements.clear();
        }
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

/// Rewrites SQLite's `?N` and bare `?` placeholders to `$N` outside string
/// literals, quoted names and comments. A bare `?` is one more than the
/// highest number so far, as in SQLite.
fn placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    let mut highest = 0u32;
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                out.push(c);
                for inner in chars.by_ref() {
                    out.push(inner);
                    if inner == c {
                        break; // a doubled quote closes and reopens: the same text
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                out.push(c);
                for inner in chars.by_ref() {
                    out.push(inner);
                    if inner == '\n' {
                        break;
                    }
                }
            }
            '?' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                let n = digits.parse().unwrap_or(highest + 1);
                highest = highest.max(n);
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    out
}

/// A parameter, owned: the seam hands each one over only for the length of
/// a callback, and the query runs after all are collected.
#[derive(Debug)]
enum Param {
    Null,
    Integer(i64),
    Real(f64),
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

fn collect<P: Params>(params: P) -> Result<Vec<Param>> {
    let mut values = Vec::new();
    params.bind_each(&mut |param| {
        values.push(match param.to_sql()? {
            ValueRef::Null => Param::Null,
            ValueRef::Integer(n) => Param::Integer(n),
            ValueRef::Real(x) => Param::Real(x),
            ValueRef::Text(t) => Param::Text(t.to_vec()),
            ValueRef::Blob(b) => Param::Blob(b.to_vec()),
        });
        Ok(())
    })?;
    Ok(values)
}

/// Runs `f` with `stmt` prepared on a client, once it is known to take as
/// many parameters as were given.
fn run<T, P: Params>(
    stmt: &Stmt<'_>,
    params: P,
    f: impl FnOnce(&mut postgres::Client, &postgres::Statement, &[&(dyn ToSql + Sync)]) -> std::result::Result<T, postgres::Error>,
) -> Result<T> {
    let params = collect(params)?;
    let result = stmt.conn.with_client(|client| {
        let statement = client.statement(&stmt.sql)?;
        let expected = statement.params().len();
        if expected != params.len() {
            return Err(Error::Other(format!(
                "wrong number of parameters: the statement takes {expected}, {} were given",
                params.len()
            )));
        }
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        Ok(f(&mut client.inner, &statement, &refs)?)
    });
    // A debug build names the statement a database error came from: the
    // registry's SQL was written for SQLite first.
    match result {
        Err(Error::Other(message)) if cfg!(debug_assertions) => Err(Error::Other(format!("{message} in: {}", stmt.sql))),
        result => result,
    }
}

pub(super) fn column_names(stmt: &mut Stmt<'_>) -> Result<Vec<String>> {
    stmt.conn.with_client(|client| Ok(client.statement(&stmt.sql)?.columns().iter().map(|c| c.name().to_string()).collect()))
}

pub(super) fn execute<P: Params>(stmt: &mut Stmt<'_>, params: P) -> Result<usize> {
    run(stmt, params, |client, statement, refs| client.execute(statement, refs)).map(|n| n as usize)
}

pub(super) fn query<P: Params>(stmt: &mut Stmt<'_>, params: P) -> Result<Rows> {
    let rows = run(stmt, params, |client, statement, refs| client.query(statement, refs))?;
    Ok(Rows { rows: rows.into_iter(), current: None })
}

/// A query's rows, read whole.
pub(super) struct Rows {
    rows: std::vec::IntoIter<postgres::Row>,
    current: Option<postgres::Row>,
}

pub(super) type Row = postgres::Row;

impl Rows {
    pub(super) fn next(&mut self) -> Option<&Row> {
        self.current = self.rows.next();
        self.current.as_ref()
    }
}

/// A column of `row` as a seam value.
pub(super) fn value<'r>(row: &'r Row, column: Column<'_>) -> Result<ValueRef<'r>> {
    let read = match column {
        Column::At(i) => row.try_get::<_, Read<'r>>(i),
        Column::Named(name) => row.try_get::<_, Read<'r>>(name),
    };
    read.map(|r| r.0).map_err(|e| Error::Conversion { what: format!("column {column}"), message: message(&e) })
}

/// A column's value as the seam reads it, whatever its PostgreSQL type: the
/// integer types and booleans (0 or 1) as integers, floats as reals,
/// NUMERIC (what SUM of a BIGINT gives) as an integer when it is one,
/// text-like types and JSON as text, BYTEA as bytes.
struct Read<'a>(ValueRef<'a>);

impl<'a> FromSql<'a> for Read<'a> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> std::result::Result<Self, Box<dyn StdError + Sync + Send>> {
        let value = match *ty {
            Type::INT8 => ValueRef::Integer(i64::from_sql(ty, raw)?),
            Type::INT4 => ValueRef::Integer(i32::from_sql(ty, raw)?.into()),
            Type::INT2 => ValueRef::Integer(i16::from_sql(ty, raw)?.into()),
            Type::OID => ValueRef::Integer(u32::from_sql(ty, raw)?.into()),
            Type::BOOL => ValueRef::Integer(bool::from_sql(ty, raw)? as i64),
            Type::FLOAT8 => ValueRef::Real(f64::from_sql(ty, raw)?),
            Type::FLOAT4 => ValueRef::Real(f32::from_sql(ty, raw)?.into()),
            Type::NUMERIC => numeric(raw)?,
            Type::BYTEA => ValueRef::Blob(raw),
            // jsonb's binary form is a version byte, 1, then the text
            Type::JSONB => ValueRef::Text(raw.get(1..).ok_or("an empty jsonb value")?),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::JSON | Type::UNKNOWN => ValueRef::Text(raw),
            ref other => return Err(format!("a column of type {other} cannot be read").into()),
        };
        Ok(Read(value))
    }

    fn from_sql_null(_: &Type) -> std::result::Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(Read(ValueRef::Null))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// NUMERIC's binary form: digit count, weight (of the first base-10000
/// digit), sign, display scale, then the base-10000 digits.
fn numeric(raw: &[u8]) -> std::result::Result<ValueRef<'static>, Box<dyn StdError + Sync + Send>> {
    let word = |i: usize| -> std::result::Result<i16, Box<dyn StdError + Sync + Send>> {
        raw.get(i * 2..i * 2 + 2).map(|b| i16::from_be_bytes([b[0], b[1]])).ok_or_else(|| "a truncated numeric".into())
    };
    let (count, weight, sign, scale) = (word(0)? as usize, word(1)?, word(2)? as u16, word(3)?);
    if sign == 0xC000 {
        return Ok(ValueRef::Real(f64::NAN));
    }
    let negative = sign == 0x4000;
    let mut integer: Option<i64> = Some(0);
    let mut real = 0f64;
    for i in 0..count {
        let digit = word(4 + i)?;
        let power = weight as i32 - i as i32;
        real += digit as f64 * 10000f64.powi(power);
        integer = match (integer, power) {
            (Some(n), p) if p >= 0 => 10000i64.checked_pow(p as u32).and_then(|m| (digit as i64).checked_mul(m)).and_then(|d| n.checked_add(d)),
            (_, _) if digit != 0 => None,
            (n, _) => n,
        };
    }
    Ok(match integer {
        Some(n) if scale == 0 || real.fract() == 0.0 => ValueRef::Integer(if negative { -n } else { n }),
        _ => ValueRef::Real(if negative { -real } else { real }),
    })
}

/// Binds a seam value to the type PostgreSQL inferred for its placeholder,
/// converting where SQLite's loose typing let the registry mix them: an
/// integer (or flag) for an INTEGER, BIGINT or BOOLEAN, text for a number
/// when the text is one, a number for TEXT.
impl ToSql for Param {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> std::result::Result<IsNull, Box<dyn StdError + Sync + Send>> {
        let wrong = || format!("a {self:?} parameter cannot be bound to a {ty} placeholder");
        match (self, ty) {
            (Param::Null, _) => return Ok(IsNull::Yes),
            (_, &Type::INT8) => {
                self.integer().ok_or_else(wrong)?.to_sql(ty, out)?;
            }
            (_, &Type::INT4) => {
                i32::try_from(self.integer().ok_or_else(wrong)?)?.to_sql(ty, out)?;
            }
            (_, &Type::INT2) => {
                i16::try_from(self.integer().ok_or_else(wrong)?)?.to_sql(ty, out)?;
            }
            (_, &Type::BOOL) => {
                (self.integer().ok_or_else(wrong)? != 0).to_sql(ty, out)?;
            }
            (Param::Real(x), &Type::FLOAT8) => {
                x.to_sql(ty, out)?;
            }
            (Param::Integer(n), &Type::FLOAT8) => {
                (*n as f64).to_sql(ty, out)?;
            }
            (Param::Blob(b) | Param::Text(b), &Type::BYTEA) => out.put_slice(b),
            (Param::Text(t), &Type::JSONB) => {
                out.put_u8(1);
                out.put_slice(t);
            }
            (Param::Text(t), _) if is_text(ty) => out.put_slice(t),
            (Param::Integer(n), _) if is_text(ty) => out.put_slice(n.to_string().as_bytes()),
            (Param::Real(x), _) if is_text(ty) => out.put_slice(x.to_string().as_bytes()),
            _ => return Err(wrong().into()),
        }
        Ok(IsNull::No)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

impl Param {
    fn integer(&self) -> Option<i64> {
        match self {
            Param::Integer(n) => Some(*n),
            Param::Real(x) if x.fract() == 0.0 => Some(*x as i64),
            Param::Text(t) => std::str::from_utf8(t).ok()?.trim().parse().ok(),
            _ => None,
        }
    }
}

fn is_text(ty: &Type) -> bool {
    matches!(*ty, Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::JSON | Type::UNKNOWN)
}

/// The database's own words for an error, with its detail.
fn message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_string(),
        },
        None => match e.source() {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

/// The client's errors in the cases the registry tells apart. A database
/// that cannot be reached, is shutting down or starting, or dropped the
/// connection is `Unavailable` (the doors answer 503, and the pool
/// reconnects for the next statement).
impl From<postgres::Error> for Error {
    fn from(e: postgres::Error) -> Error {
        let text = message(&e);
        let Some(code) = e.code() else {
            return if e.is_closed() || e.source().is_some_and(|s| s.is::<std::io::Error>()) {
                Error::Unavailable(text)
            } else {
                Error::Other(text)
            };
        };
        let class = &code.code()[..2];
        match code {
            c if *c == SqlState::UNIQUE_VIOLATION => Error::Unique(text),
            _ if class == "23" => Error::Constraint(text),
            c if *c == SqlState::DISK_FULL => Error::DiskFull(text),
            c if *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED
                || *c == SqlState::LOCK_NOT_AVAILABLE =>
            {
                Error::Busy(text)
            }
            c if *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CRASH_SHUTDOWN
                || *c == SqlState::CANNOT_CONNECT_NOW
                || *c == SqlState::TOO_MANY_CONNECTIONS =>
            {
                Error::Unavailable(text)
            }
            _ if class == "08" => Error::Unavailable(text),
            _ => Error::Other(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_renumbered_outside_literals_and_comments() {
        assert_eq!(placeholders("SELECT ?1, ?2 WHERE a = ?1"), "SELECT $1, $2 WHERE a = $1");
        assert_eq!(placeholders("VALUES (?, ?, ?)"), "VALUES ($1, $2, $3)");
        assert_eq!(placeholders("WHERE a = ?3 AND b = ?"), "WHERE a = $3 AND b = $4");
        assert_eq!(placeholders("SELECT '?', \"a?\", ? -- why?\n, ?"), "SELECT '?', \"a?\", $1 -- why?\n, $2");
        assert_eq!(placeholders("SELECT 'it''s ?' || ?"), "SELECT 'it''s ?' || $1");
    }

    #[test]
    fn numeric_reads_as_an_integer_when_it_is_one() {
        // 123456789 = [1, 2345, 6789] at weight 2, scale 0
        let raw: Vec<u8> = [3i16, 2, 0, 0, 1, 2345, 6789].iter().flat_map(|w| w.to_be_bytes()).collect();
        assert_eq!(numeric(&raw).unwrap(), ValueRef::Integer(123_456_789));
        // -1.5 = [1, 5000] at weight 0, negative, scale 1
        let raw: Vec<u8> = [2i16, 0, 0x4000, 1, 1, 5000].iter().flat_map(|w| w.to_be_bytes()).collect();
        assert_eq!(numeric(&raw).unwrap(), ValueRef::Real(-1.5));
        // 0: no digits
        let raw: Vec<u8> = [0i16, 0, 0, 0].iter().flat_map(|w| w.to_be_bytes()).collect();
        assert_eq!(numeric(&raw).unwrap(), ValueRef::Integer(0));
    }
}
