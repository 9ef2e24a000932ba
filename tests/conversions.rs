//! Conversions against the real binary and the host's JDK (issue 15): a
//! version's Java main program compiled into a JAR that `java -jar` runs;
//! a compile error with javac's message in `logMessage`; what modelreg
//! cannot compile (SAS, other programs, an unknown item, no JDK) refused
//! with a 422 and nothing recorded; `isLatest`, lists and paging; DELETE
//! of a finished conversion (422) and of a running one (its compiler
//! killed); the deadline; another team's ids; gc keeping the JAR; the CLI
//! offline and with `--server`.
//!
//! A slow compiler is a stand-in named by `MODELREG_JAVAC`. Asynchronous
//! outcomes are polled with a deadline; no test sleeps to wait for one.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{as_user, ok, user_key, write_script, Part, Server};
use serde_json::{json, Value};

const API: &str = "/api/v2";

/// javac takes 1–2 s on an idle machine, many times that while other tests run.
const DEADLINE: Duration = Duration::from_secs(180);

const MAIN: &str = r#"/* The main program.
 * package not.this.one; (a comment)
 */
package com.example;

import com.example.util.Text;

public class Main {
    public static void main(String[] args) {
        System.out.println(Greeter.greet(Text.shout("jar")));
    }
}
"#;

const GREETER: &str = r#"package com.example;

class Greeter {
    static String greet(String who) {
        return "hello from the " + who;
    }
}
"#;

const TEXT: &str = r#"package com.example.util;

public class Text {
    public static String shout(String s) {
        return s.toUpperCase() + "!";
    }
}
"#;

/// What `java -jar` of the converted MAIN prints.
const OUTPUT: &str = "hello from the JAR!";

const BROKEN: &str = r#"package com.example;

public class Main {
    public static void main(String[] args) {
        int answer = "forty-two";
        System.out.println(answer);
    }
}
"#;

fn id_of(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_else(|| panic!("no {key} in {v}")).to_string()
}

fn poll<T>(what: &str, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let until = Instant::now() + DEADLINE;
    loop {
        match probe() {
            Ok(done) => return done,
            Err(state) => assert!(Instant::now() < until, "{what} did not happen within {} s; last: {state}", DEADLINE.as_secs()),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A Java environment whose version is an image URI (nothing to build).
fn java_environment(s: &Server) -> String {
    let env = id_of(&ok(&s.post_json(&format!("{API}/executionEnvironments/"), &json!({"name": "Java 17", "programmingLanguage": "java"})), 201), "id");
    let path = format!("{API}/executionEnvironments/{env}/versions/");
    let version = id_of(&ok(&s.post_json(&path, &json!({"dockerImageUri": "eclipse-temurin:17-jdk", "label": "17"})), 202), "id");
    poll("the environment version's build", || {
        let v = ok(&s.get(&format!("{path}{version}/")), 200);
        match v["buildStatus"].as_str() {
            Some("success") => Ok(()),
            Some("failed") => panic!("the environment version failed: {v}"),
            other => Err(format!("{other:?}")),
        }
    });
    env
}

/// A model with one version holding `files`.
struct Setup {
    model: String,
    version: String,
    /// Item ids by file path.
    items: BTreeMap<String, String>,
}

impl Setup {
    fn item(&self, path: &str) -> &str {
        self.items.get(path).unwrap_or_else(|| panic!("no item {path} in {:?}", self.items))
    }

    fn conversions(&self) -> String {
        format!("{API}/customModels/{}/versions/{}/conversions/", self.model, self.version)
    }

    fn conversion(&self, id: &str) -> String {
        format!("{}{id}/", self.conversions())
    }
}

fn setup(s: &Server, files: &[(&str, &str)]) -> Setup {
    let env = java_environment(s);
    let model = json!({"name": "java program", "targetType": "Regression", "targetName": "y", "language": "java"});
    let model = id_of(&ok(&s.post_json(&format!("{API}/customModels/"), &model), 201), "id");
    let mut parts = vec![Part::Field("baseEnvironmentId", &env)];
    for (path, text) in files {
        parts.push(Part::File { name: "file", filename: path, bytes: text.as_bytes() });
        parts.push(Part::Field("filePath", path));
    }
    let version = ok(&s.post_multipart(&format!("{API}/customModels/{model}/versions/"), &parts), 201);
    let items = version["items"].as_array().unwrap().iter().map(|i| (id_of(i, "filePath"), id_of(i, "id"))).collect();
    Setup { model, version: id_of(&version, "id"), items }
}

fn java_setup(s: &Server) -> Setup {
    setup(
        s,
        &[
            ("src/com/example/Main.java", MAIN),
            ("src/com/example/Greeter.java", GREETER),
            ("src/com/example/util/Text.java", TEXT),
            ("README.md", "Not Java.\n"),
            ("report.sas", "proc print data=sashelp.class; run;\n"),
            ("score.py", "print('python')\n"),
        ],
    )
}

/// POSTs a conversion of `item`: 202 `{conversionId, statusId}` with a
/// Location to the status. Returns (conversion id, status path).
fn start(s: &Server, setup: &Setup, item: &str) -> (String, String) {
    let r = s.post_json(&setup.conversions(), &json!({"mainProgramItemId": item}));
    let body = ok(&r, 202);
    let (id, status) = (id_of(&body, "conversionId"), id_of(&body, "statusId"));
    let location = r.header("Location").expect("a Location").to_string();
    assert_eq!(location, s.url(&format!("{API}/status/{status}/")));
    (id, format!("{API}/status/{status}/"))
}

/// Waits for the conversion to end and returns it.
fn wait(s: &Server, setup: &Setup, id: &str) -> Value {
    poll("the conversion's end", || {
        let c = ok(&s.get(&setup.conversion(id)), 200);
        if c["conversionInProgress"] == false {
            Ok(c)
        } else {
            Err(c.to_string())
        }
    })
}

fn convert(s: &Server, setup: &Setup, item: &str) -> Value {
    let (id, _) = start(s, setup, item);
    wait(s, setup, &id)
}

/// Runs `java -jar` on a JAR's bytes.
fn run_jar(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let jar = dir.path().join("Main.jar");
    std::fs::write(&jar, bytes).unwrap();
    run_jar_file(&jar)
}

fn run_jar_file(jar: &Path) -> String {
    let out = Command::new("java").arg("-jar").arg(jar).output().expect("run java");
    assert!(out.status.success(), "java -jar failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn path_of<'a>(s: &Server, url: &'a str) -> &'a str {
    url.split_once(&s.addr).unwrap_or_else(|| panic!("{url} is not an absolute URL of {}", s.addr)).1
}

#[test]
fn a_java_program_converts_into_a_jar_that_runs() {
    let s = Server::start();
    let setup = java_setup(&s);
    let before = ok(&s.get(&format!("{API}/customModels/{}/versions/{}/", setup.model, setup.version)), 200);
    let (id, status) = start(&s, &setup, setup.item("src/com/example/Main.java"));

    // The status route ends in a 303 to the conversion, as the client waits for it.
    let redirect = poll("the status's 303", || {
        let r = s.get_unfollowed(&status);
        if r.status == 303 {
            Ok(r)
        } else {
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            Err(String::from_utf8_lossy(&r.body).into_owned())
        }
    });
    assert_eq!(redirect.header("Location").unwrap(), s.url(&setup.conversion(&id)));

    let c = ok(&s.get(&setup.conversion(&id)), 200);
    assert_eq!(c["id"], id.as_str());
    assert_eq!(c["customModelVersionId"], setup.version.as_str());
    assert_eq!(c["mainProgramItemId"], setup.item("src/com/example/Main.java"));
    assert!(c["created"].as_str().unwrap().ends_with('Z'), "{c}");
    assert_eq!((&c["conversionInProgress"], &c["conversionSucceeded"], &c["shouldStop"]), (&json!(false), &json!(true), &json!(false)), "{c}");
    assert!(c.get("generatedMetadata").is_none(), "the client needs outputColumns inside it: {c}");
    assert_eq!(c["mainClass"], "com.example.Main");
    let log = c["logMessage"].as_str().unwrap();
    assert!(log.contains("3 Java source file(s)"), "{log}");
    assert!(log.contains("$ javac -encoding UTF-8 -d classes src/com/example/Greeter.java src/com/example/Main.java src/com/example/util/Text.java"), "{log}");
    assert!(log.contains("--main-class com.example.Main") && log.contains("Conversion succeeded."), "{log}");

    // The JAR: downloaded from the link the conversion carries, it runs.
    let link = path_of(&s, c["jarLocation"].as_str().unwrap()).to_string();
    let jar = s.get(&link);
    assert_eq!(jar.status, 200);
    assert_eq!(jar.header("Content-Type"), Some("application/java-archive"));
    assert_eq!(jar.header("Content-Disposition"), Some("attachment; filename=\"Main.jar\""));
    assert_eq!(jar.body.len() as u64, c["jarSize"].as_u64().unwrap());
    assert_eq!(jar.header("ETag").unwrap(), format!("\"{}\"", common::sha256_hex(&jar.body)));
    assert_eq!(run_jar(&jar.body), OUTPUT);

    // The version is as it was: the JAR belongs to the conversion.
    let after = ok(&s.get(&format!("{API}/customModels/{}/versions/{}/", setup.model, setup.version)), 200);
    assert_eq!(before["items"], after["items"]);

    // gc keeps the JAR while the conversion holds it.
    let out = s.cli(&["gc", "--grace-secs", "0"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(s.get(link.trim_end_matches('/')).body, jar.body, "the JAR, after gc and without the trailing slash");

    // A finished conversion is not active: DELETE is a 422.
    let r = s.delete(&setup.conversion(&id));
    assert_eq!(r.status, 422);
    assert!(r.json()["message"].as_str().unwrap().contains("not active"), "{}", r.json());
}

#[test]
fn lists_are_newest_first_and_is_latest_is_one_item() {
    let s = Server::start();
    let setup = java_setup(&s);
    let empty = ok(&s.get(&format!("{}?isLatest=true", setup.conversions())), 200);
    assert_eq!((&empty["data"], &empty["totalCount"]), (&json!([]), &json!(0)));
    let main = setup.item("src/com/example/Main.java");
    let ids: Vec<String> = (0..3).map(|_| id_of(&convert(&s, &setup, main), "id")).collect();

    let all = ok(&s.get(&setup.conversions()), 200);
    let listed: Vec<&str> = all["data"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(listed, [ids[2].as_str(), ids[1].as_str(), ids[0].as_str()]);
    assert_eq!((&all["totalCount"], &all["count"], &all["next"]), (&json!(3), &json!(3), &Value::Null));

    // The client sends isLatest=True.
    for value in ["true", "True"] {
        let latest = ok(&s.get(&format!("{}?isLatest={value}", setup.conversions())), 200);
        assert_eq!(latest["data"].as_array().unwrap().len(), 1, "{latest}");
        assert_eq!(latest["data"][0]["id"], ids[2].as_str());
        assert_eq!((&latest["totalCount"], &latest["next"]), (&json!(1), &Value::Null));
    }
    assert_eq!(ok(&s.get(&format!("{}?isLatest=False", setup.conversions())), 200)["totalCount"], 3);

    let page = ok(&s.get(&format!("{}?limit=2", setup.conversions())), 200);
    assert_eq!(page["count"], 2);
    let next = path_of(&s, page["next"].as_str().unwrap()).to_string();
    let rest = ok(&s.get(&next), 200);
    assert_eq!(rest["data"][0]["id"], ids[0].as_str());
    assert_eq!(rest["next"], Value::Null);

    // Without the trailing slash, as other DataRobot callers send it.
    assert_eq!(ok(&s.get(setup.conversions().trim_end_matches('/')), 200)["totalCount"], 3);
}

#[test]
fn a_compile_error_fails_the_conversion_with_javacs_message() {
    let s = Server::start();
    let setup = setup(&s, &[("Main.java", &BROKEN.replace("package com.example;\n", ""))]);
    let (id, status) = start(&s, &setup, setup.item("Main.java"));
    let c = wait(&s, &setup, &id);
    assert_eq!((&c["conversionInProgress"], &c["conversionSucceeded"], &c["shouldStop"]), (&json!(false), &json!(false), &json!(false)), "{c}");
    let log = c["logMessage"].as_str().unwrap();
    assert!(log.contains("Main.java:4: error: incompatible types"), "javac's message: {log}");
    assert!(log.contains("javac failed") && log.contains("Conversion failed."), "{log}");
    assert_eq!(c["jarLocation"], Value::Null);
    let r = s.get(&format!("{}jar/", setup.conversion(&id)));
    assert_eq!(r.status, 404, "{}", String::from_utf8_lossy(&r.body));
    // The verdict is the conversion's: the status still leads to it.
    assert_eq!(s.get_unfollowed(&status).status, 303);
}

#[test]
fn what_modelreg_cannot_compile_is_refused_and_nothing_recorded() {
    let s = Server::start();
    let setup = java_setup(&s);
    let refuse = |body: Value, needle: &str| {
        let r = s.post_json(&setup.conversions(), &body);
        assert_eq!(r.status, 422, "{body}: {}", String::from_utf8_lossy(&r.body));
        let message = r.json()["message"].as_str().unwrap().to_string();
        assert!(message.contains(needle), "{message}");
    };
    refuse(json!({"mainProgramItemId": setup.item("report.sas")}), "modelreg has no SAS compiler");
    refuse(json!({"mainProgramItemId": setup.item("score.py")}), "modelreg cannot compile score.py");
    refuse(json!({"mainProgramItemId": "no-such-item"}), "has no item no-such-item");
    refuse(json!({}), "mainProgramItemId");
    // An item of another version is not one of this version's.
    let other = setup_in(&s, &setup.model, &[("Main.java", "public class Main {}\n")]);
    refuse(json!({"mainProgramItemId": other}), "has no item");
    let listed = ok(&s.get(&setup.conversions()), 200);
    assert_eq!(listed["totalCount"], 0, "no conversion was recorded: {listed}");
}

/// Adds a version to `model` and returns the item id of its first file.
fn setup_in(s: &Server, model: &str, files: &[(&str, &str)]) -> String {
    let r = s.request("GET", &format!("{API}/customModels/{model}/versions/"), &[], None);
    let env = ok(&r, 200)["data"][0]["baseEnvironmentId"].as_str().unwrap().to_string();
    let mut parts = vec![Part::Field("baseEnvironmentId", &env)];
    for (path, text) in files {
        parts.push(Part::File { name: "file", filename: path, bytes: text.as_bytes() });
        parts.push(Part::Field("filePath", path));
    }
    let version = ok(&s.post_multipart(&format!("{API}/customModels/{model}/versions/"), &parts), 201);
    id_of(&version["items"][0], "id")
}

#[test]
fn without_a_jdk_the_post_says_to_install_one() {
    let s = Server::start_with_env(&[("MODELREG_JAVAC", "/nonexistent/javac")], &[]);
    let setup = java_setup(&s);
    let r = s.post_json(&setup.conversions(), &json!({"mainProgramItemId": setup.item("src/com/example/Main.java")}));
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
    let message = r.json()["message"].as_str().unwrap().to_string();
    assert!(message.contains("no JDK") && message.contains("default-jdk-headless"), "{message}");
    assert_eq!(ok(&s.get(&setup.conversions()), 200)["totalCount"], 0);
}

#[test]
fn a_running_conversion_is_stopped_and_its_compiler_killed() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("javac.pid");
    // A compiler that never finishes: its pid is the sleep's (exec).
    let javac = write_script(&dir.path().join("javac"), &format!("echo \"compiling slowly\"\necho $$ > {}\nexec sleep 300\n", pidfile.display()));
    let s = Server::start_with_env(&[("MODELREG_JAVAC", &javac)], &[]);
    let setup = java_setup(&s);
    let (id, status) = start(&s, &setup, setup.item("src/com/example/Main.java"));
    let running = ok(&s.get(&setup.conversion(&id)), 200);
    assert_eq!((&running["conversionInProgress"], &running["conversionSucceeded"]), (&json!(true), &Value::Null), "{running}");
    let pending = ok(&s.get(&status), 200);
    assert!(matches!(pending["status"].as_str(), Some("RUNNING" | "INITIALIZED")), "{pending}");
    let pid: u32 = poll("the slow compiler's start", || {
        std::fs::read_to_string(&pidfile).ok().and_then(|t| t.trim().parse().ok()).ok_or_else(|| "no pid yet".to_string())
    });

    let r = s.delete(&setup.conversion(&id));
    assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
    let stopped = ok(&s.get(&setup.conversion(&id)), 200);
    assert_eq!(
        (&stopped["conversionInProgress"], &stopped["conversionSucceeded"], &stopped["shouldStop"]),
        (&json!(false), &json!(false), &json!(true)),
        "{stopped}"
    );
    poll("the compiler's death", || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit(')').next().unwrap_or("").split_whitespace().next().unwrap_or("X").to_string();
        if stat.is_empty() || state == "Z" || state == "X" {
            Ok(())
        } else {
            Err(format!("pid {pid} is {state}"))
        }
    });
    poll("the status's ABORTED", || {
        let body = ok(&s.get(&status), 200);
        if body["status"] == "ABORTED" {
            Ok(())
        } else {
            Err(body.to_string())
        }
    });
    let log = ok(&s.get(&setup.conversion(&id)), 200)["logMessage"].as_str().unwrap().to_string();
    assert!(log.contains("compiling slowly") && log.contains("Conversion stopped: the conversion was stopped on request"), "{log}");
    let r = s.delete(&setup.conversion(&id));
    assert_eq!(r.status, 422, "a stopped conversion is not active");
}

#[test]
fn a_conversion_past_its_deadline_is_killed_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let javac = write_script(&dir.path().join("javac"), "echo \"compiling slowly\"\nexec sleep 300\n");
    let s = Server::start_with_env(&[("MODELREG_JAVAC", &javac), ("MODELREG_CONVERSION_TIMEOUT_SECS", "1")], &[]);
    let setup = java_setup(&s);
    let c = convert(&s, &setup, setup.item("src/com/example/Main.java"));
    assert_eq!((&c["conversionSucceeded"], &c["shouldStop"]), (&json!(false), &json!(false)), "{c}");
    let log = c["logMessage"].as_str().unwrap();
    assert!(log.contains("did not finish in time, so javac was killed") && log.contains("Conversion failed."), "{log}");
}

#[test]
fn another_teams_conversions_are_not_found() {
    let s = Server::start();
    let setup = java_setup(&s);
    let id = id_of(&convert(&s, &setup, setup.item("src/com/example/Main.java")), "id");
    assert!(s.cli(&["teams", "add", "others"]).status.success());
    let key = user_key(&s, "carol", Some("others"));
    let body = json!({"mainProgramItemId": setup.item("src/com/example/Main.java")});
    for (method, path, body) in [
        ("GET", setup.conversions(), None),
        ("POST", setup.conversions(), Some(&body)),
        ("GET", setup.conversion(&id), None),
        ("DELETE", setup.conversion(&id), None),
        ("GET", format!("{}jar/", setup.conversion(&id)), None),
    ] {
        let r = as_user(&s, &key, method, &path, body);
        assert_eq!(r.status, 404, "{method} {path}: {}", String::from_utf8_lossy(&r.body));
    }
    // A conversion id under another version of the same team is not found either.
    let other = ok(&s.post_json(&format!("{API}/customModels/"), &json!({"name": "other", "targetType": "Regression", "targetName": "y"})), 201);
    let r = s.get(&format!("{API}/customModels/{}/versions/{}/conversions/{id}/", id_of(&other, "id"), setup.version));
    assert_eq!(r.status, 404);
}

fn stdout_json(out: &Output) -> Value {
    assert!(out.status.success(), "stdout: {}\nstderr: {}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn the_cli_converts_offline_and_through_a_server() {
    let s = Server::start();
    let setup = java_setup(&s);
    let broken = setup_in(&s, &setup.model, &[("Main.java", &BROKEN.replace("package com.example;\n", ""))]);
    let broken_version = ok(&s.get(&format!("{API}/customModels/{}/versions/", setup.model)), 200)["data"][0]["id"].as_str().unwrap().to_string();
    let main = setup.item("src/com/example/Main.java").to_string();
    let dir = tempfile::tempdir().unwrap();
    let (model, version) = (setup.model.as_str(), setup.version.as_str());
    for (how, run) in [("offline", &(|args: &[&str]| s.cli(args)) as &dyn Fn(&[&str]) -> Output), ("--server", &|args: &[&str]| s.cli_remote(args))] {
        let created = stdout_json(&run(&["--json", "custom-models", "conversions", "create", model, version, "--main", &main]));
        assert_eq!(created["conversionSucceeded"], true, "{how}: {created}");
        let id = id_of(&created, "id");
        let jar_link = created["jarLocation"].as_str().unwrap();
        assert!(jar_link.starts_with("/api/v2/customModels/"), "{how}: a path, not a URL: {jar_link}");

        let shown = stdout_json(&run(&["--json", "custom-models", "conversions", "show", model, version, &id]));
        assert_eq!(shown, created, "{how}");
        let listed = stdout_json(&run(&["--json", "custom-models", "conversions", "list", model, version]));
        assert_eq!(listed[0]["id"], id.as_str(), "{how}: newest first");
        let human = run(&["custom-models", "conversions", "list", model, version]);
        assert!(String::from_utf8_lossy(&human.stdout).contains(&format!("{id}  succeeded  com.example.Main")), "{how}");

        let jar = dir.path().join(format!("{}.jar", how.trim_start_matches('-')));
        let written = stdout_json(&run(&["--json", "custom-models", "conversions", "download", model, version, &id, "-o", jar.to_str().unwrap()]));
        assert_eq!(written["size"], created["jarSize"], "{how}");
        assert_eq!(run_jar_file(&jar), OUTPUT, "{how}");
        let again = run(&["custom-models", "conversions", "download", model, version, &id, "-o", jar.to_str().unwrap()]);
        assert!(!again.status.success(), "{how}: the download never replaces a file");

        // A compile error: exit 1, javac's message on stderr.
        let failed = run(&["custom-models", "conversions", "create", model, &broken_version, "--main", &broken]);
        assert_eq!(failed.status.code(), Some(1), "{how}");
        let stderr = String::from_utf8_lossy(&failed.stderr);
        assert!(stderr.contains("error: incompatible types"), "{how}: {stderr}");
        assert!(String::from_utf8_lossy(&failed.stdout).contains("  failed  Main"), "{how}");

        // SAS: refused, saying why.
        let sas = run(&["custom-models", "conversions", "create", model, version, "--main", setup.item("report.sas")]);
        assert!(!sas.status.success(), "{how}");
        assert!(String::from_utf8_lossy(&sas.stderr).contains("no SAS compiler"), "{how}: {}", String::from_utf8_lossy(&sas.stderr));
    }
}
