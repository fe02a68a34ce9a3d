"""Fusion classifier and dual encoder exports: SavedModel signatures checked in a fresh
process (`tf.saved_model.load`, as a server would load them), and the classifier's TFLite
file on the LiteRT interpreter. Untrained tiny models: only the graphs matter here."""

import concurrent.futures
import io
import json

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from export_checks import assert_readable_by_others, tf1_session_run
from PIL import Image

from xmodal_keras.data.image_preprocessing import decode_image
from xmodal_keras.data.text_tokenizer import CaptionTokenizer
from xmodal_keras.export.dual_encoder_export import export_dual_encoder
from xmodal_keras.export.fusion_export import export_fusion_classifier
from xmodal_keras.export.fusion_tflite_export import export_fusion_classifier_tflite
from xmodal_keras.export.graph_ops import non_core_ops, saved_model_ops
from xmodal_keras.export.saved_model_base import EXPORT_INFO_FILE
from xmodal_keras.export.tflite_ops import non_builtin_ops
from xmodal_keras.export.warmup_requests import WARMUP_FILE, read_warmup_requests
from xmodal_keras.models.dual_encoder import build_dual_encoder
from xmodal_keras.models.fusion_classifier import build_fusion_classifier
from xmodal_keras.tasks.retrieval.export import export_saved_model as export_retrieval_run

SIZE = 32
IMAGE = {"image_shape": (SIZE, SIZE, 3), "hidden_dim": 8, "num_layers": 1}
CAPTIONS = ["a red circle", "a blue square left of a green triangle", "a small red square"]
TEXTS = ["A red circle.", "a BLUE square, left of a green triangle", "purple words unseen"]
TABULAR = {"age": [3.5, -1.0, 20.0], "color": ["red", "blue", "never seen"]}


def encoded(pixels: np.ndarray, image_format: str, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buffer, format=image_format)
    return buffer.getvalue()


RNG = np.random.default_rng(3)
IMAGES = [
    encoded(RNG.integers(0, 256, (40, 50, 3), dtype=np.uint8), "PNG"),
    encoded(RNG.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8), "JPEG"),
    encoded(RNG.integers(0, 256, (20, 28, 3), dtype=np.uint8), "PNG", "L"),
]


@pytest.fixture(scope="module")
def tokenizer():
    return CaptionTokenizer.from_captions(CAPTIONS, sequence_length=7)


def text_settings(tokenizer) -> dict:
    return {
        "vocabulary_size": tokenizer.vocabulary_size,
        "sequence_length": tokenizer.sequence_length + 1,
        "embedding_dim": 8,
        "hidden_dim": 8,
    }


@pytest.fixture(scope="module")
def classifier(tokenizer):
    """Image + text + tabular (one numeric, one categorical column), 3 classes."""
    frame = pd.DataFrame(
        {"age": [1.0, 2.0, 5.0], "color": ["red", "blue", "red"], "split": ["train"] * 3}
    )
    tabular = {"frame": frame, "numeric_columns": ["age"], "categorical_columns": ["color"]}
    return build_fusion_classifier(
        modalities={
            "image": IMAGE,
            "text": text_settings(tokenizer),
            "tabular": {**tabular, "hidden_dim": 8},
        },
        fusion="gated",
        projection_dim=8,
        num_classes=3,
    )


@pytest.fixture(scope="module")
def dual_encoder(tokenizer):
    return build_dual_encoder(
        vocabulary_size=tokenizer.vocabulary_size,
        sequence_length=tokenizer.sequence_length + 1,
        image_shape=(SIZE, SIZE, 3),
        encoder_kwargs={"hidden_dim": 8},
        embedding_dim=8,
        hidden_dim=8,
        projection_dim=4,
    )


@pytest.fixture(scope="module")
def exports(classifier, dual_encoder, tokenizer, tmp_path_factory):
    base = tmp_path_factory.mktemp("saved_models")
    return {
        "classifier": export_fusion_classifier(classifier, tokenizer, base_dir=base, name="fusion"),
        "dual_encoder": export_dual_encoder(dual_encoder, tokenizer, base_dir=base, name="clip"),
    }


FRESH_PROCESS = """
import json, sys
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2
request = json.loads(sys.stdin.read())
images = tf.constant([bytes.fromhex(h) for h in request["images"]])
texts = tf.constant(request["texts"])
tabular = {"age": tf.constant(request["age"], tf.float32), "color": tf.constant(request["color"])}
classifier = tf.saved_model.load(request["classifier"])
dual = tf.saved_model.load(request["dual_encoder"])
result = {name: classifier.signatures[name](image_bytes=images, text=texts, **tabular)[
    "probabilities"].numpy().tolist() for name in ("classify", "serving_default")}
result["embed_image"] = dual.signatures["embed_image"](image_bytes=images)["embedding"].numpy()
result["embed_text"] = dual.signatures["embed_text"](text=texts)["embedding"].numpy()
for key in ("embed_image", "embed_text"):
    result[key] = result[key].tolist()
bad = [images[0], tf.constant(b"not an image at all")]
for name, call in [
    ("classify", lambda: classifier.signatures["classify"](
        image_bytes=tf.stack(bad), text=texts[:2], age=tabular["age"][:2],
        color=tabular["color"][:2])),
    ("embed_image", lambda: dual.signatures["embed_image"](image_bytes=tf.stack(bad))),
]:
    try:
        call()
        result["bad_" + name] = "no error"
    except tf.errors.InvalidArgumentError as error:
        result["bad_" + name] = "InvalidArgumentError: " + error.message
no_strings = tf.constant([], tf.string)
empty = {
    "classify": classifier.signatures["classify"](
        image_bytes=no_strings, text=no_strings, age=tf.constant([], tf.float32),
        color=no_strings)["probabilities"],
    "embed_image": dual.signatures["embed_image"](image_bytes=no_strings)["embedding"],
    "embed_text": dual.signatures["embed_text"](text=no_strings)["embedding"],
}
result["empty"] = {name: list(value.shape) for name, value in empty.items()}
# Still serving after the bad request:
result["after_bad"] = dual.signatures["embed_text"](text=texts[:1])["embedding"].numpy().tolist()
warmed = {}
for model, path in [(classifier, request["classifier"]), (dual, request["dual_encoder"])]:
    for record in tf.data.TFRecordDataset(path + "/assets.extra/tf_serving_warmup_requests"):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        given = log.predict_log.request.inputs
        inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in given.items()}
        name = log.predict_log.request.model_spec.signature_name
        outputs = model.signatures[name](**inputs)
        warmed[name] = {k: list(v.shape) for k, v in outputs.items()}
result["warmup"] = warmed
print(json.dumps(result))
"""


@pytest.fixture(scope="module")
def process_run(exports, tmp_path_factory):
    """One fresh process: `saved_model_cli run`'s TF1 loader on the signatures
    (`tf1_session_run`), then FRESH_PROCESS (`tf.saved_model.load`, as a server would)."""
    images = np.array(IMAGES)
    texts = np.array([text.encode() for text in TEXTS])
    tabular = {"age": np.array(TABULAR["age"], np.float32), "color": np.array(TABULAR["color"])}
    tabular["color"] = tabular["color"].astype(bytes)
    calls = [
        (exports["classifier"], "classify", {"image_bytes": images, "text": texts, **tabular}),
        (exports["dual_encoder"], "embed_image", {"image_bytes": images}),
        (exports["dual_encoder"], "embed_text", {"text": texts}),
    ]
    request = {
        "images": [data.hex() for data in IMAGES],
        "texts": TEXTS,
        **TABULAR,
        **{key: str(path) for key, path in exports.items()},
    }
    tf1_outputs, printed = tf1_session_run(
        calls, tmp_path_factory.mktemp("tf1_calls"), then=FRESH_PROCESS, stdin=json.dumps(request)
    )
    return tf1_outputs, json.loads(printed.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def fresh_process(process_run):
    """What FRESH_PROCESS printed."""
    return process_run[1]


def decoded_images() -> np.ndarray:
    return np.stack([decode_image(tf.constant(data), (SIZE, SIZE)).numpy() for data in IMAGES])


def test_classify_equals_the_keras_model_in_a_fresh_process(classifier, tokenizer, fresh_process):
    expected = classifier(
        {
            # Keras refuses a nest mixing NumPy arrays and tensors: all tensors.
            "images": tf.constant(decoded_images()),
            "token_ids": tokenizer(TEXTS),
            "tabular": {
                "age": tf.constant(TABULAR["age"], tf.float32)[:, None],
                "color": tf.constant(TABULAR["color"])[:, None],
            },
        }
    ).numpy()
    assert expected.shape == (3, 3)
    np.testing.assert_allclose(fresh_process["classify"], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fresh_process["serving_default"], expected, rtol=1e-5, atol=1e-6)


def test_embed_signatures_equal_the_towers(dual_encoder, tokenizer, fresh_process):
    image_tower = dual_encoder.get_layer("image_tower")
    text_tower = dual_encoder.get_layer("text_tower")
    expected_images = image_tower(decoded_images()).numpy()
    expected_texts = text_tower(tokenizer(TEXTS)).numpy()
    assert expected_images.shape == expected_texts.shape == (3, 4)
    np.testing.assert_allclose(fresh_process["embed_image"], expected_images, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fresh_process["embed_text"], expected_texts, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fresh_process["after_bad"], expected_texts[:1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("signature", ["classify", "embed_image"])
def test_a_bad_image_is_an_invalid_argument_naming_it(fresh_process, signature):
    message = fresh_process["bad_" + signature]
    assert message.startswith("InvalidArgumentError: ")
    assert "image 1 of the request" in message
    assert "is not a supported image" in message


def test_an_empty_batch_gets_an_empty_answer(fresh_process):
    assert fresh_process["empty"] == {
        "classify": [0, 3],
        "embed_image": [0, 4],
        "embed_text": [0, 4],
    }


def test_graphs_use_core_ops_only_and_tokenise_inside(exports):
    for path in exports.values():
        ops = saved_model_ops(path)
        assert non_core_ops(ops) == []
        # The text path is in the graph: normalisation and vocabulary lookup.
        assert {"StringLower", "StaticRegexReplace", "LookupTableFindV2"} <= ops
        assert {"DecodeImage", "ExtractJpegShape"} & ops


def test_warmup_requests_and_export_info(exports, fresh_process):
    classifier_logs = read_warmup_requests(exports["classifier"] / WARMUP_FILE)
    requests = [log.predict_log.request for log in classifier_logs]
    assert [r.model_spec.signature_name for r in requests] == ["classify", "serving_default"]
    assert {r.model_spec.name for r in requests} == {"fusion"}
    assert sorted(requests[0].inputs) == ["age", "color", "image_bytes", "text"]
    assert fresh_process["warmup"] == {
        "classify": {"probabilities": [1, 3]},
        "serving_default": {"probabilities": [1, 3]},
        "embed_image": {"embedding": [1, 4]},
        "embed_text": {"embedding": [1, 4]},
        "embed_token_ids": {"embedding": [1, 4]},
    }
    info = json.loads((exports["classifier"] / EXPORT_INFO_FILE).read_text())
    assert info["kind"] == "fusion_classifier"
    assert info["inputs"]["age"] == {"dtype": "float32", "shape": [None]}
    # `sequence_length` is the length of the token ids the model reads (the tokenizer's 7 + 1)
    assert info["image_shape"] == [SIZE, SIZE, 3] and info["sequence_length"] == 8
    info = json.loads((exports["dual_encoder"] / EXPORT_INFO_FILE).read_text())
    assert info["kind"] == "dual_encoder" and info["embedding_dim"] == 4
    # No temporary folders left beside the versions.
    assert sorted(p.name for p in exports["classifier"].parent.iterdir()) == ["1"]


def test_versions_are_readable_by_a_server_running_as_another_user(exports):
    for path in exports.values():
        assert_readable_by_others(path)


def test_next_export_gets_the_next_version(classifier, tokenizer, exports):
    # Refused before anything is traced or written.
    with pytest.raises(FileExistsError, match="Refusing to overwrite"):
        export_fusion_classifier(
            classifier,
            tokenizer,
            base_dir=exports["classifier"].parents[1],
            name="fusion",
            version=1,
        )
    with pytest.raises(ValueError, match=r"letters, digits.*Received: name='a b'"):
        export_fusion_classifier(classifier, tokenizer, base_dir="unused", name="a b")


@pytest.mark.slow  # two real exports; test_atomic_directory.py checks the retry quickly
def test_two_simultaneous_exports_get_two_versions(tmp_path):
    """Two real exports of one name at once (threads): both succeed, as 1 and 2."""
    image_only = {"image": {"image_shape": (16, 16, 3), "hidden_dim": 8, "num_layers": 1}}
    models = [
        build_fusion_classifier(modalities=image_only, projection_dim=4, num_classes=2)
        for _ in range(2)
    ]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        exports = [
            pool.submit(export_fusion_classifier, model, base_dir=tmp_path, name="shapes")
            for model in models
        ]
        paths = sorted(future.result(120) for future in exports)
    assert paths == [tmp_path / "shapes" / "1", tmp_path / "shapes" / "2"]
    assert sorted(p.name for p in (tmp_path / "shapes").iterdir()) == ["1", "2"]
    for path in paths:
        assert_readable_by_others(path)
        assert (path / "saved_model.pb").is_file() and (path / WARMUP_FILE).is_file()


def test_tokenizer_of_another_length_is_refused(classifier, dual_encoder):
    other = CaptionTokenizer.from_captions(CAPTIONS, sequence_length=4)
    with pytest.raises(ValueError, match=r"makes 5 ids a text but the model reads 8"):
        export_fusion_classifier(classifier, other, base_dir="unused", name="x")
    with pytest.raises(ValueError, match=r"makes 5 ids a text but the model reads 8"):
        export_dual_encoder(dual_encoder, other, base_dir="unused", name="x")
    with pytest.raises(ValueError, match="needs its `CaptionTokenizer`"):
        export_fusion_classifier(classifier, None, base_dir="unused", name="x")


@pytest.fixture(scope="module")
def image_text_classifier(tokenizer):
    return build_fusion_classifier(
        modalities={"image": IMAGE, "text": text_settings(tokenizer)},
        fusion="concat",
        projection_dim=8,
        num_classes=2,
    )


def test_tflite_probabilities_equal_keras(image_text_classifier, tokenizer, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    path = export_fusion_classifier_tflite(
        image_text_classifier, tmp_path, name="fusion", tokenizer=tokenizer
    )
    assert sorted(p.name for p in path.iterdir()) == ["metadata.json", "model.tflite", "vocab.txt"]
    assert non_builtin_ops(path / "model.tflite") == []
    metadata = json.loads((path / "metadata.json").read_text())
    assert metadata["inputs"]["token_ids"]["shape"] == [1, 8]
    assert metadata["inputs"]["images"]["dtype"] == "uint8"
    assert metadata["output"]["activation"] == "sigmoid"
    assert (path / "vocab.txt").read_text().split("\n")[:-1] == tokenizer.vocabulary
    runner = Interpreter(model_path=str(path / "model.tflite")).get_signature_runner("classify")
    images, token_ids = decoded_images(), tokenizer(TEXTS).numpy()
    expected = image_text_classifier({"images": images, "token_ids": token_ids}).numpy()
    for i in range(len(images)):
        got = runner(images=images[i : i + 1], token_ids=token_ids[i : i + 1])["probabilities"]
        assert got.shape == (1, 1) and got.dtype == np.float32
        np.testing.assert_allclose(got, expected[i : i + 1], atol=1e-5)


def test_tflite_refuses_tabular_inputs_and_bad_arguments(classifier, tokenizer, tmp_path):
    with pytest.raises(ValueError, match=r"take only .* inputs .*Received: inputs=\["):
        export_fusion_classifier_tflite(classifier, tmp_path, name="x", tokenizer=tokenizer)
    with pytest.raises(ValueError, match=r"`quantize` must be one of .*Received: quantize='int4'"):
        export_fusion_classifier_tflite(classifier, tmp_path, name="x", quantize="int4")
    assert list(tmp_path.iterdir()) == []


def test_logits_models_are_refused(tokenizer, tmp_path):
    model = build_fusion_classifier(
        modalities={"image": IMAGE}, projection_dim=4, num_classes=2, output="logits"
    )
    with pytest.raises(ValueError, match="output='probabilities'"):
        export_fusion_classifier(model, base_dir=tmp_path, name="x")
    with pytest.raises(ValueError, match="output='probabilities'"):
        export_fusion_classifier_tflite(model, tmp_path, name="x")


def test_the_tf1_loader_runs_every_signature(process_run, fresh_process):
    """`saved_model_cli run`'s TF1 loader (as TF Serving: table initialisers, no Python)
    gives what `tf.saved_model.load` gave (compared with Keras above)."""
    outputs, _ = process_run
    expected = [
        fresh_process["classify"],
        fresh_process["embed_image"],
        fresh_process["embed_text"],
    ]
    for got, want in zip(outputs, expected, strict=True):
        (value,) = got.values()
        np.testing.assert_allclose(value, want, rtol=1e-5, atol=1e-6)


def test_dual_encoder_export_from_a_retrieval_run(
    dual_encoder, tokenizer, tiny_shapes_dir, tmp_path
):
    from xmodal_keras.runs.run_directory import RunDirectory
    from xmodal_keras.tasks.retrieval.settings import RetrievalTrainConfig

    config = RetrievalTrainConfig(
        data=str(tiny_shapes_dir), image_size=SIZE, sequence_length=tokenizer.sequence_length + 1
    )
    run = RunDirectory(tmp_path / "my run").create()
    run.write_config(config.to_config())
    run.save_vocabulary(tokenizer)
    run.save_model(dual_encoder)
    path = export_retrieval_run(run.path, base_dir=tmp_path / "saved_models")
    assert path == tmp_path / "saved_models" / "my_run" / "1"
    (log,) = read_warmup_requests(path / WARMUP_FILE)[:1]
    warmup_image = log.predict_log.request.inputs["image_bytes"].string_val[0]
    first_image = sorted((tiny_shapes_dir / "Images").glob("*.png"))[0]
    assert warmup_image == first_image.read_bytes()
