//! Conversions (`POST …/versions/{vid}/conversions/`): DataRobot converts a
//! version's SAS program to a JAR with its own SAS runtime. modelreg has no
//! SAS compiler; what it can do honestly is compile a Java main program
//! with the host's JDK and package it as a runnable JAR:
//!
//! 1. `start` checks the request before anything is recorded: the item is
//!    one of the version's files, it is a `.java` program (a `.sas` one, or
//!    anything else, is a 422 saying modelreg cannot compile it), `javac`
//!    and `jar` are on the host (else a 422 saying to install a JDK), and
//!    the main class is named by the file's package declaration and name;
//! 2. the job (`run`, compute lane) writes the version's files into its
//!    folder, runs `javac -d classes` over every `.java` of the version
//!    (its `.jar` files on the class path) and `jar --create --main-class`,
//!    both through `process::run_logged` (own process group, killed on a
//!    stop or at the deadline), their output going to the job's log, which
//!    is the conversion's `logMessage`;
//! 3. the JAR is stored as a blob that the conversion row owns (the version
//!    never changes), under an upload guard until the row commits.
//!
//! `MODELREG_JAVAC` and `MODELREG_JAR` name the tools when they are not
//! `javac` and `jar` on the PATH (a path, or a command name looked up on
//! the PATH); `MODELREG_CONVERSION_TIMEOUT_SECS` overrides the deadline.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::jobs::Settings;
use crate::process::{self, Stopped};
use crate::registry::compute::conversions::Conversion;
use crate::registry::compute::jobs::JobLog;
use crate::registry::{Error, Job, Principal, Registry};

/// How long a whole conversion (javac and jar) may take.
pub const CONVERSION_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// The package declaration is looked for in this much of the main file.
const MAX_HEADER: u64 = 1024 * 1024;

/// The JDK tools a conversion runs.
#[derive(Debug)]
pub struct Jdk {
    pub javac: PathBuf,
    pub jar: PathBuf,
}

/// `$var` (a path, or a name looked up on the PATH), else `name` on the
/// PATH; only an executable regular file counts.
fn tool(var: &str, name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let command = PathBuf::from(std::env::var_os(var).filter(|v| !v.is_empty()).unwrap_or_else(|| name.into()));
    let executable = |p: &Path| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if command.components().count() > 1 {
        return executable(&command).then_some(command);
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join(&command)).find(|p| executable(p))
}

/// The host's `javac` and `jar`; Err says how to get them.
pub fn locate_jdk() -> Result<Jdk, String> {
    let (javac, jar) = (tool("MODELREG_JAVAC", "javac"), tool("MODELREG_JAR", "jar"));
    match (javac, jar) {
        (Some(javac), Some(jar)) => Ok(Jdk { javac, jar }),
        (javac, _) => Err(format!(
            "this host has no JDK, so modelreg cannot compile Java: {} not found on the PATH. Install a JDK \
             (on Debian or Ubuntu: apt-get install default-jdk-headless) and try again; MODELREG_JAVAC and MODELREG_JAR \
             name the tools when they are elsewhere",
            if javac.is_none() { "javac was" } else { "jar was" }
        )),
    }
}

const KEYWORDS: &[&str] = &[
    "abstract", "assert", "boolean", "break", "byte", "case", "catch", "char", "class", "const", "continue", "default", "do",
    "double", "else", "enum", "extends", "final", "finally", "float", "for", "goto", "if", "implements", "import",
    "instanceof", "int", "interface", "long", "native", "new", "package", "private", "protected", "public", "return",
    "short", "static", "strictfp", "super", "switch", "synchronized", "this", "throw", "throws", "transient", "try",
    "void", "volatile", "while", "true", "false", "null", "_",
];

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_alphanumeric() || c == '_' || c == '$')
        && !KEYWORDS.contains(&s)
}

/// `s` without leading whitespace and comments.
fn skip_blank(mut s: &str) -> &str {
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix("//") {
            s = rest.find('\n').map_or("", |i| &rest[i..]);
        } else if let Some(rest) = s.strip_prefix("/*") {
            s = rest.find("*/").map_or("", |i| &rest[i + 2..]);
        } else {
            return s;
        }
    }
}

/// The package a Java source declares ("" for the default package): a
/// `package a.b;` before anything but comments. Err when it is there but
/// cannot be read.
pub fn declared_package(source: &str) -> Result<String, String> {
    let rest = skip_blank(source.trim_start_matches('\u{feff}'));
    let Some(mut rest) = rest.strip_prefix("package").filter(|r| r.starts_with(|c: char| c.is_whitespace() || c == '/')) else {
        return Ok(String::new());
    };
    let mut name = String::new();
    loop {
        rest = skip_blank(rest);
        match rest.chars().next() {
            Some(';') => break,
            Some(c) if c.is_alphanumeric() || matches!(c, '_' | '$' | '.') => {
                name.push(c);
                rest = &rest[c.len_utf8()..];
            }
            _ => return Err("its package declaration cannot be read (expected `package name.of.the.package;`)".into()),
        }
    }
    if !name.split('.').all(is_identifier) {
        return Err(format!("its package declaration names {name:?}, which is not a Java package name"));
    }
    Ok(name)
}

/// The class a main program at `path` declares: its package and its file
/// name without `.java`.
pub fn main_class(path: &str, source: &str) -> Result<String, String> {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.strip_suffix(".java").unwrap_or(file);
    if !is_identifier(stem) {
        return Err(format!("{path}: {stem:?} is not a Java class name, so it cannot be a main class"));
    }
    let package = declared_package(source).map_err(|e| format!("{path}: {e}"))?;
    Ok(if package.is_empty() { stem.to_string() } else { format!("{package}.{stem}") })
}

/// Checks a conversion request and records it with its job (the route's
/// and the CLI's one way in). 422, with nothing recorded, for an item the
/// version does not hold, a program modelreg cannot compile (SAS or any
/// other but Java), or a host without a JDK.
pub fn start(
    registry: &Registry,
    who: &Principal,
    model_id: &str,
    version_id: &str,
    item_id: &str,
) -> crate::registry::Result<(Conversion, Job)> {
    let version = registry.get_version_by_id(who, model_id, version_id)?;
    let file = version.files.iter().find(|f| f.id == item_id).ok_or_else(|| {
        Error::invalid("mainProgramItemId", format!("custom model version {version_id} has no item {item_id}"))
    })?;
    if file.path.to_ascii_lowercase().ends_with(".sas") {
        return Err(Error::unprocessable(format!(
            "{} is a SAS program, and modelreg has no SAS compiler: it cannot convert SAS to a JAR (DataRobot does that with its \
             own SAS runtime). modelreg converts a Java main program (.java) with the host's JDK",
            file.path
        )));
    }
    if !file.path.ends_with(".java") {
        return Err(Error::unprocessable(format!(
            "modelreg cannot compile {}: it converts only a Java main program (a .java file) into a JAR, with the host's JDK",
            file.path
        )));
    }
    locate_jdk().map_err(Error::unprocessable)?;
    let mut source = Vec::new();
    registry
        .open_blob(&file.sha256)?
        .take(MAX_HEADER)
        .read_to_end(&mut source)
        .map_err(|e| Error::Internal(format!("cannot read {}: {e}", file.path)))?;
    let main_class = main_class(&file.path, &String::from_utf8_lossy(&source)).map_err(Error::unprocessable)?;
    registry.create_conversion(who, model_id, version_id, item_id, &main_class)
}

/// The conversion's path under `/api/v2/` (the status route's 303).
pub fn conversion_path(c: &Conversion) -> String {
    format!("/api/v2/customModels/{}/versions/{}/conversions/{}/", c.model_id, c.version_id, c.id)
}

/// The job of `POST …/conversions/`. It succeeds whenever the conversion
/// reached a verdict, a compile error included (the status route then
/// answers 303 to the conversion, which says what happened); a stop ends
/// it cancelled.
pub fn run(registry: &Registry, settings: &Settings, job: &Job) -> Result<Value, String> {
    let id = job.subject_id.clone().ok_or("the conversion job names no conversion")?;
    let conversion = registry.conversion_by_id(&id).map_err(|e| e.message())?;
    let location = json!({"location": conversion_path(&conversion)});
    if !conversion.is_running() {
        return Ok(location);
    }
    let job_log = JobLog::new(registry, &job.id);
    let mut log = |line: &str| job_log.line(line);
    let mut should_stop = || registry.job_cancel_requested(&job.id).unwrap_or(true).then(|| "the conversion was stopped on request".to_string());
    let job_dir = settings.data_dir.join("jobs").join(&job.id);
    // A job run again after a restart starts from a clean folder.
    let _ = std::fs::remove_dir_all(&job_dir);
    let outcome = compile_and_package(registry, &conversion, &job_dir, &mut log, &mut should_stop);
    let result = match outcome {
        Ok(jar) => store_jar(registry, &conversion, &jar, &job_log),
        Err(message) => {
            if registry.job_cancel_requested(&job.id).unwrap_or(false) {
                log(&format!("Conversion stopped: {message}."));
            } else {
                log(&format!("ERROR: {message}"));
                log("Conversion failed.");
            }
            job_log.flush();
            registry.finish_conversion(&id, None).map(|_| ()).map_err(|e| e.message())
        }
    };
    let _ = std::fs::remove_dir_all(&job_dir);
    result.map(|()| location)
}

/// Stores the JAR and records it on the conversion: the log is complete
/// before the row says the conversion ended.
fn store_jar(registry: &Registry, conversion: &Conversion, jar: &Path, job_log: &JobLog) -> Result<(), String> {
    let guard = registry.upload_guard().map_err(|e| e.message())?;
    let mut file = std::fs::File::open(jar).map_err(|e| format!("cannot read the JAR jar wrote: {e}"))?;
    let digest = registry.put_blob(&mut file, None).map_err(|e| e.message())?;
    job_log.line(&format!("Stored the JAR: {} bytes, sha256 {}. Run it with `java -jar`.", digest.size, digest.sha256));
    job_log.line("Conversion succeeded.");
    job_log.flush();
    registry.finish_conversion(&conversion.id, Some(&digest)).map_err(|e| e.message())?;
    drop(guard);
    Ok(())
}

fn compile_and_package(
    registry: &Registry,
    conversion: &Conversion,
    job_dir: &Path,
    log: &mut dyn FnMut(&str),
    should_stop: &mut dyn FnMut() -> Option<String>,
) -> Result<PathBuf, String> {
    let deadline = Instant::now() + crate::process::timeout_from_env("MODELREG_CONVERSION_TIMEOUT_SECS", CONVERSION_TIMEOUT);
    let jdk = locate_jdk()?;
    let who = registry.principal_of(&conversion.created_by).map_err(|e| e.message())?;
    let version = registry.get_version_by_id(&who, &conversion.model_id, &conversion.version_id).map_err(|e| e.message())?;
    let main = version
        .files
        .iter()
        .find(|f| f.id == conversion.main_program_item_id)
        .ok_or_else(|| format!("the version no longer holds item {}", conversion.main_program_item_id))?;
    let job_dir = std::path::absolute(job_dir).map_err(|e| format!("cannot resolve the job folder: {e}"))?;
    let (src, classes) = (job_dir.join("src"), job_dir.join("classes"));
    for dir in [&src, &classes] {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    super::drum::materialise(registry, &version, &src)?;
    let mut sources: Vec<&str> = version.files.iter().map(|f| f.path.as_str()).filter(|p| p.ends_with(".java")).collect();
    sources.sort_unstable();
    let mut class_path: Vec<&str> = Vec::new();
    for jar in version.files.iter().map(|f| f.path.as_str()).filter(|p| p.ends_with(".jar")) {
        if jar.contains(':') {
            log(&format!("{jar} is left off the class path: a class path cannot hold a ':' in a file name."));
        } else {
            class_path.push(jar);
        }
    }
    class_path.sort_unstable();
    log(&format!(
        "Converting {} of custom model version {} into a JAR with Main-Class {}: {} Java source file(s), {} JAR(s) on the class path.",
        main.path,
        version.id,
        conversion.main_class,
        sources.len(),
        class_path.len()
    ));

    let mut javac = Command::new(&jdk.javac);
    javac.current_dir(&src).args(["-encoding", "UTF-8", "-d"]).arg(&classes);
    let mut shown = String::from("javac -encoding UTF-8 -d classes");
    if !class_path.is_empty() {
        javac.arg("-cp").arg(class_path.join(":"));
        shown.push_str(&format!(" -cp {}", class_path.join(":")));
    }
    javac.args(&sources);
    log(&format!("$ {shown} {}", sources.join(" ")));
    run_tool(javac, "javac", deadline, log, should_stop)?;

    let class_file = classes.join(format!("{}.class", conversion.main_class.replace('.', "/")));
    if !class_file.is_file() {
        return Err(format!(
            "javac compiled the sources but made no class {}: {} must declare a class of its own name",
            conversion.main_class, main.path
        ));
    }
    let stem = main.path.rsplit('/').next().unwrap_or(&main.path).trim_end_matches(".java");
    let jar_path = job_dir.join(format!("{stem}.jar"));
    let mut jar = Command::new(&jdk.jar);
    jar.args(["--create", "--file"]).arg(&jar_path).args(["--main-class", &conversion.main_class, "-C"]).arg(&classes).arg(".");
    log(&format!("$ jar --create --file {stem}.jar --main-class {} -C classes .", conversion.main_class));
    run_tool(jar, "jar", deadline, log, should_stop)?;
    if !class_path.is_empty() {
        log(&format!("The JAR holds the version's classes only: run it with the version's JARs on the class path too ({}).", class_path.join(", ")));
    }
    Ok(jar_path)
}

/// Runs one JDK tool to its end within what is left of `deadline`.
fn run_tool(
    command: Command,
    name: &str,
    deadline: Instant,
    log: &mut dyn FnMut(&str),
    should_stop: &mut dyn FnMut() -> Option<String>,
) -> Result<(), String> {
    let left = deadline.saturating_duration_since(Instant::now());
    match process::run_logged(command, left, log, should_stop).map_err(|e| format!("cannot run {name}: {e}"))? {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("{name} failed ({status}); its messages are above")),
        Err(Stopped::Asked(reason)) => Err(reason),
        Err(Stopped::TimedOut(_)) => Err(format!("the conversion did not finish in time, so {name} was killed")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_main_class_comes_from_the_package_and_the_file_name() {
        let source = "\u{feff}/* Licence\n * package not.this; */\n// package nor.this;\npackage com.example . app ;\nimport java.util.*;\n";
        assert_eq!(main_class("src/com/example/app/Main.java", source).unwrap(), "com.example.app.Main");
        assert_eq!(main_class("Main.java", "public class Main {}\n").unwrap(), "Main");
        assert_eq!(main_class("Main.java", "packaged thing").unwrap(), "Main");
        assert!(main_class("my-main.java", "").unwrap_err().contains("not a Java class name"));
        assert!(main_class("class.java", "").is_err());
        assert!(main_class("Main.java", "package com.class;").unwrap_err().contains("not a Java package name"));
        assert!(main_class("Main.java", "package com.example").unwrap_err().contains("cannot be read"));
    }
}
