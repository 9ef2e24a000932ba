//! Feature impact and prediction explanations, computed for real against
//! one warm DRUM server.
//!
//! Feature impact is permutation importance, as DataRobot defines it: take
//! a sample of the training data, shuffle one feature's column at a time,
//! and measure how much worse the model's error gets (RMSE for regression,
//! LogLoss for classifiers). The sample and every permuted copy go to the
//! server in one request (a few when they are large), never one DRUM start
//! per feature. `impactNormalized` divides by the largest worsening.
//! Redundancy: of two features among the top 50 whose permutations move the
//! predictions alike (|correlation| ≥ 0.9), the weaker is `redundantWith`
//! the stronger (not for multiclass, as DataRobot).
//!
//! Explanations' initialisation keeps what explanations need: the top
//! features, a reference value for each (median, or most frequent value),
//! and sample explanations for the first rows: each top feature replaced by
//! its reference, the change in the prediction its strength.

use std::io::Read;

use serde_json::{json, Value};

use super::drum::Client;

/// Rows sampled when the request names no rowCount.
pub const DEFAULT_SAMPLE_ROWS: usize = 2_500;
/// At most this many rows in one scoring request.
const ROWS_PER_REQUEST: usize = 100_000;
/// Features compared for redundancy, and the correlation that makes one
/// redundant with another.
const REDUNDANCY_TOP: usize = 50;
const REDUNDANCY_CORRELATION: f64 = 0.9;
/// Explanations: features kept, features explained per row, rows explained.
const EXPLAINED_FEATURES: usize = 50;
const EXPLANATIONS_PER_ROW: usize = 10;
const EXPLAINED_ROWS: usize = 10;

/// Target types the methods fit.
pub const SUPPORTED_TARGETS: [&str; 3] = ["Regression", "Binary", "Multiclass"];

/// The training data, sampled.
#[derive(Debug)]
pub struct Sample {
    /// Names of the columns the model sees.
    pub features: Vec<String>,
    /// Each sampled row's feature values (in `features` order) and target.
    pub rows: Vec<(Vec<String>, String)>,
    /// Rows in the dataset.
    pub total_rows: usize,
    pub seed: u64,
}

/// A small, seeded generator: the same seed gives the same sample and
/// permutations, so a run can be repeated.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in 0..n.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Reads the training data once, keeping a uniform sample of `size` rows
/// (reservoir sampling: memory holds only the sample).
pub fn sample(source: impl Read, target: &str, hidden: &[String], size: usize, seed: u64) -> Result<Sample, String> {
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(source);
    let header: Vec<String> = reader.headers().map_err(|e| format!("the training data's header cannot be read: {e}"))?.iter().map(String::from).collect();
    let target_index = header.iter().position(|h| h == target).ok_or_else(|| format!("the training data has no target column {target:?}"))?;
    let keep: Vec<usize> = (0..header.len()).filter(|i| *i != target_index && !hidden.contains(&header[*i])).collect();
    if keep.is_empty() {
        return Err("the training data has no feature columns besides the target".into());
    }
    let mut rng = Rng::new(seed);
    let mut rows: Vec<(Vec<String>, String)> = Vec::with_capacity(size.min(100_000));
    let mut record = csv::StringRecord::new();
    let mut seen = 0usize;
    while reader.read_record(&mut record).map_err(|e| format!("the training data cannot be read: {e}"))? {
        let row = || (keep.iter().map(|i| record.get(*i).unwrap_or("").to_string()).collect(), record.get(target_index).unwrap_or("").to_string());
        if rows.len() < size {
            rows.push(row());
        } else {
            let j = rng.below(seen + 1);
            if j < size {
                rows[j] = row();
            }
        }
        seen += 1;
    }
    if rows.is_empty() {
        return Err("the training data has no rows".into());
    }
    Ok(Sample { features: keep.iter().map(|i| header[*i].clone()).collect(), rows, total_rows: seen, seed })
}

/// The model's kind of prediction, for metrics and strengths.
pub struct Target<'a> {
    pub kind: &'a str,
    /// Binary: the label whose probability is "the" prediction.
    pub positive: Option<&'a str>,
}

impl Target<'_> {
    /// The number a prediction stands for: the value, or the positive
    /// class's probability. Multiclass has none.
    fn scalar(&self, prediction: &Value) -> Option<f64> {
        match prediction {
            Value::Number(n) => n.as_f64(),
            Value::Object(probabilities) => self.positive.and_then(|l| probabilities.get(l)).and_then(Value::as_f64),
            _ => None,
        }
    }

    /// The error metric over rows: RMSE, or LogLoss (mean of -ln p(true class)).
    fn metric(&self, predictions: &[Value], targets: &[&str]) -> Result<f64, String> {
        let mut total = 0.0;
        let mut counted = 0usize;
        for (prediction, truth) in predictions.iter().zip(targets) {
            let loss = match self.kind {
                "Regression" => match (prediction.as_f64(), truth.trim().parse::<f64>()) {
                    (Some(p), Ok(t)) => Some((p - t).powi(2)),
                    _ => None,
                },
                _ => prediction.as_object().and_then(|probabilities| {
                    let p = probabilities.iter().find(|(label, _)| same_label(label, truth)).and_then(|(_, p)| p.as_f64())?;
                    Some(-p.clamp(1e-15, 1.0).ln())
                }),
            };
            if let Some(loss) = loss {
                total += loss;
                counted += 1;
            }
        }
        if counted == 0 {
            return Err(format!("no sampled row has a target the {} metric can use", self.kind));
        }
        let mean = total / counted as f64;
        Ok(if self.kind == "Regression" { mean.sqrt() } else { mean })
    }
}

/// A class label and a target value name the same class ("1" and "1.0").
fn same_label(label: &str, truth: &str) -> bool {
    let truth = truth.trim();
    label == truth || matches!((label.parse::<f64>(), truth.parse::<f64>()), (Ok(a), Ok(b)) if a == b)
}

fn csv_of(features: &[String], rows: impl Iterator<Item = Vec<String>>) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let _ = writer.write_record(features);
    for row in rows {
        let _ = writer.write_record(&row);
    }
    writer.into_inner().unwrap_or_default()
}

/// Scores `blocks` of rows (each a full copy of the sample with something
/// changed) in as few requests as the row cap allows; one prediction list
/// per block.
fn score_blocks(client: &Client, features: &[String], blocks: &[Vec<Vec<String>>], log: &dyn Fn(&str)) -> Result<Vec<Vec<Value>>, String> {
    let per_block = blocks.first().map_or(0, Vec::len).max(1);
    let blocks_per_request = (ROWS_PER_REQUEST / per_block).max(1);
    let mut out = Vec::with_capacity(blocks.len());
    let requests = blocks.len().div_ceil(blocks_per_request);
    for (n, group) in blocks.chunks(blocks_per_request).enumerate() {
        let rows: usize = group.iter().map(Vec::len).sum();
        log(&format!("Scoring request {}/{requests}: {} copies of the sample, {rows} rows.", n + 1, group.len()));
        let body = csv_of(features, group.iter().flat_map(|b| b.iter().cloned()));
        let predictions = client.predict(&body).map_err(|e| format!("the model could not score the sample: {e}"))?;
        if predictions.len() != rows {
            return Err(format!("{rows} rows sent, {} predictions returned", predictions.len()));
        }
        let mut rest = predictions.as_slice();
        for block in group {
            let (mine, tail) = rest.split_at(block.len());
            out.push(mine.to_vec());
            rest = tail;
        }
    }
    Ok(out)
}

/// The model's predictions of the sample as it is (one request).
pub fn base_predictions(sample: &Sample, client: &Client, log: &dyn Fn(&str)) -> Result<Vec<Value>, String> {
    let base: Vec<Vec<String>> = sample.rows.iter().map(|(f, _)| f.clone()).collect();
    Ok(score_blocks(client, &sample.features, &[base], log)?.into_iter().next().unwrap_or_default())
}

/// What feature impact found, with what explanations reuse.
pub struct Impact {
    /// The `featureImpact/` answer (without `rowCount`, which the request decides).
    pub body: Value,
    pub base_predictions: Vec<Value>,
}

/// Permutation importance over the sample, in one pass over the server.
pub fn feature_impact(sample: &Sample, target: &Target, client: &Client, log: &dyn Fn(&str)) -> Result<Impact, String> {
    let mut rng = Rng::new(sample.seed ^ 0x9e37_79b9_7f4a_7c15);
    let base: Vec<Vec<String>> = sample.rows.iter().map(|(f, _)| f.clone()).collect();
    let mut blocks = vec![base.clone()];
    for f in 0..sample.features.len() {
        let mut order: Vec<usize> = (0..base.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i + 1));
        }
        blocks.push(base.iter().enumerate().map(|(i, row)| {
            let mut row = row.clone();
            row[f] = base[order[i]][f].clone();
            row
        }).collect());
    }
    log(&format!(
        "Feature impact: {} sampled rows of {} (seed {}), {} features permuted one at a time.",
        base.len(),
        sample.total_rows,
        sample.seed,
        sample.features.len()
    ));
    let scored = score_blocks(client, &sample.features, &blocks, log)?;
    let targets: Vec<&str> = sample.rows.iter().map(|(_, t)| t.as_str()).collect();
    let baseline = target.metric(&scored[0], &targets)?;
    let metric_name = if target.kind == "Regression" { "RMSE" } else { "LogLoss" };
    log(&format!("Baseline {metric_name}: {baseline:.6}"));
    let mut impacts: Vec<(usize, f64)> = Vec::with_capacity(sample.features.len());
    for f in 0..sample.features.len() {
        let permuted = target.metric(&scored[f + 1], &targets)?;
        impacts.push((f, permuted - baseline));
    }
    impacts.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let max = impacts.first().map_or(0.0, |(_, v)| *v);
    // Redundancy, from how alike two permutations move the predictions.
    let mut redundant: Vec<Option<String>> = vec![None; sample.features.len()];
    let detect = target.kind != "Multiclass";
    if detect {
        let diffs: Vec<Option<Vec<f64>>> = impacts
            .iter()
            .take(REDUNDANCY_TOP)
            .map(|(f, _)| {
                scored[0].iter().zip(&scored[f + 1]).map(|(a, b)| Some(target.scalar(a)? - target.scalar(b)?)).collect::<Option<Vec<f64>>>()
            })
            .collect();
        for weaker in 1..diffs.len() {
            for stronger in 0..weaker {
                if let (Some(a), Some(b)) = (&diffs[stronger], &diffs[weaker]) {
                    if correlation(a, b).is_some_and(|c| c.abs() >= REDUNDANCY_CORRELATION) {
                        redundant[impacts[weaker].0] = Some(sample.features[impacts[stronger].0].clone());
                        break;
                    }
                }
            }
        }
    }
    let rows: Vec<Value> = impacts
        .iter()
        .take(1000)
        .map(|(f, v)| {
            json!({
                "featureName": sample.features[*f],
                "impactUnnormalized": v,
                "impactNormalized": if max > 0.0 { v / max } else { 0.0 },
                "redundantWith": redundant[*f],
            })
        })
        .collect();
    for row in rows.iter().take(10) {
        log(&format!("  {:<30} {:.4}", row["featureName"].as_str().unwrap_or(""), row["impactNormalized"].as_f64().unwrap_or(0.0)));
    }
    let body = json!({
        "count": rows.len(),
        "featureImpacts": rows,
        "ranRedundancyDetection": detect,
        "shapBased": false,
        "next": null,
        "previous": null,
        "sampledRows": base.len(),
        "randomSeed": sample.seed,
        "metric": metric_name,
        "baselineError": baseline,
    });
    Ok(Impact { body, base_predictions: scored.into_iter().next().unwrap_or_default() })
}

fn correlation(a: &[f64], b: &[f64]) -> Option<f64> {
    let n = a.len().min(b.len()) as f64;
    if n < 2.0 {
        return None;
    }
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        cov += (x - ma) * (y - mb);
        va += (x - ma).powi(2);
        vb += (y - mb).powi(2);
    }
    (va > 1e-12 && vb > 1e-12).then(|| cov / (va.sqrt() * vb.sqrt()))
}

/// A feature's reference value: the median of its numbers, else its most
/// frequent value.
fn reference_value(values: &[&str]) -> String {
    let mut numbers: Vec<f64> = values.iter().filter_map(|v| v.trim().parse::<f64>().ok()).filter(|v| v.is_finite()).collect();
    if !numbers.is_empty() && numbers.len() * 2 >= values.len() {
        numbers.sort_by(f64::total_cmp);
        let median = numbers[numbers.len() / 2];
        return format!("{median}");
    }
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for v in values {
        *counts.entry(v).or_default() += 1;
    }
    counts.into_iter().max_by_key(|(_, n)| *n).map(|(v, _)| v.to_string()).unwrap_or_default()
}

/// What prediction explanations need, from feature impact and one more
/// request: the top features with their reference values, and sample
/// explanations for the first rows.
pub fn explanations(sample: &Sample, impact: &Value, base: &[Value], target: &Target, client: &Client, log: &dyn Fn(&str)) -> Result<Value, String> {
    let index_of = |name: &str| sample.features.iter().position(|f| f == name);
    let top: Vec<(usize, f64)> = impact["featureImpacts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|row| Some((index_of(row["featureName"].as_str()?)?, row["impactNormalized"].as_f64()?)))
        .take(EXPLAINED_FEATURES)
        .collect();
    let references: Vec<String> = top
        .iter()
        .map(|(f, _)| reference_value(&sample.rows.iter().map(|(row, _)| row[*f].as_str()).collect::<Vec<_>>()))
        .collect();
    let explained_rows = sample.rows.len().min(EXPLAINED_ROWS);
    let explained_features = top.len().min(EXPLANATIONS_PER_ROW);
    // One block per explained feature: the first rows with that feature set
    // to its reference.
    let blocks: Vec<Vec<Vec<String>>> = (0..explained_features)
        .map(|k| {
            sample.rows[..explained_rows].iter().map(|(row, _)| {
                let mut row = row.clone();
                row[top[k].0] = references[k].clone();
                row
            }).collect()
        })
        .collect();
    log(&format!("Prediction explanations: {} features with reference values; {explained_rows} rows explained by their top {explained_features}.", top.len()));
    let scored = if blocks.is_empty() { Vec::new() } else { score_blocks(client, &sample.features, &blocks, log)? };
    let mut samples = Vec::with_capacity(explained_rows);
    for r in 0..explained_rows {
        let mut parts: Vec<(usize, f64)> = Vec::new();
        for (k, block) in scored.iter().enumerate() {
            let strength = match (target.scalar(&base[r]), target.scalar(&block[r])) {
                (Some(a), Some(b)) => a - b,
                // Multiclass: how much the predicted class's probability moves.
                _ => multiclass_shift(&base[r], &block[r]).unwrap_or(0.0),
            };
            parts.push((k, strength));
        }
        let largest = parts.iter().map(|(_, s)| s.abs()).fold(0.0, f64::max);
        parts.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
        let explained: Vec<Value> = parts
            .iter()
            .map(|(k, strength)| {
                json!({
                    "feature": sample.features[top[*k].0],
                    "featureValue": sample.rows[r].0[top[*k].0],
                    "strength": strength,
                    "qualitativeStrength": qualitative(*strength, largest),
                })
            })
            .collect();
        samples.push(json!({"rowId": r, "prediction": base[r], "predictionExplanations": explained}));
    }
    Ok(json!({
        "features": top.iter().zip(&references).map(|((f, impact), reference)| json!({
            "featureName": sample.features[*f], "impactNormalized": impact, "referenceValue": reference,
        })).collect::<Vec<_>>(),
        "predictionExplanationsSample": samples,
        "sampledRows": sample.rows.len(),
        "randomSeed": sample.seed,
    }))
}

/// How far the most probable class's probability moves between two
/// predictions of the same row.
fn multiclass_shift(before: &Value, after: &Value) -> Option<f64> {
    let before = before.as_object()?;
    let (label, p) = before.iter().filter_map(|(l, p)| Some((l, p.as_f64()?))).max_by(|a, b| a.1.total_cmp(&b.1))?;
    Some(p - after.get(label)?.as_f64()?)
}

/// DataRobot's +++ … --- scale, relative to the row's largest strength.
fn qualitative(strength: f64, largest: f64) -> &'static str {
    let share = if largest > 0.0 { strength.abs() / largest } else { 0.0 };
    match (strength >= 0.0, share) {
        (_, s) if s < 1e-12 => "+",
        (true, s) if s > 0.5 => "+++",
        (true, s) if s > 0.25 => "++",
        (true, _) => "+",
        (false, s) if s > 0.5 => "---",
        (false, s) if s > 0.25 => "--",
        (false, _) => "-",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_is_uniform_enough_and_repeatable() {
        let csv: String = std::iter::once("a,b,y\n".to_string()).chain((0..1000).map(|i| format!("{i},{},{}\n", i % 7, i * 2))).collect();
        let s1 = sample(csv.as_bytes(), "y", &[], 100, 42).unwrap();
        let s2 = sample(csv.as_bytes(), "y", &[], 100, 42).unwrap();
        assert_eq!(s1.features, ["a", "b"]);
        assert_eq!(s1.total_rows, 1000);
        assert_eq!(s1.rows, s2.rows, "the same seed gives the same sample");
        let late = s1.rows.iter().filter(|(r, _)| r[0].parse::<usize>().unwrap() >= 500).count();
        assert!((25..=75).contains(&late), "{late} of 100 sampled rows come from the second half");
        assert!(sample(csv.as_bytes(), "nope", &[], 10, 1).unwrap_err().contains("no target column"));
        let hidden = sample(csv.as_bytes(), "y", &["b".to_string()], 10, 1).unwrap();
        assert_eq!(hidden.features, ["a"]);
    }

    #[test]
    fn metrics_and_references() {
        let regression = Target { kind: "Regression", positive: None };
        let rmse = regression.metric(&[json!(1.0), json!(3.0)], &["2", "3"]).unwrap();
        assert!((rmse - (0.5f64).sqrt()).abs() < 1e-12);
        let binary = Target { kind: "Binary", positive: Some("yes") };
        let loss = binary.metric(&[json!({"yes": 0.9, "no": 0.1})], &["yes"]).unwrap();
        assert!((loss + 0.9f64.ln()).abs() < 1e-12);
        assert_eq!(binary.scalar(&json!({"yes": 0.25, "no": 0.75})), Some(0.25));
        assert!(same_label("1", "1.0"));
        assert_eq!(reference_value(&["3", "1", "2", "x"]), "2");
        assert_eq!(reference_value(&["red", "blue", "red"]), "red");
        assert_eq!(qualitative(-0.9, 1.0), "---");
        assert!(correlation(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.1]).unwrap() > 0.99);
    }
}
