"""SavedModel export for TF Serving, checked with the real tools in fresh processes:
`xmodal export`, `saved_model_cli show/run` (TF1 loader, as TF Serving) and
`tf.saved_model.load` in a new interpreter."""

import functools
import io
import json
import os
import pathlib
import resource
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from captioner_runs import shared_saved_model, shared_tiny_run, untrained_run
from export_checks import assert_readable_by_others, tf1_session_run
from google.protobuf import text_format
from PIL import Image
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.config import model_server_config_pb2

from xmodal_keras.data.image_preprocessing import decode_image
from xmodal_keras.decoding.caption_generator import CaptionGenerator
from xmodal_keras.export.graph_ops import non_core_ops, saved_model_ops
from xmodal_keras.export.saved_model_export import SIGNATURES
from xmodal_keras.export.serving_config import write_serving_config
from xmodal_keras.export.warmup_requests import WARMUP_FILE, read_warmup_requests
from xmodal_keras.tasks.captioning.export import export_saved_model
from xmodal_keras.tasks.captioning.predict import load_captioner

# The environment's own `saved_model_cli` (installed with tensorflow beside the interpreter).
SAVED_MODEL_CLI = str(pathlib.Path(sys.executable).parent / "saved_model_cli")
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}


def run_command(args, timeout=240) -> str:
    done = subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def image_file_bytes(path, image_format, mode="RGB", **save_kwargs) -> bytes:
    image = Image.open(path).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **save_kwargs)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def runs(tiny_shapes_dir, tmp_path_factory):
    """The GRU: the session's trained tiny run (small_cnn); the others untrained (only the
    graphs matter). The Transformer run has the default from-scratch encoder
    (residual_cnn: batch norm)."""
    base = tmp_path_factory.mktemp("export_runs")
    encoders = {"lstm": "small_cnn", "transformer": "residual_cnn"}
    return {
        "gru": shared_tiny_run(tiny_shapes_dir, tmp_path_factory)[0],
        **{
            decoder: untrained_run(tiny_shapes_dir, base / decoder, decoder=decoder, encoder=enc)
            for decoder, enc in encoders.items()
        },
    }


@pytest.fixture(scope="module")
def exports(runs, tiny_shapes_dir, tmp_path_factory):
    """Every decoder exported into one base folder. The GRU: the `xmodal export` command's
    export of that run (`shared_saved_model`, shared with test_client.py), copied here."""
    base = tmp_path_factory.mktemp("saved_models")
    exported = {"gru": base / "gru" / "1"}
    shutil.copytree(shared_saved_model(tiny_shapes_dir, tmp_path_factory), exported["gru"])
    for decoder in ("lstm", "transformer"):
        exported[decoder] = export_saved_model(runs[decoder], base_dir=base, name=decoder)
    return exported


@pytest.fixture(scope="module")
def loaded(exports):
    """`tf.saved_model.load` of an export in this process, once per decoder."""
    return functools.cache(lambda decoder: tf.saved_model.load(str(exports[decoder])))


@pytest.fixture(scope="module")
def test_images(tiny_shapes_dir):
    """A batch mixing JPEG, PNG (RGBA and grayscale), GIF and BMP."""
    paths = sorted((tiny_shapes_dir / "Images").glob("*.png"))[:5]
    return [
        image_file_bytes(paths[0], "JPEG", quality=95),
        image_file_bytes(paths[1], "PNG", "RGBA"),
        image_file_bytes(paths[2], "PNG", "L"),
        image_file_bytes(paths[3], "GIF"),
        image_file_bytes(paths[4], "BMP"),
    ]


def keras_outputs(run, images: list[bytes], **options) -> dict:
    model, tokenizer, _ = load_captioner(run)
    generator = CaptionGenerator(model, tokenizer)
    shape = generator.image_shape[:2]
    pixels = np.stack([decode_image(tf.constant(data), shape).numpy() for data in images])
    return {key: value.numpy() for key, value in generator.generate(pixels, **options).items()}


def test_saved_model_cli_lists_the_four_signatures(exports):
    shown = run_command([SAVED_MODEL_CLI, "show", "--dir", str(exports["gru"]), "--all"])
    for name in SIGNATURES:
        assert f"signature_def['{name}']" in shown
    assert "inputs['image_bytes'] tensor_info:\n        dtype: DT_STRING" in shown
    assert "inputs['images'] tensor_info:\n        dtype: DT_UINT8" in shown
    assert "outputs['embedding']" in shown


def test_saved_model_cli_run_gives_the_keras_caption(exports, runs, test_images, tmp_path):
    inputs = tmp_path / "image_bytes.npy"
    np.save(inputs, np.array([test_images[0]]))
    printed = run_command(
        [
            SAVED_MODEL_CLI,
            "run",
            "--dir",
            str(exports["transformer"]),
            "--tag_set",
            "serve",
            "--signature_def",
            "serving_default",
            "--inputs",
            f"image_bytes={inputs}",
        ]
    )
    expected = keras_outputs(runs["transformer"], test_images[:1])
    caption = printed.split("Result for output key caption:\n")[1].splitlines()[0]
    assert caption == str([expected["text"][0]])


def test_the_tf1_loader_runs_every_signature(exports, fresh_process, fresh_process_outputs):
    """The signatures `saved_model_cli run` does not run above, through its TF1 loader
    (as TF Serving loads), one load per model, in the fresh process of
    `fresh_process_outputs` (before its `tf.saved_model.load`s): the same outputs as
    `tf.saved_model.load`, which the tests below compare with Keras."""
    calls, tf1_outputs = fresh_process["tf1"]
    assert len(calls) == 4
    decoders = {path: decoder for decoder, path in exports.items()}
    for (path, signature, _), outputs in zip(calls, tf1_outputs, strict=True):
        expected = fresh_process_outputs[decoders[path]][signature]
        assert sorted(outputs) == sorted(expected), signature
        for key, value in outputs.items():
            if value.dtype.kind in "SO":
                assert value.astype(str).tolist() == expected[key], (signature, key)
            else:
                np.testing.assert_allclose(value, expected[key], rtol=1e-5, atol=1e-6)


FRESH_PROCESS = """
import json, sys
import numpy as np
import tensorflow as tf
images = [bytes.fromhex(h) for h in json.loads(sys.stdin.read())]
result = {}
for path in sys.argv[1:]:
    model = tf.saved_model.load(path)
    out = {name: {k: v.numpy() for k, v in model.signatures[name](
        image_bytes=tf.constant(images)).items()}
        for name in ("serving_default", "caption_beam", "embed_image")}
    pixels = tf.stack([tf.io.decode_image(images[0], channels=3, expand_animations=False)])
    out["caption_pixels"] = {k: v.numpy() for k, v in model.signatures["caption_pixels"](
        images=pixels).items()}
    result[path] = {
        name: {k: (v.astype(str) if v.dtype.kind in "SO" else v).tolist() for k, v in d.items()}
        for name, d in out.items()
    }
print(json.dumps(result))
"""


@pytest.fixture(scope="module")
def fresh_process(exports, test_images, tmp_path_factory):
    """One fresh process: the TF1 loader's calls (`tf1_session_run`), then FRESH_PROCESS
    (`tf.saved_model.load` of every export)."""
    images = {"image_bytes": np.array(test_images)}
    first = tf.io.decode_image(test_images[0], channels=3, expand_animations=False)
    calls = [
        (exports["gru"], "serving_default", images),
        (exports["transformer"], "caption_beam", images),
        (exports["transformer"], "embed_image", images),
        (exports["transformer"], "caption_pixels", {"images": first.numpy()[None]}),
    ]
    tf1_outputs, printed = tf1_session_run(
        calls,
        tmp_path_factory.mktemp("tf1_calls"),
        then=FRESH_PROCESS,
        stdin=json.dumps([data.hex() for data in test_images]),
        args=[str(path) for path in exports.values()],
    )
    return {"tf1": (calls, tf1_outputs), "printed": printed}


@pytest.fixture(scope="module")
def fresh_process_outputs(exports, fresh_process):
    outputs = json.loads(fresh_process["printed"].strip().splitlines()[-1])
    return {decoder: outputs[str(path)] for decoder, path in exports.items()}


@pytest.mark.parametrize("decoder", ["gru", "lstm", "transformer"])
def test_fresh_process_gives_keras_tokens_for_mixed_formats(
    decoder, runs, test_images, fresh_process_outputs
):
    served = fresh_process_outputs[decoder]
    greedy = keras_outputs(runs[decoder], test_images)
    np.testing.assert_array_equal(served["serving_default"]["tokens"], greedy["tokens"])
    assert served["serving_default"]["caption"] == greedy["text"].astype(str).tolist()
    np.testing.assert_allclose(served["serving_default"]["scores"], greedy["scores"], rtol=1e-5)
    beam = keras_outputs(runs[decoder], test_images, method="beam", beam_width=3)
    np.testing.assert_array_equal(served["caption_beam"]["tokens"], beam["tokens"])
    # A 32x32 JPEG passed as decoded pixels takes the same resize path: same caption.
    assert served["caption_pixels"]["caption"][0] == greedy["text"][0].decode()


def test_embed_image_is_the_encoder_pooled_output(runs, test_images, fresh_process_outputs):
    model, tokenizer, _ = load_captioner(runs["gru"])
    generator = CaptionGenerator(model, tokenizer)
    pixels = np.stack([decode_image(tf.constant(d), (32, 32)).numpy() for d in test_images])
    expected = generator.encode(pixels)["pooled"].numpy()
    served = np.array(fresh_process_outputs["gru"]["embed_image"]["embedding"])
    np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-6)


def test_exported_graphs_use_core_tensorflow_ops_only(exports):
    for path in exports.values():
        ops = saved_model_ops(path)
        assert {"TensorListReserve", "DecodeImage", "ExtractJpegShape"} & ops or "While" in ops
        assert non_core_ops(ops) == []


XLA_PROCESS = """
import json, sys
import tensorflow as tf
model = tf.saved_model.load(sys.argv[1])
images = [bytes.fromhex(h) for h in json.loads(sys.stdin.read())]
out = {name: model.signatures[name](image_bytes=tf.constant(images))["tokens"].numpy().tolist()
       for name in ("serving_default", "caption_beam")}
print(json.dumps(out))
"""


def test_an_xla_export_compiles_its_decoding_and_captions_the_same(
    runs, exports, loaded, test_images, tmp_path
):
    """`--jit-compile`: the decoding loops are XLA functions (`_XlaMustCompile`), the graph
    keeps to core ops, and a fresh process gets the tokens of the plain export."""
    path = export_saved_model(runs["transformer"], base_dir=tmp_path, name="xla", jit_compile=True)
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((path / "saved_model.pb").read_bytes())
    library = saved_model.meta_graphs[0].graph_def.library.function
    compiled = [f for f in library if f.attr["_XlaMustCompile"].b]
    assert len(compiled) >= 2, "the greedy and the beam search should be XLA functions"
    assert non_core_ops(saved_model_ops(path)) == []
    assert json.loads((path / "xmodal_export.json").read_text())["jit_compile"] is True
    done = subprocess.run(
        [sys.executable, "-c", XLA_PROCESS, str(path)],
        input=json.dumps([image.hex() for image in test_images]),
        capture_output=True, text=True, env=ENV, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    plain = loaded("transformer").signatures
    for name, tokens in json.loads(done.stdout).items():
        expected = plain[name](image_bytes=tf.constant(test_images))["tokens"].numpy()
        np.testing.assert_array_equal(np.array(tokens), expected, err_msg=name)


def test_op_check_catches_python_callbacks_and_xla_ops(tmp_path):
    module = tf.Module()
    module.f = tf.function(
        lambda x: tf.py_function(lambda v: v * 2, [x], tf.float32),
        input_signature=[tf.TensorSpec([], tf.float32)],
    )
    tf.saved_model.save(module, str(tmp_path))
    assert non_core_ops(saved_model_ops(tmp_path)) == ["EagerPyFunc"]
    assert non_core_ops({"XlaDynamicUpdateSlice", "Add"}) == ["XlaDynamicUpdateSlice"]


def hostile_inputs(test_images) -> dict[str, tuple[bytes, str]]:
    jpeg = test_images[0]
    png = bytearray(test_images[1])
    png[16:24] = (30000).to_bytes(4, "big") + (30000).to_bytes(4, "big")
    tiff = io.BytesIO()
    frames = [Image.new("RGB", (8, 8), colour) for colour in ("red", "green", "blue")]
    frames[0].save(tiff, format="TIFF", save_all=True, append_images=frames[1:])
    gif = bytearray(test_images[3])
    gif[6:10] = (1).to_bytes(2, "little") * 2  # a 1 x 1 screen ...
    frame = 13 + (3 << ((gif[10] & 7) + 1) if gif[10] & 0x80 else 0)
    while gif[frame] == 0x21:  # extension blocks: introducer, label, sub-blocks
        frame += 2
        while gif[frame]:
            frame += gif[frame] + 1
        frame += 1
    gif[frame + 5 : frame + 9] = (8000).to_bytes(2, "little") * 2  # ... holding 8000 x 8000
    return {
        "truncated JPEG": (
            jpeg[: len(jpeg) // 2],
            "image 1 of the request] [is a truncated] [JPEG] [file: its]",
        ),
        "8000x8000 GIF frame on a 1x1 screen": (bytes(gif), "[first GIF frame is] [8000] [x]"),
        "empty bytes": (b"", "is empty (0 bytes)"),
        "text bytes": (b"a red circle above a blue square", "is not a supported image"),
        "random bytes": (np.random.default_rng(1).bytes(500), "is not a supported image"),
        "30000x30000 claim": (bytes(png), "header says] [30000] [x] [30000]"),
        "multi-page TIFF": (tiff.getvalue(), "is not a supported image"),
    }


def test_hostile_images_fail_their_request_and_the_model_keeps_serving(loaded, test_images):
    serve = loaded("gru").signatures["serving_default"]
    first = serve(image_bytes=tf.constant(test_images))["caption"].numpy()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for name, (data, message) in hostile_inputs(test_images).items():
        with pytest.raises(tf.errors.InvalidArgumentError) as raised:
            serve(image_bytes=tf.constant([test_images[0], data]))
        assert message in raised.value.message, (name, raised.value.message)
    # Still serving, same answers; the 30000 x 30000 claim was refused before decoding
    # (decoding it would need 2.7 GB): peak memory grew by less than 200 MB.
    np.testing.assert_array_equal(
        serve(image_bytes=tf.constant(test_images))["caption"].numpy(), first
    )
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    assert grown_kb < 200_000


def test_warmup_requests_replay_through_the_export(exports, loaded):
    model = loaded("transformer")
    logs = read_warmup_requests(exports["transformer"] / WARMUP_FILE)
    assert [log.predict_log.request.model_spec.signature_name for log in logs] == list(SIGNATURES)
    for log in logs:
        request = log.predict_log.request
        assert request.model_spec.name == "transformer"
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        outputs = model.signatures[request.model_spec.signature_name](**inputs)
        assert next(iter(outputs.values())).shape[0] == 1


def test_versions_are_numbered_and_never_overwritten(runs, exports, tmp_path):
    # Version 1: a copy of an export (a first export is numbered 1: `shared_saved_model`
    # and test_an_export_killed_midway_leaves_no_version check it).
    shutil.copytree(exports["gru"], tmp_path / "captioner" / "1")
    second = export_saved_model(runs["gru"], base_dir=tmp_path, name="captioner")
    assert second.name == "2"
    with pytest.raises(FileExistsError, match="Refusing to overwrite"):
        export_saved_model(runs["gru"], base_dir=tmp_path, name="captioner", version=2)
    assert sorted(p.name for p in (tmp_path / "captioner").iterdir()) == ["1", "2"]
    info = json.loads((second / "xmodal_export.json").read_text())
    assert info["signatures"] == list(SIGNATURES) and info["max_pixels"] == 40_000_000


KILLED_EXPORT = """
import sys
from xmodal_keras.tasks.captioning.export import export_saved_model
export_saved_model(sys.argv[1], base_dir=sys.argv[2], name="captioner")
"""


def test_an_export_killed_midway_leaves_no_version(runs, tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_EXPORT, os.fspath(runs["gru"]), str(tmp_path)], env=ENV
    )
    model_dir = tmp_path / "captioner"
    deadline = time.monotonic() + 240
    # Kill as soon as the SavedModel is being written into the temporary folder.
    while not any(model_dir.glob(".1.tmp-*/variables")):
        assert process.poll() is None, "the export finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (model_dir / "1").exists()
    # TF Serving ignores the leftover (its name is not a number); the next export is 1
    # and removes it.
    (leftover,) = model_dir.glob(".1.tmp-*")
    assert export_saved_model(runs["gru"], base_dir=tmp_path, name="captioner").name == "1"
    assert not leftover.exists()
    assert sorted(p.name for p in model_dir.iterdir()) == ["1"]
    assert_readable_by_others(model_dir / "1")


def test_serve_config_lists_every_model_folder(exports, tmp_path):
    base = exports["gru"].parent.parent
    printed = run_command(
        [sys.executable, "-m", "xmodal_keras", "serve-config", str(base), "--batching"]
    )
    assert "models.config" in printed and "batching_parameters.txt" in printed
    config = text_format.Parse(
        (base / "models.config").read_text(), model_server_config_pb2.ModelServerConfig()
    )
    entries = {entry.name: entry for entry in config.model_config_list.config}
    assert sorted(entries) == ["gru", "lstm", "transformer"]
    assert entries["gru"].base_path == str(base.resolve() / "gru")
    assert entries["gru"].model_platform == "tensorflow"
    assert "max_batch_size { value: 32 }" in (base / "batching_parameters.txt").read_text()
    docker = write_serving_config(base, base_path_prefix="/models")
    assert 'base_path: "/models/transformer"' in docker[0].read_text()
    with pytest.raises(ValueError, match="No model folders"):
        write_serving_config(tmp_path)
    assert pathlib.Path(base / "models.config").is_file()


def test_an_empty_batch_gets_an_empty_answer(loaded):
    model = loaded("transformer")
    no_bytes = tf.constant([], tf.string)
    for name in ("serving_default", "caption_beam"):
        out = model.signatures[name](image_bytes=no_bytes)
        assert out["caption"].shape == (0,) and out["scores"].shape == (0,)
        assert out["tokens"].shape[0] == 0
    out = model.signatures["caption_pixels"](images=tf.zeros([0, 32, 32, 3], tf.uint8))
    assert out["caption"].shape == (0,)
    assert model.signatures["embed_image"](image_bytes=no_bytes)["embedding"].shape[0] == 0
