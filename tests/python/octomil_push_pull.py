"""OctomilClient.push then pull of one file through modelreg, as a user of
the Octomil SDK (4.17.42) runs them. Arguments: the file, and the folder to
pull into. The caller compares the bytes and watches the server's memory."""

import os
import sys

URL = os.environ["MODELREG_URL"]
os.environ["OCTOMIL_API_BASE"] = URL + "/api/v1"  # before the import: it fetches a catalog

from octomil.auth import OrgApiKeyAuth  # noqa: E402
from octomil.client import OctomilClient  # noqa: E402


def check(cond, what):
    """An assertion PYTHONOPTIMIZE cannot remove (a bare `assert` vanishes
    under -O while the script still reports success)."""
    if not cond:
        raise AssertionError(what)

source, destination = sys.argv[1], sys.argv[2]
client = OctomilClient(auth=OrgApiKeyAuth(api_key=os.environ["MODELREG_TOKEN"], org_id="team", api_base=URL + "/api/v1"))
pushed = client.push(source, name="big-model", version="1.0.0")
check(pushed["version_label"] == "1.0.0" and pushed["model_size_bytes"] == os.path.getsize(source), pushed)
# No format given: the SDK asks for ONNX, the format this file was pushed as.
pulled = client.pull("big-model", destination=destination)
check(pulled["model_path"].endswith("model.onnx"), pulled)
print("pushed and pulled", pushed["model_hash"])
