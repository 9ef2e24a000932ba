"""A linear regression model served through DRUM's custom.py hooks.

prediction = intercept + sum(weight * feature) over the features named in
coefficients.json. A missing or non-numeric value is replaced by the
feature's entry in "fill" (0 when it has none); columns the file does not
name are ignored. Put your own fitted coefficients in coefficients.json, or
replace load_model with code that loads your model.
"""
import json
import os

import pandas as pd


def load_model(code_dir):
    with open(os.path.join(code_dir, "coefficients.json")) as f:
        model = json.load(f)
    model["weights"] = pd.Series(model["coefficients"], dtype="float64")
    return model


def features(data, model):
    """The model's features as floats, in its order, with gaps filled."""
    columns = list(model["weights"].index)
    x = data.reindex(columns=columns).apply(pd.to_numeric, errors="coerce")
    return x.fillna(value=model.get("fill", {})).fillna(0.0)


def score(data, model, **kwargs):
    x = features(data, model)
    return pd.DataFrame({"Predictions": model["intercept"] + x.mul(model["weights"], axis=1).sum(axis=1)})
