# Format conversions for modelreg (src/compute/formats.rs runs this with the
# runtime's Python, under `modelreg contain`, in the job's own folder).
#
#   formats.py probe
#       prints {"module": "version" | null, ...} for every converter package
#   formats.py convert SOURCE_FORMAT TARGET SOURCE OUT RESULT [--input-shape 1,3,224,224]
#       converts SOURCE into OUT, runs both on generated inputs, and writes
#       RESULT (JSON: converter, versions, verification figures). Exit 0 only
#       when the converted model agrees with the original within the
#       tolerance; otherwise the last stderr line says why (the largest
#       difference included), prefixed "ERROR: ".
#
# Loading a pickle runs whatever code the uploader put in it: that is why the
# job runs this contained (no network, the data directory hidden).

import json
import sys
import time

ROWS = 100
SEED = 20261129
# |converted - original| <= ATOL + RTOL * |original|, element by element.
ATOL = 1e-4
RTOL = 1e-4

MODULES = {
    "skl2onnx": "skl2onnx",
    "onnxmltools": "onnxmltools",
    "onnxruntime": "onnxruntime",
    "onnx": "onnx",
    "scikit-learn": "sklearn",
    "xgboost": "xgboost",
    "numpy": "numpy",
    "tensorflow": "tensorflow",
    "tf2onnx": "tf2onnx",
    "torch": "torch",
}


def say(message):
    print(message, file=sys.stderr, flush=True)


def fail(message):
    say("ERROR: " + message)
    sys.exit(1)


def version_of(distribution):
    from importlib.metadata import PackageNotFoundError, version

    for name in (distribution, distribution + "-cpu"):
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return None


def probe():
    print(json.dumps({name: version_of(name) for name in MODULES}))


def inputs(n_features, dtype="float32"):
    import numpy as np

    rng = np.random.default_rng(SEED)
    return rng.normal(size=(ROWS, n_features)).astype(dtype)


def compare(name, original, converted):
    """Largest difference and whether every element is within tolerance."""
    import numpy as np

    original = np.asarray(original, dtype="float64")
    converted = np.asarray(converted, dtype="float64")
    if original.size == converted.size and original.shape != converted.shape:
        converted = converted.reshape(original.shape)
    if original.shape != converted.shape:
        fail(f"{name}: the converted model answers shape {converted.shape}, the original {original.shape}")
    diff = np.abs(original - converted)
    largest = float(diff.max()) if diff.size else 0.0
    bad = int((diff > ATOL + RTOL * np.abs(original)).sum())
    say(f"{name}: largest absolute difference {largest:.3g} over {original.size} values ({bad} outside tolerance)")
    return {"output": name, "largestDifference": largest, "valuesCompared": int(original.size), "outside": bad}


def verdict(checks):
    bad = [c for c in checks if c["outside"]]
    labels = [c for c in bad if c["output"] == "label"]
    if labels and len(bad) == 1:
        fail(f"the converted model disagrees with the original: it predicts another class for {labels[0]['outside']} of {ROWS} rows")
    bad = [c for c in bad if c["output"] != "label"]
    if bad:
        worst = max(bad, key=lambda c: c["largestDifference"])
        fail(
            f"the converted model disagrees with the original: {worst['outside']} of {worst['valuesCompared']} values of "
            f"{worst['output']} differ by more than {ATOL} + {RTOL}*|original|; the largest difference is "
            f"{worst['largestDifference']:.6g}"
        )


def ort_session(path):
    import onnxruntime as ort

    return ort.InferenceSession(path, providers=["CPUExecutionProvider"])


def onnx_outputs(path, x):
    session = ort_session(path)
    name = session.get_inputs()[0].name
    outputs = session.run(None, {name: x})
    return {o.name: value for o, value in zip(session.get_outputs(), outputs)}


def load_pickle(source):
    try:
        import joblib

        return joblib.load(source)
    except ModuleNotFoundError as e:
        fail(f"cannot unpickle the model: it needs the module {e.name!r}, which the runtime does not have")
    except Exception as e:  # anything a broken or foreign pickle raises
        fail(f"cannot load the file as a pickle or joblib file: {type(e).__name__}: {e}")


def final_estimator(model):
    steps = getattr(model, "steps", None)
    return steps[-1][1] if steps else model


def n_features(model):
    n = getattr(model, "n_features_in_", None)
    if n is None and getattr(model, "steps", None):
        n = getattr(model.steps[0][1], "n_features_in_", None)
    if n is None:
        fail(
            f"cannot tell how many input features {type(model).__name__} takes (it has no n_features_in_; "
            "it may not be fitted), so it cannot be converted"
        )
    return int(n)


def is_xgboost(model):
    return type(model).__module__.startswith("xgboost")


def sklearn_to_onnx(source, out):
    model = load_pickle(source)
    say(f"Loaded {type(model).__module__}.{type(model).__name__}")
    if is_xgboost(final_estimator(model)) and final_estimator(model) is model:
        return xgboost_model_to_onnx(model, out)
    try:
        from sklearn.base import is_classifier
    except ImportError:
        fail("the runtime has no scikit-learn")
    if not hasattr(model, "predict"):
        fail(f"{type(model).__name__} is not a scikit-learn estimator (it has no predict), so skl2onnx cannot convert it")
    import numpy as np
    import skl2onnx
    from skl2onnx.common.data_types import FloatTensorType

    n = n_features(model)
    classifier = is_classifier(model)
    options = {id(final_estimator(model)): {"zipmap": False}} if classifier else None
    try:
        onx = skl2onnx.convert_sklearn(model, initial_types=[("input", FloatTensorType([None, n]))], options=options)
    except Exception as e:
        fail(f"skl2onnx cannot convert {type(model).__name__}: {type(e).__name__}: {e}")
    with open(out, "wb") as f:
        f.write(onx.SerializeToString())
    x = inputs(n)
    got = onnx_outputs(out, x)
    checks = []
    if classifier:
        labels = got.get("label")
        expected = model.predict(x)
        proba = got.get("probabilities")
        if proba is not None and hasattr(model, "predict_proba"):
            checks.append(compare("probabilities", model.predict_proba(x), proba))
        if labels is not None:
            differ = np.asarray(labels).reshape(-1) != np.asarray(expected).reshape(-1)
            ties = np.zeros(ROWS, dtype=bool)
            if proba is not None and hasattr(model, "predict_proba"):
                # A row whose two likeliest classes tie (a forest's 30 of 60
                # votes) may go either way in float32: the probabilities
                # were compared above; its label proves nothing.
                top = np.sort(np.asarray(model.predict_proba(x)), axis=1)
                ties = (top[:, -1] - top[:, -2]) <= 2 * (ATOL + RTOL)
            mismatched = int((differ & ~ties).sum())
            say(f"label: {mismatched} of {ROWS} rows differ ({int((differ & ties).sum())} more on tied probabilities)")
            checks.append({"output": "label", "largestDifference": float(mismatched), "valuesCompared": ROWS, "outside": mismatched})
    else:
        name = next(iter(got))
        checks.append(compare(name, model.predict(x), got[name]))
    verdict(checks)
    return {"converter": "skl2onnx", "converterVersion": skl2onnx.__version__, "checks": checks}


def xgboost_model_to_onnx(model, out):
    """An XGBClassifier/XGBRegressor (a pickle) or a Booster (a native file)."""
    import numpy as np
    import onnxmltools
    import xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    booster = model if isinstance(model, xgboost.Booster) else model.get_booster()
    n = booster.num_features()
    try:
        onx = onnxmltools.convert_xgboost(model, initial_types=[("input", FloatTensorType([None, n]))])
    except Exception as e:
        fail(f"onnxmltools cannot convert this xgboost model: {type(e).__name__}: {e}")
    with open(out, "wb") as f:
        f.write(onx.SerializeToString())
    x = inputs(n)
    got = onnx_outputs(out, x)
    checks = []
    if "probabilities" in got:
        expected = booster.predict(xgboost.DMatrix(x))
        proba = np.asarray(got["probabilities"])
        if expected.ndim == 1:  # binary: the probability of class 1
            proba = proba[:, -1]
        checks.append(compare("probabilities", expected, proba))
    else:
        name = next(iter(got))
        checks.append(compare(name, booster.predict(xgboost.DMatrix(x)), got[name]))
    verdict(checks)
    return {"converter": "onnxmltools", "converterVersion": onnxmltools.__version__, "checks": checks, "xgboost": xgboost.__version__}


def xgboost_to_onnx(source, out):
    import xgboost

    booster = xgboost.Booster()
    try:
        booster.load_model(source)
    except Exception as e:
        fail(f"cannot load the file as an xgboost model (JSON or UBJSON): {type(e).__name__}: {e}")
    say(f"Loaded an xgboost Booster with {booster.num_features()} features")
    return xgboost_model_to_onnx(booster, out)


def keras_model(source):
    try:
        import tensorflow as tf
    except ImportError:
        fail("the runtime has no TensorFlow: run `modelreg runtime install --with converters --with tensorflow`")
    try:
        return tf, tf.keras.models.load_model(source, compile=False)
    except Exception as e:
        fail(f"cannot load the file as a Keras model: {type(e).__name__}: {e}")


def keras_inputs(model):
    shape = [d if d is not None else ROWS for d in model.inputs[0].shape]
    shape[0] = ROWS
    import numpy as np

    return np.random.default_rng(SEED).normal(size=shape).astype("float32")


def tensorflow_to_onnx(source, out):
    tf, model = keras_model(source)
    import tf2onnx

    spec = (tf.TensorSpec([None] + list(model.inputs[0].shape[1:]), tf.float32, name="input"),)
    # from_keras does not understand Keras 3 models; a traced function of
    # the model is what both Keras 2 and 3 give tf2onnx alike.
    function = tf.function(lambda x: model(x, training=False), input_signature=spec)
    try:
        tf2onnx.convert.from_function(function, input_signature=spec, output_path=out)
    except Exception as e:
        fail(f"tf2onnx cannot convert this model: {type(e).__name__}: {e}")
    x = keras_inputs(model)
    got = onnx_outputs(out, x)
    checks = [compare(next(iter(got)), model(x).numpy(), next(iter(got.values())))]
    verdict(checks)
    return {"converter": "tf2onnx", "converterVersion": tf2onnx.__version__, "tensorflow": tf.__version__, "checks": checks}


def tensorflow_to_tflite(source, out):
    tf, model = keras_model(source)
    try:
        data = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    except Exception as e:
        fail(f"TensorFlow's TFLite converter cannot convert this model: {type(e).__name__}: {e}")
    with open(out, "wb") as f:
        f.write(data)
    x = keras_inputs(model)
    interpreter = tf.lite.Interpreter(model_path=out)
    detail = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(detail["index"], list(x.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(detail["index"], x)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    checks = [compare("output", model(x).numpy(), got)]
    verdict(checks)
    return {"converter": "tf.lite.TFLiteConverter", "converterVersion": tf.__version__, "checks": checks}


def pytorch_to_onnx(source, out, shape):
    try:
        import torch
    except ImportError:
        fail("the runtime has no PyTorch: run `modelreg runtime install --with converters --with torch`")
    try:
        model = torch.jit.load(source, map_location="cpu")
    except Exception as e:
        fail(f"cannot load the file as TorchScript (a state_dict or a pickled module cannot be exported): {type(e).__name__}: {e}")
    model.eval()
    x = torch.from_numpy(
        __import__("numpy").random.default_rng(SEED).normal(size=shape).astype("float32")
    )
    try:
        torch.onnx.export(model, (x,), out, input_names=["input"], dynamo=False)
    except TypeError:  # torch before 2.5 has no `dynamo`
        torch.onnx.export(model, (x,), out, input_names=["input"])
    except Exception as e:
        fail(f"torch.onnx.export cannot export this TorchScript model: {type(e).__name__}: {e}")
    with torch.no_grad():
        expected = model(x)
    if isinstance(expected, (tuple, list)):
        expected = expected[0]
    got = onnx_outputs(out, x.numpy())
    checks = [compare(next(iter(got)), expected.numpy(), next(iter(got.values())))]
    verdict(checks)
    return {"converter": "torch.onnx.export", "converterVersion": torch.__version__, "checks": checks}


CONVERTERS = {
    ("sklearn", "onnx"): sklearn_to_onnx,
    ("xgboost", "onnx"): xgboost_to_onnx,
    ("tensorflow", "onnx"): tensorflow_to_onnx,
    ("tensorflow", "tflite"): tensorflow_to_tflite,
}


def main(argv):
    if argv[:1] == ["probe"]:
        return probe()
    if len(argv) < 6 or argv[0] != "convert":
        fail("usage: formats.py convert SOURCE_FORMAT TARGET SOURCE OUT RESULT [--input-shape N,N,...]")
    source_format, target, source, out, result = argv[1:6]
    started = time.monotonic()
    say(f"Converting {source_format} to {target}; verifying on {ROWS} generated rows within {ATOL} + {RTOL}*|original|")
    if (source_format, target) == ("pytorch", "onnx"):
        shape = [int(n) for n in argv[7].split(",")] if argv[6:7] == ["--input-shape"] else None
        if not shape:
            fail("a TorchScript model needs an input shape to be exported")
        facts = pytorch_to_onnx(source, out, shape)
    elif (source_format, target) in CONVERTERS:
        facts = CONVERTERS[(source_format, target)](source, out)
    else:
        fail(f"no converter from {source_format} to {target}")
    facts.update(
        {
            "onnxruntime": version_of("onnxruntime") if target == "onnx" else None,
            "rows": ROWS,
            "seed": SEED,
            "tolerance": {"absolute": ATOL, "relative": RTOL},
            "seconds": round(time.monotonic() - started, 3),
            "python": sys.version.split()[0],
        }
    )
    with open(result, "w") as f:
        json.dump(facts, f)
    say(f"Verified: the {target} model agrees with the original within the tolerance.")


if __name__ == "__main__":
    main(sys.argv[1:])
