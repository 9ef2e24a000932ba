"""One registry, every client (issue 10): models made through each front
door are read and written through every other, each by its real client.

Run by tests/cross_dialect.rs with MODELREG_URL, MODELREG_TOKEN and
CLI_MODEL_ID (a model the offline CLI made before the server started) in
the environment. Prints "all calls succeeded" at the end; any failure
raises.
"""

import hashlib
import io
import json
import os
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile

URL = os.environ["MODELREG_URL"]
TOKEN = os.environ["MODELREG_TOKEN"]
CLI_MODEL_ID = os.environ["CLI_MODEL_ID"]
WORK = tempfile.mkdtemp(prefix="cross-dialect-")
# Before importing the SDK: it fetches a catalog and caches at import time.
os.environ["OCTOMIL_API_BASE"] = URL + "/api/v1"
os.environ["OCTOMIL_CACHE_DIR"] = os.path.join(WORK, "octomil-cache")

import datarobot as dr  # noqa: E402
from octomil.auth import OrgApiKeyAuth  # noqa: E402
from octomil.client import OctomilClient  # noqa: E402
from octomil.python.octomil.api_client import OctomilClientError  # noqa: E402
from octomil.python.octomil.registry import ModelRegistry  # noqa: E402


def http(method, path, body=None, headers=None):
    """A raw call, as a Paperspace seed-001 script makes it."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(URL + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + TOKEN)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def check(cond, what):
    if not cond:
        raise AssertionError(what)


# --- The clients -------------------------------------------------------------
dr.Client(endpoint=URL + "/api/v2", token=TOKEN)
registry = ModelRegistry(auth_token_provider=lambda: TOKEN, org_id="team", api_base=URL + "/api/v1")
octo = OctomilClient(auth=OrgApiKeyAuth(api_key=TOKEN, org_id="team", api_base=URL + "/api/v1"))

# --- A model through each door -----------------------------------------------
weights = os.path.join(WORK, "model.onnx")
with open(weights, "wb") as f:
    f.write(os.urandom(64 * 1024))
pushed = octo.push(weights, name="octo-pushed", version="1.0.0", framework="pytorch")
octo_id = pushed["model_id"]
check(pushed["version"] == 1 and pushed["version_label"] == "1.0.0", pushed)

status, body = http("POST", "/v1/models", {"name": "ps-model", "isPublic": False})
check(status == 200, body)
ps_id = json.loads(body)["id"]

env = dr.ExecutionEnvironment.create(name="py", programming_language="python")
context = os.path.join(WORK, "context")
os.makedirs(context)
with open(os.path.join(context, "Dockerfile"), "w") as f:
    f.write("FROM python:3.11-slim\n")
dr.ExecutionEnvironmentVersion.create(env.id, context, label="v1", max_wait=60)
code = os.path.join(WORK, "code")
os.makedirs(code)
for name, text in [("custom.py", "def score(data, model, **kw):\n    return data\n"), ("README.md", "a model\n")]:
    with open(os.path.join(code, name), "w") as f:
        f.write(text)
dr_model = dr.CustomInferenceModel.create(name="dr-model", target_type=dr.TARGET_TYPE.REGRESSION, target_name="y")
dr_version = dr.CustomModelVersion.create_clean(dr_model.id, base_environment_id=env.id, folder_path=code)
every = {octo_id: "octomil", ps_id: "paperspace", dr_model.id: "datarobot", CLI_MODEL_ID: "cli"}

# --- DataRobot's client reads every model ------------------------------------
listed = {m.id: m for m in dr.CustomInferenceModel.list()}
check(set(every) <= set(listed), f"DataRobot list misses {set(every) - set(listed)}")
for model_id, door in every.items():
    model = dr.CustomInferenceModel.get(model_id)
    check(model.name and model.target_type, f"{door}: {model.name!r} {model.target_type!r}")
    if door != "datarobot":
        check(model.target_type == "Unstructured", f"{door} model shows as {model.target_type}")
    for version in dr.CustomModelVersion.list(model_id):
        check(version.custom_model_id == model_id and version.version_major >= 1, (door, version))
status, body = http("GET", "/api/v2/customModels/?targetType=Unstructured")
ids = {m["id"] for m in json.loads(body)["data"]}
check({octo_id, ps_id, CLI_MODEL_ID} <= ids and dr_model.id not in ids, ids)

# --- Octomil's SDK reads every model -----------------------------------------
names = {m["name"]: m for m in registry.list_models()["models"]}
for model_id in every:
    got = registry.get_model(model_id)
    check(got["id"] == model_id and got["name"], got)
    ensured = registry.ensure_model(got["name"], framework="pytorch", use_case="other")
    check(ensured["id"] == model_id, (got["name"], ensured))
    check(registry.resolve_model_id(got["name"]) == model_id, got["name"])
    versions = registry.list_versions(model_id)["versions"]
    check([v["version"] for v in versions] == sorted((v["version"] for v in versions), reverse=True), versions)
dr_view = registry.get_model(dr_model.id)
check(dr_view["model_hash"] is None and dr_view["model_size_bytes"] > 0, dr_view)
# Pull of the latest version, by name, in its own format.
out = os.path.join(WORK, "pulled")
pulled = octo.pull("octo-pushed", format="onnx", destination=out)
check(open(pulled["model_path"], "rb").read() == open(weights, "rb").read(), "pull returned other bytes")
check(registry.get_latest_version("octo-pushed") == "1", registry.get_latest_version_info("octo-pushed"))

# --- Paperspace seed-001 calls read every model ------------------------------
NINE = ["id", "name", "description", "isPublic", "projectId", "storageProviderId", "teamId", "dtCreated", "dtModified"]
status, body = http("GET", "/v1/models?limit=100")
page = json.loads(body)
check(status == 200 and {"hasMore", "items", "nextPage"} <= set(page), page)
seen = {m["id"]: m for m in page["items"]}
for model_id, door in every.items():
    status, body = http("GET", f"/v1/models/{model_id}")
    model = json.loads(body)
    check(status == 200 and all(k in model for k in NINE), (door, model))
    check(isinstance(model["name"], str) and model["name"] and isinstance(model["isPublic"], bool), model)
    check(seen[model_id]["name"] == model["name"], model_id)

# --- Writes through one door, read through the others -------------------------
# Upload through Octomil into the Paperspace model: every door sees version 1.
ps_weights = b"paperspace weights" * 100
status, body = http(
    "POST", f"/api/v1/models/{ps_id}/versions/upload",
)
check(status == 400, body)  # not multipart: refused, nothing made
boundary = "xXx"
multipart = (
    f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"w.onnx\"\r\n\r\n".encode()
    + ps_weights + f"\r\n--{boundary}--\r\n".encode()
)
req = urllib.request.Request(URL + f"/api/v1/models/{ps_id}/versions/upload", data=multipart, method="POST")
req.add_header("Authorization", "Bearer " + TOKEN)
req.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
with urllib.request.urlopen(req) as resp:
    up = json.loads(resp.read())
check(up["model_hash"] == "sha256:" + hashlib.sha256(ps_weights).hexdigest(), up)
dr_versions = dr.CustomModelVersion.list(ps_id)
check(len(dr_versions) == 1 and dr_versions[0].items[0].file_name == "w.onnx", dr_versions)
zipped = os.path.join(WORK, "ps.zip")
dr_versions[0].download(zipped)
with zipfile.ZipFile(zipped) as z:
    check(z.read("w.onnx") == ps_weights, z.namelist())

# An Octomil upload into the DataRobot model of many files is refused, naming the right door.
try:
    registry.upload_version_from_path(dr_model.id, weights, version="9.9.9")
    raise AssertionError("upload into a multi-file DataRobot model was accepted")
except OctomilClientError as e:
    check("409" in str(e) or "DataRobot" in str(e), str(e))
check(len(dr.CustomModelVersion.list(dr_model.id)) == 1, "a refused upload made a version")

# DataRobot sets a target type on a model made elsewhere, once.
status, body = http("PATCH", f"/api/v2/customModels/{octo_id}/", {"targetType": "Binary", "targetName": "label"})
check(status in (200, 201), body)
check(dr.CustomInferenceModel.get(octo_id).target_type == "Binary", "targetType not set")
status, body = http("PATCH", f"/api/v2/customModels/{octo_id}/", {"targetType": "Regression"})
check(status == 422 or status == 400, body)

# Rename through Octomil; every door shows the new name.
registry.update_model(ps_id, name="ps-renamed", description="renamed through Octomil")
check(dr.CustomInferenceModel.get(ps_id).name == "ps-renamed", "DataRobot misses the rename")
status, body = http("GET", f"/v1/models/{ps_id}")
check(json.loads(body)["name"] == "ps-renamed", body)

# Deprecate through Octomil: latest skips it everywhere, the bytes stay.
second = os.path.join(WORK, "second.onnx")
with open(second, "wb") as f:
    f.write(b"second version")
octo.push(second, name="octo-pushed", version="1.1.0")
registry.deprecate_version(octo_id, "2")
check(registry.get_latest_version(octo_id) == "1", "deprecated version is still latest")
latest_dr = dr.CustomInferenceModel.get(octo_id).latest_version
check(latest_dr.version_major == 1, latest_dr)
check(registry.get_version(octo_id, "1.1.0")["status"] == "deprecated", "label lookup")

# Delete through Paperspace; DataRobot's list still reads.
status, body = http("DELETE", f"/v1/models/{dr_model.id}")
check(status == 200, body)
check(dr_model.id not in {m.id for m in dr.CustomInferenceModel.list()}, "deleted model still listed")
try:
    registry.get_model(dr_model.id)
    raise AssertionError("deleted model still readable through Octomil")
except OctomilClientError as e:
    check("not_found" in str(e), str(e))

# ensure_model reads only the first page (20 models) before it creates:
# with 25 newer models, it still finds the old one instead of failing.
for n in range(25):
    registry.ensure_model(f"filler-{n}", framework="sklearn", use_case="other")
check(len(registry.api.get("/models", params={"org_id": "team"})["models"]) == 20, "the first page is 20")
check(registry.ensure_model("octo-pushed", framework="pytorch", use_case="other")["id"] == octo_id, "ensure_model")
check(registry.ensure_model("from-the-cli", framework="sklearn", use_case="other")["id"] == CLI_MODEL_ID, "ensure_model")

# Deployment features say plainly that they are not here.
try:
    registry.optimize(octo_id)
    raise AssertionError("optimize answered")
except OctomilClientError as e:
    check("deployment feature" in str(e), str(e))

print("all calls succeeded")
