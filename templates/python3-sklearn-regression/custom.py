"""A scikit-learn pipeline served through DRUM's custom.py hooks.

load_model fits the pipeline (median imputation, standard scaling, ridge
regression) on train.csv, which sits next to this file: every column but
the target is a feature. Fitting at load keeps the template free of
pickles, which are tied to the scikit-learn version that wrote them.
score feeds the model's features, in training order, to the pipeline;
missing values are imputed with the training medians, and columns the
training data did not have are ignored.

scikit-learn is not part of the base runtime: requirements.txt pins it,
and the version's dependency build installs it.
"""
import os

import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

TARGET = "target"


def load_model(code_dir):
    train = pd.read_csv(os.path.join(code_dir, "train.csv"))
    features = [c for c in train.columns if c != TARGET]
    pipeline = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), Ridge(alpha=1.0))
    pipeline.fit(train[features], train[TARGET])
    return {"features": features, "pipeline": pipeline}


def score(data, model, **kwargs):
    x = data.reindex(columns=model["features"]).apply(pd.to_numeric, errors="coerce")
    return pd.DataFrame({"Predictions": model["pipeline"].predict(x)}, index=data.index)
