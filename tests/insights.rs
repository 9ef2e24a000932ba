//! Feature impact and prediction explanations (issue 15) against the real
//! binary and DRUM: permutation importance that ranks the features a model
//! uses, computed with one model server start; the older image routes;
//! what is refused and why; explanations' initialisation on the version.

mod common;

use common::datarobot::*;
use common::{as_user, ok, Server};
use serde_json::{json, Value};

/// 400 rows: y = 3·x1 + 0.5·x2 exactly; x3 is noise the model ignores.
fn impact_csv() -> String {
    let mut csv = String::from("x1,x2,x3,y\n");
    for i in 0..400u64 {
        let (x1, x2, x3) = ((i * 37 % 101) as f64 / 10.0, (i * 53 % 97) as f64 / 10.0, (i * 71 % 89) as f64 / 10.0);
        csv.push_str(&format!("{x1},{x2},{x3},{}\n", 3.0 * x1 + 0.5 * x2));
    }
    csv
}

/// A model of `fixture_name` with `impact_csv` assigned as its training data.
fn trained(s: &Server, model: Value, fixture_name: &str, csv: &str) -> Setup {
    let setup = setup(s, model, &fixture(fixture_name), &[], Some(csv));
    let dataset = setup.dataset.clone().unwrap();
    let r = s.send_json("PATCH", &format!("{API}/customModels/{}/trainingData/", setup.model), &json!({"datasetId": dataset}));
    ok(&r, 202);
    setup
}

fn impact_path(setup: &Setup) -> String {
    format!("{API}/customModels/{}/versions/{}/featureImpact/", setup.model, setup.version)
}

/// Polls a job's status route until it redirects; returns the Location.
fn wait_done(s: &Server, status_url: &str) -> String {
    let reply = poll("the job's redirect", RUN_DEADLINE, || {
        let r = s.get_unfollowed(path_of(s, status_url));
        match (r.status, r.json()["status"].as_str()) {
            (303, _) => Ok(r),
            (200, Some("INITIALIZED" | "RUNNING")) => Err(r.json().to_string()),
            _ => panic!("the status route answered {}: {}", r.status, String::from_utf8_lossy(&r.body)),
        }
    });
    reply.header("Location").unwrap().to_string()
}

fn impacts(body: &Value) -> Vec<(String, f64)> {
    body["featureImpacts"].as_array().unwrap().iter().map(|f| (f["featureName"].as_str().unwrap().to_string(), f["impactNormalized"].as_f64().unwrap())).collect()
}

#[test]
fn feature_impact_ranks_the_features_the_model_uses_with_one_model_start() {
    let s = Server::start_compute(&[]);
    let setup = trained(&s, regression(), "impact", &impact_csv());
    let path = impact_path(&setup);
    assert_eq!(s.get(&path).status, 404, "no run yet");
    let r = s.request("POST", &path, &[], None);
    let status_url = r.header("Location").expect("a Location").to_string();
    ok(&r, 202);
    // While it runs, another run and a read are refused.
    assert_eq!(s.request("POST", &path, &[], None).status, 422);
    let reading = s.get(&path);
    assert!(matches!(reading.status, 200 | 422), "{}", reading.status);
    assert_eq!(wait_done(&s, &status_url), format!("http://{}{path}", s.addr));

    let body = ok(&s.get(&path), 200);
    let ranked = impacts(&body);
    assert_eq!(ranked[0], ("x1".to_string(), 1.0), "{body}");
    assert_eq!(ranked[1].0, "x2");
    assert!(ranked[1].1 > 0.01 && ranked[1].1 < 0.9, "x2: {}", ranked[1].1);
    assert_eq!(ranked[2].0, "x3");
    assert!(ranked[2].1.abs() < 1e-9, "x3: {}", ranked[2].1);
    assert_eq!(body["count"], 3);
    assert_eq!(body["rowCount"], Value::Null, "the request named no rowCount");
    assert_eq!(body["shapBased"], false);
    assert_eq!(body["ranRedundancyDetection"], true);
    assert!(body["featureImpacts"].as_array().unwrap().iter().all(|f| f["redundantWith"].is_null()));
    // One model server start, one scoring request for all four copies.
    let log = String::from_utf8(s.get(&format!("{path}log/")).body).unwrap();
    assert_eq!(log.matches("Containment:").count(), 1, "{log}");
    assert_eq!(log.matches("Scoring request").count(), 1, "{log}");
    assert!(log.contains("4 copies of the sample, 1600 rows"), "{log}");

    // rowCount: a smaller sample; out of range is a 422.
    assert_eq!(s.post_json(&path, &json!({"rowCount": 5})).status, 422);
    let r = s.post_json(&path, &json!({"rowCount": 50}));
    wait_done(&s, r.header("Location").unwrap());
    let body = ok(&s.get(&path), 200);
    assert_eq!((body["rowCount"].as_u64(), body["sampledRows"].as_u64()), (Some(50), Some(50)));
    assert_eq!(impacts(&body)[0].0, "x1");
}

#[test]
fn the_image_routes_and_a_classifier() {
    let s = Server::start_compute(&[]);
    let binary = json!({"name": "yes or no", "targetType": "Binary", "targetName": "label", "positiveClassLabel": "yes", "negativeClassLabel": "no"});
    let mut csv = String::from("x1,x2,label\n");
    for i in 0..200u64 {
        let (x1, x2) = ((i * 37 % 101) as f64 / 10.0, (i * 53 % 97) as f64 / 10.0);
        csv.push_str(&format!("{x1},{x2},{}\n", if x1 > 5.0 { "yes" } else { "no" }));
    }
    let setup = trained(&s, binary, "impact_binary", &csv);
    // A test mints the image id; the older routes name the version by it.
    let test = run_test(&s, &test_body(&setup, &setup.version, json!({})));
    let image = test["customModelImageId"].as_str().unwrap();
    let path = format!("{API}/customInferenceImages/{image}/featureImpact/");
    assert_eq!(s.get(&path).status, 404);
    let r = s.request("POST", &path, &[], None);
    wait_done(&s, r.header("Location").expect("a Location"));
    let body = ok(&s.get(&path), 200);
    assert_eq!(body["featureImpacts"][0]["featureName"], "x1", "{body}");
    assert_eq!(body["metric"], "LogLoss");
    assert_eq!(ok(&s.get(&impact_path(&setup)), 200), body, "both routes read the same run");
    assert_eq!(s.get(&format!("{API}/customInferenceImages/nope/featureImpact/")).status, 404);
}

#[test]
fn what_feature_impact_refuses() {
    let s = Server::start_compute(&[]);
    // No training data.
    let untrained = setup(&s, regression(), &fixture("impact"), &[], None);
    let r = s.request("POST", &impact_path(&untrained), &[], None);
    assert_eq!(r.status, 422);
    assert!(r.json()["message"].as_str().unwrap().contains("no training data"), "{}", r.json());
    // A target type the method does not fit.
    let anomaly = setup(&s, json!({"name": "odd", "targetType": "Anomaly"}), &fixture("impact"), &[], None);
    let r = s.request("POST", &impact_path(&anomaly), &[], None);
    assert_eq!(r.status, 422);
    assert!(r.json()["message"].as_str().unwrap().contains("Anomaly"), "{}", r.json());
    // Another team's version.
    let setup = trained(&s, regression(), "impact", &impact_csv());
    assert!(s.cli(&["teams", "add", "others"]).status.success());
    let carol = common::user_key(&s, "carol", Some("others"));
    assert_eq!(as_user(&s, &carol, "POST", &impact_path(&setup), None).status, 404);
    assert_eq!(as_user(&s, &carol, "GET", &impact_path(&setup), None).status, 404);
    let explain = format!("{API}/customModels/{}/versions/{}/predictionExplanationsInitialization/", setup.model, setup.version);
    assert_eq!(as_user(&s, &carol, "POST", &explain, None).status, 404);
}

#[test]
fn explanations_initialisation_is_stored_on_the_version() {
    let s = Server::start_compute(&[]);
    let setup = trained(&s, regression(), "impact", &impact_csv());
    let version_path = format!("{API}/customModels/{}/versions/{}/", setup.model, setup.version);
    assert_eq!(ok(&s.get(&version_path), 200)["predictionExplanationsInitialization"], Value::Null);
    let r = s.request("POST", &format!("{version_path}predictionExplanationsInitialization/"), &[], None);
    assert_eq!(r.status, 202);
    assert!(r.body.is_empty(), "the seed's 202 has no body");
    assert_eq!(wait_done(&s, r.header("Location").unwrap()), format!("http://{}{version_path}", s.addr));
    let init = ok(&s.get(&version_path), 200)["predictionExplanationsInitialization"].clone();
    assert_eq!(init["status"], "done", "{init}");
    let features: Vec<&str> = init["features"].as_array().unwrap().iter().map(|f| f["featureName"].as_str().unwrap()).collect();
    assert_eq!(features, ["x1", "x2", "x3"]);
    assert!(init["features"][0]["referenceValue"].as_str().unwrap().parse::<f64>().is_ok());
    let samples = init["predictionExplanationsSample"].as_array().unwrap();
    assert_eq!(samples.len(), 10);
    let first = &samples[0]["predictionExplanations"][0];
    assert_eq!(first["feature"], "x1", "the strongest explanation of a row is x1: {}", samples[0]);
    assert!(["+++", "---"].contains(&first["qualitativeStrength"].as_str().unwrap()));
    // Feature impact was computed on the way, and is the version's now.
    assert_eq!(impacts(&ok(&s.get(&impact_path(&setup)), 200))[0].0, "x1");

    // The deprecated route names the version in its body.
    let r = s.post_json(
        &format!("{API}/customModels/predictionExplanationsInitialization/"),
        &json!({"customModelId": setup.model, "customModelVersionId": setup.version}),
    );
    assert_eq!(r.status, 202);
    wait_done(&s, r.header("Location").unwrap());
    assert_eq!(s.post_json(&format!("{API}/customModels/predictionExplanationsInitialization/"), &json!({})).status, 422);
}

#[test]
fn the_cli_computes_and_prints_feature_impact() {
    let s = Server::start_compute(&[]);
    let trained_setup = trained(&s, regression(), "impact", &impact_csv());
    let python = common::drum_python();
    let offline = s.cli(&["custom-models", "feature-impact", &trained_setup.model, &trained_setup.version, "--row-count", "100", "--python", python.to_str().unwrap()]);
    assert!(offline.status.success(), "{}", String::from_utf8_lossy(&offline.stderr));
    let printed = String::from_utf8(offline.stdout).unwrap();
    let first: Vec<&str> = printed.lines().map(|l| l.split_whitespace().next().unwrap_or("")).collect();
    assert_eq!(first, ["x1", "x2", "x3"], "{printed}");
    let remote = s.cli_remote(&["--json", "custom-models", "feature-impact", &trained_setup.model, &trained_setup.version, "--existing"]);
    assert!(remote.status.success(), "{}", String::from_utf8_lossy(&remote.stderr));
    let body: Value = serde_json::from_slice(&remote.stdout).unwrap();
    assert_eq!((body["rowCount"].as_u64(), body["featureImpacts"][0]["featureName"].as_str()), (Some(100), Some("x1")));
    let untrained = setup(&s, regression(), &fixture("impact"), &[], None);
    let refused = s.cli_remote(&["custom-models", "feature-impact", &untrained.model, &untrained.version]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("no training data"), "{}", String::from_utf8_lossy(&refused.stderr));
}
