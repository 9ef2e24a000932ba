"""Drives the official `datarobot` client (3.20.0) against a running modelreg.

Run by tests/datarobot_client.rs, which starts the server and passes
MODELREG_URL (http://host:port) and MODELREG_TOKEN. Every call below is an
unpatched client call; any failure raises and fails the run.
"""

import filecmp
import os
import shutil
import sys
import tempfile
import warnings
import zipfile

import datarobot as dr

URL = os.environ["MODELREG_URL"]
TOKEN = os.environ["MODELREG_TOKEN"]


def check(cond, what):
    """An assertion PYTHONOPTIMIZE cannot remove (a bare `assert` vanishes
    under -O while the script still reports success)."""
    if not cond:
        raise AssertionError(what)


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def fails_with(status, what, call, *args):
    """Calls `call(*args)`, which must raise the client's error for `status`."""
    try:
        call(*args)
    except dr.errors.ClientError as e:
        check(e.status_code == status, (what, e.status_code, e))
        return
    raise AssertionError(what)


def main():
    dr.Client(endpoint=URL + "/api/v2", token=TOKEN)
    tmp = tempfile.mkdtemp(prefix="modelreg-dr-")
    try:
        run(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("datarobot client: all calls succeeded")


def run(tmp):
    # An environment and a version from a Dockerfile folder; wait for the build.
    env = dr.ExecutionEnvironment.create(name="Python 3.11", description="py", programming_language="python")
    ctx = os.path.join(tmp, "ctx")
    write(os.path.join(ctx, "Dockerfile"), b"FROM python:3.11-slim\nRUN pip install flask\n")
    write(os.path.join(ctx, "start_server.sh"), b"#!/bin/sh\nexec python -m flask run\n")
    env_version = dr.ExecutionEnvironmentVersion.create(env.id, ctx, label="v1", description="first", max_wait=60)
    check(env_version.build_status == "success", env_version.build_status)
    log = env_version.get_build_log()
    check("python:3.11-slim" in log[0], log)
    check(env.id in [e.id for e in dr.ExecutionEnvironment.list(search_for="Python")], 'env.id in [e.id for e in dr.ExecutionEnvironment.list(search_for="Python")]')
    check([v.id for v in dr.ExecutionEnvironmentVersion.list(env.id)] == [env_version.id], '[v.id for v in dr.ExecutionEnvironmentVersion.list(env.id)] == [env_version.id]')
    env.refresh()
    check(env.latest_successful_version.id == env_version.id, 'env.latest_successful_version.id == env_version.id')
    env_version.download(os.path.join(tmp, "ctx-download.zip"))
    env.update(description="updated")
    check(env.description == "updated", 'env.description == "updated"')

    # Regression and binary custom models.
    reg = dr.CustomInferenceModel.create(
        name="House prices", target_type=dr.TARGET_TYPE.REGRESSION, target_name="price", language="python"
    )
    binary = dr.CustomInferenceModel.create(
        name="Churn", target_type=dr.TARGET_TYPE.BINARY, target_name="churned",
        positive_class_label="yes", negative_class_label="no",
    )
    check(binary.positive_class_label == "yes", 'binary.positive_class_label == "yes"')

    # A clean version from a folder with start_server.sh, a model file and requirements.txt.
    folder = os.path.join(tmp, "model")
    write(os.path.join(folder, "start_server.sh"), b"#!/bin/sh\necho start\n")
    write(os.path.join(folder, "model.pkl"), bytes(range(256)) * 400)
    write(os.path.join(folder, "requirements.txt"), b"pandas==1.5.3\nscikit-learn>=1.0,<2\n")
    write(os.path.join(folder, "src", "helpers.py"), b"def f():\n    return 1\n")
    v1 = dr.CustomModelVersion.create_clean(reg.id, base_environment_id=env.id, folder_path=folder)
    check((v1.version_major, v1.version_minor) == (1, 0), '(v1.version_major, v1.version_minor) == (1, 0)')
    check(sorted(i.file_path for i in v1.items) == ["model.pkl", "requirements.txt", "src/helpers.py", "start_server.sh"], 'sorted(i.file_path for i in v1.items) == ["model.pkl", "requirements.txt", "src/helpers.py", "start_server.sh"]')
    check([d.package_name for d in v1.dependencies] == ["pandas", "scikit-learn"], '[d.package_name for d in v1.dependencies] == ["pandas", "scikit-learn"]')

    # Derive a version that adds and deletes files.
    extra = os.path.join(tmp, "extra.py")
    write(extra, b"X = 1\n")
    helpers = next(i for i in v1.items if i.file_path == "src/helpers.py")
    v2 = dr.CustomModelVersion.create_from_previous(
        reg.id, base_environment_id=env.id, is_major_update=False,
        files=[(extra, "src/extra.py")], files_to_delete=[helpers.id],
    )
    check((v2.version_major, v2.version_minor) == (1, 1), '(v2.version_major, v2.version_minor) == (1, 1)')
    check(sorted(i.file_path for i in v2.items) == ["model.pkl", "requirements.txt", "src/extra.py", "start_server.sh"], 'sorted(i.file_path for i in v2.items) == ["model.pkl", "requirements.txt", "src/extra.py", "start_server.sh"]')

    # List and get versions and their items.
    versions = dr.CustomModelVersion.list(reg.id)
    check([v.id for v in versions] == [v2.id, v1.id], '[v.id for v in versions] == [v2.id, v1.id]')
    got = dr.CustomModelVersion.get(reg.id, v1.id)
    check(got.is_frozen and len(got.items) == 4, 'got.is_frozen and len(got.items) == 4')

    # Download and compare bytes.
    zpath = os.path.join(tmp, "v1.zip")
    got.download(zpath)
    out = os.path.join(tmp, "unzipped")
    with zipfile.ZipFile(zpath) as z:
        z.extractall(out)
    for rel in ["model.pkl", "requirements.txt", "src/helpers.py", "start_server.sh"]:
        check(filecmp.cmp(os.path.join(folder, rel), os.path.join(out, rel), shallow=False), rel)
    reg.download_latest_version(os.path.join(tmp, "latest.zip"))
    with zipfile.ZipFile(os.path.join(tmp, "latest.zip")) as z:
        check(z.read("src/extra.py") == b"X = 1\n", 'z.read("src/extra.py") == b"X = 1\\n"')

    # Update the model and a version.
    reg.update(description="predicts prices", name="Prices")
    check(reg.name == "Prices", 'reg.name == "Prices"')
    got.update(description="the first one")
    check(got.description == "the first one", 'got.description == "the first one"')
    got.update()

    # Copy, list, access, delete.
    copy = dr.CustomInferenceModel.copy_custom_model(reg.id)
    check(copy.id != reg.id and copy.latest_version.label == "v1.1", 'copy.id != reg.id and copy.latest_version.label == "v1.1"')
    listed = [m.id for m in dr.CustomInferenceModel.list()]
    check({reg.id, binary.id, copy.id} <= set(listed), '{reg.id, binary.id, copy.id} <= set(listed)')
    check(dr.CustomInferenceModel.get(reg.id).name == "Prices", 'dr.CustomInferenceModel.get(reg.id).name == "Prices"')
    access = reg.get_access_list()
    check([(a.username, a.role) for a in access] == [("admin", "OWNER")], access)
    env_access = env.get_access_list()
    check(env_access[0].role == "OWNER", 'env_access[0].role == "OWNER"')
    copy.delete()
    binary.delete()
    fails_with(404, "deleted model still readable", dr.CustomInferenceModel.get, copy.id)
    env_version.refresh()
    run_datasets(tmp)
    run_compute(tmp, env)
    run_feature_impact(tmp, env)
    run_conversions(tmp, env)
    run_templates(tmp)


HOUSES = (
    b"id,description,sqft,partition,price\n"
    b'1,"Bright flat, near the park",54,T,210000\n'
    b'2,"Two floors\nwith a garden",120,V,455000\n'
    b"3,Studio,28,T,99000\n"
)


def run_datasets(tmp):
    # Upload a CSV (a quoted comma, a quoted line break); the client waits for the ingest.
    csv_path = os.path.join(tmp, "houses.csv")
    write(csv_path, HOUSES)
    dataset = dr.Dataset.create_from_file(file_path=csv_path)
    check(dataset.processing_state == "COMPLETED", dataset.processing_state)
    check(dataset.row_count == 3, dataset.row_count)
    check(dataset.name == "houses.csv" and dataset.size == len(HOUSES), 'dataset.name == "houses.csv" and dataset.size == len(HOUSES)')
    got = dr.Dataset.get(dataset.id)
    check((got.row_count, got.processing_state, got.version_id) == (3, "COMPLETED", dataset.version_id), '(got.row_count, got.processing_state, got.version_id) == (3, "COMPLETED", dataset.version_id)')
    out = os.path.join(tmp, "houses-copy.csv")
    got.get_file(file_path=out)
    check(filecmp.cmp(csv_path, out, shallow=False), 'filecmp.cmp(csv_path, out, shallow=False)')

    # With categories the client PATCHes the new dataset and reads them back.
    tagged = dr.Dataset.create_from_file(file_path=csv_path, categories=["TRAINING"])
    check(tagged.categories == ["TRAINING"], tagged.categories)
    check([d.id for d in dr.Dataset.list(category="TRAINING")] == [tagged.id], '[d.id for d in dr.Dataset.list(category="TRAINING")] == [tagged.id]')
    check({dataset.id, tagged.id} <= {d.id for d in dr.Dataset.list()}, '{dataset.id, tagged.id} <= {d.id for d in dr.Dataset.list()}')
    tagged.modify(name="Houses")
    check(dr.Dataset.get(tagged.id).name == "Houses", 'dr.Dataset.get(tagged.id).name == "Houses"')
    dr.Dataset.delete(tagged.id)
    fails_with(404, "deleted dataset still readable", dr.Dataset.get, tagged.id)

    # Training data on the model (a deprecated call: it warns).
    model = dr.CustomInferenceModel.create(
        name="Prices with data", target_type=dr.TARGET_TYPE.REGRESSION, target_name="price", language="python"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.assign_training_data(dataset.id, partition_column="partition")
    check(model.training_dataset_id == dataset.id, model.training_dataset_id)
    check(model.training_data_partition_column == "partition", 'model.training_data_partition_column == "partition"')
    check(model.training_data_assignment_in_progress is False, 'model.training_data_assignment_in_progress is False')
    check(dr.CustomInferenceModel.get(model.id).training_dataset_version_id == dataset.version_id, 'dr.CustomInferenceModel.get(model.id).training_dataset_version_id == dataset.version_id')

    # Training data on versions, for a model that keeps it there.
    env = next(e for e in dr.ExecutionEnvironment.list(search_for="Python") if e.latest_successful_version)
    versioned = dr.CustomInferenceModel.create(
        name="Prices per version", target_type=dr.TARGET_TYPE.REGRESSION, target_name="price",
        is_training_data_for_versions_permanently_enabled=True,
    )
    folder = os.path.join(tmp, "model-with-data")
    write(os.path.join(folder, "custom.py"), b"def score(data, model, **kwargs):\n    return data\n")
    v1 = dr.CustomModelVersion.create_clean(
        versioned.id, base_environment_id=env.id, folder_path=folder,
        training_dataset_id=dataset.id, partition_column="partition",
    )
    check(v1.training_data.dataset_id == dataset.id, v1.training_data)
    check(v1.training_data.assignment_in_progress is False, 'v1.training_data.assignment_in_progress is False')
    check(v1.holdout_data.partition_column == "partition", 'v1.holdout_data.partition_column == "partition"')
    v2 = dr.CustomModelVersion.create_from_previous(versioned.id, base_environment_id=env.id, is_major_update=False)
    check(v2.training_data.dataset_id == dataset.id, "a derived version keeps its training data")
    check(dr.CustomModelVersion.get(versioned.id, v2.id).holdout_data.partition_column == "partition", 'dr.CustomModelVersion.get(versioned.id, v2.id).holdout_data.partition_column == "partition"')


SCORE = b"""import pandas as pd

def load_model(code_dir):
    return {}

def score(data, model, **kwargs):
    return pd.DataFrame({"Predictions": data["x1"].fillna(0) * 2.0})
"""

SLOW = b"""import time

def load_model(code_dir):
    time.sleep(120)
    return {}

def score(data, model, **kwargs):
    raise RuntimeError("never reached")
"""


def run_compute(tmp, env):
    """Custom model tests and dependency builds, run on DRUM by the server
    (started with --compute-slots 1, so a slow test holds the only slot)."""
    csv = os.path.join(tmp, "scores.csv")
    write(csv, b"x1,x2,y\n1,2,2\n3,,6\n5,6,10\n")
    dataset = dr.Dataset.create_from_file(file_path=csv)
    model = dr.CustomInferenceModel.create(name="Doubler", target_type=dr.TARGET_TYPE.REGRESSION, target_name="y")

    # A version whose load_model never returns holds the compute slot...
    slow_dir = os.path.join(tmp, "slow")
    write(os.path.join(slow_dir, "custom.py"), SLOW)
    slow = dr.CustomModelVersion.create_clean(model.id, base_environment_id=env.id, folder_path=slow_dir)
    slow_test = dr.CustomModelTest.create(model.id, slow.id, dataset_id=dataset.id, max_wait=None)
    check(slow_test.overall_status == "in_progress", slow_test.overall_status)
    check(slow_test.custom_model_image_id, 'slow_test.custom_model_image_id')

    # ...so a dependency build waits in the queue, and can be cancelled there.
    queued_dir = os.path.join(tmp, "queued")
    write(os.path.join(queued_dir, "custom.py"), SCORE)
    write(os.path.join(queued_dir, "requirements.txt"), b"tabulate==0.9.0\n")
    queued = dr.CustomModelVersion.create_clean(model.id, base_environment_id=env.id, folder_path=queued_dir)
    build = dr.CustomModelVersionDependencyBuild.start_build(model.id, queued.id, max_wait=None)
    check(build.build_status in ("submitted", "processing"), build.build_status)
    build.cancel()
    check(dr.CustomModelVersionDependencyBuild.get_build_info(model.id, queued.id).build_status == "failed", 'dr.CustomModelVersionDependencyBuild.get_build_info(model.id, queued.id).build_status == "failed"')

    listed = dr.CustomModelTest.list(model.id)
    check([t.id for t in listed] == [slow_test.id], '[t.id for t in listed] == [slow_test.id]')
    slow_test.cancel()
    slow_test.refresh()
    check(slow_test.overall_status == "canceled", slow_test.overall_status)
    fails_with(409, "a finished test was cancelled twice", slow_test.cancel)

    # A version with a requirements.txt: build its dependencies, then test it.
    folder = os.path.join(tmp, "doubler")
    write(os.path.join(folder, "custom.py"), b"import tabulate\n" + SCORE)
    write(os.path.join(folder, "requirements.txt"), b"tabulate==0.9.0\n")
    version = dr.CustomModelVersion.create_clean(model.id, base_environment_id=env.id, folder_path=folder)
    build = dr.CustomModelVersionDependencyBuild.start_build(model.id, version.id, max_wait=600)
    check(build.build_status == "success", build.get_log())
    check("tabulate" in build.get_log(), '"tabulate" in build.get_log()')

    test = dr.CustomModelTest.create(model.id, version.id, dataset_id=dataset.id, max_wait=600)
    check(test.overall_status == "succeeded", (test.overall_status, test.detailed_status))
    for name in ("error_check", "long_running_service", "null_value_imputation", "side_effects"):
        check(test.detailed_status[name]["status"] == "succeeded", (name, test.detailed_status))
    check([t.id for t in dr.CustomModelTest.list(model.id)][0] == test.id, '[t.id for t in dr.CustomModelTest.list(model.id)][0] == test.id')
    again = dr.CustomModelTest.get(test.id)
    check(again.dataset_id == dataset.id and again.custom_model_image_id == test.custom_model_image_id, 'again.dataset_id == dataset.id and again.custom_model_image_id == test.custom_model_image_id')
    log = again.get_log()
    check("errorCheck passed" in log, log)
    tail = again.get_log_tail()
    check("Overall: succeeded" in tail, tail)


def run_feature_impact(tmp, env):
    """Feature impact computed by the server on DRUM, read by the client."""
    rows = ["x1,x2,x3,y"]
    for i in range(300):
        x1, x2, x3 = (i * 37 % 101) / 10, (i * 53 % 97) / 10, (i * 71 % 89) / 10
        rows.append(f"{x1},{x2},{x3},{3 * x1 + 0.5 * x2}")
    csv = os.path.join(tmp, "impact.csv")
    write(csv, ("\n".join(rows) + "\n").encode())
    dataset = dr.Dataset.create_from_file(file_path=csv)
    model = dr.CustomInferenceModel.create(name="Impact", target_type=dr.TARGET_TYPE.REGRESSION, target_name="y")
    folder = os.path.join(tmp, "impact-model")
    write(os.path.join(folder, "custom.py"), b"""import pandas as pd

def load_model(code_dir):
    return {}

def score(data, model, **kwargs):
    x = data.fillna(0)
    return pd.DataFrame({"Predictions": 3.0 * x["x1"] + 0.5 * x["x2"]})
""")
    version = dr.CustomModelVersion.create_clean(model.id, base_environment_id=env.id, folder_path=folder)
    model.assign_training_data(dataset.id)
    version.calculate_feature_impact(max_wait=600)
    impacts = version.get_feature_impact()
    check([f["featureName"] for f in impacts] == ["x1", "x2", "x3"], impacts)
    check(impacts[0]["impactNormalized"] == 1.0 and abs(impacts[2]["impactNormalized"]) < 1e-9, impacts)
    with_metadata = version.get_feature_impact(with_metadata=True)
    check(with_metadata["count"] == 3 and with_metadata["shapBased"] is False, with_metadata)

MAIN_JAVA = b"""package com.example;

public class Main {
    public static void main(String[] args) {
        System.out.println(Greeter.greet("JAR"));
    }
}
"""

GREETER_JAVA = b"""package com.example;

class Greeter {
    static String greet(String who) {
        return "hello from the " + who;
    }
}
"""


def run_conversions(tmp, env):
    """A version's Java main program converted into a JAR (with the host's
    JDK), read back with get, list and get_latest; SAS is refused."""
    model = dr.CustomInferenceModel.create(name="Java program", target_type=dr.TARGET_TYPE.REGRESSION, target_name="y")
    folder = os.path.join(tmp, "java")
    write(os.path.join(folder, "src", "com", "example", "Main.java"), MAIN_JAVA)
    write(os.path.join(folder, "src", "com", "example", "Greeter.java"), GREETER_JAVA)
    write(os.path.join(folder, "report.sas"), b"proc print data=sashelp.class; run;\n")
    version = dr.CustomModelVersion.create_clean(model.id, base_environment_id=env.id, folder_path=folder)
    items = {i.file_path: i.id for i in version.items}
    main = items["src/com/example/Main.java"]

    # Client 3.20 does not export the class at the top level.
    from datarobot.models.custom_model_version import CustomModelVersionConversion as Conversion

    first = Conversion.run_conversion(model.id, version.id, main)
    # With max_wait the client polls the POST's Location until its 303.
    second = Conversion.run_conversion(model.id, version.id, main, max_wait=120)
    got = Conversion.get(model.id, version.id, second)
    check(got.id == second and got.custom_model_version_id == version.id, got)
    check(got.conversion_succeeded is True and got.conversion_in_progress is False, (got.conversion_succeeded, got.log_message))
    check(got.should_stop is False and got.main_program_item_id == main, 'got.should_stop is False and got.main_program_item_id == main')
    check("Conversion succeeded." in got.log_message, got.log_message)
    check([c.id for c in Conversion.list(model.id, version.id)] == [second, first], '[c.id for c in Conversion.list(model.id, version.id)] == [second, first]')
    check(Conversion.get_latest(model.id, version.id).id == second, 'Conversion.get_latest(model.id, version.id).id == second')
    try:
        Conversion.stop_conversion(model.id, version.id, second)
        raise AssertionError("a finished conversion was stopped")
    except dr.errors.InvalidUsageError:
        pass
    try:
        Conversion.run_conversion(model.id, version.id, items["report.sas"])
        raise AssertionError("a SAS program was accepted")
    except dr.errors.ClientError as e:
        check(e.status_code == 422 and "no SAS compiler" in str(e), e)
def run_templates(tmp):
    """Custom templates: the built-ins, and one of the team's own made,
    updated and deleted with the client's own calls."""
    from datarobot.models.custom_templates import DefaultEnvironment, TemplateMetadata

    builtins = dr.CustomTemplate.list()
    ids = [t.id for t in builtins]
    check({"python3-regression", "python3-binary", "python3-unstructured-echo", "python3-sklearn-regression"} <= set(ids), ids)
    check([t.id for t in dr.CustomTemplate.list(template_sub_type="Binary")] == ["python3-binary"], '[t.id for t in dr.CustomTemplate.list(template_sub_type="Binary")] == ["python3-binary"]')
    check([t.id for t in dr.CustomTemplate.list(search="scikit", offset=0, limit=10)] == ["python3-sklearn-regression"], '[t.id for t in dr.CustomTemplate.list(search="scikit", offset=0, limit=10)] == ["python3-sklearn-regression"]')
    ordered = dr.CustomTemplate.list(order_by=dr.enums.ListCustomTemplatesSortQueryParams.NAME_ASCENDING)
    check([t.name for t in ordered] == sorted((t.name for t in ordered), key=str.lower), '[t.name for t in ordered] == sorted((t.name for t in ordered), key=str.lower)')
    regression = dr.CustomTemplate.get("python3-regression")
    check(regression.template_type == "customModel" and regression.enabled, 'regression.template_type == "customModel" and regression.enabled')
    check(regression.default_environment["environment_id"] == "modelreg-python", 'regression.default_environment["environment_id"] == "modelreg-python"')
    check(b"def score(" in regression.download_content(filename="custom.py"), 'b"def score(" in regression.download_content(filename="custom.py")')

    # A team template from a folder: the client zips it.
    env = dr.ExecutionEnvironment.list(search_for="Python")[0]
    env_version = dr.ExecutionEnvironmentVersion.list(env.id)[0]
    folder = os.path.join(tmp, "template")
    write(os.path.join(folder, "custom.py"), b"def load_model(code_dir):\n    return 1\n")
    write(os.path.join(folder, "src", "helpers.py"), b"X = 1\n")
    metadata = TemplateMetadata(
        readme="# Ours", tags=["ours"],
        template_type_specific_resources={"targetType": "Regression", "targetName": "y"},
    )
    created = dr.CustomTemplate.create(
        name="Ours", description="a team template", template_type="customModel", template_sub_type="Regression",
        template_metadata=metadata,
        default_environment=DefaultEnvironment(environment_id=env.id, environment_version_id=env_version.id),
        file=folder, enabled=True,
    )
    check(created.name == "Ours" and created.template_metadata["tags"] == ["ours"], created.template_metadata)
    check(created.default_environment["environment_version_id"] == env_version.id, 'created.default_environment["environment_version_id"] == env_version.id')
    check(sorted(i["name"] for i in created.items) == ["custom.py", "src/helpers.py"], created.items)
    check(created.id in [t.id for t in dr.CustomTemplate.list(tag="ours")], 'created.id in [t.id for t in dr.CustomTemplate.list(tag="ours")]')

    created.update(name="Ours, renamed", description="renamed")
    again = dr.CustomTemplate.get(created.id)
    check((again.name, again.description) == ("Ours, renamed", "renamed"), '(again.name, again.description) == ("Ours, renamed", "renamed")')
    replacement = os.path.join(tmp, "template2")
    write(os.path.join(replacement, "custom.py"), b"def load_model(code_dir):\n    return 2\n")
    again.update(file=replacement)
    check([i["name"] for i in again.items] == ["custom.py"], again.items)
    check(b"return 2" in again.download_content(filename="custom.py"), 'b"return 2" in again.download_content(filename="custom.py")')

    # A model from it (the route client 3.20 has no method for), then delete.
    made = dr.client.get_client().post(
        "customModels/fromModelTemplate/",
        data={"templateId": created.id, "resourceBundleId": "cpu.small", "secretConfigId": "none"},
    ).json()
    model = dr.CustomInferenceModel.get(made["customModelId"])
    check(model.name == "Ours, renamed" and model.target_name == "y", 'model.name == "Ours, renamed" and model.target_name == "y"')
    check(model.latest_version.id == made["customModelVersionId"], 'model.latest_version.id == made["customModelVersionId"]')
    check(model.latest_version.base_environment_version_id == env_version.id, 'model.latest_version.base_environment_version_id == env_version.id')
    model.delete()

    again.delete()
    fails_with(404, "a deleted template is still readable", dr.CustomTemplate.get, created.id)
    fails_with(403, "a built-in template was deleted", regression.delete)


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # print the whole story for the Rust test's output
        import traceback

        traceback.print_exc()
        sys.exit(1)
