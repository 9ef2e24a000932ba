//! Pulling files from a git repository into the blob store, with the `git`
//! command and its plumbing only: nothing is checked out, so no file of the
//! repository is ever written to disk as a file, and no hook, filter or
//! submodule of it runs.
//!
//! Each registered repository has a bare cache, `<data>/repositories/<id>.git`,
//! locked for the length of a pull. A pull is
//!
//! ```text
//! git ls-remote --symref <location> HEAD      (only when no ref is given)
//! git fetch --depth 1 <location> <ref>
//! git rev-parse FETCH_HEAD^{commit}
//! git ls-tree -r -l <commit> -- <sourcePath…>
//! git cat-file blob <sha>                     (per file, streamed into the blob store)
//! ```
//!
//! Every call runs through `crate::process` (its own process group, killed
//! on a cancel or at `GIT_TIMEOUT`) with no inherited git configuration
//! (`GIT_CONFIG_NOSYSTEM`, `GIT_CONFIG_GLOBAL=/dev/null`), no prompts, hooks
//! off, one transport allowed (`https`, or `file` for a local repository:
//! `ext::` and every other one refused), and literal pathspecs. A token
//! reaches git only through the environment of the call and a fixed askpass
//! helper that prints it (`<data>/repositories/askpass`), never its command
//! line, so it appears in no process list, log or message.

pub mod pull;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::{run_reading, Stopped};
use crate::registry::{validate_file_path, Digest, Registry};

/// How long one git call may take. `MODELREG_GIT_TIMEOUT_SECS` overrides.
pub const GIT_TIMEOUT: Duration = Duration::from_secs(600);
/// At most this many files are pulled into one version.
pub const MAX_FILES: usize = 1000;
/// Text output (ls-remote, rev-parse) is read up to this size.
const MAX_TEXT: u64 = 64 * 1024;

/// Mode of a symbolic link and of a submodule in a tree.
const MODE_LINK: &str = "120000";
const MODE_SUBMODULE: &str = "160000";

/// The askpass helper: git runs it with its prompt as the argument and
/// reads the answer from its stdout. It holds no secret; the token is in
/// the environment of the one git call that needs it.
const ASKPASS: &str = "#!/bin/sh\ncase \"$1\" in\n  Username*) printf '%s\\n' \"$MODELREG_GIT_USERNAME\" ;;\n  *) printf '%s\\n' \"$MODELREG_GIT_TOKEN\" ;;\nesac\n";

/// Environment variables a git call keeps (proxies and CA bundles); every
/// other one, GIT_* included, is dropped.
const KEPT_ENV: [&str; 10] =
    ["PATH", "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR"];

/// Where to pull from.
pub struct Source<'a> {
    /// The registered repository's id (names its cache).
    pub id: &'a str,
    /// For messages.
    pub name: &'a str,
    /// What git fetches from: an https URL, or a local repository's path.
    pub location: &'a str,
    /// A local repository (the `file` transport) rather than https.
    pub local: bool,
    /// (user name, token) for a private repository.
    pub credentials: Option<(&'a str, &'a str)>,
}

/// What to pull.
pub struct Selection<'a> {
    /// A branch, tag or commit sha; None: the repository's HEAD.
    pub git_ref: Option<&'a str>,
    /// Files or folders of the repository; empty: the whole tree.
    pub paths: &'a [String],
    /// The most bytes all files may hold together.
    pub max_bytes: Option<u64>,
}

#[derive(Debug)]
pub struct PulledFile {
    /// Where the file goes in the version.
    pub path: String,
    /// Where it is in the repository.
    pub repository_path: String,
    pub digest: Digest,
}

pub struct Pulled {
    /// The ref as asked, or the default branch when none was.
    pub git_ref: String,
    pub commit: String,
    pub files: Vec<PulledFile>,
    /// Taken before the first blob was written (not for the fetch, which
    /// may be slow, so gc is not held up by it): hold it until the version
    /// that names the blobs commits.
    pub guard: crate::registry::UploadGuard,
}

/// One line of `git ls-tree -r -l`.
struct Entry {
    mode: String,
    sha: String,
    size: Option<u64>,
    path: String,
}

/// Pulls the selection from `source` into the blob store. The caller keeps
/// `Pulled::guard` until the version that names the blobs commits. Every
/// failure is a message a person can act on; the token is never in it.
pub fn pull(
    registry: &Registry,
    source: &Source,
    selection: &Selection,
    log: &dyn Fn(&str),
    should_stop: &dyn Fn() -> Option<String>,
) -> Result<Pulled, String> {
    let root = registry.data_dir().join("repositories");
    std::fs::create_dir_all(&root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    let _lock = lock(&root.join(format!("{}.lock", source.id)))?;
    let git = Git::new(&root, source, log, should_stop)?;
    git.ensure_cache()?;

    let (fetch_ref, git_ref) = match selection.git_ref {
        Some(r) => (r.to_string(), r.to_string()),
        None => git.default_branch()?,
    };
    log(&format!("Fetching {git_ref} from repository {} ({}).", source.name, source.location));
    git.fetch(&fetch_ref, &git_ref)?;
    let commit = git.text(&["rev-parse", "--verify", "--quiet", "FETCH_HEAD^{commit}"], "reading the fetched commit")?;
    let commit = commit.trim().to_string();
    log(&format!("Fetched commit {commit}."));

    let entries = git.ls_tree(&commit, selection.paths)?;
    let at = format!("repository {} at {git_ref} ({})", source.name, &commit[..commit.len().min(12)]);
    let chosen = place(&entries, selection.paths, &at, log)?;
    let total: u64 = chosen.values().map(|e| e.size.unwrap_or(0)).sum();
    if let Some(max) = selection.max_bytes.filter(|max| total > *max) {
        return Err(format!("the selected files hold {total} bytes, more than this server's upload limit of {max} bytes"));
    }
    let guard = registry.upload_guard().map_err(|e| e.message())?;
    let mut files = Vec::with_capacity(chosen.len());
    let mut left = selection.max_bytes;
    for (path, entry) in chosen {
        let digest = git.blob(registry, entry, left)?;
        left = left.map(|l| l.saturating_sub(digest.size));
        files.push(PulledFile { path, repository_path: entry.path.clone(), digest });
    }
    log(&format!("Pulled {} file(s), {total} bytes, from commit {commit}.", files.len()));
    Ok(Pulled { git_ref, commit, files, guard })
}

/// How long the POST's probe may wait for the remote.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// Asks the remote, within `PROBE_TIMEOUT`, whether it can be reached and
/// names `git_ref` (a branch or tag; a commit sha is known only once
/// fetched, so for one only the reachability is asked). The POST of
/// `fromRepository/` uses it, so that these two mistakes are a 422 at once
/// rather than a failed job.
pub fn probe(registry: &Registry, source: &Source, git_ref: Option<&str>) -> Result<(), String> {
    let root = registry.data_dir().join("repositories");
    std::fs::create_dir_all(&root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    let (log, never) = (|_: &str| {}, || None);
    let mut git = Git::new(&root, source, &log, &never)?;
    git.timeout = git.timeout.min(PROBE_TIMEOUT);
    {
        let _lock = lock(&root.join(format!("{}.lock", source.id)))?;
        git.ensure_cache()?;
    }
    let is_sha = |r: &str| r.len() == 40 && r.bytes().all(|b| b.is_ascii_hexdigit());
    let pattern = git_ref.filter(|r| !is_sha(r)).unwrap_or("HEAD");
    let listing = git.run(&["ls-remote", "--", source.location, pattern], &mut read_text).map_err(|f| git.unreachable(&f))?;
    match git_ref {
        Some(r) if pattern == r && listing.trim().is_empty() => {
            Err(format!("ref {r} does not exist in repository {} ({})", source.name, source.location))
        }
        _ => Ok(()),
    }
}

/// Where each selected entry goes in the version: a file named by a
/// sourcePath to its base name, a folder's files relative to the folder,
/// the whole tree as it is. Links and submodules are skipped (and logged);
/// a sourcePath that is not in the tree, or yields nothing, fails the pull.
fn place<'e>(entries: &'e [Entry], paths: &[String], at: &str, log: &dyn Fn(&str)) -> Result<BTreeMap<String, &'e Entry>, String> {
    let skipped = |e: &Entry| match e.mode.as_str() {
        MODE_LINK => Some("symbolic link"),
        MODE_SUBMODULE => Some("submodule"),
        _ => None,
    };
    for e in entries {
        if let Some(what) = skipped(e) {
            log(&format!("Skipped the {what} {}: links and submodules are not pulled.", e.path));
        }
    }
    let mut chosen: BTreeMap<String, &Entry> = BTreeMap::new();
    fn add<'e>(chosen: &mut BTreeMap<String, &'e Entry>, target: String, e: &'e Entry) -> Result<(), String> {
        validate_file_path(&target).map_err(|err| format!("{} cannot be stored in a version: {}", e.path, err.message()))?;
        match chosen.get(&target) {
            Some(other) if other.sha != e.sha => {
                Err(format!("{} and {} would both be placed at {target} in the version; pull them separately", other.path, e.path))
            }
            _ => {
                chosen.insert(target, e);
                Ok(())
            }
        }
    }
    if paths.is_empty() {
        for e in entries.iter().filter(|e| skipped(e).is_none()) {
            add(&mut chosen, e.path.clone(), e)?;
        }
        if chosen.is_empty() {
            return Err(format!("{at} holds no file that can be pulled"));
        }
    }
    for wanted in paths {
        let prefix = format!("{wanted}/");
        let matched: Vec<&Entry> = entries.iter().filter(|e| e.path == *wanted || e.path.starts_with(&prefix)).collect();
        if matched.is_empty() {
            return Err(format!("sourcePath {wanted:?} is not in {at}"));
        }
        let mut any = false;
        for e in matched.into_iter().filter(|e| skipped(e).is_none()) {
            let target = match e.path.strip_prefix(&prefix) {
                Some(inside) => inside.to_string(),
                None => wanted.rsplit('/').next().unwrap_or(wanted).to_string(),
            };
            add(&mut chosen, target, e)?;
            any = true;
        }
        if !any {
            return Err(format!("sourcePath {wanted:?} in {at} holds nothing that can be pulled: only links or submodules"));
        }
    }
    Ok(chosen)
}

/// An exclusive lock on a repository's cache, released when dropped: two
/// pulls of one repository would otherwise share one FETCH_HEAD.
fn lock(path: &Path) -> Result<std::fs::File, String> {
    lock_with(path, libc::LOCK_EX)
}

fn lock_with(path: &Path, operation: libc::c_int) -> Result<std::fs::File, String> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    // SAFETY: flock on a descriptor we own; it is released when it closes.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), operation) } != 0 {
        return Err(format!("cannot lock {}: {}", path.display(), std::io::Error::last_os_error()));
    }
    Ok(file)
}

/// Removes a deleted repository's cache, unless a pull is using it (that
/// cache is then left behind: it is only a cache).
pub fn remove_cache(data_dir: &Path, id: &str) {
    let root = data_dir.join("repositories");
    let lock_path = root.join(format!("{id}.lock"));
    if !lock_path.exists() {
        return;
    }
    if let Ok(_held) = lock_with(&lock_path, libc::LOCK_EX | libc::LOCK_NB) {
        let _ = std::fs::remove_dir_all(root.join(format!("{id}.git")));
        let _ = std::fs::remove_file(&lock_path);
    }
}

/// Writes the askpass helper once (mode 0700, by rename, so it is never
/// seen half written).
fn askpass(root: &Path) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let path = root.join("askpass");
    if std::fs::read_to_string(&path).is_ok_and(|text| text == ASKPASS) {
        return Ok(path);
    }
    let temp = root.join(format!("askpass.{}", crate::registry::new_id()));
    std::fs::write(&temp, ASKPASS)
        .and_then(|_| std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o700)))
        .and_then(|_| std::fs::rename(&temp, &path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

/// The git calls of one pull.
struct Git<'a> {
    root: PathBuf,
    cache: PathBuf,
    source: &'a Source<'a>,
    askpass: Option<PathBuf>,
    timeout: Duration,
    log: &'a dyn Fn(&str),
    should_stop: &'a dyn Fn() -> Option<String>,
}

/// How a git call ended badly: its last stderr lines, why it was stopped,
/// or why its output could not be taken (which then also ends git).
enum Failure {
    Exited(Vec<String>),
    Stopped(String),
    Read(String),
}

impl Failure {
    fn text(&self) -> String {
        match self {
            Failure::Exited(lines) => {
                // git's own verdict ("fatal: …") rather than the advice it
                // prints after it.
                let lines: Vec<&str> = lines.iter().map(|l| l.trim()).filter(|l| !l.is_empty()).collect();
                let verdict = lines.iter().find_map(|l| l.strip_prefix("fatal: ").or_else(|| l.strip_prefix("error: ")));
                verdict.or(lines.last().copied()).map(str::to_string).unwrap_or_else(|| "git failed without a message".into())
            }
            Failure::Stopped(why) | Failure::Read(why) => why.clone(),
        }
    }

    fn says(&self, needle: &str) -> bool {
        matches!(self, Failure::Exited(lines) if lines.iter().any(|l| l.contains(needle)))
    }
}

impl<'a> Git<'a> {
    fn new(root: &Path, source: &'a Source<'a>, log: &'a dyn Fn(&str), should_stop: &'a dyn Fn() -> Option<String>) -> Result<Git<'a>, String> {
        let askpass = match source.credentials {
            Some(_) => Some(askpass(root)?),
            None => None,
        };
        let timeout = crate::process::timeout_from_env("MODELREG_GIT_TIMEOUT_SECS", GIT_TIMEOUT);
        Ok(Git {
            root: root.to_path_buf(),
            cache: root.join(format!("{}.git", source.id)),
            source,
            askpass,
            timeout,
            log,
            should_stop,
        })
    }

    /// `git` with the pull's hardened settings, on the cache repository.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("git");
        command.env_clear();
        for key in KEPT_ENV {
            if let Some(value) = std::env::var_os(key) {
                command.env(key, value);
            }
        }
        command
            .env("HOME", &self.root)
            .env("LC_ALL", "C")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_LITERAL_PATHSPECS", "1")
            .env("GIT_PROTOCOL_FROM_USER", "0");
        if let (Some(askpass), Some((user, token))) = (&self.askpass, self.source.credentials) {
            command.env("GIT_ASKPASS", askpass).env("MODELREG_GIT_USERNAME", user).env("MODELREG_GIT_TOKEN", token);
        }
        let transport = if self.source.local { "protocol.file.allow=always" } else { "protocol.https.allow=always" };
        for setting in [
            "protocol.allow=never",
            "protocol.ext.allow=never",
            transport,
            "core.hooksPath=/dev/null",
            "credential.helper=",
            "core.quotePath=false",
            "gc.auto=0",
            "maintenance.auto=false",
            "fetch.recurseSubmodules=false",
        ] {
            command.arg("-c").arg(setting);
        }
        command.arg("--git-dir").arg(&self.cache).args(args);
        command
    }

    /// Runs a git call, its stdout read by `consume`; stderr goes to the
    /// job's log (prefixed) and its last lines into a failure. An error of
    /// `consume` is the failure whatever git's exit (closing the pipe early
    /// ends git with SIGPIPE).
    fn run<T>(&self, args: &[&str], consume: &mut dyn FnMut(&mut dyn Read) -> Result<T, String>) -> Result<T, Failure> {
        let mut stderr: Vec<String> = Vec::new();
        let outcome = run_reading(
            self.command(args),
            self.timeout,
            &mut |line| {
                (self.log)(&format!("git | {line}"));
                if stderr.len() >= 20 {
                    stderr.remove(0);
                }
                stderr.push(line.to_string());
            },
            &mut || (self.should_stop)(),
            consume,
        );
        match outcome {
            Err(e) => Err(Failure::Stopped(format!("cannot run git: {e}"))),
            Ok(Err(Stopped::Asked(why))) => Err(Failure::Stopped(why)),
            Ok(Err(Stopped::TimedOut(t))) => Err(Failure::Stopped(format!("git did not finish within {} s and was stopped", t.as_secs()))),
            Ok(Ok((_, Err(why)))) => Err(Failure::Read(why)),
            Ok(Ok((status, Ok(value)))) if status.success() => Ok(value),
            Ok(Ok(_)) => Err(Failure::Exited(stderr)),
        }
    }

    /// A call whose (short) stdout is text.
    fn text(&self, args: &[&str], doing: &str) -> Result<String, String> {
        self.run(args, &mut read_text).map_err(|f| format!("{doing} failed: {}", f.text()))
    }

    fn unreachable(&self, failure: &Failure) -> String {
        match failure {
            Failure::Stopped(why) | Failure::Read(why) => why.clone(),
            Failure::Exited(_) => format!("repository {} ({}) cannot be reached: {}", self.source.name, self.source.location, failure.text()),
        }
    }

    /// The bare cache, created on first use (a half-made one is redone).
    fn ensure_cache(&self) -> Result<(), String> {
        if self.cache.join("HEAD").is_file() {
            return Ok(());
        }
        let _ = std::fs::remove_dir_all(&self.cache);
        std::fs::create_dir_all(&self.cache).map_err(|e| format!("cannot create {}: {e}", self.cache.display()))?;
        self.text(&["init", "--quiet", "--bare"], "creating the repository cache").map(|_| ())
    }

    /// The remote's default branch: (what to fetch, its name).
    fn default_branch(&self) -> Result<(String, String), String> {
        let listing =
            self.run(&["ls-remote", "--symref", "--", self.source.location, "HEAD"], &mut read_text).map_err(|f| self.unreachable(&f))?;
        for line in listing.lines() {
            if let Some(target) = line.strip_prefix("ref: ").and_then(|l| l.strip_suffix("\tHEAD")) {
                let name = target.strip_prefix("refs/heads/").unwrap_or(target);
                return Ok((target.to_string(), name.to_string()));
            }
        }
        if listing.lines().any(|l| l.ends_with("\tHEAD")) {
            return Ok(("HEAD".into(), "HEAD".into()));
        }
        Err(format!("repository {} has no default branch (it may be empty); name a ref", self.source.name))
    }

    fn fetch(&self, fetch_ref: &str, git_ref: &str) -> Result<(), String> {
        let args = ["fetch", "--quiet", "--depth", "1", "--no-tags", "--", self.source.location, fetch_ref];
        match self.run(&args, &mut |r| std::io::copy(r, &mut std::io::sink()).map_err(|e| format!("reading git's output failed: {e}"))) {
            Ok(_) => Ok(()),
            Err(f) if f.says("couldn't find remote ref") => {
                Err(format!("ref {git_ref} does not exist in repository {} ({})", self.source.name, self.source.location))
            }
            Err(f) if f.says("not our ref") || f.says("Server does not allow request for unadvertised object") => Err(format!(
                "commit {git_ref} does not exist in repository {} ({}), or its server does not serve commits by sha",
                self.source.name, self.source.location
            )),
            Err(f) => Err(self.unreachable(&f)),
        }
    }

    /// The tree's entries under `paths` (all when empty), read as they
    /// come; more than `MAX_FILES` pullable ones end the listing.
    fn ls_tree(&self, commit: &str, paths: &[String]) -> Result<Vec<Entry>, String> {
        let mut args = vec!["ls-tree", "-r", "-l", commit, "--"];
        args.extend(paths.iter().map(String::as_str));
        let listed = self.run(&args, &mut |r| {
            let mut entries = Vec::new();
            let mut pullable = 0;
            for line in BufReader::new(r).split(b'\n') {
                let line = line.map_err(|e| format!("reading the file list failed: {e}"))?;
                let entry = parse_entry(&line)?;
                if entry.mode != MODE_LINK && entry.mode != MODE_SUBMODULE {
                    pullable += 1;
                    if pullable > MAX_FILES {
                        return Err(format!("the selection holds more than {MAX_FILES} files; a version may hold at most {MAX_FILES}"));
                    }
                }
                entries.push(entry);
            }
            Ok(entries)
        });
        listed.map_err(|f| match f {
            Failure::Read(why) => why,
            f => format!("listing the files of commit {commit} failed: {}", f.text()),
        })
    }

    /// Streams one blob into the blob store and checks its size.
    fn blob(&self, registry: &Registry, entry: &Entry, limit: Option<u64>) -> Result<Digest, String> {
        let stored = self.run(&["cat-file", "blob", &entry.sha], &mut |r| registry.put_blob(r, limit).map_err(|e| e.message()));
        let digest = match stored {
            Ok(digest) => digest,
            Err(Failure::Read(why)) => return Err(format!("storing {} failed: {why}", entry.path)),
            Err(f) => return Err(format!("reading {} from the repository failed: {}", entry.path, f.text())),
        };
        if entry.size.is_some_and(|size| size != digest.size) {
            return Err(format!("{} was read short: {} of {} bytes", entry.path, digest.size, entry.size.unwrap_or(0)));
        }
        Ok(digest)
    }
}

/// A short text output, whole.
fn read_text(r: &mut dyn Read) -> Result<String, String> {
    let mut text = String::new();
    r.take(MAX_TEXT).read_to_string(&mut text).map_err(|e| format!("reading git's output failed: {e}"))?;
    Ok(text)
}

/// `<mode> SP <type> SP <sha> SP+ <size> TAB <path>`; a path git quoted
/// (one with a quote, backslash or control character) is unquoted.
fn parse_entry(line: &[u8]) -> Result<Entry, String> {
    let text = std::str::from_utf8(line).map_err(|_| format!("a file name is not UTF-8: {}", String::from_utf8_lossy(line)))?;
    let bad = || format!("unexpected line from git ls-tree: {text:?}");
    let (meta, path) = text.split_once('\t').ok_or_else(bad)?;
    let mut fields = meta.split_whitespace();
    let (mode, _kind, sha, size) = (fields.next().ok_or_else(bad)?, fields.next().ok_or_else(bad)?, fields.next().ok_or_else(bad)?, fields.next().ok_or_else(bad)?);
    let path = if path.starts_with('"') { unquote(path).ok_or_else(bad)? } else { path.to_string() };
    Ok(Entry { mode: mode.to_string(), sha: sha.to_string(), size: size.parse().ok(), path })
}

/// Undoes git's C-style quoting of a path (`"a\"b\tc\303\251"`).
fn unquote(quoted: &str) -> Option<String> {
    let inner = quoted.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = Vec::new();
    let mut bytes = inner.bytes();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let escaped = match bytes.next()? {
            b'a' => 7,
            b'b' => 8,
            b't' => b'\t',
            b'n' => b'\n',
            b'v' => 11,
            b'f' => 12,
            b'r' => b'\r',
            d @ b'0'..=b'3' => {
                let (d2, d3) = (bytes.next()?, bytes.next()?);
                if !(b'0'..=b'7').contains(&d2) || !(b'0'..=b'7').contains(&d3) {
                    return None;
                }
                (d - b'0') * 64 + (d2 - b'0') * 8 + (d3 - b'0')
            }
            other => other,
        };
        out.push(escaped);
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_paths_are_unquoted() {
        assert_eq!(unquote(r#""a\"b""#).unwrap(), "a\"b");
        assert_eq!(unquote(r#""tab\there""#).unwrap(), "tab\there");
        assert_eq!(unquote(r#""caf\303\251""#).unwrap(), "café");
        assert!(unquote("\"unterminated").is_none());
    }

    #[test]
    fn entries_are_parsed() {
        let e = parse_entry(b"100644 blob 45b983be36b73c0788dc9cbcb76cbb80fc7bb057       3\tmodels/m/custom.py").unwrap();
        assert_eq!((e.mode.as_str(), e.size, e.path.as_str()), ("100644", Some(3), "models/m/custom.py"));
        let s = parse_entry(b"160000 commit 45b983be36b73c0788dc9cbcb76cbb80fc7bb057       -\tvendor/lib").unwrap();
        assert_eq!(s.size, None);
    }

    #[test]
    fn the_token_is_in_the_environment_only() {
        let dir = tempfile::tempdir().unwrap();
        let source = Source { id: "r", name: "n", location: "https://example.com/r.git", local: false, credentials: Some(("x-access-token", "SECRET-TOKEN")) };
        let (log, stop) = (|_: &str| {}, || None);
        let git = Git::new(dir.path(), &source, &log, &stop).unwrap();
        let command = git.command(&["fetch", "--", source.location, "main"]);
        assert!(command.get_args().all(|a| !a.to_string_lossy().contains("SECRET")), "the token is on the command line");
        let envs: Vec<_> = command.get_envs().map(|(k, v)| (k.to_string_lossy().into_owned(), v.map(|v| v.to_string_lossy().into_owned()))).collect();
        assert!(envs.contains(&("MODELREG_GIT_TOKEN".into(), Some("SECRET-TOKEN".into()))));
        assert!(command.get_args().any(|a| a == "protocol.ext.allow=never"));
        // The helper answers git's two prompts as git asks them.
        let helper = git.askpass.clone().unwrap();
        let ask = |prompt: &str| {
            let out = Command::new(&helper)
                .arg(prompt)
                .env("MODELREG_GIT_USERNAME", "x-access-token")
                .env("MODELREG_GIT_TOKEN", "SECRET-TOKEN")
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap()
        };
        assert_eq!(ask("Username for 'https://example.com': "), "x-access-token\n");
        assert_eq!(ask("Password for 'https://x-access-token@example.com': "), "SECRET-TOKEN\n");
        assert!(!std::fs::read_to_string(&helper).unwrap().contains("SECRET"));
    }
}
