//! Building an execution environment version: validate the uploaded docker
//! context for real (a readable .tar.gz or .zip, a Dockerfile at its root,
//! no entry escaping the root, no links, no absurd sizes), record the base
//! image from the Dockerfile's FROM line, and, when an image builder is
//! configured, extract the context into the job's own directory and run
//! `<builder> build` on it, streaming its output into the job log.
//!
//! Archive entries are untrusted: every path is checked before anything is
//! written, extraction writes only regular files and directories it creates
//! itself (never through a link), and only below the job directory.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::registry::compute::jobs::JobLog;
use crate::registry::{Job, Registry};

/// Caps that make a context "absurd": a decompression bomb or a mistake.
pub const MAX_ENTRIES: usize = 100_000;
pub const MAX_UNPACKED_BYTES: u64 = 8 * 1024 * 1024 * 1024;
const MAX_DOCKERFILE_BYTES: u64 = 1024 * 1024;

/// How long `<builder> build` may run before it is killed and the build
/// fails. `MODELREG_BUILD_TIMEOUT_SECS` overrides it (tests, slow hosts).
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// `BUILD_TIMEOUT`, or `MODELREG_BUILD_TIMEOUT_SECS`: every build (images,
/// dependencies) has this deadline.
pub fn build_timeout() -> Duration {
    crate::process::timeout_from_env("MODELREG_BUILD_TIMEOUT_SECS", BUILD_TIMEOUT)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveFormat {
    TarGz,
    Zip,
}

impl ArchiveFormat {
    pub fn name(self) -> &'static str {
        match self {
            ArchiveFormat::TarGz => "tar.gz",
            ArchiveFormat::Zip => "zip",
        }
    }
}

/// Sniffs the magic bytes (never the file name).
pub fn sniff(file: &mut (impl Read + Seek)) -> std::io::Result<Option<ArchiveFormat>> {
    let mut magic = [0u8; 4];
    file.seek(SeekFrom::Start(0))?;
    let n = file.read(&mut magic)?;
    file.seek(SeekFrom::Start(0))?;
    Ok(match &magic[..n] {
        [0x1f, 0x8b, ..] => Some(ArchiveFormat::TarGz),
        [b'P', b'K', 3, 4] | [b'P', b'K', 5, 6] => Some(ArchiveFormat::Zip),
        _ => None,
    })
}

#[derive(Debug, PartialEq)]
pub struct ContextReport {
    pub format: ArchiveFormat,
    pub files: usize,
    pub unpacked_bytes: u64,
    pub dockerfile: String,
}

/// A safe relative path of an archive entry, with `./` prefixes removed;
/// None for the root itself. Err says why the entry is refused.
pub fn entry_path(raw: &str) -> Result<Option<String>, String> {
    if raw.contains('\0') || raw.contains('\\') {
        return Err(format!("entry {raw:?} contains a NUL or a backslash"));
    }
    if raw.starts_with('/') {
        return Err(format!("entry {raw:?} has an absolute path"));
    }
    let mut parts = Vec::new();
    for seg in raw.split('/') {
        match seg {
            "" | "." => {}
            ".." => return Err(format!("entry {raw:?} escapes the context root with '..'")),
            s => parts.push(s),
        }
    }
    Ok(if parts.is_empty() { None } else { Some(parts.join("/")) })
}

enum Kind {
    Dir,
    File,
}

/// Walks the archive, calling `visit` for every accepted entry with its
/// safe path and a reader of its bytes. Refuses links, devices and unsafe
/// paths, and stops at the size caps.
fn walk(file: &mut (impl Read + Seek), format: ArchiveFormat, visit: &mut dyn FnMut(&str, Kind, &mut dyn Read) -> Result<(), String>) -> Result<(usize, u64), String> {
    let mut count = 0usize;
    let mut total = 0u64;
    let mut account = |size: u64| -> Result<(), String> {
        count += 1;
        total = total.saturating_add(size);
        if count > MAX_ENTRIES {
            return Err(format!("the context has more than {MAX_ENTRIES} entries"));
        }
        if total > MAX_UNPACKED_BYTES {
            return Err(format!("the context unpacks to more than {MAX_UNPACKED_BYTES} bytes"));
        }
        Ok(())
    };
    file.seek(SeekFrom::Start(0)).map_err(|e| format!("cannot read the context: {e}"))?;
    match format {
        ArchiveFormat::TarGz => {
            let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&mut *file));
            let entries = archive.entries().map_err(|e| format!("the context is not a readable tar.gz: {e}"))?;
            for entry in entries {
                let mut entry = entry.map_err(|e| format!("the context is not a readable tar.gz: {e}"))?;
                let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
                let kind = match entry.header().entry_type() {
                    tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File,
                    tar::EntryType::Directory => Kind::Dir,
                    // Metadata records (long names, pax attributes) that the
                    // tar crate already folded into the next entry's path.
                    tar::EntryType::XGlobalHeader | tar::EntryType::XHeader | tar::EntryType::GNULongName | tar::EntryType::GNULongLink => continue,
                    tar::EntryType::Symlink | tar::EntryType::Link => {
                        return Err(format!("entry {raw:?} is a link; links are not allowed in a docker context"))
                    }
                    other => return Err(format!("entry {raw:?} has unsupported type {other:?}")),
                };
                let path = entry_path(&raw)?;
                account(entry.size())?;
                if let Some(path) = path {
                    visit(&path, kind, &mut entry)?;
                }
            }
        }
        ArchiveFormat::Zip => {
            let mut archive = zip::ZipArchive::new(&mut *file).map_err(|e| format!("the context is not a readable zip: {e}"))?;
            for i in 0..archive.len() {
                let mut entry = archive.by_index(i).map_err(|e| format!("the context is not a readable zip: {e}"))?;
                let raw = String::from_utf8_lossy(entry.name_raw()).into_owned();
                // Unix mode S_IFLNK: a symlink stored by zip -y.
                if entry.unix_mode().is_some_and(|m| m & 0o170000 == 0o120000) {
                    return Err(format!("entry {raw:?} is a symlink; links are not allowed in a docker context"));
                }
                let kind = if entry.is_dir() { Kind::Dir } else { Kind::File };
                let path = entry_path(&raw)?;
                account(entry.size())?;
                if let Some(path) = path {
                    visit(&path, kind, &mut entry)?;
                }
            }
        }
    }
    Ok((count, total))
}

/// Calls `visit` with the safe path and a reader of every regular file of
/// a .tar.gz or .zip archive, under the same rules as a context (links,
/// devices and unsafe paths refused, the size caps applied). Used for
/// archives other than docker contexts too (an uploaded template folder).
pub fn each_file(file: &mut (impl Read + Seek), format: ArchiveFormat, visit: &mut dyn FnMut(&str, &mut dyn Read) -> Result<(), String>) -> Result<(), String> {
    walk(file, format, &mut |path, kind, reader| match kind {
        Kind::File => visit(path, reader),
        Kind::Dir => Ok(()),
    })
    .map(|_| ())
}

/// Checks a context without writing anything.
pub fn inspect(file: &mut (impl Read + Seek)) -> Result<ContextReport, String> {
    let format = sniff(file)
        .map_err(|e| format!("cannot read the context: {e}"))?
        .ok_or("the context is neither a .tar.gz nor a .zip archive")?;
    let mut dockerfile = None;
    let (files, unpacked_bytes) = walk(file, format, &mut |path, kind, reader| {
        if path == "Dockerfile" && matches!(kind, Kind::File) {
            let mut text = String::new();
            reader
                .take(MAX_DOCKERFILE_BYTES + 1)
                .read_to_string(&mut text)
                .map_err(|e| format!("the Dockerfile cannot be read as UTF-8 text: {e}"))?;
            if text.len() as u64 > MAX_DOCKERFILE_BYTES {
                return Err(format!("the Dockerfile is larger than {MAX_DOCKERFILE_BYTES} bytes"));
            }
            dockerfile = Some(text);
        }
        Ok(())
    })?;
    let dockerfile = dockerfile.ok_or("the context has no file named Dockerfile at its root")?;
    Ok(ContextReport { format, files, unpacked_bytes, dockerfile })
}

/// Writes a context that `inspect` accepted into `dest` (which must be a
/// fresh, empty directory). Files are created with create_new, so nothing
/// pre-existing, and no link, is ever written through.
pub fn extract(file: &mut (impl Read + Seek), format: ArchiveFormat, dest: &Path) -> Result<(), String> {
    walk(file, format, &mut |path, kind, reader| {
        let target = dest.join(path);
        match kind {
            Kind::Dir => std::fs::create_dir_all(&target).map_err(|e| format!("cannot create {path}: {e}")),
            Kind::File => {
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| format!("cannot create the folder of {path}: {e}"))?;
                }
                let mut out = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&target)
                    .map_err(|e| format!("cannot write {path}: {e}"))?;
                std::io::copy(reader, &mut out).map(|_| ()).map_err(|e| format!("cannot write {path}: {e}"))
            }
        }
    })
    .map(|_| ())
}

/// The image of the first FROM instruction (flags such as --platform
/// skipped), e.g. `python:3.11-slim`.
pub fn base_image(dockerfile: &str) -> Option<String> {
    // Join backslash continuations so that a FROM split over lines parses.
    let joined = dockerfile.replace("\\\r\n", " ").replace("\\\n", " ");
    joined.lines().map(str::trim).find_map(|line| {
        let mut words = line.split_whitespace();
        let first = words.next()?;
        if !first.eq_ignore_ascii_case("FROM") {
            return None;
        }
        words.find(|w| !w.starts_with("--")).map(str::to_string)
    })
}

/// The job that builds an environment version. Its subject is the version
/// id; it records progress on the version row and writes an honest log.
pub fn run_build(registry: &Registry, image_builder: Option<&str>, job: &Job) -> Result<Value, String> {
    let vid = job.subject_id.clone().ok_or("the build job names no environment version")?;
    let job_log = JobLog::new(registry, &job.id);
    let log = |line: &str| job_log.line(line);
    let fail = |message: String| -> Result<Value, String> {
        log(&format!("ERROR: {message}"));
        log("Build failed.");
        // The whole log is in before the status says the build is over.
        job_log.flush();
        let _ = registry.set_env_build(&vid, "failed", None, None);
        Err(message)
    };
    let version = registry.env_version_by_id(&vid).map_err(|e| e.to_string())?;
    registry.set_env_build(&vid, "processing", None, None).map_err(|e| e.to_string())?;
    let location = format!("/api/v2/executionEnvironments/{}/versions/{vid}/", version.environment_id);
    let Some(context) = &version.context else {
        // An image URI or an uploaded image: nothing to validate or build.
        let (image_id, what) = match (&version.image, &version.docker_image_uri) {
            (Some(image), _) => (format!("sha256:{}", image.sha256), format!("an uploaded image archive of {} bytes", image.size)),
            (None, Some(uri)) => (format!("sha256:{}", crate::store::blobs::hex(&sha2_of(uri.as_bytes()))), format!("the image URI {uri}")),
            (None, None) => return fail("the version has neither a docker context, an image nor an image URI".into()),
        };
        log(&format!("No docker context was uploaded; the version uses {what}."));
        log("No image was built.");
        job_log.flush();
        registry.set_env_build(&vid, "success", Some(&image_id), None).map_err(|e| e.to_string())?;
        return Ok(json!({"location": location, "imageId": image_id}));
    };
    log(&format!("Docker context: sha256 {} ({} bytes).", context.sha256, context.size));
    let mut file = registry.open_blob(&context.sha256).map_err(|e| e.to_string())?;
    let report = match inspect(&mut file) {
        Ok(report) => report,
        Err(message) => return fail(message),
    };
    log(&format!(
        "Context is a readable {} archive: {} entries, {} bytes unpacked, every path inside the root, no links.",
        report.format.name(),
        report.files,
        report.unpacked_bytes
    ));
    let base = base_image(&report.dockerfile);
    match &base {
        Some(image) => log(&format!("Dockerfile found at the root; base image (FROM): {image}")),
        None => return fail("the Dockerfile has no FROM instruction".into()),
    }
    let image_id = match image_builder {
        None => {
            log("No image builder is configured (start the server with --image-builder docker to build images): no image was built.");
            format!("sha256:{}", context.sha256)
        }
        Some(builder) => match docker_build(registry, builder, job, &vid, &mut file, report.format, &log, build_timeout()) {
            Ok(id) => id,
            Err(message) => return fail(message),
        },
    };
    log("Build succeeded.");
    job_log.flush();
    registry.set_env_build(&vid, "success", Some(&image_id), base.as_deref()).map_err(|e| e.to_string())?;
    Ok(json!({"location": location, "imageId": image_id, "baseImage": base}))
}

fn sha2_of(bytes: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).to_vec()
}

/// Extracts the context under `<data>/jobs/<job id>/context` and runs
/// `<builder> build`, streaming stdout and stderr lines into the log. A
/// builder still running after `timeout` is killed (with its process
/// group) and the build fails.
#[allow(clippy::too_many_arguments)]
fn docker_build(
    registry: &Registry,
    builder: &str,
    job: &Job,
    vid: &str,
    file: &mut (impl Read + Seek),
    format: ArchiveFormat,
    log: &dyn Fn(&str),
    timeout: Duration,
) -> Result<String, String> {
    let job_dir: PathBuf = registry.data_dir().join("jobs").join(&job.id);
    let _ = std::fs::remove_dir_all(&job_dir);
    let context_dir = job_dir.join("context");
    std::fs::create_dir_all(&context_dir).map_err(|e| format!("cannot create the build directory: {e}"))?;
    let result = (|| {
        extract(file, format, &context_dir)?;
        let iid = job_dir.join("image-id");
        let tag = format!("modelreg-env:{vid}");
        log(&format!("Running: {builder} build --iidfile {} -t {tag} <context>", iid.display()));
        let mut command = std::process::Command::new(builder);
        command.arg("build").arg("--iidfile").arg(&iid).arg("-t").arg(&tag).arg(&context_dir);
        let outcome = crate::process::run_logged(command, timeout, &mut |line| log(line), &mut || None)
            .map_err(|e| format!("cannot run the image builder {builder:?}: {e}"))?;
        let status = match outcome {
            Ok(status) => status,
            Err(_) => return Err(format!("{builder} build did not finish within {} s and was killed", timeout.as_secs())),
        };
        if !status.success() {
            return Err(format!("{builder} build exited with {status}"));
        }
        let id = std::fs::read_to_string(&iid).map(|s| s.trim().to_string()).unwrap_or_default();
        if id.is_empty() {
            return Err(format!("{builder} build succeeded but wrote no image id"));
        }
        log(&format!("Built image {id} tagged {tag}."));
        Ok(id)
    })();
    let _ = std::fs::remove_dir_all(&job_dir);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::time::Instant;
    use std::io::Write;

    fn tar_gz(entries: &[(&str, &[u8])]) -> File {
        let mut file = tempfile::tempfile().unwrap();
        {
            let gz = flate2::write::GzEncoder::new(&mut file, flate2::Compression::fast());
            let mut builder = tar::Builder::new(gz);
            for (path, bytes) in entries {
                let mut header = tar::Header::new_gnu();
                header.set_size(bytes.len() as u64);
                header.set_mode(0o644);
                header.set_entry_type(tar::EntryType::Regular);
                // set_path refuses `..`; write the raw name to build hostile archives.
                let name = path.as_bytes();
                header.as_old_mut().name[..name.len()].copy_from_slice(name);
                header.set_cksum();
                builder.append(&header, *bytes).unwrap();
            }
            builder.into_inner().unwrap().finish().unwrap();
        }
        file
    }

    fn zip_of(entries: &[(&str, &[u8])], symlink: Option<(&str, &str)>) -> File {
        let mut file = tempfile::tempfile().unwrap();
        {
            let mut w = zip::ZipWriter::new(&mut file);
            let opts = zip::write::SimpleFileOptions::default();
            for (path, bytes) in entries {
                w.start_file(*path, opts).unwrap();
                w.write_all(bytes).unwrap();
            }
            if let Some((link, target)) = symlink {
                w.add_symlink(link, target, opts).unwrap();
            }
            w.finish().unwrap();
        }
        file
    }

    #[test]
    fn accepts_good_contexts_and_reads_from() {
        let mut f = tar_gz(&[("./Dockerfile", b"# base\nFROM --platform=linux/amd64 python:3.11-slim AS base\nRUN true\n"), ("./app/x.py", b"1")]);
        let r = inspect(&mut f).unwrap();
        assert_eq!((r.format, r.files), (ArchiveFormat::TarGz, 2));
        assert_eq!(base_image(&r.dockerfile).as_deref(), Some("python:3.11-slim"));
        let mut z = zip_of(&[("Dockerfile", b"FROM alpine\n"), ("src/a.txt", b"a")], None);
        assert_eq!(inspect(&mut z).unwrap().format, ArchiveFormat::Zip);
        let dir = tempfile::tempdir().unwrap();
        extract(&mut z, ArchiveFormat::Zip, dir.path()).unwrap();
        assert_eq!(std::fs::read(dir.path().join("src/a.txt")).unwrap(), b"a");
    }

    #[test]
    fn refuses_escapes_links_and_junk() {
        let mut slip = zip_of(&[("Dockerfile", b"FROM a"), ("../evil.txt", b"x")], None);
        assert!(inspect(&mut slip).unwrap_err().contains("escapes the context root"));
        let mut tslip = tar_gz(&[("Dockerfile", b"FROM a"), ("a/../../evil", b"x")]);
        assert!(inspect(&mut tslip).unwrap_err().contains("escapes"));
        let mut abs = tar_gz(&[("Dockerfile", b"FROM a"), ("/etc/x", b"x")]);
        assert!(inspect(&mut abs).unwrap_err().contains("absolute"));
        let mut link = zip_of(&[("Dockerfile", b"FROM a")], Some(("ln", "/etc/passwd")));
        assert!(inspect(&mut link).unwrap_err().contains("symlink"));
        let mut none = zip_of(&[("sub/Dockerfile", b"FROM a")], None);
        assert!(inspect(&mut none).unwrap_err().contains("no file named Dockerfile"));
        let mut junk = tempfile::tempfile().unwrap();
        junk.write_all(b"hello").unwrap();
        assert!(inspect(&mut junk).unwrap_err().contains("neither"));
        let mut bad_gz = tempfile::tempfile().unwrap();
        bad_gz.write_all(&[0x1f, 0x8b, 0, 1, 2, 3]).unwrap();
        assert!(inspect(&mut bad_gz).is_err());
    }

    #[test]
    fn from_lines() {
        assert_eq!(base_image("ARG X\nfrom ubuntu:22.04\nFROM other"), Some("ubuntu:22.04".into()));
        assert_eq!(base_image("FROM \\\n  nginx"), Some("nginx".into()));
        assert_eq!(base_image("RUN x"), None);
    }

    #[test]
    fn a_builder_past_its_deadline_is_killed_and_the_build_fails() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        registry.bootstrap().unwrap();
        let who = registry.operator().unwrap();
        let job = registry.enqueue_job(&who.team_id, "test", None, Value::Null, None).unwrap();
        let fake = dir.path().join("slow-docker");
        std::fs::write(&fake, "#!/bin/sh\necho starting\nexec sleep 60\n").unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let mut context = tar_gz(&[("Dockerfile", b"FROM alpine\n")]);
        let lines = std::cell::RefCell::new(Vec::new());
        let started = Instant::now();
        let result = docker_build(
            &registry,
            fake.to_str().unwrap(),
            &job,
            "vid",
            &mut context,
            ArchiveFormat::TarGz,
            &|line: &str| lines.borrow_mut().push(line.to_string()),
            Duration::from_secs(1),
        );
        let message = result.unwrap_err();
        assert!(message.contains("did not finish within 1 s"), "{message}");
        assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
        assert!(lines.borrow().iter().any(|l| l == "starting"), "{:?}", lines.borrow());
    }
}
