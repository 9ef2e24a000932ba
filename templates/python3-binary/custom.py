"""A binary classifier served through DRUM's custom.py hooks.

P(positive) = 1 / (1 + exp(-(intercept + sum(weight * feature)))) over the
features named in coefficients.json; a missing or non-numeric value is
replaced by the feature's entry in "fill" (0 when it has none). score
returns one probability column per class label, named as DRUM passes the
model's labels (positive_class_label, negative_class_label).
"""
import json
import os

import numpy as np
import pandas as pd


def load_model(code_dir):
    with open(os.path.join(code_dir, "coefficients.json")) as f:
        model = json.load(f)
    model["weights"] = pd.Series(model["coefficients"], dtype="float64")
    return model


def score(data, model, **kwargs):
    positive = kwargs.get("positive_class_label", "yes")
    negative = kwargs.get("negative_class_label", "no")
    columns = list(model["weights"].index)
    x = data.reindex(columns=columns).apply(pd.to_numeric, errors="coerce")
    x = x.fillna(value=model.get("fill", {})).fillna(0.0)
    z = model["intercept"] + x.mul(model["weights"], axis=1).sum(axis=1)
    p = 1.0 / (1.0 + np.exp(-z.to_numpy(dtype="float64")))
    return pd.DataFrame({positive: p, negative: 1.0 - p}, index=data.index)
