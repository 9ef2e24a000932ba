//! The SQL seam: the one way the registry reaches its database.
//!
//! Registry code writes SQL by hand and runs it through the types here:
//! `Connection` (open, `execute`, `query_row`, `prepare`, `prepare_cached`,
//! transactions), `Statement`, `Rows` and `Row`, parameters (`params!`,
//! `params_from_iter` over `Value`s, or an array), and one `Error`. Nothing
//! outside `src/store/` names the engine's crate (tests/layering.rs checks
//! it), so a second engine is added here, not in the registry's files.
//!
//! ## Engines: an enum, not a trait
//!
//! Each public type holds a private enum with one variant per engine
//! (`Sqlite` in `sqlite.rs`, `Postgres` in `postgresql.rs`), and each
//! method matches on it. A trait was the other choice, and a worse one
//! here: the methods the registry calls are generic (`query_row::<T, P, F>`,
//! `Row::get::<I, T>`), so a `dyn Engine` could not carry them without
//! erasing every closure and type, and a generic `Registry<E: Engine>` would
//! put a type parameter on every registry signature and on the doors that
//! hold a `Registry`. The set of engines is closed and chosen at run time
//! (`Database`: the data directory's file, or a `--database` URL), which is
//! what an enum is for.
//!
//! ## What the engines share, and where they differ
//!
//! - Values cross the seam as `ValueRef` (null, integer, real, text, blob)
//!   and `Value`, never as an engine's own types: an engine binds them and
//!   reads columns back into them, so `ToSql`/`FromSql` for Rust types are
//!   written once. PostgreSQL's prepared statement reports each parameter's
//!   and column's type, and its engine converts by it (an integer binds to
//!   BIGINT, INTEGER or BOOLEAN, text to TEXT or JSONB, a number to TEXT; a
//!   BOOLEAN reads as 0 or 1, NUMERIC as an integer when it is one), so
//!   registry code that stores flags as integers reads the same on both.
//! - Registry SQL numbers its placeholders SQLite's way, `?1` or bare `?`.
//!   The PostgreSQL engine rewrites them (outside literals and comments) to
//!   `$1…`, and each pooled client keeps its prepared statements by text.
//! - `begin_write` is SQLite's `BEGIN IMMEDIATE`: the write lock up front,
//!   so a read-then-write sequence (next version number, state transitions)
//!   cannot interleave with another writer. PostgreSQL keeps that promise
//!   with `BEGIN` and a transaction-scoped advisory lock taken first, one
//!   writer at a time across every server of the registry; SERIALIZABLE
//!   would need a retry around every write transaction, which the registry
//!   does not have. A read transaction is REPEATABLE READ there: one
//!   snapshot, as SQLite's deferred transaction. The writer-turn mutex in
//!   `Registry::write` orders this process's writers before either.
//! - Methods take `&self`, as rusqlite's do, because registry code reads
//!   through `&Connection` while a `Transaction` on it is open. A SQLite
//!   `Connection` is one per thread. A PostgreSQL `Connection` owns no
//!   client: a statement borrows one from the process's pool (`--db-pool`)
//!   for as long as it runs, a transaction holds one from BEGIN to the end,
//!   so open HTTP connections cost no database session.
//! - The schema is versioned per engine with one `SCHEMA_VERSION`:
//!   `schema.sql` and `migrations/` are SQLite's (`PRAGMA user_version`,
//!   one IMMEDIATE transaction); `migrations/postgres/` starts at version 11
//!   and is applied under an advisory lock, so servers starting together
//!   migrate once. A step added to one engine and not the other fails to
//!   compile (`postgresql::MIGRATIONS`).
//! - SQLite's dialect the registry still uses (`json_each` over an array,
//!   `json_extract` of one key, `instr`) is provided on PostgreSQL by three
//!   small SQL functions in its schema, and the `rowid` the registry orders
//!   by is an identity column there, so those statements stay one text.
//!   Statements that could not (`INSERT OR REPLACE`, two-argument `max()`,
//!   `x IS ?`, a flag used as a condition) were rewritten in forms both
//!   engines run.
//! - `snapshot` is SQLite's backup API (a database file `open_snapshot`
//!   reads) or, on PostgreSQL, pg_dump of the open read transaction's
//!   snapshot (`restore_postgres` loads it). `integrity_problems` is
//!   `PRAGMA integrity_check`; PostgreSQL checks its own pages.

mod postgresql;
mod sqlite;

use std::fmt;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use sqlite::SCHEMA_VERSION;

/// Where a registry's database is: a SQLite file (the default, in the data
/// directory), or a PostgreSQL database reached through this process's
/// pool of clients. Cloning shares the pool.
#[derive(Clone)]
pub enum Database {
    Sqlite(PathBuf),
    Postgres(Arc<postgresql::Pool>),
}

impl Database {
    /// Connects to the PostgreSQL database at `url` (`postgres://USER:PASSWORD@HOST:PORT/DB`),
    /// brings its schema to `SCHEMA_VERSION`, and keeps at most `pool_size`
    /// clients open to it.
    pub fn postgres(url: &str, pool_size: usize) -> Result<Database> {
        Ok(Database::Postgres(Arc::new(postgresql::Pool::open(url, pool_size)?)))
    }

    /// Where the database is, for people: a path, or a URL without its password.
    pub fn describe(&self) -> String {
        match self {
            Database::Sqlite(path) => path.display().to_string(),
            Database::Postgres(pool) => pool.describe().to_string(),
        }
    }
}

/// Loads a PostgreSQL registry's `snapshot` (a pg_dump archive) into the
/// empty database at `url`, before anything opens it (opening would create
/// the schema the archive brings).
pub fn restore_postgres(url: &str, dump: &Path) -> Result<()> {
    postgresql::restore(url, dump)
}

/// A connection to the registry's database. For SQLite, one per thread (there is no
/// pool and no global lock); for PostgreSQL, a handle on the process's pool
/// that holds a client only while a statement or a transaction runs.
pub struct Connection {
    engine: Engine,
}

enum Engine {
    Sqlite(sqlite::Connection),
    Postgres(postgresql::Connection),
}

impl Connection {
    /// Opens a connection to `database`: `open` for a SQLite file.
    pub fn connect(database: &Database) -> Result<Connection> {
        match database {
            Database::Sqlite(path) => Connection::open(path),
            Database::Postgres(pool) => Ok(Connection { engine: Engine::Postgres(postgresql::connect(pool)) }),
        }
    }


    /// Opens the registry database at `path`, creating it (private) and
    /// bringing its schema up to `SCHEMA_VERSION`, with the settings every
    /// caller relies on (see `sqlite::open`).
    pub fn open(path: &Path) -> Result<Connection> {
        Ok(Connection { engine: Engine::Sqlite(sqlite::open(path)?) })
    }

    /// Opens a copy written by `snapshot` (a backup's database) to read it,
    /// as it is: no settings, no migration, no writes.
    pub fn open_snapshot(path: &Path) -> Result<Connection> {
        Ok(Connection { engine: Engine::Sqlite(sqlite::open_snapshot(path)?) })
    }

    /// Opens a copy written by `snapshot` to change it before it is put in
    /// place (a backup that takes its blobs along records the local store):
    /// no settings, no migration.
    pub fn open_snapshot_for_edit(path: &Path) -> Result<Connection> {
        Ok(Connection { engine: Engine::Sqlite(sqlite::open_snapshot_for_edit(path)?) })
    }

    /// Runs one statement and returns the number of rows it changed.
    pub fn execute<P: Params>(&self, sql: &str, params: P) -> Result<usize> {
        self.prepare(sql)?.execute(params)
    }

    /// Runs a query and maps its first row; `Error::NoRows` when there is none.
    pub fn query_row<T, P, F>(&self, sql: &str, params: P, f: F) -> Result<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> Result<T>,
    {
        self.prepare(sql)?.query_row(params, f)
    }

    pub fn prepare(&self, sql: &str) -> Result<Statement<'_>> {
        let engine = match &self.engine {
            Engine::Sqlite(conn) => StatementEngine::Sqlite(sqlite::prepare(conn, sql)?),
            Engine::Postgres(conn) => StatementEngine::Postgres(postgresql::prepare(conn, sql)),
        };
        Ok(Statement { engine })
    }

    /// `prepare`, kept for the next call with the same SQL text: for the
    /// statements a request runs every time (list pages, lookups by id).
    pub fn prepare_cached(&self, sql: &str) -> Result<Statement<'_>> {
        let engine = match &self.engine {
            Engine::Sqlite(conn) => StatementEngine::Sqlite(sqlite::prepare_cached(conn, sql)?),
            // every statement is cached per client: see postgresql::Client::statement
            Engine::Postgres(conn) => StatementEngine::Postgres(postgresql::prepare(conn, sql)),
        };
        Ok(Statement { engine })
    }

    /// A write transaction that takes the database's write lock up front
    /// (SQLite's `BEGIN IMMEDIATE`), so that a read-then-write sequence
    /// cannot interleave with another writer. Dropped without `commit`, it
    /// rolls back.
    pub fn begin_write(&self) -> Result<Transaction<'_>> {
        let engine = match &self.engine {
            Engine::Sqlite(conn) => TransactionEngine::Sqlite(sqlite::begin(conn, true)?),
            Engine::Postgres(conn) => TransactionEngine::Postgres(postgresql::begin(conn, true)?),
        };
        Ok(Transaction { conn: self, engine })
    }

    /// A read transaction: the statements inside it see one snapshot.
    pub fn begin_read(&self) -> Result<Transaction<'_>> {
        let engine = match &self.engine {
            Engine::Sqlite(conn) => TransactionEngine::Sqlite(sqlite::begin(conn, false)?),
            Engine::Postgres(conn) => TransactionEngine::Postgres(postgresql::begin(conn, false)?),
        };
        Ok(Transaction { conn: self, engine })
    }

    /// A read transaction for a batch of reads where one makes them cheaper:
    /// on SQLite every statement would take its own WAL read lock, and one
    /// transaction takes it once (and gives the batch one snapshot). None on
    /// PostgreSQL, where BEGIN and ROLLBACK would add two round trips to a
    /// list page of three statements: there each statement sees everything
    /// committed before it began, which a batch whose later reads follow
    /// from its earlier ones (a page, then its versions, then their files)
    /// is content with. A caller that needs one snapshot uses `begin_read`.
    pub fn begin_read_batch(&self) -> Result<Option<Transaction<'_>>> {
        match &self.engine {
            Engine::Sqlite(_) => self.begin_read().map(Some),
            Engine::Postgres(_) => Ok(None),
        }
    }

    /// Turns `table`'s own triggers off, or on again, inside the open
    /// transaction: for a bulk copy that brings the rows they would derive
    /// (a count kept by a trigger, updated once per row, is one row updated
    /// 100,000 times in one transaction, which PostgreSQL makes quadratic).
    /// PostgreSQL only: SQLite cannot turn a trigger off.
    pub fn set_triggers(&self, table: &str, enabled: bool) -> Result<()> {
        match &self.engine {
            Engine::Sqlite(_) => Err(Error::Other("SQLite cannot turn triggers off".into())),
            Engine::Postgres(_) => {
                let switch = if enabled { "ENABLE" } else { "DISABLE" };
                self.execute(&format!("ALTER TABLE {table} {switch} TRIGGER USER"), []).map(|_| ())
            }
        }
    }

    /// Whether a transaction is open on this connection.
    pub fn in_transaction(&self) -> bool {
        match &self.engine {
            Engine::Sqlite(conn) => !conn.is_autocommit(),
            Engine::Postgres(conn) => conn.in_transaction(),
        }
    }

    /// Writes a consistent copy of the database to `dest`, a new file
    /// (private, fsynced), while writers carry on: SQLite's backup API
    /// (a database file `open_snapshot` reads), or on PostgreSQL a pg_dump
    /// archive of the snapshot of the read transaction open on this
    /// connection (`restore_dump` loads it).
    pub fn snapshot(&self, dest: &Path) -> Result<()> {
        match &self.engine {
            Engine::Sqlite(conn) => sqlite::snapshot(conn, dest),
            Engine::Postgres(conn) => postgresql::dump(conn, dest),
        }
    }

    /// The engine's own consistency check: empty when the database is sound.
    pub fn integrity_problems(&self) -> Result<Vec<String>> {
        match &self.engine {
            Engine::Sqlite(conn) => sqlite::integrity_problems(conn),
            // The server checks its own pages (and its checksums, when the
            // cluster has them); there is no PRAGMA integrity_check to run.
            Engine::Postgres(_) => Ok(Vec::new()),
        }
    }
}

/// An open transaction. It derefs to its connection, so functions that take
/// `&Connection` run inside it when given `&tx`. Dropped without `commit`,
/// it rolls back.
pub struct Transaction<'c> {
    conn: &'c Connection,
    engine: TransactionEngine<'c>,
}

enum TransactionEngine<'c> {
    Sqlite(sqlite::Transaction<'c>),
    Postgres(postgresql::Transaction<'c>),
}

impl Transaction<'_> {
    pub fn commit(self) -> Result<()> {
        match self.engine {
            TransactionEngine::Sqlite(tx) => Ok(tx.commit()?),
            TransactionEngine::Postgres(tx) => tx.commit(),
        }
    }
}

impl Deref for Transaction<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

/// A prepared statement, to run once or many times.
pub struct Statement<'c> {
    engine: StatementEngine<'c>,
}

enum StatementEngine<'c> {
    Sqlite(sqlite::Stmt<'c>),
    Postgres(postgresql::Stmt<'c>),
}

impl Statement<'_> {
    /// Runs the statement and returns the number of rows it changed.
    pub fn execute<P: Params>(&mut self, params: P) -> Result<usize> {
        match &mut self.engine {
            StatementEngine::Sqlite(stmt) => sqlite::execute(stmt, params),
            StatementEngine::Postgres(stmt) => postgresql::execute(stmt, params),
        }
    }

    /// The names of the columns the statement returns, in order.
    pub fn column_names(&mut self) -> Result<Vec<String>> {
        match &mut self.engine {
            StatementEngine::Sqlite(stmt) => Ok(sqlite::column_names(stmt)),
            StatementEngine::Postgres(stmt) => postgresql::column_names(stmt),
        }
    }

    /// Runs the query; its rows are read one at a time with `Rows::next`.
    pub fn query<P: Params>(&mut self, params: P) -> Result<Rows<'_>> {
        let engine = match &mut self.engine {
            StatementEngine::Sqlite(stmt) => RowsEngine::Sqlite(sqlite::query(stmt, params)?),
            StatementEngine::Postgres(stmt) => RowsEngine::Postgres(postgresql::query(stmt, params)?),
        };
        Ok(Rows { engine })
    }

    /// Runs the query and maps its first row; `Error::NoRows` when there is none.
    pub fn query_row<T, P, F>(&mut self, params: P, f: F) -> Result<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> Result<T>,
    {
        match self.query(params)?.next()? {
            Some(row) => f(&row),
            None => Err(Error::NoRows),
        }
    }

    /// Runs the query; the iterator maps each row with `f`.
    pub fn query_map<T, P, F>(&mut self, params: P, f: F) -> Result<MappedRows<'_, F>>
    where
        P: Params,
        F: FnMut(&Row<'_>) -> Result<T>,
    {
        Ok(MappedRows { rows: self.query(params)?, map: f })
    }
}

/// The rows of a running query.
pub struct Rows<'s> {
    engine: RowsEngine<'s>,
}

enum RowsEngine<'s> {
    Sqlite(sqlite::Rows<'s>),
    Postgres(postgresql::Rows),
}

impl Rows<'_> {
    /// The next row, or None after the last.
    #[allow(clippy::should_implement_trait)] // a row borrows from its Rows, which Iterator cannot say
    #[inline]
    pub fn next(&mut self) -> Result<Option<Row<'_>>> {
        match &mut self.engine {
            RowsEngine::Sqlite(rows) => Ok(rows.next()?.map(|row| Row { engine: RowEngine::Sqlite(row) })),
            RowsEngine::Postgres(rows) => Ok(rows.next().map(|row| Row { engine: RowEngine::Postgres(row) })),
        }
    }
}

/// `Statement::query_map`'s rows, each mapped.
pub struct MappedRows<'s, F> {
    rows: Rows<'s>,
    map: F,
}

impl<T, F> Iterator for MappedRows<'_, F>
where
    F: FnMut(&Row<'_>) -> Result<T>,
{
    type Item = Result<T>;

    #[inline]
    fn next(&mut self) -> Option<Result<T>> {
        let map = &mut self.map;
        self.rows.next().transpose().map(|row| row.and_then(|row| map(&row)))
    }
}

/// One row of a query.
pub struct Row<'r> {
    engine: RowEngine<'r>,
}

enum RowEngine<'r> {
    Sqlite(&'r sqlite::Row<'r>),
    Postgres(&'r postgresql::Row),
}

impl Row<'_> {
    /// Column `idx` (its position from 0, or its name) as a `T`.
    // Always inlined, with `sqlite::value`, so that the position or name
    // folds away and a read costs what rusqlite's `Row::get` costs: left to
    // the compiler, a page of 21 rows by 9 columns read 2 µs (13%) slower.
    #[inline(always)]
    pub fn get<I: ColumnIndex, T: FromSql>(&self, idx: I) -> Result<T> {
        let column = idx.column();
        let value = match &self.engine {
            RowEngine::Sqlite(row) => sqlite::value(row, column)?,
            RowEngine::Postgres(row) => postgresql::value(row, column)?,
        };
        T::from_sql(value).map_err(|message| Error::Conversion { what: format!("column {column}"), message })
    }
}

/// A column by position (from 0) or by name.
#[derive(Clone, Copy, Debug)]
pub enum Column<'a> {
    At(usize),
    Named(&'a str),
}

impl fmt::Display for Column<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Column::At(i) => write!(f, "{i}"),
            Column::Named(name) => write!(f, "{name:?}"),
        }
    }
}

/// What `Row::get` accepts: a position or a name.
pub trait ColumnIndex {
    fn column(&self) -> Column<'_>;
}

impl ColumnIndex for usize {
    #[inline]
    fn column(&self) -> Column<'_> {
        Column::At(*self)
    }
}

impl ColumnIndex for &str {
    #[inline]
    fn column(&self) -> Column<'_> {
        Column::Named(self)
    }
}

// Values.

/// A value as an engine binds or returns it, borrowed. Text is bytes here
/// because SQLite does not promise UTF-8; reading it as a `String` checks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ValueRef<'a> {
    Null,
    Integer(i64),
    Real(f64),
    Text(&'a [u8]),
    Blob(&'a [u8]),
}

impl ValueRef<'_> {
    fn type_name(&self) -> &'static str {
        match self {
            ValueRef::Null => "NULL",
            ValueRef::Integer(_) => "INTEGER",
            ValueRef::Real(_) => "REAL",
            ValueRef::Text(_) => "TEXT",
            ValueRef::Blob(_) => "BLOB",
        }
    }
}

/// An owned value: the parameters of a statement whose SQL is assembled at
/// run time (filters, pages) are a `Vec<Value>` given to `params_from_iter`,
/// and a row copied between databases is read as them.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<String> for Value {
    fn from(text: String) -> Value {
        Value::Text(text)
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Value {
        Value::Integer(n)
    }
}

/// A Rust value that binds as a statement parameter.
pub trait ToSql {
    fn to_sql(&self) -> Result<ValueRef<'_>>;
}

impl<T: ToSql + ?Sized> ToSql for &T {
    #[inline]
    fn to_sql(&self) -> Result<ValueRef<'_>> {
        (**self).to_sql()
    }
}

impl<T: ToSql> ToSql for Option<T> {
    #[inline]
    fn to_sql(&self) -> Result<ValueRef<'_>> {
        match self {
            Some(value) => value.to_sql(),
            None => Ok(ValueRef::Null),
        }
    }
}

impl ToSql for Value {
    #[inline]
    fn to_sql(&self) -> Result<ValueRef<'_>> {
        Ok(match self {
            Value::Null => ValueRef::Null,
            Value::Integer(n) => ValueRef::Integer(*n),
            Value::Real(x) => ValueRef::Real(*x),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        })
    }
}

impl ToSql for str {
    #[inline]
    fn to_sql(&self) -> Result<ValueRef<'_>> {
        Ok(ValueRef::Text(self.as_bytes()))
    }
}

impl ToSql for String {
    #[inline]
    fn to_sql(&self) -> Result<ValueRef<'_>> {
        self.as_str().to_sql()
    }
}

/// Bytes bind as a BLOB (small blobs kept in the database).
impl ToSql for [u8] {
    #[inline]
    fn to_sql(&self) -> Result<ValueRef<'_>> {
        Ok(ValueRef::Blob(self))
    }
}

impl ToSql for Vec<u8> {
    #[inline]
    fn to_sql(&self) -> Result<ValueRef<'_>> {
        self.as_slice().to_sql()
    }
}

impl ToSql for bool {
    #[inline]
    fn to_sql(&self) -> Result<ValueRef<'_>> {
        Ok(ValueRef::Integer(*self as i64))
    }
}

impl ToSql for i64 {
    #[inline]
    fn to_sql(&self) -> Result<ValueRef<'_>> {
        Ok(ValueRef::Integer(*self))
    }
}

/// Integers are 64-bit signed in SQL: a larger `u64` is an error, not a wrap.
impl ToSql for u64 {
    #[inline]
    fn to_sql(&self) -> Result<ValueRef<'_>> {
        i64::try_from(*self)
            .map(ValueRef::Integer)
            .map_err(|e| Error::Conversion { what: format!("the parameter {self}"), message: e.to_string() })
    }
}

/// A Rust value that a column reads as. The error is a message; `Row::get`
/// adds which column it was.
pub trait FromSql: Sized {
    fn from_sql(value: ValueRef<'_>) -> std::result::Result<Self, String>;
}

#[cold]
fn not_utf8(e: std::str::Utf8Error) -> String {
    e.to_string()
}

#[cold]
fn wrong_type(value: ValueRef<'_>, wanted: &str) -> String {
    format!("a {} value cannot be read as {wanted}", value.type_name())
}

impl<T: FromSql> FromSql for Option<T> {
    #[inline]
    fn from_sql(value: ValueRef<'_>) -> std::result::Result<Self, String> {
        match value {
            ValueRef::Null => Ok(None),
            value => T::from_sql(value).map(Some),
        }
    }
}

/// Any column, as it is.
impl FromSql for Value {
    fn from_sql(value: ValueRef<'_>) -> std::result::Result<Self, String> {
        Ok(match value {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(n) => Value::Integer(n),
            ValueRef::Real(x) => Value::Real(x),
            ValueRef::Text(bytes) => Value::Text(String::from_utf8(bytes.to_vec()).map_err(|e| e.utf8_error().to_string())?),
            ValueRef::Blob(bytes) => Value::Blob(bytes.to_vec()),
        })
    }
}

impl FromSql for String {
    #[inline]
    fn from_sql(value: ValueRef<'_>) -> std::result::Result<Self, String> {
        match value {
            ValueRef::Text(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => Ok(text.to_owned()),
                Err(e) => Err(not_utf8(e)),
            },
            other => Err(wrong_type(other, "text")),
        }
    }
}

impl FromSql for Vec<u8> {
    #[inline]
    fn from_sql(value: ValueRef<'_>) -> std::result::Result<Self, String> {
        match value {
            ValueRef::Blob(bytes) => Ok(bytes.to_vec()),
            other => Err(wrong_type(other, "bytes")),
        }
    }
}

impl FromSql for i64 {
    #[inline]
    fn from_sql(value: ValueRef<'_>) -> std::result::Result<Self, String> {
        match value {
            ValueRef::Integer(n) => Ok(n),
            other => Err(wrong_type(other, "an integer")),
        }
    }
}

/// An integer: 0 is false, anything else true.
impl FromSql for bool {
    #[inline]
    fn from_sql(value: ValueRef<'_>) -> std::result::Result<Self, String> {
        i64::from_sql(value).map(|n| n != 0)
    }
}

/// A count or a position: a negative integer is an error, not a wrap.
impl FromSql for usize {
    #[inline]
    fn from_sql(value: ValueRef<'_>) -> std::result::Result<Self, String> {
        let n = i64::from_sql(value)?;
        usize::try_from(n).map_err(|_| format!("{n} is out of range for usize"))
    }
}

// Parameters.

/// The parameters of one statement, bound in order to `?1`, `?2`… (or to
/// each bare `?`): `params![a, b]`, an array `[a, b]` of one type, `[]` for
/// none, or `params_from_iter(values)` for a list built at run time.
pub trait Params {
    /// Calls `bind` with each parameter, in order.
    fn bind_each(self, bind: &mut dyn FnMut(&dyn ToSql) -> Result<()>) -> Result<()>;
}

impl Params for [&dyn ToSql; 0] {
    fn bind_each(self, _: &mut dyn FnMut(&dyn ToSql) -> Result<()>) -> Result<()> {
        Ok(())
    }
}

impl Params for &[&dyn ToSql] {
    fn bind_each(self, bind: &mut dyn FnMut(&dyn ToSql) -> Result<()>) -> Result<()> {
        self.iter().try_for_each(|p| bind(*p))
    }
}

// One impl per length rather than a const-generic one, so that `[]` (length
// 0, above) has a single impl to infer its element type from.
macro_rules! array_params {
    ($($n:literal)*) => {$(
        impl<T: ToSql> Params for [T; $n] {
            fn bind_each(self, bind: &mut dyn FnMut(&dyn ToSql) -> Result<()>) -> Result<()> {
                self.iter().try_for_each(|p| bind(p))
            }
        }
    )*};
}
array_params!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);

/// Parameters from an iterator: see `params_from_iter`.
pub struct ParamsFromIter<I>(I);

/// Binds the items of `iter` in order: the parameters of SQL assembled at
/// run time, usually a `Vec<Value>` grown beside the SQL text.
pub fn params_from_iter<I>(iter: I) -> ParamsFromIter<I>
where
    I: IntoIterator,
    I::Item: ToSql,
{
    ParamsFromIter(iter)
}

impl<I> Params for ParamsFromIter<I>
where
    I: IntoIterator,
    I::Item: ToSql,
{
    fn bind_each(self, bind: &mut dyn FnMut(&dyn ToSql) -> Result<()>) -> Result<()> {
        self.0.into_iter().try_for_each(|p| bind(&p))
    }
}

/// `params![a, b, c]`: parameters of different types, bound in order (`[]`
/// for none).
macro_rules! params {
    ($($param:expr),+ $(,)?) => {
        &[$(&$param as &dyn $crate::store::sql::ToSql),+] as &[&dyn $crate::store::sql::ToSql]
    };
}
pub(crate) use params;

// Errors.

/// What went wrong, in the cases callers tell apart; the message is the
/// engine's own.
#[derive(Debug)]
pub enum Error {
    /// A query that must return a row returned none (`query_row`).
    NoRows,
    /// A UNIQUE or PRIMARY KEY constraint refused a write.
    Unique(String),
    /// Another constraint (CHECK, NOT NULL, FOREIGN KEY) refused a write.
    Constraint(String),
    /// The disk, or a quota, is full.
    DiskFull(String),
    /// Another connection held a lock this one needed past the busy timeout.
    Busy(String),
    /// The database server cannot be reached, or is shutting down or
    /// starting; it may answer again without anyone doing anything.
    Unavailable(String),
    /// A value could not be converted between SQL and Rust; `what` names it.
    Conversion { what: String, message: String },
    /// Anything else.
    Other(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A column whose stored text does not parse as what it holds (a JSON
    /// column, for example).
    pub fn conversion(column: usize, error: impl fmt::Display) -> Error {
        Error::Conversion { what: format!("column {column}"), message: error.to_string() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoRows => f.write_str("the query returned no rows"),
            Error::Conversion { what, message } => write!(f, "cannot convert {what}: {message}"),
            Error::Unique(message)
            | Error::Constraint(message)
            | Error::DiskFull(message)
            | Error::Busy(message)
            | Error::Unavailable(message)
            | Error::Other(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {}

/// A database written by a newer modelreg: opening it could corrupt what
/// this binary does not know about.
fn newer_schema(version: i64) -> Error {
    Error::Other(format!(
        "the database has schema version {version}, newer than this modelreg {} understands (schema version {SCHEMA_VERSION}); \
         run the newer modelreg that wrote it, or restore a backup taken before the upgrade",
        env!("CARGO_PKG_VERSION")
    ))
}

/// `.optional()` on a `query_row`: `Error::NoRows` becomes `Ok(None)`.
pub trait OptionalExtension<T> {
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExtension<T> for Result<T> {
    #[inline]
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(value) => Ok(Some(value)),
            Err(Error::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(&dir.path().join("modelreg.db")).unwrap();
        conn.execute("CREATE TEMP TABLE t (id TEXT PRIMARY KEY, n INTEGER, flag INTEGER, note TEXT, CHECK (n >= 0))", []).unwrap();
        (dir, conn)
    }

    #[test]
    fn parameters_bind_in_every_form_and_columns_read_back() {
        let (_dir, conn) = connection();
        let note: Option<String> = None;
        conn.execute("INSERT INTO t (id, n, flag, note) VALUES (?1, ?2, ?3, ?4)", params!["a", 7_i64, true, note]).unwrap();
        conn.execute("INSERT INTO t (id, n, flag, note) VALUES (?1, ?2, 0, 'x')", ["b", "3"]).unwrap();
        let args = [Value::from("c".to_string()), Value::from(5_i64), Value::Real(1.5), Value::Null];
        conn.execute("INSERT INTO t (id, n, flag, note) VALUES (?, ?, ?, ?)", params_from_iter(args.iter())).unwrap();

        let (n, flag, note): (i64, bool, Option<String>) =
            conn.query_row("SELECT n, flag, note FROM t WHERE id = ?1", ["a"], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap();
        assert_eq!((n, flag, note), (7, true, None));
        // SQLite's column affinity made '3' the integer 3, as it always has.
        let n: usize = conn.query_row("SELECT n FROM t WHERE id = 'b'", [], |r| r.get("n")).unwrap();
        assert_eq!(n, 3);
        let mut stmt = conn.prepare_cached("SELECT id FROM t WHERE n > ?1 ORDER BY id").unwrap();
        let ids = stmt.query_map([0_i64], |r| r.get::<_, String>(0)).unwrap().collect::<Result<Vec<_>>>().unwrap();
        assert_eq!(ids, ["a", "b", "c"]);
        let mut rows = stmt.query([4_i64]).unwrap();
        let mut seen = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            seen.push(row.get::<_, String>(0).unwrap());
        }
        assert_eq!(seen, ["a", "c"]);
    }

    #[test]
    fn a_statement_takes_exactly_its_parameters() {
        let (_dir, conn) = connection();
        for wrong in [conn.execute("INSERT INTO t (id) VALUES (?1)", []), conn.execute("INSERT INTO t (id) VALUES (?1)", ["a", "b"])] {
            let e = wrong.unwrap_err();
            assert!(matches!(e, Error::Other(_)) && e.to_string().contains("number of parameters"), "{e:?}");
        }
        let e = conn.execute("INSERT INTO t (id, n) VALUES ('a', ?1)", [u64::MAX]).unwrap_err();
        assert!(matches!(e, Error::Conversion { .. }), "a u64 beyond i64 is refused, not wrapped: {e:?}");
    }

    #[test]
    fn no_row_is_its_own_error_and_optional_makes_it_none() {
        let (_dir, conn) = connection();
        let missing = conn.query_row("SELECT id FROM t WHERE id = 'nope'", [], |r| r.get::<_, String>(0));
        assert!(matches!(missing, Err(Error::NoRows)));
        let missing = conn.query_row("SELECT id FROM t WHERE id = 'nope'", [], |r| r.get::<_, String>(0)).optional().unwrap();
        assert_eq!(missing, None);
    }

    #[test]
    fn a_column_of_the_wrong_type_is_named() {
        let (_dir, conn) = connection();
        conn.execute("INSERT INTO t (id, n) VALUES ('a', 0)", []).unwrap();
        let e = conn.query_row("SELECT id FROM t", [], |r| r.get::<_, i64>(0)).unwrap_err();
        assert!(matches!(e, Error::Conversion { .. }) && e.to_string().contains("column 0"), "{e}");
        let e = conn.query_row("SELECT -1 AS n", [], |r| r.get::<_, usize>("n")).unwrap_err();
        assert!(e.to_string().contains("column \"n\"") && e.to_string().contains("out of range"), "{e}");
    }

    #[test]
    fn unique_and_other_constraints_are_told_apart() {
        let (_dir, conn) = connection();
        conn.execute("INSERT INTO t (id, n) VALUES ('a', 1)", []).unwrap();
        let e = conn.execute("INSERT INTO t (id, n) VALUES ('a', 2)", []).unwrap_err();
        assert!(matches!(&e, Error::Unique(m) if m.contains("UNIQUE constraint failed")), "{e:?}");
        let e = conn.execute("INSERT INTO t (id, n) VALUES ('b', -1)", []).unwrap_err();
        assert!(matches!(&e, Error::Constraint(m) if m.contains("CHECK constraint failed")), "{e:?}");
    }

    #[test]
    fn a_transaction_rolls_back_unless_committed() {
        let (_dir, conn) = connection();
        let count = |conn: &Connection| conn.query_row("SELECT COUNT(*) FROM t", [], |r| r.get::<_, i64>(0)).unwrap();
        assert!(!conn.in_transaction());
        {
            let tx = conn.begin_write().unwrap();
            tx.execute("INSERT INTO t (id) VALUES ('a')", []).unwrap();
            assert!(conn.in_transaction());
            assert_eq!(count(&tx), 1, "statements through the connection run inside it");
        }
        assert!(!conn.in_transaction());
        assert_eq!(count(&conn), 0);
        let tx = conn.begin_write().unwrap();
        tx.execute("INSERT INTO t (id) VALUES ('a')", []).unwrap();
        tx.commit().unwrap();
        assert_eq!(count(&conn), 1);
        let read = conn.begin_read().unwrap();
        assert!(conn.in_transaction());
        drop(read);
        assert!(!conn.in_transaction());
    }

    #[test]
    fn a_snapshot_is_the_database_and_opens_read_only() {
        let (dir, conn) = connection();
        conn.execute("INSERT INTO teams (id, name, created_at) VALUES ('t', 'team', 'now')", []).unwrap();
        let copy = dir.path().join("copy.db");
        conn.snapshot(&copy).unwrap();
        let snapshot = Connection::open_snapshot(&copy).unwrap();
        let teams: i64 = snapshot.query_row("SELECT COUNT(*) FROM teams", [], |r| r.get(0)).unwrap();
        assert_eq!(teams, 1);
        assert!(snapshot.execute("DELETE FROM teams", []).is_err(), "a snapshot is only read");
        assert!(snapshot.integrity_problems().unwrap().is_empty());
        assert!(conn.snapshot(&copy).is_err(), "a snapshot never overwrites a file");
    }
}
