"""An unstructured model served through DRUM's custom.py hooks: it answers
each request to /predictUnstructured/ with the payload it received.

DRUM hands score_unstructured the body as text when the request's
Content-Type names a text type or a charset, and as bytes otherwise; the
answer is returned the same way, with the request's mimetype and charset.
"""


def load_model(code_dir):
    return "echo"


def score_unstructured(model, data, **kwargs):
    headers = {"mimetype": kwargs.get("mimetype") or "text/plain"}
    if isinstance(data, str):
        headers["charset"] = kwargs.get("charset") or "utf-8"
    return data, headers
