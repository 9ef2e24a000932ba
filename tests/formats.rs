//! Format conversions of Octomil versions (issue 16): the real binary, a
//! real runtime with the converters (`modelreg runtime install --with
//! converters`, installed once under target/tmp and shared), and the
//! converted models run with onnxruntime against the originals. Core ML
//! (issue 24) cannot run on Linux: its artifacts are read back with
//! coremltools and must say they are unverified.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{converters_python, ok, sha256_hex, user_key, Part, Reply, Server};
use serde_json::{json, Value};

/// The version of the package that provides the module `name` in the
/// converters runtime, as its installed metadata says (not as modelreg
/// reports it): TensorFlow may be installed as `tensorflow-cpu`.
fn installed_version(name: &str) -> String {
    let code = "import importlib.metadata as m, sys; print(m.version(m.packages_distributions()[sys.argv[1]][0]))";
    let out = Command::new(converters_python())
        .args(["-c", code, name])
        .output()
        .unwrap();
    assert!(out.status.success(), "no version of {name} in the converters runtime: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Runs a Python snippet with the converters runtime in `dir`; its stdout's
/// last line is JSON.
fn python(dir: &Path, code: &str, args: &[&str]) -> Value {
    let out = Command::new(converters_python()).arg("-c").arg(code).args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "python failed:\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or("null")).unwrap()
}

const MAKE_MODELS: &str = r#"
import json, pickle, numpy as np, xgboost
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.linear_model import LogisticRegression
rng = np.random.default_rng(7)
X = rng.normal(size=(400, 6))
y = (X[:, 0] - 2 * X[:, 3] + 0.5 * X[:, 5] > 0).astype(int) + (X[:, 1] > 1)
pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
pickle.dump(pipe, open("pipeline.pkl", "wb"))
booster = xgboost.XGBClassifier(n_estimators=20, max_depth=3).fit(X, (X[:, 2] > 0).astype(int))
booster.save_model("booster.json")
# Rows the converter never saw: its own check uses another seed.
np.save("rows.npy", np.random.default_rng(99).normal(size=(100, 6)).astype("float32"))
print(json.dumps({"classes": [int(c) for c in pipe.classes_]}))
"#;

/// Compares a converted ONNX file with the original on rows.npy (100 rows):
/// the largest probability difference and the labels that differ.
const COMPARE: &str = r#"
import json, pickle, sys, numpy as np, onnxruntime as ort
kind, original, converted = sys.argv[1:4]
X = np.load("rows.npy")
session = ort.InferenceSession(converted, providers=["CPUExecutionProvider"])
outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, {session.get_inputs()[0].name: X})))
if kind == "sklearn":
    model = pickle.load(open(original, "rb"))
    expected, labels = model.predict_proba(X), model.predict(X)
else:
    import xgboost
    booster = xgboost.Booster(); booster.load_model(original)
    p1 = booster.predict(xgboost.DMatrix(X))
    expected, labels = np.stack([1 - p1, p1], axis=1), (p1 > 0.5).astype(int)
got = np.asarray(outputs["probabilities"])
print(json.dumps({
    "rows": int(X.shape[0]),
    "largest": float(np.abs(got - expected).max()),
    "label_mismatches": int((np.asarray(outputs["label"]).reshape(-1) != labels).sum()),
}))
"#;

fn create_model(s: &Server, name: &str, framework: &str) -> String {
    let model = ok(&s.post_json("/api/v1/models", &json!({"name": name, "framework": framework})), 201);
    model["id"].as_str().unwrap().to_string()
}

fn upload(s: &Server, id: &str, filename: &str, bytes: &[u8], format: Option<&str>) -> Value {
    let mut parts = vec![Part::File { name: "file", filename, bytes }];
    if let Some(format) = format {
        parts.push(Part::Field("format", format));
    }
    ok(&s.post_multipart(&format!("/api/v1/models/{id}/versions/upload"), &parts), 201)
}

/// Polls a download while its conversion is queued or running (a 404 whose
/// error says so) and returns the first other answer.
fn download_when_done(s: &Server, path: &str, auth: Option<&str>) -> Reply {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let reply = match auth {
            Some(a) => s.request("GET", path, &[("Authorization", a)], None),
            None => s.get(path),
        };
        let pending = reply.status == 404 && is_pending(&reply);
        if !pending {
            return reply;
        }
        assert!(Instant::now() < deadline, "the conversion did not finish: {}\n{}", String::from_utf8_lossy(&reply.body), s.log.lock().unwrap());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn server(extra: &[&str]) -> Server {
    let python = converters_python();
    let mut args = vec!["--python", python.to_str().unwrap()];
    args.extend_from_slice(extra);
    Server::start_with(&args)
}

/// A 404 saying the conversion is on its way.
fn is_pending(reply: &Reply) -> bool {
    let message = reply.json()["message"].as_str().unwrap_or("").to_string();
    message.contains(" is queued; try again") || message.contains(" is running; try again")
}

/// The 404 of a missing format is Octomil's error body (the seed's
/// `not_found`) whose message states why, never the body the Octomil SDK
/// retries as a cold start.
fn assert_reasoned_404(reply: &Reply, state: &str, needle: &str) {
    assert_eq!(reply.status, 404, "{}", String::from_utf8_lossy(&reply.body));
    assert_ne!(reply.body, br#"{"detail":"Not Found"}"#);
    let body = reply.json();
    assert_eq!(body["error"], "not_found", "{body}");
    assert_eq!(body.as_object().unwrap().len(), 2, "Octomil's error body is {{error, message}}: {body}");
    let message = body["message"].as_str().unwrap();
    let says = match state {
        "failed" => "conversion of version",
        "impossible" => "cannot be converted into",
        "not installed" => "this server cannot convert",
        "needs a shape" => "needs its input shape",
        other => panic!("no such state {other}"),
    };
    assert!(message.contains(says), "{says:?} ({state}) not in {message:?}");
    if state == "failed" {
        assert!(message.contains(" failed: "), "{message}");
    }
    assert!(message.contains(needle), "{needle:?} not in {message:?}");
}

#[test]
fn a_sklearn_pipeline_pickle_downloads_as_onnx_that_matches_the_original_on_100_rows() {
    let work = tempfile::tempdir().unwrap();
    python(work.path(), MAKE_MODELS, &[]);
    let pickle = std::fs::read(work.path().join("pipeline.pkl")).unwrap();
    let s = server(&[]);
    let id = create_model(&s, "churn", "sklearn");
    // Converted on upload: the server's default when the runtime has the converters.
    upload(&s, &id, "pipeline.pkl", &pickle, None);
    let path = format!("/api/v1/models/{id}/versions/1/download?format=onnx");
    let reply = download_when_done(&s, &path, None);
    assert_eq!(reply.status, 200, "{}\n{}", String::from_utf8_lossy(&reply.body), s.log.lock().unwrap());
    let onnx = reply.body.clone();
    assert_eq!(reply.header("Content-Disposition"), Some("attachment; filename=\"model_v1.onnx\""));
    assert_eq!(reply.header("Content-Length"), Some(onnx.len().to_string().as_str()));
    assert_eq!(reply.header("X-Model-Hash"), Some(sha256_hex(&onnx).as_str()));
    assert_eq!(reply.header("X-Modelreg-Verified"), Some("true"), "ONNX is run against the original before it is served");
    assert_ne!(sha256_hex(&onnx), sha256_hex(&pickle));
    let etag = reply.header("ETag").unwrap().to_string();
    // Range and ETag as for originals.
    let part = s.request("GET", &path, &[("Range", "bytes=0-15")], None);
    assert_eq!(part.status, 206);
    assert_eq!(part.body, onnx[..16]);
    assert_eq!(s.request("GET", &path, &[("If-None-Match", &etag)], None).status, 304);

    let onnx_path = work.path().join("model.onnx");
    std::fs::write(&onnx_path, &onnx).unwrap();
    let compared = python(work.path(), COMPARE, &["sklearn", "pipeline.pkl", onnx_path.to_str().unwrap()]);
    assert_eq!(compared["rows"], 100);
    assert!(compared["largest"].as_f64().unwrap() < 1e-4, "{compared}");
    assert_eq!(compared["label_mismatches"], 0, "{compared}");

    // The model GET lists the formats each version can be downloaded in.
    let model = ok(&s.get(&format!("/api/v1/models/{id}")), 200);
    let v1 = &model["versions"][0];
    assert_eq!(v1["available_formats"], json!(["sklearn", "onnx"]));
    assert_eq!(v1["format_conversions"]["onnx"]["state"], "ready");
    assert_eq!(v1["format_conversions"]["onnx"]["verified"], true);
    assert_eq!(v1["format_conversions"]["onnx"]["unverified_reason"], Value::Null);
    assert_eq!(v1["format_conversions"]["onnx"]["model_hash"], format!("sha256:{}", sha256_hex(&onnx)));
    assert_eq!(v1["model_hash"], format!("sha256:{}", sha256_hex(&pickle)), "the seed's fields describe the original");

    // Provenance and the verification's figures.
    let status = ok(&s.get(&format!("/api/v1/models/{id}/versions/1/formats/onnx")), 200);
    let provenance = &status["provenance"];
    assert_eq!(provenance["converter"], "skl2onnx");
    assert_eq!(provenance["converterVersion"], installed_version("skl2onnx"), "{provenance}");
    assert_eq!(provenance["sourceSha256"], sha256_hex(&pickle));
    assert_eq!(provenance["rows"], 100);
    assert!(provenance["convertedAt"].as_str().is_some());
    assert!(status["log"].as_str().unwrap().contains("largest absolute difference"), "{status}");

    // The original is still the default download.
    let original = s.get(&format!("/api/v1/models/{id}/versions/1/download"));
    assert_eq!(original.status, 200);
    assert_eq!(original.body, pickle);

    // gc keeps the converted blob: it belongs to the version.
    let gc = s.cli(&["gc", "--grace-secs", "0"]);
    assert!(gc.status.success(), "{}", String::from_utf8_lossy(&gc.stderr));
    assert_eq!(s.get(&path).body, onnx);

    // The CLI downloads the format over HTTP and offline, verified by hash.
    let remote_out = work.path().join("remote.onnx");
    let out = s.cli_remote(&["versions", "download", &id, "1", "--format", "onnx", "-o", remote_out.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(&remote_out).unwrap(), onnx);
    let local_out = work.path().join("local.onnx");
    let out = s.cli(&["versions", "download", &id, "1", "--format", "onnx", "-o", local_out.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(&local_out).unwrap(), onnx);
}

#[test]
fn an_xgboost_model_converts_on_its_first_download_and_matches_the_original() {
    let work = tempfile::tempdir().unwrap();
    python(work.path(), MAKE_MODELS, &[]);
    let booster = std::fs::read(work.path().join("booster.json")).unwrap();
    let s = server(&["--no-convert-on-upload"]);
    let id = create_model(&s, "fraud", "xgboost");
    upload(&s, &id, "booster.json", &booster, Some("xgboost"));
    let model = ok(&s.get(&format!("/api/v1/models/{id}")), 200);
    assert_eq!(model["versions"][0]["available_formats"], json!(["xgboost"]));
    assert_eq!(model["versions"][0]["format_conversions"], json!({}), "nothing converts on upload when it is off");

    // The first download asks for the conversion and says it is queued.
    let path = format!("/api/v1/models/{id}/versions/1/download?format=onnx");
    let first = s.get(&path);
    assert_eq!(first.status, 404);
    assert_ne!(first.body, br#"{"detail":"Not Found"}"#);
    assert!(is_pending(&first), "{}", first.json());
    let reply = download_when_done(&s, &path, None);
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    let onnx_path = work.path().join("booster.onnx");
    std::fs::write(&onnx_path, &reply.body).unwrap();
    let compared = python(work.path(), COMPARE, &["xgboost", "booster.json", onnx_path.to_str().unwrap()]);
    assert!(compared["largest"].as_f64().unwrap() < 1e-4, "{compared}");
    assert_eq!(compared["label_mismatches"], 0, "{compared}");
    let status = ok(&s.get(&format!("/api/v1/models/{id}/versions/1/formats/onnx")), 200);
    assert_eq!(status["provenance"]["converter"], "onnxmltools");

    // Offline, `versions convert` converts in the CLI's own process.
    upload(&s, &id, "booster.json", &booster, Some("xgboost"));
    let py = converters_python();
    let out = s.cli(&["--json", "versions", "convert", &id, "2", "--to", "onnx", "--python", py.to_str().unwrap()]);
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let converted: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(converted["state"], "ready", "{converted}");
    // Served at once: the CLI converted it.
    let v2 = s.get(&format!("/api/v1/models/{id}/versions/2/download?format=onnx"));
    assert_eq!(v2.status, 200);
    assert_eq!(converted["model_hash"], format!("sha256:{}", sha256_hex(&v2.body)));
}

#[test]
fn impossible_conversions_answer_404_with_the_reason() {
    let s = server(&["--no-convert-on-upload"]);
    let id = create_model(&s, "forest", "sklearn");
    let work = tempfile::tempdir().unwrap();
    python(work.path(), MAKE_MODELS, &[]);
    upload(&s, &id, "pipeline.pkl", &std::fs::read(work.path().join("pipeline.pkl")).unwrap(), None);
    let tflite = s.get(&format!("/api/v1/models/{id}/versions/1/download?format=tflite"));
    assert_reasoned_404(&tflite, "impossible", "TFLite");
    let post = s.post_json(&format!("/api/v1/models/{id}/versions/1/formats/tflite"), &json!({}));
    assert_eq!(post.status, 400, "{}", String::from_utf8_lossy(&post.body));
    assert!(post.json()["message"].as_str().unwrap().contains("TFLite"));

    // A PyTorch state_dict: torch.save's archive holds pickled tensors and
    // no `code/` (the architecture is Python that was never uploaded).
    let torch_model = create_model(&s, "resnet-weights", "pytorch");
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let entries: [(&str, &[u8]); 3] = [("archive/data.pkl", b"\x80\x02}q\x00."), ("archive/version", b"3\n"), ("archive/data/0", &[0u8; 64])];
    for (name, bytes) in entries {
        zip.start_file(name, zip::write::SimpleFileOptions::default()).unwrap();
        std::io::Write::write_all(&mut zip, bytes).unwrap();
    }
    let state_dict = zip.finish().unwrap().into_inner();
    upload(&s, &torch_model, "weights.pt", &state_dict, None);
    let reply = s.get(&format!("/api/v1/models/{torch_model}/versions/1/download?format=onnx"));
    assert_reasoned_404(&reply, "impossible", "state_dict");
    let reply = s.get(&format!("/api/v1/models/{torch_model}/versions/1/download?format=coreml"));
    assert_reasoned_404(&reply, "impossible", "cannot be exported to Core ML");

    // TorchScript needs an input shape, and this runtime has no PyTorch:
    // the answer names the option that would install it.
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for name in ["net/code/__torch__.py", "net/data.pkl", "net/constants.pkl"] {
        zip.start_file(name, zip::write::SimpleFileOptions::default()).unwrap();
    }
    upload(&s, &torch_model, "scripted.pt", &zip.finish().unwrap().into_inner(), None);
    let reply = s.get(&format!("/api/v1/models/{torch_model}/versions/2/download?format=onnx"));
    assert_reasoned_404(&reply, "needs a shape", "input_shape");
    let post = s.post_json(&format!("/api/v1/models/{torch_model}/versions/2/formats/onnx"), &json!({"input_shape": [1, 3, 8, 8]}));
    assert_eq!(post.status, 400, "{}", String::from_utf8_lossy(&post.body));
    assert!(post.json()["message"].as_str().unwrap().contains("--with torch"), "{}", post.json());
    // Core ML from TorchScript likewise.
    let reply = s.get(&format!("/api/v1/models/{torch_model}/versions/2/download?format=coreml"));
    assert_reasoned_404(&reply, "needs a shape", "input_shape");
    let post = s.post_json(&format!("/api/v1/models/{torch_model}/versions/2/formats/coreml"), &json!({"input_shape": [1, 3, 8, 8]}));
    assert_eq!(post.status, 400, "{}", String::from_utf8_lossy(&post.body));
    assert!(post.json()["message"].as_str().unwrap().contains("--with converters --with torch"), "{}", post.json());
    let bad = s.post_json(&format!("/api/v1/models/{torch_model}/versions/2/formats/onnx"), &json!({"input_shape": [0, -1]}));
    assert_eq!(bad.status, 400);
    assert!(bad.json()["message"].as_str().unwrap().contains("input_shape"));

    // An unknown format is a 400, as before; a weights format modelreg
    // recognises but never converts into (GGUF, since issue 24) is impossible.
    assert_eq!(s.get(&format!("/api/v1/models/{id}/versions/1/download?format=caffe")).status, 400);
    assert_reasoned_404(&s.get(&format!("/api/v1/models/{id}/versions/1/download?format=gguf")), "impossible", "does not convert into gguf");
    // Nothing impossible was queued.
    for model in [&id, &torch_model] {
        let m = ok(&s.get(&format!("/api/v1/models/{model}")), 200);
        for v in m["versions"].as_array().unwrap() {
            assert_eq!(v["format_conversions"], json!({}), "{m}");
        }
    }
}

#[test]
fn a_server_without_converters_answers_404_naming_the_option() {
    // No runtime at all: nothing is queued on upload, and the download says
    // what to install.
    let s = Server::start();
    let id = create_model(&s, "plain", "sklearn");
    upload(&s, &id, "model.pkl", b"\x80\x04K\x01.", None);
    let reply = s.get(&format!("/api/v1/models/{id}/versions/1/download?format=onnx"));
    assert_reasoned_404(&reply, "not installed", "modelreg runtime install --with converters");
    let model = ok(&s.get(&format!("/api/v1/models/{id}")), 200);
    assert_eq!(model["versions"][0]["format_conversions"], json!({}));
    assert_eq!(model["versions"][0]["available_formats"], json!(["sklearn"]));
}

#[test]
fn a_corrupt_pickle_fails_its_conversion_with_a_clear_log_and_the_original_stays_downloadable() {
    let s = server(&[]);
    let id = create_model(&s, "broken", "sklearn");
    let garbage = b"this is not a pickle, whatever its name says".to_vec();
    upload(&s, &id, "model.pkl", &garbage, None);
    let path = format!("/api/v1/models/{id}/versions/1/download?format=onnx");
    let reply = download_when_done(&s, &path, None);
    assert_reasoned_404(&reply, "failed", "cannot load the file as a pickle");
    let status = ok(&s.get(&format!("/api/v1/models/{id}/versions/1/formats/onnx")), 200);
    assert_eq!(status["state"], "failed");
    let log = status["log"].as_str().unwrap();
    assert!(log.contains("ERROR: cannot load the file as a pickle or joblib file"), "{log}");
    assert!(log.contains("Conversion failed"), "{log}");
    // A download does not restart a failed conversion…
    assert_reasoned_404(&s.get(&path), "failed", "cannot load");
    // …an explicit request does, and it fails the same way.
    let again = ok(&s.post_json(&format!("/api/v1/models/{id}/versions/1/formats/onnx"), &json!({})), 202);
    assert_eq!(again["state"], "queued");
    assert_reasoned_404(&download_when_done(&s, &path, None), "failed", "cannot load");
    let original = s.get(&format!("/api/v1/models/{id}/versions/1/download"));
    assert_eq!(original.status, 200);
    assert_eq!(original.body, garbage);
    let model = ok(&s.get(&format!("/api/v1/models/{id}")), 200);
    assert_eq!(model["versions"][0]["available_formats"], json!(["sklearn"]));
    assert_eq!(model["versions"][0]["format_conversions"]["onnx"]["state"], "failed");
}

#[test]
fn another_team_cannot_request_conversions_of_your_versions() {
    let s = server(&["--no-convert-on-upload"]);
    let id = create_model(&s, "private", "sklearn");
    let work = tempfile::tempdir().unwrap();
    python(work.path(), MAKE_MODELS, &[]);
    upload(&s, &id, "pipeline.pkl", &std::fs::read(work.path().join("pipeline.pkl")).unwrap(), None);
    let out = s.cli(&["teams", "add", "rivals"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = user_key(&s, "mallory", Some("rivals"));
    let auth = format!("Bearer {key}");
    let as_rival = |method: &str, path: &str| {
        let body = (method == "POST").then(|| b"{}".to_vec());
        s.request(method, path, &[("Authorization", &auth), ("Content-Type", "application/json")], body)
    };
    for (method, path) in [
        ("GET", format!("/api/v1/models/{id}/versions/1/download?format=onnx")),
        ("POST", format!("/api/v1/models/{id}/versions/1/formats/onnx")),
        ("GET", format!("/api/v1/models/{id}/versions/1/formats/onnx")),
        ("GET", format!("/api/v1/models/{id}/versions/1/formats")),
    ] {
        let reply = as_rival(method, &path);
        assert_eq!(reply.status, 404, "{method} {path}: {}", String::from_utf8_lossy(&reply.body));
        assert_eq!(reply.json()["error"], "not_found", "{method} {path}");
    }
    let model = ok(&s.get(&format!("/api/v1/models/{id}")), 200);
    assert_eq!(model["versions"][0]["format_conversions"], json!({}), "the other team queued nothing");
}

/// `OctomilClient.pull` as a user runs it: by name, the latest version, in
/// the format it asks for by default (ONNX), through `download-url`. While
/// the conversion is queued or running, it fails with the 404's reason, and
/// the user tries again.
const SDK_PULL: &str = r#"
import json, os, sys, time
name, token, out = sys.argv[1:4]
from octomil.auth import OrgApiKeyAuth
from octomil.client import OctomilClient
base = os.environ["OCTOMIL_API_BASE"] + "/api/v1"
client = OctomilClient(auth=OrgApiKeyAuth(api_key=token, org_id="team", api_base=base))
pending, first_error_seconds = [], None
deadline = time.monotonic() + 300
while True:
    started = time.monotonic()
    try:
        result = client.pull(name, destination=out)
        break
    except Exception as e:
        if first_error_seconds is None:
            first_error_seconds = time.monotonic() - started
        text = str(e)
        if (" is queued; try again" not in text and " is running; try again" not in text) or time.monotonic() > deadline:
            raise
        pending.append(text[:200])
        time.sleep(0.1)
assert result["format"] == "onnx", result
print(json.dumps({"path": result["model_path"], "pending": len(pending), "first_error_seconds": first_error_seconds}))
"#;

#[test]
fn the_octomil_sdk_pulls_a_sklearn_upload_as_onnx() {
    let sdk = common::client_python().expect("a venv with the Octomil SDK");
    let work = tempfile::tempdir().unwrap();
    python(work.path(), MAKE_MODELS, &[]);
    // Converted on first download: the SDK sees the 404s while it runs.
    let s = server(&["--no-convert-on-upload"]);
    let id = create_model(&s, "sdk-model", "sklearn");
    upload(&s, &id, "pipeline.pkl", &std::fs::read(work.path().join("pipeline.pkl")).unwrap(), None);
    let pulled = work.path().join("pulled");
    let cache = work.path().join("octomil-cache");
    let out = Command::new(sdk)
        .args(["-c", SDK_PULL, "sdk-model", &s.key, pulled.to_str().unwrap()])
        .env("OCTOMIL_API_BASE", format!("http://{}", s.addr))
        .env("OCTOMIL_CACHE_DIR", &cache)
        .current_dir(work.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the SDK's pull failed:\n{}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        s.log.lock().unwrap()
    );
    let result: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    assert!(result["pending"].as_u64().unwrap() >= 1, "the first pull met the queued conversion: {result}");
    // Each attempt met one 404 and gave up on it: the 404 is not the
    // `{"detail":"Not Found"}` body the SDK retries as a cold start.
    let not_yet = s.log.lock().unwrap().lines().filter(|l| l.contains("\"GET /api/v1/downloads/") && l.contains("\" 404 ")).count();
    assert_eq!(not_yet as u64, result["pending"].as_u64().unwrap(), "{result}");
    let onnx = pulled.join("model.onnx");
    assert_eq!(result["path"], onnx.to_str().unwrap());
    let compared = python(work.path(), COMPARE, &["sklearn", "pipeline.pkl", onnx.to_str().unwrap()]);
    assert!(compared["largest"].as_f64().unwrap() < 1e-4, "{compared}");
    assert_eq!(compared["label_mismatches"], 0, "{compared}");
}

/// A small Keras model, saved in Keras 3's own format and as legacy HDF5.
const MAKE_KERAS: &str = r#"
import json, numpy as np, tensorflow as tf
tf.keras.utils.set_random_seed(3)
m = tf.keras.Sequential([tf.keras.Input(shape=(6,)), tf.keras.layers.Dense(16, activation="relu"), tf.keras.layers.Dense(3, activation="softmax")])
m.save("model.keras")
m.save("model.h5")
np.save("rows.npy", np.random.default_rng(99).normal(size=(100, 6)).astype("float32"))
print(json.dumps({}))
"#;

/// Runs the Keras original and the converted file (ONNX with onnxruntime,
/// TFLite with TensorFlow's interpreter) on rows.npy.
const COMPARE_KERAS: &str = r#"
import json, sys, numpy as np, tensorflow as tf
kind, original, converted = sys.argv[1:4]
X = np.load("rows.npy")
expected = tf.keras.models.load_model(original, compile=False)(X).numpy()
if kind == "onnx":
    import onnxruntime as ort
    s = ort.InferenceSession(converted, providers=["CPUExecutionProvider"])
    got = s.run(None, {s.get_inputs()[0].name: X})[0]
else:
    i = tf.lite.Interpreter(model_path=converted)
    d = i.get_input_details()[0]
    i.resize_tensor_input(d["index"], list(X.shape)); i.allocate_tensors()
    i.set_tensor(d["index"], X); i.invoke()
    got = i.get_tensor(i.get_output_details()[0]["index"])
print(json.dumps({"rows": int(X.shape[0]), "largest": float(np.abs(np.asarray(got) - expected).max())}))
"#;

#[test]
fn a_keras_model_downloads_as_onnx_and_tflite_that_match_the_original() {
    let work = tempfile::tempdir().unwrap();
    python(work.path(), MAKE_KERAS, &[]);
    let s = server(&["--no-convert-on-upload"]);
    let id = create_model(&s, "keras", "tensorflow");
    for (n, file) in [(1, "model.keras"), (2, "model.h5")] {
        let bytes = std::fs::read(work.path().join(file)).unwrap();
        upload(&s, &id, file, &bytes, None);
        for format in ["onnx", "tflite"] {
            let path = format!("/api/v1/models/{id}/versions/{n}/download?format={format}");
            let reply = download_when_done(&s, &path, None);
            assert_eq!(reply.status, 200, "{file} → {format}: {}", String::from_utf8_lossy(&reply.body));
            assert_eq!(reply.header("Content-Disposition"), Some(format!("attachment; filename=\"model_v{n}.{format}\"").as_str()));
            assert_eq!(reply.header("X-Modelreg-Verified"), Some("true"), "{file} → {format}");
            let converted = work.path().join(format!("v{n}.{format}"));
            std::fs::write(&converted, &reply.body).unwrap();
            let compared = python(work.path(), COMPARE_KERAS, &[format, file, converted.to_str().unwrap()]);
            assert_eq!(compared["rows"], 100);
            assert!(compared["largest"].as_f64().unwrap() < 1e-4, "{file} → {format}: {compared}");
        }
        let status = ok(&s.get(&format!("/api/v1/models/{id}/versions/{n}/formats/tflite")), 200);
        assert_eq!(status["provenance"]["converter"], "tf.lite.TFLiteConverter");
        assert_eq!(status["provenance"]["converterVersion"], installed_version("tensorflow"), "{status}");
    }
    let model = ok(&s.get(&format!("/api/v1/models/{id}")), 200);
    assert_eq!(model["versions"][1]["available_formats"], json!(["tensorflow", "onnx", "tflite"]));
    for v in model["versions"].as_array().unwrap() {
        for format in ["onnx", "tflite"] {
            assert_eq!(v["format_conversions"][format]["verified"], true, "{v}");
        }
    }

    // Core ML is made, unverified: it cannot run here, so only read back.
    let reply = download_when_done(&s, &format!("/api/v1/models/{id}/versions/1/download?format=coreml"), None);
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.header("X-Modelreg-Verified"), Some("false"));
    assert_eq!(reply.header("Content-Disposition"), Some("attachment; filename=\"model_v1.mlmodel\""));
    let mlmodel = work.path().join("v1.mlmodel");
    std::fs::write(&mlmodel, &reply.body).unwrap();
    let spec = python(work.path(), READ_COREML, &[mlmodel.to_str().unwrap()]);
    assert_eq!(spec["inputs"], json!(["input"]), "{spec}");
    assert_eq!(spec["outputs"].as_array().unwrap().len(), 1, "{spec}");
    let status = ok(&s.get(&format!("/api/v1/models/{id}/versions/1/formats/coreml")), 200);
    assert_eq!(status["verified"], false, "{status}");
    assert_eq!(status["provenance"]["converter"], "coremltools.convert");
}

/// A pipeline whose answer cancels two terms of 1e8: exact enough in
/// float64, lost in the float32 arithmetic ONNX runs (steps of 8 at 1e8).
const MAKE_CANCELLING: &str = r#"
import json, pickle, numpy as np
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.linear_model import LinearRegression
Z = np.random.default_rng(4).normal(size=(200, 1)) - 1e8
pipe = make_pipeline(StandardScaler(), LinearRegression()).fit(Z, Z[:, 0])
pickle.dump(pipe, open("cancelling.pkl", "wb"))
print(json.dumps({}))
"#;

#[test]
fn a_conversion_that_disagrees_with_the_original_fails_with_the_largest_difference() {
    let work = tempfile::tempdir().unwrap();
    python(work.path(), MAKE_CANCELLING, &[]);
    let s = server(&[]);
    let id = create_model(&s, "cancelling", "sklearn");
    upload(&s, &id, "cancelling.pkl", &std::fs::read(work.path().join("cancelling.pkl")).unwrap(), None);
    let reply = download_when_done(&s, &format!("/api/v1/models/{id}/versions/1/download?format=onnx"), None);
    assert_reasoned_404(&reply, "failed", "the largest difference is");
    let message = reply.json()["message"].as_str().unwrap().to_string();
    let largest: f64 = message.split("the largest difference is ").nth(1).unwrap().split(". ").next().unwrap().parse().unwrap();
    let status = ok(&s.get(&format!("/api/v1/models/{id}/versions/1/formats/onnx")), 200);
    assert!(status["log"].as_str().unwrap().contains("largest absolute difference"), "{status}");
    assert!(message.contains("disagrees with the original"), "{message}");
    // float32 steps of 8 at 1e8 lose the answer (about 1) entirely.
    assert!(largest > 0.5, "{message}");
    // Nothing was stored: only the original is available.
    let model = ok(&s.get(&format!("/api/v1/models/{id}")), 200);
    assert_eq!(model["versions"][0]["available_formats"], json!(["sklearn"]));
    assert_eq!(model["versions"][0]["format_conversions"]["onnx"]["model_hash"], Value::Null);
}

/// A scikit-learn model coremltools converts: a random forest behind a
/// scaler, three classes.
const MAKE_FOREST: &str = r#"
import json, pickle, numpy as np
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.ensemble import RandomForestClassifier
rng = np.random.default_rng(7)
X = rng.normal(size=(400, 6))
y = (X[:, 0] - 2 * X[:, 3] + 0.5 * X[:, 5] > 0).astype(int) + (X[:, 1] > 1)
forest = make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=10, random_state=0)).fit(X, y)
pickle.dump(forest, open("forest.pkl", "wb"))
print(json.dumps({"classes": [str(c) for c in forest.classes_], "features": int(forest.n_features_in_)}))
"#;

/// What a Core ML file holds, read with coremltools (which reads the
/// protobuf on Linux; it cannot run the model): the model type, input and
/// output names, the inputs' shapes and the class labels a classifier
/// declares.
const READ_COREML: &str = r#"
import json, sys, coremltools as ct
def class_labels(spec):
    kind = spec.WhichOneof("Type")
    if kind == "pipelineClassifier":
        return class_labels(spec.pipelineClassifier.pipeline.models[-1])
    model = getattr(spec, kind)
    if "int64ClassLabels" in model.DESCRIPTOR.fields_by_name and model.HasField("int64ClassLabels"):
        return [str(label) for label in model.int64ClassLabels.vector]
    return None
model = ct.models.MLModel(sys.argv[1], skip_model_load=True)
spec = ct.utils.load_spec(sys.argv[1])
print(json.dumps({
    "type": spec.WhichOneof("Type"),
    "inputs": [i.name for i in spec.description.input],
    "shapes": [list(i.type.multiArrayType.shape) for i in spec.description.input],
    "outputs": [o.name for o in model.get_spec().description.output],
    "classLabels": class_labels(spec),
}))
"#;

#[test]
fn a_sklearn_model_converts_to_core_ml_marked_unverified() {
    let work = tempfile::tempdir().unwrap();
    let made = python(work.path(), MAKE_FOREST, &[]);
    let pickle = std::fs::read(work.path().join("forest.pkl")).unwrap();
    let s = server(&["--no-convert-on-upload"]);
    let id = create_model(&s, "forest", "sklearn");
    upload(&s, &id, "forest.pkl", &pickle, None);

    // The first download asks for the conversion; the artifact then comes
    // with the header saying it was not verified.
    let path = format!("/api/v1/models/{id}/versions/1/download?format=coreml");
    assert!(is_pending(&s.get(&path)));
    let reply = download_when_done(&s, &path, None);
    assert_eq!(reply.status, 200, "{}\n{}", String::from_utf8_lossy(&reply.body), s.log.lock().unwrap());
    let mlmodel = reply.body.clone();
    assert_eq!(reply.header("X-Modelreg-Verified"), Some("false"));
    assert_eq!(reply.header("Content-Disposition"), Some("attachment; filename=\"model_v1.mlmodel\""));
    assert_eq!(reply.header("X-Model-Hash"), Some(sha256_hex(&mlmodel).as_str()));

    // The bytes are a Core ML model of the original: coremltools reads
    // them back with the original's inputs and classes.
    let file = work.path().join("model.mlmodel");
    std::fs::write(&file, &mlmodel).unwrap();
    let spec = python(work.path(), READ_COREML, &[file.to_str().unwrap()]);
    assert_eq!(spec["type"], "pipelineClassifier", "{spec}");
    assert_eq!(spec["inputs"], json!(["input"]), "{spec}");
    assert_eq!(spec["shapes"], json!([[made["features"]]]), "{spec}");
    assert_eq!(spec["classLabels"], made["classes"], "{spec}");
    assert_eq!(spec["outputs"], json!(["classLabel", "classProbability"]), "{spec}");

    // Every JSON that shows the conversion says it is unverified, and why.
    let model = ok(&s.get(&format!("/api/v1/models/{id}")), 200);
    let v1 = &model["versions"][0];
    assert_eq!(v1["available_formats"], json!(["sklearn", "coreml"]));
    let conversion = &v1["format_conversions"]["coreml"];
    assert_eq!(conversion["state"], "ready", "{conversion}");
    assert_eq!(conversion["verified"], false, "{conversion}");
    assert!(conversion["unverified_reason"].as_str().unwrap().contains("runs only on Apple's platforms"), "{conversion}");
    assert_eq!(conversion["model_hash"], format!("sha256:{}", sha256_hex(&mlmodel)));
    let status = ok(&s.get(&format!("/api/v1/models/{id}/versions/1/formats/coreml")), 200);
    assert_eq!(status["verified"], false, "{status}");
    assert_eq!(status["provenance"]["verified"], false, "{status}");
    assert_eq!(status["provenance"]["converter"], "coremltools.converters.sklearn");
    assert_eq!(status["provenance"]["converterVersion"], installed_version("coremltools"), "{status}");
    assert_eq!(status["provenance"]["sourceSha256"], sha256_hex(&pickle));
    assert!(status["log"].as_str().unwrap().contains("Not verified"), "{status}");
    let listed = ok(&s.get(&format!("/api/v1/models/{id}/versions/1/formats")), 200);
    let coreml = listed["formats"].as_array().unwrap().iter().find(|f| f["format"] == "coreml").unwrap();
    assert_eq!(coreml["verified"], false, "{listed}");

    // The CLI says so too, over HTTP (from the header) and offline.
    let remote_out = work.path().join("remote.mlmodel");
    let out = s.cli_remote(&["--json", "versions", "download", &id, "1", "--format", "coreml", "-o", remote_out.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let written: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(written["verified"], false, "{written}");
    assert_eq!(std::fs::read(&remote_out).unwrap(), mlmodel);
    let out = s.cli(&["versions", "download", &id, "1", "--format", "coreml", "-o", work.path().join("local.mlmodel").to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("NOT verified against the original"), "{}", String::from_utf8_lossy(&out.stdout));
    let out = s.cli_remote(&["versions", "convert", &id, "1", "--to", "coreml"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("NOT verified against the original: a Core ML model"), "{}", String::from_utf8_lossy(&out.stdout));
    // The original's download is not a conversion: no such header.
    assert_eq!(s.get(&format!("/api/v1/models/{id}/versions/1/download")).header("X-Modelreg-Verified"), None);
}

#[test]
fn a_model_coremltools_cannot_convert_fails_with_its_reason() {
    // The multinomial LogisticRegression of MAKE_MODELS: coremltools makes
    // only one-vs-rest GLM classifiers, and reads an attribute scikit-learn
    // 1.8 removed. Nothing is served in its place.
    let work = tempfile::tempdir().unwrap();
    python(work.path(), MAKE_MODELS, &[]);
    let s = server(&["--no-convert-on-upload"]);
    let id = create_model(&s, "logistic", "sklearn");
    upload(&s, &id, "pipeline.pkl", &std::fs::read(work.path().join("pipeline.pkl")).unwrap(), None);
    let reply = download_when_done(&s, &format!("/api/v1/models/{id}/versions/1/download?format=coreml"), None);
    assert_reasoned_404(&reply, "failed", "cannot convert Pipeline");
    let model = ok(&s.get(&format!("/api/v1/models/{id}")), 200);
    assert_eq!(model["versions"][0]["available_formats"], json!(["sklearn"]));
    assert_eq!(model["versions"][0]["format_conversions"]["coreml"]["verified"], Value::Null);
}

#[test]
fn with_core_ml_turned_off_asking_for_it_is_refused_in_octomil_s_error_body() {
    let work = tempfile::tempdir().unwrap();
    python(work.path(), MAKE_FOREST, &[]);
    let forest = std::fs::read(work.path().join("forest.pkl")).unwrap();
    // A Core ML artifact made while the server allowed it…
    let s = server(&["--no-convert-on-upload"]);
    let id = create_model(&s, "forest", "sklearn");
    upload(&s, &id, "forest.pkl", &forest, None);
    let made = download_when_done(&s, &format!("/api/v1/models/{id}/versions/1/download?format=coreml"), None);
    assert_eq!(made.status, 200, "{}", String::from_utf8_lossy(&made.body));
    // …is no longer served once the operator turns Core ML off, and nothing
    // new is made.
    let python = converters_python();
    let s = Server::start_in(s.kill(), &["--python", python.to_str().unwrap(), "--no-convert-on-upload", "--no-coreml"]);
    upload(&s, &id, "forest.pkl", &forest, None);
    let refused = |reply: &Reply| {
        assert_eq!(reply.status, 403, "{}", String::from_utf8_lossy(&reply.body));
        let body = reply.json();
        assert_eq!(body["error"], "forbidden", "{body}");
        assert_eq!(body.as_object().unwrap().len(), 2, "Octomil's error body is {{error, message}}: {body}");
        assert!(body["message"].as_str().unwrap().contains("operator of this server turned Core ML conversions off"), "{body}");
    };
    for n in [1, 2] {
        refused(&s.get(&format!("/api/v1/models/{id}/versions/{n}/download?format=coreml")));
        refused(&s.post_json(&format!("/api/v1/models/{id}/versions/{n}/formats/coreml"), &json!({})));
        let status = ok(&s.get(&format!("/api/v1/models/{id}/versions/{n}/formats/coreml")), 200);
        assert_eq!(status["state"], "disabled", "{status}");
    }
    let model = ok(&s.get(&format!("/api/v1/models/{id}")), 200);
    let (v1, v2) = (&model["versions"][0], &model["versions"][1]);
    assert_eq!(v1["available_formats"], json!(["sklearn"]), "{model}");
    assert_eq!(v1["format_conversions"]["coreml"]["state"], "disabled", "{model}");
    assert_eq!(v1["format_conversions"]["coreml"]["verified"], false, "the record of what was made stays: {model}");
    assert_eq!(v2["format_conversions"], json!({}), "nothing was queued: {model}");
    // The other formats are not affected.
    let listed = ok(&s.get(&format!("/api/v1/models/{id}/versions/2/formats")), 200);
    let onnx = listed["formats"].as_array().unwrap().iter().find(|f| f["format"] == "onnx").unwrap();
    assert_eq!(onnx["state"], "not_requested", "{listed}");
}
