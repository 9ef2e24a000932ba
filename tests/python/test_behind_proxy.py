"""The official DataRobot client behind nginx terminating TLS (issue 10):
it pages through every model by the absolute `next` links and follows an
async status redirect, all of which must name https and the proxy's
address. Environment: MODELREG_URL (the proxy's https URL), MODELREG_TOKEN,
CA_BUNDLE (the proxy's self-signed certificate), EXPECTED_MODELS."""

import os
import tempfile

import datarobot as dr


def check(cond, what):
    """An assertion PYTHONOPTIMIZE cannot remove (a bare `assert` vanishes
    under -O while the script still reports success)."""
    if not cond:
        raise AssertionError(what)

URL = os.environ["MODELREG_URL"]
dr.Client(endpoint=URL + "/api/v2", token=os.environ["MODELREG_TOKEN"], ssl_verify=os.environ["CA_BUNDLE"])

models = dr.CustomInferenceModel.list()
expected = int(os.environ["EXPECTED_MODELS"])
check(len(models) == expected and len({m.id for m in models}) == expected, len(models))

# An environment build answers 202 with a status Location the client polls
# and follows (303) to the finished version.
env = dr.ExecutionEnvironment.create(name="behind-the-proxy")
context = tempfile.mkdtemp()
with open(os.path.join(context, "Dockerfile"), "w") as f:
    f.write("FROM python:3.11-slim\n")
version = dr.ExecutionEnvironmentVersion.create(env.id, context, max_wait=60)
check(version.build_status == "success", version.build_status)
print("all calls succeeded through the proxy")
