//! The one way every command family addresses a version: its id, its
//! number (`3`), its DataRobot label (`2.1`, also `v2.1`) or the label a
//! client gave it (Octomil's `1.0.0`). `models`/`versions` took only numbers
//! and `custom-models` only ids; both now take any of these (so the old
//! spellings still work). An alias (`@champion`) and `latest` are resolved
//! by the registry (`Registry::find_version`, `VersionRef::parse`), offline
//! and, over HTTP, by the Octomil version route that shares it.

use serde_json::Value;

use super::remote::{enc, Remote};
use crate::registry::{Error, Principal, Registry, Version, VersionRef};

/// Whether `handle` names the version with these identities.
fn names(handle: &str, id: &str, number: i64, major_minor: Option<(i64, i64)>, client_label: Option<&str>) -> bool {
    let handle = handle.trim();
    handle == id
        || handle == number.to_string()
        || {
            // DataRobot numbers a version made by another door `number.0`.
            let (major, minor) = major_minor.unwrap_or((number, 0));
            let label = format!("{major}.{minor}");
            handle == label || handle.strip_prefix('v') == Some(label.as_str())
        }
        || client_label == Some(handle)
}

/// `MODEL@HANDLE`: a model and one of its versions in one argument, as in `versions download
/// fraud@champion` and `--parent base-model@3`. After the last `@`, a number or `latest` is itself and
/// anything else an alias (`fraud@champion` is `@champion`), as MLflow's `models:/fraud@champion` reads.
/// None when either side is empty.
pub(crate) fn split_model_at(text: &str) -> Option<(&str, String)> {
    let (model, handle) = text.rsplit_once('@').filter(|(model, handle)| !model.is_empty() && !handle.is_empty())?;
    let handle = match VersionRef::parse(handle) {
        VersionRef::Number(_) | VersionRef::Latest | VersionRef::Alias(_) => handle.to_string(),
        VersionRef::Label(_) => format!("@{handle}"),
    };
    Some((model, handle))
}

/// `MODEL VERSION`, or `MODEL@HANDLE` alone: the model and the version handle.
pub(crate) fn model_and_version(model: String, version: Option<String>) -> Result<(String, String), Error> {
    if let Some(version) = version {
        return Ok((model, version));
    }
    match split_model_at(&model) {
        Some((name, handle)) => Ok((name.to_string(), handle)),
        None => Err(Error::invalid("version", "name a version: MODEL VERSION (a number, label, id, @alias or latest), or MODEL@alias")),
    }
}

fn not_found(handle: &str) -> Error {
    Error::NotFound(format!("version {handle:?} not found (give its id, number or label)"))
}

pub(crate) fn find_local(registry: &Registry, who: &Principal, model_id: &str, handle: &str) -> Result<Version, Error> {
    if VersionRef::is_alias_or_latest(handle.trim()) {
        return registry.find_version(who, model_id, &VersionRef::parse(handle.trim()));
    }
    let major_minor = |v: &Version| Some((v.attrs.get("versionMajor")?.as_i64()?, v.attrs.get("versionMinor")?.as_i64()?));
    registry
        .list_versions(who, model_id)?
        .into_iter()
        .find(|v| names(handle, &v.id, v.number, major_minor(v), v.label.as_deref()))
        .ok_or_else(|| not_found(handle))
}

/// Over HTTP, through the web UI's model route: the one route that lists a
/// model's versions with id, number and both labels, whichever door made
/// them. Returns (id, number).
pub(crate) fn find_remote(remote: &Remote, model_id: &str, handle: &str) -> Result<(String, i64), Error> {
    // An alias or `latest`: the server resolves it to a number first.
    let resolved;
    let handle = if VersionRef::is_alias_or_latest(handle.trim()) {
        let version = remote.get_json(&format!("/api/v1/models/{}/versions/{}", enc(model_id), enc(handle.trim())))?;
        resolved = version["version"].as_i64().ok_or_else(|| not_found(handle))?.to_string();
        resolved.as_str()
    } else {
        handle
    };
    let model = remote.get_json(&format!("/ui/api/models/{}", enc(model_id)))?;
    let major_minor = |v: &Value| {
        let (major, minor) = v["label"].as_str()?.split_once('.')?;
        Some((major.parse().ok()?, minor.parse().ok()?))
    };
    model["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| {
            let (Some(id), Some(number)) = (v["id"].as_str(), v["number"].as_i64()) else { return false };
            names(handle, id, number, major_minor(v), v["versionLabel"].as_str())
        })
        .and_then(|v| Some((v["id"].as_str()?.to_string(), v["number"].as_i64()?)))
        .ok_or_else(|| not_found(handle))
}

#[cfg(test)]
mod tests {
    use super::{model_and_version, names};

    #[test]
    fn a_model_argument_may_carry_its_version() {
        let split = |m: &str, v: Option<&str>| model_and_version(m.into(), v.map(String::from)).ok();
        assert_eq!(split("mnist@champion", None), Some(("mnist".into(), "@champion".into())));
        assert_eq!(split("a@b@prod", None), Some(("a@b".into(), "@prod".into())));
        // A number and `latest` after the `@` are themselves, as `--parent MODEL@3` reads them.
        assert_eq!(split("mnist@3", None), Some(("mnist".into(), "3".into())));
        assert_eq!(split("mnist@latest", None), Some(("mnist".into(), "latest".into())));
        assert_eq!(split("mnist", Some("latest")), Some(("mnist".into(), "latest".into())));
        // A version given beside it wins; the model's name is then taken whole.
        assert_eq!(split("a@b", Some("3")), Some(("a@b".into(), "3".into())));
        for bad in ["mnist", "mnist@", "@champion"] {
            assert_eq!(split(bad, None), None, "{bad}");
        }
    }

    #[test]
    fn a_version_answers_to_its_id_number_and_labels() {
        let id = "0192aaaa-0000-7000-8000-000000000000";
        for handle in [id, "3", "2.1", "v2.1", "1.0.0"] {
            assert!(names(handle, id, 3, Some((2, 1)), Some("1.0.0")), "{handle}");
        }
        for handle in ["4", "2.2", "v3", "1.0"] {
            assert!(!names(handle, id, 3, Some((2, 1)), Some("1.0.0")), "{handle}");
        }
        assert!(names("v3.0", id, 3, None, None), "another door's version 3 is DataRobot's 3.0");
    }
}
