//! Remote repositories and versions pulled from them (issue 15), against the
//! real binary with local git repositories made here: registering (who may,
//! which locations, tokens never shown), `versions/fromRepository/` at a
//! branch, a tag and a commit sha, file and folder placement, PATCH on the
//! latest files, requirements.txt, the failures that leave no version, the
//! status Location's shape, and the CLI offline and with `--server`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{as_user, ok, sha256_hex, Part, Reply, Server};
use serde_json::{json, Value};

const API: &str = "/api/v2";
const REQUIREMENTS: &str = "pandas>=1.0\nnumpy==1.26.0\n";

// ----------------------------------------------------------------------------
// Git repositories made by the test.

/// Runs git in `dir` with a fixed identity; panics unless it succeeds.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false"])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn write(dir: &Path, path: &str, text: &str) {
    let target = dir.join(path);
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::write(target, text).unwrap();
}

/// A repository with two commits on `main` (the first tagged `first`) and
/// a branch `feature`:
///
/// - first:  top.txt "first", models/m/custom.py "A"
/// - second: top.txt "second", models/m/custom.py "B", models/m/requirements.txt,
///   models/m/sub/helper.py, README.md, and `link`, a symlink to top.txt
/// - feature (from second): feature.txt
struct Repo {
    dir: PathBuf,
    first: String,
    second: String,
    feature: String,
}

fn make_repo(root: &Path, name: &str) -> Repo {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    git(&dir, &["init", "--quiet"]);
    write(&dir, "top.txt", "first\n");
    write(&dir, "models/m/custom.py", "A\n");
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "--quiet", "-m", "first"]);
    git(&dir, &["tag", "first"]);
    let first = git(&dir, &["rev-parse", "HEAD"]);
    write(&dir, "top.txt", "second\n");
    write(&dir, "models/m/custom.py", "B\n");
    write(&dir, "models/m/requirements.txt", REQUIREMENTS);
    write(&dir, "models/m/sub/helper.py", "def help(): pass\n");
    write(&dir, "README.md", "# readme\n");
    std::os::unix::fs::symlink("top.txt", dir.join("link")).unwrap();
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "--quiet", "-m", "second"]);
    let second = git(&dir, &["rev-parse", "HEAD"]);
    git(&dir, &["checkout", "--quiet", "-b", "feature"]);
    write(&dir, "feature.txt", "feature\n");
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "--quiet", "-m", "feature"]);
    let feature = git(&dir, &["rev-parse", "HEAD"]);
    git(&dir, &["checkout", "--quiet", "main"]);
    Repo { dir, first, second, feature }
}

// ----------------------------------------------------------------------------
// Server-side setup.

/// A server that allows local repositories under the returned folder.
fn server_with_repos() -> (Server, tempfile::TempDir) {
    let root = tempfile::tempdir().unwrap();
    let s = Server::start_with(&["--allow-git-path", root.path().to_str().unwrap()]);
    (s, root)
}

/// What most tests start from: a server (with `args`) allowing the folder
/// `root`, the repository `project` in it, registered as `rid`, a built
/// environment and a model.
struct Project {
    s: Server,
    root: tempfile::TempDir,
    repo: Repo,
    env: String,
    m: String,
    rid: String,
}

fn project(args: &[&str]) -> Project {
    let root = tempfile::tempdir().unwrap();
    let mut all = vec!["--allow-git-path", root.path().to_str().unwrap()];
    all.extend_from_slice(args);
    let s = Server::start_with(&all);
    let repo = make_repo(root.path(), "project");
    let (env, m) = (environment(&s), model(&s));
    let rid = register_local(&s, "project", &repo.dir);
    Project { s, root, repo, env, m, rid }
}

fn tar_gz(name: &str, bytes: &[u8]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(gz);
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    builder.append_data(&mut header, name, bytes).unwrap();
    builder.into_inner().unwrap().finish().unwrap()
}

/// A public environment whose version built (validated); its id.
fn environment(s: &Server) -> String {
    let env = ok(&s.post_json(&format!("{API}/executionEnvironments/"), &json!({"name": "py", "programmingLanguage": "python", "isPublic": true})), 201)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let context = tar_gz("Dockerfile", b"FROM python:3.11-slim\n");
    let r = s.post_multipart(
        &format!("{API}/executionEnvironments/{env}/versions/"),
        &[Part::File { name: "docker_context", filename: "ctx.tar.gz", bytes: &context }],
    );
    let vid = ok(&r, 202)["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = ok(&s.get(&format!("{API}/executionEnvironments/{env}/versions/{vid}/")), 200);
        if v["buildStatus"] == "success" {
            return env;
        }
        assert!(v["buildStatus"] != "failed" && Instant::now() < deadline, "{v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn model(s: &Server) -> String {
    let m = ok(
        &s.post_json(&format!("{API}/customModels/"), &json!({"name": "from git", "targetType": "Regression", "targetName": "y"})),
        201,
    );
    m["id"].as_str().unwrap().to_string()
}

fn register(s: &Server, body: Value) -> Value {
    ok(&s.post_json(&format!("{API}/remoteRepositories/"), &body), 201)
}

fn register_local(s: &Server, name: &str, location: &Path) -> String {
    let r = register(s, json!({"name": name, "location": location.to_str().unwrap(), "sourceType": "git"}));
    r["id"].as_str().unwrap().to_string()
}

fn pull_path(model: &str) -> String {
    format!("{API}/customModels/{model}/versions/fromRepository/")
}

/// How a pull ended: the new version, or the status's error message.
enum Pulled {
    Version(Value),
    Error(String),
}

impl Pulled {
    fn version(self) -> Value {
        match self {
            Pulled::Version(v) => v,
            Pulled::Error(e) => panic!("the pull failed: {e}"),
        }
    }

    fn error(self) -> String {
        match self {
            Pulled::Error(e) => e,
            Pulled::Version(v) => panic!("the pull made version {}", v["id"]),
        }
    }
}

/// The status id in a 202's Location, taken as the Terraform provider takes
/// it: the 7th `/`-segment of `http://host/api/v2/status/<id>/`.
fn status_id(reply: &Reply) -> String {
    let location = reply.header("Location").unwrap_or_else(|| panic!("no Location: {}", String::from_utf8_lossy(&reply.body)));
    assert!(location.starts_with("http://"), "{location}");
    let segments: Vec<&str> = location.split('/').collect();
    assert_eq!(segments[3..6], ["api", "v2", "status"], "{location}");
    segments[6].to_string()
}

/// Sends a pull and follows its status to the end.
fn pull(s: &Server, method: &str, model: &str, body: Value) -> Pulled {
    let reply = s.send_json(method, &pull_path(model), &body);
    assert_eq!(reply.status, 202, "{}", String::from_utf8_lossy(&reply.body));
    wait(s, &status_id(&reply))
}

/// A pull refused at its POST (422): the message.
fn refused(s: &Server, model: &str, body: Value) -> String {
    let reply = s.send_json("POST", &pull_path(model), &body);
    assert_eq!(reply.status, 422, "{}", String::from_utf8_lossy(&reply.body));
    reply.json()["message"].as_str().unwrap().to_string()
}

fn wait(s: &Server, status: &str) -> Pulled {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = s.get_unfollowed(&format!("{API}/status/{status}/"));
        if r.status == 303 {
            let location = r.header("Location").unwrap().to_string();
            let path = &location[location.find("/api/").unwrap()..];
            return Pulled::Version(ok(&s.get(path), 200));
        }
        let body = ok(&r, 200);
        match body["status"].as_str() {
            Some("ERROR") | Some("ABORTED") => return Pulled::Error(body["message"].as_str().unwrap().to_string()),
            _ => {}
        }
        assert!(Instant::now() < deadline, "the pull did not end: {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn version_count(s: &Server, model: &str) -> u64 {
    ok(&s.get(&format!("{API}/customModels/{model}/versions/")), 200)["totalCount"].as_u64().unwrap()
}

/// The item at `path` of a version.
fn item<'a>(version: &'a Value, path: &str) -> &'a Value {
    version["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["filePath"] == path)
        .unwrap_or_else(|| panic!("no item {path} in {}", version["items"]))
}

fn paths(version: &Value) -> Vec<String> {
    let mut all: Vec<String> = version["items"].as_array().unwrap().iter().map(|i| i["filePath"].as_str().unwrap().to_string()).collect();
    all.sort();
    all
}

/// The content an item holds, by its sha256.
fn holds(item: &Value, text: &str) -> bool {
    item["storagePath"] == format!("sha256:{}", sha256_hex(text.as_bytes()))
}

/// The log of the job behind a status, read from the database (the pull
/// job's log has no route of its own).
fn job_log(s: &Server, status: &str) -> String {
    assert!(status.chars().all(|c| c.is_ascii_hexdigit() || c == '-'), "{status} is a job id");
    // the log's chunks in order, each engine's way of joining them
    let chunks = format!("SELECT text FROM job_log_chunks WHERE job_id = '{status}' ORDER BY seq");
    match s.database {
        Some(_) => s.database_text(&format!("SELECT string_agg(text, '' ORDER BY seq) FROM job_log_chunks WHERE job_id = '{status}'")),
        None => s.database_text(&format!("SELECT group_concat(text, '') FROM ({chunks})")),
    }
}

// ----------------------------------------------------------------------------

#[test]
fn versions_from_a_branch_a_tag_and_a_commit() {
    let Project { s, root: _root, repo, env, m, rid } = project(&[]);
    let location = repo.dir.to_str().unwrap();

    // No ref: the default branch, the whole tree (the symlink skipped).
    let reply = s.send_json("POST", &pull_path(&m), &json!({"repositoryId": rid, "baseEnvironmentId": env}));
    assert_eq!(reply.status, 202);
    let status = status_id(&reply);
    let v = wait(&s, &status).version();
    assert_eq!(paths(&v), ["README.md", "models/m/custom.py", "models/m/requirements.txt", "models/m/sub/helper.py", "top.txt"]);
    let custom = item(&v, "models/m/custom.py");
    assert!(holds(custom, "B\n"));
    assert_eq!(custom["fileSource"], "git");
    assert_eq!(custom["commitSha"], repo.second);
    assert_eq!(custom["ref"], "main");
    assert_eq!(custom["repositoryFilePath"], "models/m/custom.py");
    assert_eq!(custom["repositoryLocation"], location);
    assert_eq!(custom["repositoryName"], "project");
    assert_eq!(custom["fileName"], "custom.py");
    assert_eq!(v["label"], "v1.0");
    // requirements.txt is only parsed at the version's root; here it is not.
    assert_eq!(v["dependencies"], json!([]));
    let log = job_log(&s, &status);
    assert!(log.contains("Skipped the symbolic link link"), "{log}");

    // A branch by name.
    let v = pull(&s, "POST", &m, json!({"repositoryId": rid, "ref": "feature", "sourcePath": "feature.txt", "baseEnvironmentId": env})).version();
    assert_eq!(paths(&v), ["feature.txt"]);
    assert_eq!((item(&v, "feature.txt")["commitSha"].clone(), item(&v, "feature.txt")["ref"].clone()), (json!(repo.feature), json!("feature")));

    // A commit by its sha: that commit's files and contents.
    let v = pull(&s, "POST", &m, json!({"repositoryId": rid, "ref": repo.first, "baseEnvironmentId": env})).version();
    assert_eq!(paths(&v), ["models/m/custom.py", "top.txt"]);
    assert!(holds(item(&v, "top.txt"), "first\n") && holds(item(&v, "models/m/custom.py"), "A\n"));
    assert_eq!(item(&v, "top.txt")["commitSha"], repo.first);
    assert_eq!(item(&v, "top.txt")["ref"], repo.first);

    // A tag.
    let v = pull(&s, "POST", &m, json!({"repositoryId": rid, "ref": "first", "sourcePath": ["top.txt"], "baseEnvironmentId": env})).version();
    assert_eq!((item(&v, "top.txt")["commitSha"].clone(), item(&v, "top.txt")["ref"].clone()), (json!(repo.first), json!("first")));
    assert_eq!(version_count(&s, &m), 4);

    // The routes answer without their trailing slash too.
    let r = s.send_json("POST", pull_path(&m).trim_end_matches('/'), &json!({"repositoryId": rid, "sourcePath": "top.txt", "baseEnvironmentId": env}));
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    wait(&s, &status_id(&r)).version();
    let listed = ok(&s.get(&format!("{API}/remoteRepositories")), 200);
    assert_eq!(listed["data"][0]["id"], rid);
    ok(&s.get(&format!("{API}/remoteRepositories/{rid}")), 200);
}

#[test]
fn source_paths_place_files_and_folders() {
    let Project { s, root: _root, repo: _repo, env, m, rid } = project(&[]);
    // A folder's files relative to it, a file to its base name; the
    // folder's requirements.txt lands at the root and is parsed.
    let v = pull(
        &s,
        "POST",
        &m,
        json!({"repositoryId": rid, "ref": "main", "sourcePath": ["models/m/", "README.md"], "baseEnvironmentId": env, "isMajorUpdate": false}),
    )
    .version();
    assert_eq!(paths(&v), ["README.md", "custom.py", "requirements.txt", "sub/helper.py"]);
    assert_eq!(v["label"], "v0.1");
    assert_eq!(item(&v, "sub/helper.py")["repositoryFilePath"], "models/m/sub/helper.py");
    assert_eq!(item(&v, "README.md")["repositoryFilePath"], "README.md");
    assert!(holds(item(&v, "custom.py"), "B\n"));
    let deps = v["dependencies"].as_array().unwrap();
    let names: Vec<&str> = deps.iter().map(|d| d["packageName"].as_str().unwrap()).collect();
    assert_eq!(names, ["pandas", "numpy"]);
    assert_eq!(deps[1]["constraints"], json!([{"constraintType": "==", "version": "1.26.0"}]));
    // A nested file by itself goes to the root.
    let v = pull(&s, "POST", &m, json!({"repositoryId": rid, "sourcePath": "models/m/sub/helper.py", "baseEnvironmentId": env})).version();
    assert_eq!(paths(&v), ["helper.py"]);
    assert_eq!(item(&v, "helper.py")["repositoryFilePath"], "models/m/sub/helper.py");
}

#[test]
fn patch_keeps_the_latest_files_and_replaces_the_same_paths() {
    let Project { s, root: _root, repo, env, m, rid } = project(&[]);
    let r = s.post_multipart(
        &format!("{API}/customModels/{m}/versions/"),
        &[
            Part::Field("baseEnvironmentId", &env),
            Part::File { name: "file", filename: "custom.py", bytes: b"local\n" },
            Part::Field("filePath", "custom.py"),
            Part::File { name: "file", filename: "keep.txt", bytes: b"keep\n" },
            Part::Field("filePath", "keep.txt"),
        ],
    );
    ok(&r, 201);
    let v = pull(&s, "PATCH", &m, json!({"repositoryId": rid, "sourcePath": ["models/m"], "isMajorUpdate": false})).version();
    assert_eq!(v["label"], "v1.1");
    assert_eq!(paths(&v), ["custom.py", "keep.txt", "requirements.txt", "sub/helper.py"]);
    assert!(holds(item(&v, "custom.py"), "B\n"));
    assert_eq!(item(&v, "custom.py")["fileSource"], "git");
    assert_eq!((item(&v, "keep.txt")["fileSource"].clone(), item(&v, "keep.txt")["commitSha"].clone()), (json!("local"), Value::Null));
    assert!(holds(item(&v, "keep.txt"), "keep\n"));
    assert_eq!(v["dependencies"].as_array().unwrap().len(), 2);
    assert_eq!(v["baseEnvironmentId"], env, "PATCH inherits the environment");

    // An upload that replaces custom.py: it is local again; the other
    // pulled files keep where they came from.
    let (content_type, body) = common::multipart_body(&[
        Part::Field("isMajorUpdate", "false"),
        Part::File { name: "file", filename: "custom.py", bytes: b"again\n" },
        Part::Field("filePath", "custom.py"),
    ]);
    let r = s.request("PATCH", &format!("{API}/customModels/{m}/versions/"), &[("Content-Type", &content_type)], Some(body));
    let v = ok(&r, 201);
    assert_eq!(item(&v, "custom.py")["fileSource"], "local");
    assert_eq!(item(&v, "requirements.txt")["fileSource"], "git");
    assert_eq!(item(&v, "requirements.txt")["commitSha"], repo.second);

    // POST: only the pulled files.
    let v = pull(&s, "POST", &m, json!({"repositoryId": rid, "sourcePath": "top.txt", "baseEnvironmentId": env})).version();
    assert_eq!(paths(&v), ["top.txt"]);
    assert_eq!(v["label"], "v2.0");
}

#[test]
fn failed_pulls_say_why_and_leave_no_version() {
    let Project { s, root, repo, env, m, rid } = project(&["--max-upload-bytes", "4096"]);
    let base = json!({"repositoryId": rid, "baseEnvironmentId": env});
    let with = |extra: Value| {
        let mut body = base.clone();
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };

    // A branch or tag the remote does not name is refused at the POST.
    let e = refused(&s, &m, with(json!({"ref": "no-such-branch"})));
    assert!(e.contains("ref no-such-branch does not exist in repository project"), "{e}");
    let e = pull(&s, "POST", &m, with(json!({"ref": "0123456789abcdef0123456789abcdef01234567"}))).error();
    assert!(e.contains("commit 0123456789abcdef0123456789abcdef01234567 does not exist"), "{e}");
    let e = pull(&s, "POST", &m, with(json!({"sourcePath": ["models/m", "not/here.py"]}))).error();
    assert!(e.contains("sourcePath \"not/here.py\" is not in repository project at main"), "{e}");
    let e = pull(&s, "POST", &m, with(json!({"sourcePath": "link"}))).error();
    assert!(e.contains("only links or submodules"), "{e}");
    // An unparseable requirements.txt fails as an upload would, naming the line.
    write(&repo.dir, "bad/requirements.txt", "pandas~=1.0\n");
    git(&repo.dir, &["add", "-A"]);
    git(&repo.dir, &["commit", "--quiet", "-m", "bad requirements"]);
    let e = pull(&s, "POST", &m, with(json!({"sourcePath": "bad"}))).error();
    assert!(e.contains("Invalid requirements.txt") && e.contains("pandas~=1.0"), "{e}");
    // More bytes than the server accepts in one upload.
    write(&repo.dir, "big/blob.bin", &"x".repeat(5000));
    git(&repo.dir, &["add", "-A"]);
    git(&repo.dir, &["commit", "--quiet", "-m", "big"]);
    let e = pull(&s, "POST", &m, with(json!({"sourcePath": "big"}))).error();
    assert!(e.contains("more than this server's upload limit of 4096 bytes"), "{e}");
    // More than 1,000 files.
    for i in 0..1001 {
        write(&repo.dir, &format!("many/f{i}.txt"), "");
    }
    git(&repo.dir, &["add", "-A"]);
    git(&repo.dir, &["commit", "--quiet", "-m", "many"]);
    let e = pull(&s, "POST", &m, with(json!({"sourcePath": "many"}))).error();
    assert!(e.contains("more than 1000 files"), "{e}");

    // A folder that is not a repository, and one that is gone.
    let plain = root.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    let not_git = register_local(&s, "plain", &plain);
    let e = refused(&s, &m, json!({"repositoryId": not_git, "ref": "main", "baseEnvironmentId": env}));
    assert!(e.contains("repository plain") && e.contains("cannot be reached") && e.contains("does not appear to be a git repository"), "{e}");
    let gone = make_repo(root.path(), "gone");
    let gone_id = register_local(&s, "gone", &gone.dir);
    std::fs::remove_dir_all(&gone.dir).unwrap();
    let e = refused(&s, &m, json!({"repositoryId": gone_id, "baseEnvironmentId": env}));
    assert!(e.contains("repository gone cannot be reached"), "{e}");
    // A link out of the allowed folder is refused when pulled.
    let outside = tempfile::tempdir().unwrap();
    let escaped = make_repo(outside.path(), "escaped");
    std::os::unix::fs::symlink(&escaped.dir, root.path().join("sneaky")).unwrap();
    let sneaky = register_local(&s, "sneaky", &root.path().join("sneaky-later"));
    std::fs::rename(root.path().join("sneaky"), root.path().join("sneaky-later")).unwrap();
    let e = refused(&s, &m, json!({"repositoryId": sneaky, "baseEnvironmentId": env}));
    assert!(e.contains("is not under a folder this server allows"), "{e}");

    assert_eq!(version_count(&s, &m), 0, "no failed pull made a version");
}

#[test]
fn requests_that_cannot_work_are_refused_at_once() {
    let Project { s, root, repo, env, m, rid } = project(&[]);
    let refused = |body: Value, field: &str| {
        let r = s.post_json(&pull_path(&m), &body);
        let body = ok(&r, 422);
        assert!(body["errors"][field].is_string(), "{body}");
        body["message"].as_str().unwrap().to_string()
    };
    let message = refused(json!({"repositoryId": rid, "sourcePath": "../outside", "baseEnvironmentId": env}), "sourcePath");
    assert!(message.contains("'..'"), "{message}");
    refused(json!({"repositoryId": rid, "sourcePath": ["ok.py", "/etc/passwd"], "baseEnvironmentId": env}), "sourcePath");
    refused(json!({"repositoryId": rid, "sourcePath": "a/../../b", "baseEnvironmentId": env}), "sourcePath");
    refused(json!({"repositoryId": rid, "sourcePath": vec!["a"; 101], "baseEnvironmentId": env}), "sourcePath");
    refused(json!({"repositoryId": rid, "sourcePath": 7, "baseEnvironmentId": env}), "sourcePath");
    refused(json!({"repositoryId": rid, "ref": "--upload-pack=touch /tmp/x", "baseEnvironmentId": env}), "ref");
    refused(json!({"repositoryId": rid, "ref": "main:refs/heads/x", "baseEnvironmentId": env}), "ref");
    refused(json!({"sourcePath": "a", "baseEnvironmentId": env}), "repositoryId");
    let message = refused(json!({"repositoryId": "01234567-0000-7000-8000-000000000000", "baseEnvironmentId": env}), "repositoryId");
    assert!(message.contains("not found"), "{message}");
    refused(json!({"repositoryId": rid}), "baseEnvironmentId");
    refused(json!({"repositoryId": rid, "baseEnvironmentId": env, "isMajorUpdate": "None"}), "isMajorUpdate");
    assert_eq!(s.post_json(&pull_path("no-such-model"), &json!({"repositoryId": rid})).status, 404);
    assert_eq!(version_count(&s, &m), 0);

    // Registering: sources modelreg cannot pull, and locations it will not.
    let bad = |body: Value| ok(&s.post_json(&format!("{API}/remoteRepositories/"), &body), 422)["message"].as_str().unwrap().to_string();
    let message = bad(json!({"name": "bucket", "location": "my-bucket", "sourceType": "s3"}));
    assert!(message.contains("s3 repositories are not supported"), "{message}");
    let outside = tempfile::tempdir().unwrap();
    let message = bad(json!({"name": "x", "location": outside.path().to_str().unwrap(), "sourceType": "git"}));
    assert!(message.contains("is not under a folder this server allows"), "{message}");
    let message = bad(json!({"name": "x", "location": format!("file://{}/../../etc", root.path().display()), "sourceType": "git"}));
    assert!(message.contains(".."), "{message}");
    bad(json!({"name": "x", "location": "ext::sh -c touch% /tmp/pwned", "sourceType": "github"}));
    bad(json!({"name": "x", "location": "http://github.com/a/b", "sourceType": "github"}));
    let message = bad(json!({"name": "x", "location": "https://user:secret@github.com/a/b", "sourceType": "github"}));
    assert!(message.contains("must not carry credentials") && !message.contains("secret"), "{message}");
    bad(json!({"name": "x", "location": "https://github.com/a/b"}));
    bad(json!({"location": "https://github.com/a/b", "sourceType": "github"}));
    // A file:// URL inside the allowed folder is fine.
    register(&s, json!({"name": "url", "location": format!("file://{}", repo.dir.display()), "sourceType": "git"}));

    // Without --allow-git-path, no local repository at all, and the
    // message says how to allow one.
    let plain = Server::start();
    let r = plain.post_json(&format!("{API}/remoteRepositories/"), &json!({"name": "x", "location": repo.dir.to_str().unwrap(), "sourceType": "git"}));
    let message = ok(&r, 422)["message"].as_str().unwrap().to_string();
    assert!(message.contains("--allow-git-path"), "{message}");
}

#[test]
fn admins_register_members_read_and_teams_are_apart() {
    let (s, root) = server_with_repos();
    let repo = make_repo(root.path(), "project");
    let member = common::user_key(&s, "member", None);
    let body = json!({"name": "project", "location": repo.dir.to_str().unwrap(), "sourceType": "git", "description": "d"});
    let r = as_user(&s, &member, "POST", &format!("{API}/remoteRepositories/"), Some(&body));
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    let created = register(&s, body);
    let rid = created["id"].as_str().unwrap().to_string();
    for key in ["id", "name", "description", "location", "sourceType", "credentialId"] {
        assert!(created.get(key).is_some(), "{key} missing from {created}");
    }
    assert_eq!((created["sourceType"].clone(), created["credentialId"].clone()), (json!("git"), Value::Null));
    let path = format!("{API}/remoteRepositories/{rid}/");
    // Members read and list, and may pull into a model they can write.
    assert_eq!(ok(&as_user(&s, &member, "GET", &path, None), 200)["name"], "project");
    assert_eq!(ok(&as_user(&s, &member, "GET", &format!("{API}/remoteRepositories/"), None), 200)["totalCount"], 1);
    assert_eq!(as_user(&s, &member, "PATCH", &path, Some(&json!({"name": "mine"}))).status, 403);
    assert_eq!(as_user(&s, &member, "DELETE", &path, None).status, 403);
    let env = environment(&s);
    let mm = ok(
        &as_user(&s, &member, "POST", &format!("{API}/customModels/"), Some(&json!({"name": "m", "targetType": "Regression", "targetName": "y"}))),
        201,
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = as_user(&s, &member, "POST", &pull_path(&mm), Some(&json!({"repositoryId": rid, "sourcePath": "top.txt", "baseEnvironmentId": env})));
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let v = wait(&s, &status_id(&r)).version();
    assert_eq!(paths(&v), ["top.txt"]);

    // Admins change and delete.
    let patched = ok(&s.send_json("PATCH", &path, &json!({"name": "renamed", "description": "new", "credentialId": "cred-1"})), 200);
    assert_eq!((patched["name"].clone(), patched["credentialId"].clone(), patched["location"].clone()), (json!("renamed"), json!("cred-1"), created["location"].clone()));
    assert_eq!(s.send_json("PATCH", &path, &json!({"sourceType": "s3"})).status, 422);

    // Another team sees nothing of it: 404 on every route, 422 as a pull's repositoryId.
    assert!(s.cli(&["teams", "add", "others"]).status.success());
    assert!(s.cli(&["users", "add", "boss", "--team", "others", "--admin"]).status.success());
    let out = s.cli(&["keys", "create", "--user", "boss"]);
    let boss = String::from_utf8(out.stdout).unwrap().trim().to_string();
    for (method, body) in [("GET", None), ("PATCH", Some(json!({"name": "x"}))), ("DELETE", None)] {
        assert_eq!(as_user(&s, &boss, method, &path, body.as_ref()).status, 404, "{method}");
    }
    assert_eq!(ok(&as_user(&s, &boss, "GET", &format!("{API}/remoteRepositories/"), None), 200)["totalCount"], 0);
    let theirs = ok(
        &as_user(&s, &boss, "POST", &format!("{API}/customModels/"), Some(&json!({"name": "m", "targetType": "Regression", "targetName": "y"}))),
        201,
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = as_user(&s, &boss, "POST", &pull_path(&theirs), Some(&json!({"repositoryId": rid, "baseEnvironmentId": "x"})));
    assert!(ok(&r, 422)["errors"]["repositoryId"].is_string());

    assert_eq!(s.delete(&path).status, 204);
    assert_eq!(s.get(&path).status, 404);
    // The pulled version keeps its files and where they came from.
    let kept = ok(&s.get(&format!("{API}/customModels/{mm}/versions/{}/", v["id"].as_str().unwrap())), 200);
    assert_eq!(item(&kept, "top.txt")["repositoryName"], "project");
}

#[test]
fn tokens_are_stored_and_never_shown() {
    const TOKEN: &str = "ghp_SuperSecretToken1234567890";
    let (s, _root) = server_with_repos();
    let (env, m) = (environment(&s), model(&s));
    // A private https repository that cannot be reached (nothing listens on
    // port 9 of this host).
    let created = register(&s, json!({"name": "private", "location": "https://127.0.0.1:9/org/private.git", "sourceType": "github", "token": TOKEN}));
    let rid = created["id"].as_str().unwrap().to_string();
    let mut seen = vec![created.to_string()];
    assert_eq!(created["hasToken"], true);
    let path = format!("{API}/remoteRepositories/{rid}/");
    seen.push(String::from_utf8_lossy(&s.get(&path).body).into_owned());
    seen.push(String::from_utf8_lossy(&s.get(&format!("{API}/remoteRepositories/")).body).into_owned());
    let patched = ok(&s.send_json("PATCH", &path, &json!({"description": "still private"})), 200);
    assert_eq!(patched["hasToken"], true, "a PATCH without token keeps it");
    seen.push(patched.to_string());
    // Unreachable: refused at the POST, which asked the remote with the token.
    let e = refused(&s, &m, json!({"repositoryId": rid, "ref": "main", "baseEnvironmentId": env}));
    assert!(e.contains("repository private (https://127.0.0.1:9/org/private.git) cannot be reached"), "{e}");
    seen.push(e);
    for args in [vec!["--json", "repositories", "show", &rid], vec!["--json", "repositories", "list"]] {
        for out in [s.cli(&args), s.cli_remote(&args)] {
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            seen.push(String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr));
        }
    }
    seen.push(s.log.lock().unwrap().clone());
    for text in &seen {
        assert!(!text.contains(TOKEN) && !text.contains("SuperSecret"), "the token was shown: {text}");
    }
    // null clears it.
    let cleared = ok(&s.send_json("PATCH", &path, &json!({"token": null})), 200);
    assert_eq!(cleared["hasToken"], false);
}

#[test]
fn the_cli_offline_and_with_server() {
    let (s, root) = server_with_repos();
    let repo = make_repo(root.path(), "project");
    let (env, m) = (environment(&s), model(&s));
    let run = |out: std::process::Output| -> Value {
        assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    // Registered offline (with a token from a file), seen over HTTP.
    let token_file = root.path().join("token");
    std::fs::write(&token_file, "offline-secret\n").unwrap();
    let added = run(s.cli(&["--json", "repositories", "add", "--name", "project", "--location", repo.dir.to_str().unwrap(), "--token-file", token_file.to_str().unwrap()]));
    assert_eq!((added["sourceType"].clone(), added["hasToken"].clone()), (json!("git"), json!(true)));
    assert!(!added.to_string().contains("offline-secret"));
    let rid = added["id"].as_str().unwrap().to_string();
    assert_eq!(ok(&s.get(&format!("{API}/remoteRepositories/{rid}/")), 200)["name"], "project");
    let listed = run(s.cli_remote(&["--json", "repositories", "list"]));
    assert_eq!(listed[0]["id"], rid);

    // Offline: the job runs in the command.
    let v = run(s.cli(&["--json", "custom-models", "versions", "create", &m, "--from-repository", &rid, "--ref", "main", "--path", "models/m", "--base-environment-id", &env]));
    assert_eq!(paths(&v), ["custom.py", "requirements.txt", "sub/helper.py"]);
    assert_eq!(item(&v, "custom.py")["commitSha"], repo.second);
    assert_eq!(v["dependencies"].as_array().unwrap().len(), 2);
    // With --server, derived from the latest.
    let v = run(s.cli_remote(&[
        "--json", "custom-models", "versions", "create", &m, "--from-repository", &rid, "--ref", &repo.first, "--path", "top.txt", "--from-previous", "--minor",
    ]));
    assert_eq!(v["label"], "v1.1");
    assert_eq!(paths(&v), ["custom.py", "requirements.txt", "sub/helper.py", "top.txt"]);
    assert!(holds(item(&v, "top.txt"), "first\n"));
    assert_eq!(item(&v, "top.txt")["commitSha"], repo.first);
    assert_eq!(version_count(&s, &m), 2);

    // Failures: the message, exit 1, no version; both ways.
    for out in [
        s.cli(&["custom-models", "versions", "create", &m, "--from-repository", &rid, "--ref", "nope", "--from-previous"]),
        s.cli_remote(&["custom-models", "versions", "create", &m, "--from-repository", &rid, "--ref", "nope", "--from-previous"]),
    ] {
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("ref nope does not exist in repository project"), "{err}");
    }
    let out = s.cli_remote(&["custom-models", "versions", "create", &m, "--from-repository", &rid, "--path", "../x", "--from-previous"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("'..'"));
    assert_eq!(version_count(&s, &m), 2);

    // Removed with the CLI, over HTTP.
    let out = s.cli_remote(&["repositories", "remove", &rid]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(s.get(&format!("{API}/remoteRepositories/{rid}/")).status, 404);
    assert!(!s.data_dir().join("repositories").join(format!("{rid}.git")).exists(), "the cache went with it");
}
