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
#       Core ML is the exception: nothing on Linux can run a Core ML model
#       (coremltools predicts only on macOS), so the converted model is not
#       run. The script checks what can be checked here, that the file
#       parses as a Core ML model whose inputs, outputs and class labels are
#       the original's, and modelreg records the artifact as unverified.
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
    "coremltools": "coremltools",
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


def torchscript_model(source):
    """torch, and the TorchScript model in `source`, ready to run."""
    try:
        import torch
    except ImportError:
        fail("the runtime has no PyTorch: run `modelreg runtime install --with converters --with torch`")
    try:
        model = torch.jit.load(source, map_location="cpu")
    except Exception as e:
        fail(f"cannot load the file as TorchScript (a state_dict or a pickled module cannot be exported): {type(e).__name__}: {e}")
    model.eval()
    return torch, model


def pytorch_to_onnx(source, out, shape):
    torch, model = torchscript_model(source)
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


# --- Core ML --------------------------------------------------------------


def import_coremltools():
    """coremltools, with its scikit-learn converter on.

    coremltools turns that converter off when the installed scikit-learn is
    newer than the newest it was tested with (9.0: 1.5.1, while the runtime
    pins 1.9.1), and it reads the version once, when it is imported. The
    converter only reads fitted attributes (coef_, tree_, classes_...), which
    newer releases mostly keep, so scikit-learn shows a tested version while
    coremltools imports. A model whose attributes did change fails with the
    converter's own error, and the provenance records the gap (`tested_range`).
    """
    try:
        import sklearn
    except ImportError:  # then nothing is gated
        sklearn = None
    real = sklearn.__version__ if sklearn else None
    try:
        if sklearn:
            sklearn.__version__ = "1.5.1"
        import coremltools
    except ImportError:
        fail("the runtime has no coremltools: run `modelreg runtime install --with converters`")
    finally:
        if sklearn:
            sklearn.__version__ = real
    return coremltools


def tested_range(coremltools):
    """What coremltools says about the runtime's scikit-learn: None when it
    is within the range coremltools was tested with, else a sentence."""
    import sklearn
    from packaging.version import Version

    deps = coremltools._deps
    low, high = getattr(deps, "_SKLEARN_MIN_VERSION", None), getattr(deps, "_SKLEARN_MAX_VERSION", None)
    if low is None or high is None:
        return None
    release = Version(".".join(sklearn.__version__.split(".")[:2]))
    if Version(low) <= release <= Version(high):
        return None
    return (
        f"coremltools {coremltools.__version__} is tested with scikit-learn {low} to {high}; "
        f"this model was converted with scikit-learn {sklearn.__version__}"
    )


def spec_class_labels(spec):
    """The class labels a classifier's spec declares (a pipeline's: its last
    model's), or None."""
    kind = spec.WhichOneof("Type")
    if kind in ("pipeline", "pipelineClassifier", "pipelineRegressor"):
        return spec_class_labels(getattr(spec, kind).pipeline.models[-1])
    model = getattr(spec, kind)
    for field in ("int64ClassLabels", "stringClassLabels"):
        if field in model.DESCRIPTOR.fields_by_name and model.HasField(field):
            return [str(label) for label in getattr(model, field).vector]
    return None


def read_spec(coremltools, out):
    """Loads the written file back as a Core ML specification (an .mlmodel
    is a protobuf) and describes it."""
    try:
        spec = coremltools.utils.load_spec(out)
    except Exception as e:
        fail(f"the written file does not load back as a Core ML model: {type(e).__name__}: {e}")
    inputs = []
    for i in spec.description.input:
        array = i.type.multiArrayType
        inputs.append({"name": i.name, "shape": [int(d) for d in array.shape]})
    described = {
        "specificationVersion": int(spec.specificationVersion),
        "type": spec.WhichOneof("Type"),
        "inputs": inputs,
        "outputs": [o.name for o in spec.description.output],
        "classLabels": spec_class_labels(spec),
    }
    say(
        f"Core ML specification {described['specificationVersion']}: {described['type']}, inputs "
        f"{[i['name'] for i in inputs]}, outputs {described['outputs']}"
    )
    return spec, described


def check_spec(described, what, expected):
    """One structural check of the written model against the original."""
    if described[what] != expected:
        fail(f"the Core ML model's {what} are {described[what]}, the original's {expected}")
    say(f"{what}: {expected} (as the original's)")


def coreml_facts(coremltools, converter, described, **more):
    return {"converter": converter, "converterVersion": coremltools.__version__, "spec": described, **more}


def sklearn_to_coreml(source, out):
    model = load_pickle(source)
    say(f"Loaded {type(model).__module__}.{type(model).__name__}")
    if is_xgboost(final_estimator(model)):
        fail("coremltools' XGBoost converter reads xgboost 1.x models only; download this model as ONNX instead")
    if not hasattr(model, "predict"):
        fail(f"{type(model).__name__} is not a scikit-learn estimator (it has no predict), so coremltools cannot convert it")
    coremltools = import_coremltools()
    gap = tested_range(coremltools)
    if gap:
        say(f"Note: {gap}")
    n = n_features(model)
    try:
        converted = coremltools.converters.sklearn.convert(model, "input")
        coremltools.utils.save_spec(converted.get_spec(), out)
    except Exception as e:
        why = f"coremltools {coremltools.__version__} cannot convert {type(model).__name__}: {type(e).__name__}: {e}"
        fail(f"{why} ({gap})" if gap else why)
    _, described = read_spec(coremltools, out)
    check_spec(described, "inputs", [{"name": "input", "shape": [n]}])
    classes = getattr(final_estimator(model), "classes_", None)
    if classes is not None:
        check_spec(described, "classLabels", [str(c) for c in classes])
    return coreml_facts(coremltools, "coremltools.converters.sklearn", described, scikitLearn=version_of("scikit-learn"), testedRange=gap)


def tensorflow_to_coreml(source, out):
    tf, model = keras_model(source)
    coremltools = import_coremltools()
    # As for tf2onnx: a traced function is what Keras 2 and 3 models give
    # alike. The batch dimension stays free; the rest is the model's.
    features = list(model.inputs[0].shape[1:])
    spec = (tf.TensorSpec([None] + features, tf.float32, name="input"),)
    function = tf.function(lambda x: model(x, training=False), input_signature=spec).get_concrete_function()
    shape = coremltools.Shape(shape=[coremltools.RangeDim(1, -1)] + features)
    try:
        converted = coremltools.convert(
            [function], source="tensorflow", inputs=[coremltools.TensorType(name="input", shape=shape)], convert_to="neuralnetwork"
        )
        coremltools.utils.save_spec(converted.get_spec(), out)
    except Exception as e:
        fail(f"coremltools {coremltools.__version__} cannot convert this model: {type(e).__name__}: {e}")
    _, described = read_spec(coremltools, out)
    check_spec(described, "inputs", [{"name": "input", "shape": [1] + features}])
    if len(described["outputs"]) != len(model.outputs):
        fail(f"the Core ML model has {len(described['outputs'])} outputs, the original {len(model.outputs)}")
    return coreml_facts(coremltools, "coremltools.convert", described, tensorflow=tf.__version__)


def pytorch_to_coreml(source, out, shape):
    torch, model = torchscript_model(source)
    coremltools = import_coremltools()
    try:
        converted = coremltools.convert(
            model, source="pytorch", inputs=[coremltools.TensorType(name="input", shape=shape)], convert_to="neuralnetwork"
        )
        coremltools.utils.save_spec(converted.get_spec(), out)
    except Exception as e:
        fail(f"coremltools {coremltools.__version__} cannot convert this TorchScript model: {type(e).__name__}: {e}")
    _, described = read_spec(coremltools, out)
    check_spec(described, "inputs", [{"name": "input", "shape": list(shape)}])
    return coreml_facts(coremltools, "coremltools.convert", described, torch=torch.__version__)


CONVERTERS = {
    ("sklearn", "onnx"): sklearn_to_onnx,
    ("xgboost", "onnx"): xgboost_to_onnx,
    ("tensorflow", "onnx"): tensorflow_to_onnx,
    ("tensorflow", "tflite"): tensorflow_to_tflite,
    ("sklearn", "coreml"): sklearn_to_coreml,
    ("tensorflow", "coreml"): tensorflow_to_coreml,
}


def main(argv):
    if argv[:1] == ["probe"]:
        return probe()
    if len(argv) < 6 or argv[0] != "convert":
        fail("usage: formats.py convert SOURCE_FORMAT TARGET SOURCE OUT RESULT [--input-shape N,N,...]")
    source_format, target, source, out, result = argv[1:6]
    started = time.monotonic()
    runs = target != "coreml"
    if runs:
        say(f"Converting {source_format} to {target}; verifying on {ROWS} generated rows within {ATOL} + {RTOL}*|original|")
    else:
        say(f"Converting {source_format} to {target}; a Core ML model cannot run on Linux, so only its specification is checked")
    if source_format == "pytorch" and target in ("onnx", "coreml"):
        shape = [int(n) for n in argv[7].split(",")] if argv[6:7] == ["--input-shape"] else None
        if not shape:
            fail("a TorchScript model needs an input shape to be exported")
        facts = (pytorch_to_onnx if target == "onnx" else pytorch_to_coreml)(source, out, shape)
    elif (source_format, target) in CONVERTERS:
        facts = CONVERTERS[(source_format, target)](source, out)
    else:
        fail(f"no converter from {source_format} to {target}")
    facts.update(
        {
            "onnxruntime": version_of("onnxruntime") if target == "onnx" else None,
            "rows": ROWS if runs else None,
            "seed": SEED if runs else None,
            "tolerance": {"absolute": ATOL, "relative": RTOL} if runs else None,
            "seconds": round(time.monotonic() - started, 3),
            "python": sys.version.split()[0],
        }
    )
    with open(result, "w") as f:
        json.dump(facts, f)
    if runs:
        say(f"Verified: the {target} model agrees with the original within the tolerance.")
    else:
        say(f"Not verified: the {target} model was written and its specification checked, but it was not run.")


if __name__ == "__main__":
    main(sys.argv[1:])
