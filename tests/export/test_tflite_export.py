"""LiteRT export: builtin ops only, parity with the Keras generator, quantization, files."""

import json
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert import schema_py_generated as schema
from captioner_runs import shared_tiny_run
from export_checks import assert_readable_by_others

from xmodal_keras.data.image_preprocessing import load_image
from xmodal_keras.data.text_tokenizer import CaptionTokenizer
from xmodal_keras.decoding import CaptionGenerator
from xmodal_keras.export import tflite_export
from xmodal_keras.export.tflite_captioner import (
    TFLiteCaptioner,
    caption_tflite_files,
    is_tflite_export,
)
from xmodal_keras.export.tflite_flatbuffer import read_model_t
from xmodal_keras.export.tflite_int8 import _code
from xmodal_keras.export.tflite_ops import count_tensor_types, list_tflite_ops, non_builtin_ops
from xmodal_keras.models import build_lstm_captioner, build_transformer_captioner
from xmodal_keras.models.captioner_parts import CAPTION_DECODER_NAME
from xmodal_keras.tasks.captioning.export import export_tflite
from xmodal_keras.tasks.captioning.predict import load_captioner

pytestmark = pytest.mark.filterwarnings(
    # The converter's int8 calibration and our reference loop construct interpreters.
    r"ignore:\s*Warning. tf.lite.Interpreter is deprecated:UserWarning"
)


@pytest.fixture(scope="module")
def gru_run(tiny_shapes_dir, tmp_path_factory):
    return shared_tiny_run(tiny_shapes_dir, tmp_path_factory)[0]


@pytest.fixture(scope="module")
def test_images(tiny_shapes_dir):
    """Four test-split images, read as training reads them."""
    names = (tiny_shapes_dir / "Flickr_8k.testImages.txt").read_text().split()[:4]
    return np.stack([load_image(str(tiny_shapes_dir / "Images" / n), (32, 32)) for n in names])


@pytest.fixture(scope="module")
def gru_generator(gru_run):
    model, tokenizer, _ = load_captioner(gru_run)
    return CaptionGenerator(model, tokenizer)


@pytest.fixture(scope="module")
def gru_export(gru_run, tmp_path_factory):
    return export_tflite(gru_run, tmp_path_factory.mktemp("export"))


def _tiny_transformer() -> tuple[keras.Model, CaptionTokenizer]:
    """An untrained tiny Transformer captioner (32x32 images, 8 tokens) and its tokenizer."""
    keras.utils.set_random_seed(3)
    tokenizer = CaptionTokenizer.from_captions(
        ["a red circle left of a blue square", "a green triangle above a star"], sequence_length=8
    )
    model = build_transformer_captioner(
        vocabulary_size=tokenizer.vocabulary_size,
        sequence_length=8,
        image_shape=(32, 32, 3),
        encoder_kwargs={"hidden_dim": 8},
        hidden_dim=8,
        num_heads=2,
        num_layers=2,
    )
    return model, tokenizer


@pytest.fixture(scope="module")
def transformer_generator():
    """An untrained tiny Transformer whose output layer is scaled up so that the greedy
    tokens differ between images (a parity test on constant captions proves little)."""
    model, tokenizer = _tiny_transformer()
    dense = model.get_layer(CAPTION_DECODER_NAME).logits_dense
    dense.kernel.assign(dense.kernel * 8.0)
    return CaptionGenerator(model, tokenizer)


@pytest.fixture(scope="module")
def lstm_generator():
    """An untrained tiny Show-and-Tell LSTM, its image projection and output layer scaled
    up so that the greedy tokens differ between images."""
    keras.utils.set_random_seed(3)
    tokenizer = CaptionTokenizer.from_captions(
        ["a red circle left of a blue square", "a green triangle above a star"], sequence_length=8
    )
    model = build_lstm_captioner(
        vocabulary_size=tokenizer.vocabulary_size,
        sequence_length=8,
        image_shape=(32, 32, 3),
        encoder_kwargs={"hidden_dim": 8},
        embedding_dim=8,
        hidden_dim=8,
    )
    decoder = model.get_layer(CAPTION_DECODER_NAME)
    for dense in (decoder.image_embedding_dense, decoder.logits_dense):
        dense.kernel.assign(dense.kernel * 8.0)
    return CaptionGenerator(model, tokenizer)


def _keras_greedy(generator, images):
    out = generator.generate(images)
    return out["tokens"].numpy(), out["scores"].numpy(), [t.decode() for t in out["text"].numpy()]


def _check_parity(path, generator, images):
    captioner = TFLiteCaptioner(path)
    tokens, scores, texts = _keras_greedy(generator, images)
    result = captioner.caption_images(images)
    np.testing.assert_array_equal(np.stack(result["tokens"]), tokens)
    np.testing.assert_allclose(result["scores"], scores, rtol=1e-4, atol=1e-4)
    assert result["text"] == texts
    # The app's loop (encode + decode_step, driven from Python) == the in-model loop.
    for image, expected in zip(images, tokens, strict=True):
        loop_tokens, loop_score = captioner.caption_with_steps(image)
        np.testing.assert_array_equal(loop_tokens, expected)
        assert loop_score == pytest.approx(captioner.caption_image(image)[1], abs=1e-4)


def test_gru_export_files_metadata_and_builtin_ops(gru_export, gru_generator, gru_run):
    assert gru_export.name == f"{gru_run.path.name}_tflite"
    assert sorted(p.name for p in gru_export.iterdir()) == [
        "metadata.json",
        "model.tflite",
        "vocab.txt",
    ]
    assert is_tflite_export(gru_export)
    assert_readable_by_others(gru_export)
    assert non_builtin_ops(gru_export / "model.tflite") == []
    ops = list_tflite_ops(gru_export / "model.tflite")
    assert ops["WHILE"] == 1 and "ARG_MAX" in ops

    metadata = json.loads((gru_export / "metadata.json").read_text())
    tokenizer = gru_generator.tokenizer
    assert metadata["image"]["shape"] == [1, 32, 32, 3]
    assert metadata["image"]["dtype"] == "uint8"
    assert metadata["image"]["value_range"] == [0, 255]
    assert metadata["special_tokens"] == {"<pad>": 0, "<unk>": 1, "<start>": 2, "<end>": 3}
    assert (metadata["start_id"], metadata["end_id"]) == (2, 3)
    assert metadata["max_length"] == gru_generator.max_length
    assert metadata["vocabulary_size"] == tokenizer.vocabulary_size
    assert metadata["quantization"] == "none"
    assert metadata["decoder"] == "GRUCaptionDecoder"
    assert metadata["source"] == str(gru_run.path)
    assert metadata["state_names"] == ["state_grid", "state_hidden"]
    assert metadata["ops"] == sorted(ops)
    signatures = metadata["signatures"]
    assert sorted(signatures) == ["caption", "decode_step", "encode"]
    assert signatures["caption"]["inputs"] == {"image": {"shape": [1, 32, 32, 3], "dtype": "uint8"}}
    assert signatures["caption"]["outputs"] == {
        "score": {"shape": [1], "dtype": "float32"},
        "tokens": {"shape": [1, gru_generator.max_length], "dtype": "int32"},
    }
    step = signatures["decode_step"]
    assert sorted(step["inputs"]) == ["index", "state_grid", "state_hidden", "token"]
    assert step["inputs"]["token"] == step["inputs"]["index"] == {"shape": [1], "dtype": "int32"}
    assert step["outputs"]["logits"] == {
        "shape": [1, tokenizer.vocabulary_size],
        "dtype": "float32",
    }
    assert signatures["encode"]["outputs"] == {
        name: step["inputs"][name] for name in metadata["state_names"]
    }
    vocabulary = (gru_export / "vocab.txt").read_text().splitlines()
    assert vocabulary == tokenizer.get_vocabulary()


def test_gru_float32_tokens_equal_keras_greedy(gru_export, gru_generator, test_images):
    _check_parity(gru_export, gru_generator, test_images)


def test_transformer_export_is_builtin_and_equals_keras_greedy(
    transformer_generator, test_images, tmp_path
):
    tokens = _keras_greedy(transformer_generator, test_images)[0]
    assert len({tuple(row) for row in tokens}) > 1, "the test needs captions that differ"
    path = export_tflite(transformer_generator, tmp_path, name="transformer")
    assert non_builtin_ops(path / "model.tflite") == []
    metadata = json.loads((path / "metadata.json").read_text())
    assert metadata["decoder"] == "TransformerCaptionDecoder"
    assert len(metadata["state_names"]) > 2  # per-block key/value caches
    _check_parity(path, transformer_generator, test_images)


def test_lstm_export_is_builtin_and_equals_keras_greedy(lstm_generator, test_images, tmp_path):
    tokens = _keras_greedy(lstm_generator, test_images)[0]
    assert len({tuple(row) for row in tokens}) > 1, "the test needs captions that differ"
    path = export_tflite(lstm_generator, tmp_path, name="lstm")
    assert non_builtin_ops(path / "model.tflite") == []
    assert "WHILE" in list_tflite_ops(path / "model.tflite")
    metadata = json.loads((path / "metadata.json").read_text())
    assert metadata["decoder"] == "LSTMCaptionDecoder"
    assert metadata["state_names"] == ["state_cell", "state_hidden"]
    _check_parity(path, lstm_generator, test_images)


def test_float16_is_close_to_keras(gru_generator, test_images, tmp_path):
    path = export_tflite(gru_generator, tmp_path, name="f16", quantize="float16")
    assert non_builtin_ops(path / "model.tflite") == []
    assert "float16" in count_tensor_types(path / "model.tflite")
    tokens, scores, _ = _keras_greedy(gru_generator, test_images)
    result = TFLiteCaptioner(path).caption_images(test_images)
    agreement = np.mean(np.all(np.stack(result["tokens"]) == tokens, axis=1))
    assert agreement >= 0.75
    np.testing.assert_allclose(result["scores"], scores, rtol=0.05, atol=0.05)


def _steps_equal_caption(captioner, images):
    """The in-model loop (`caption`) == the app's loop over `encode` + `decode_step`."""
    for image in images:
        np.testing.assert_array_equal(captioner.caption_with_steps(image)[0],
                                      captioner.caption_image(image)[0])  # fmt: skip


def test_int8_calibrates_on_training_images_and_has_the_caption_loop(
    gru_run, test_images, tmp_path
):
    path = export_tflite(gru_run, tmp_path, name="int8", quantize="int8")
    model_file = path / "model.tflite"
    assert non_builtin_ops(model_file) == []
    assert "WHILE" in list_tflite_ops(model_file)
    types = count_tensor_types(model_file)
    assert types["int8"] > types["float32"]
    metadata = json.loads((path / "metadata.json").read_text())
    assert sorted(metadata["signatures"]) == ["caption", "decode_step", "encode"]
    # float32 at the interface, as in every variant
    assert metadata["signatures"]["caption"]["outputs"]["score"]["dtype"] == "float32"
    assert {v["dtype"] for v in metadata["signatures"]["encode"]["outputs"].values()} == {"float32"}
    sizes = metadata["size"]
    assert sizes["weights"] + sizes["scales"] + sizes["structure"] == model_file.stat().st_size
    assert max(sizes["weights_by_dtype"], key=sizes["weights_by_dtype"].get) == "int8"
    captioner = TFLiteCaptioner(path, num_threads=1)
    result = captioner.caption_images(test_images)
    vocabulary_size = metadata["vocabulary_size"]
    for tokens, text in zip(result["tokens"], result["text"], strict=True):
        assert tokens.shape == (metadata["max_length"],)
        assert np.all((tokens >= 0) & (tokens < vocabulary_size))
        assert all(word in captioner.vocabulary for word in text.split())
    _steps_equal_caption(captioner, test_images)


def test_int8_transformer_caption_loop_equals_its_steps(
    transformer_generator, test_images, tmp_path
):
    """The KV-cache loop: `caption` takes `decode_step`'s int8 ranges, so the two loops
    agree token for token (calibrated apart, they agreed on 6 of 16 images of an
    untrained demo-size Transformer)."""
    path = export_tflite(transformer_generator, tmp_path, name="t8", quantize="int8",
                         representative_images=test_images)  # fmt: skip
    assert non_builtin_ops(path / "model.tflite") == []
    captioner = TFLiteCaptioner(path)
    tokens = np.stack(captioner.caption_images(test_images)["tokens"])
    assert len({tuple(row) for row in tokens}) > 1, "the test needs captions that differ"
    _steps_equal_caption(captioner, test_images)


def test_int8_caption_survives_attention_scores_outside_the_calibrated_ranges(tmp_path):
    """Query weights scaled up and calibration on a flat grey image: other images' score
    rows fall below the calibrated ranges. The clipped row max used to round every
    attention weight to 0, and LiteRT's DIV kernel raised on the zero divisor (all 3
    images here, and 1 of the demo captioner's 100 val images)."""
    model, tokenizer = _tiny_transformer()
    for weight in model.get_layer(CAPTION_DECODER_NAME).weights:
        if weight.path.endswith("query/kernel"):
            weight.assign(weight * 40.0)
    grey = np.full((2, 32, 32, 3), 128, np.uint8)
    path = export_tflite(CaptionGenerator(model, tokenizer), tmp_path, name="t8",
                         quantize="int8", representative_images=grey)  # fmt: skip
    noise = np.random.default_rng(0).integers(0, 256, (32, 32, 3), np.uint8)
    images = np.stack([np.zeros_like(noise), np.full_like(noise, 255), noise])
    result = TFLiteCaptioner(path).caption_images(images)  # raised RuntimeError (DIV)
    assert len(result["tokens"]) == 3 and np.all(np.isfinite(result["scores"]))


def _widest_activation_range(model_file) -> float:
    """The widest value range of any quantized activation (a tensor without weights)."""
    model = read_model_t(pathlib.Path(model_file).read_bytes())
    widest = 0.0
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            has_weights = model.buffers[tensor.buffer].data is not None
            scales = tensor.quantization.scale if tensor.quantization is not None else None
            if has_weights or scales is None or len(scales) == 0:
                continue
            levels = 255 if tensor.type == schema.TensorType.INT8 else 65535
            widest = max(widest, float(np.max(scales)) * levels)
    return widest


@pytest.mark.parametrize("quantize", ["int8", "int16x8"])
def test_full_integer_transformer_keeps_its_scores_and_agrees_with_float(
    quantize, transformer_generator, tiny_shapes_dir, tmp_path
):
    """A masked cache position used to score -1e9: that stretched the scores' one int8
    range to 2e9, every real score quantized to the same value, and int8 captions of the
    demo captioner equalled float on 2 % of its test images (64 % after the fix)."""
    names = (tiny_shapes_dir / "Flickr_8k.testImages.txt").read_text().split()[:12]
    images = np.stack([load_image(str(tiny_shapes_dir / "Images" / n), (32, 32)) for n in names])
    float_path = export_tflite(transformer_generator, tmp_path, name="f32")
    path = export_tflite(transformer_generator, tmp_path, name=quantize, quantize=quantize,
                         representative_images=images)  # fmt: skip
    assert _widest_activation_range(path / "model.tflite") < 1000
    expected = np.stack(TFLiteCaptioner(float_path).caption_images(images)["tokens"])
    tokens = np.stack(TFLiteCaptioner(path).caption_images(images)["tokens"])
    assert len({tuple(row) for row in expected}) > 1, "the test needs captions that differ"
    # Token agreement measured on these 12 images: int8 0.56 (6 of 12 whole captions: a
    # random model's top logits are close), int16x8 1.0 (its word projection keeps float16
    # weights). On the trained demo and digits captioners (benchmarks/tflite.py, val split)
    # whole captions agree on 72 % / 62 % (int8) and 96 % / 96 % (int16x8).
    assert np.mean(tokens == expected) >= {"int8": 0.4, "int16x8": 0.9}[quantize]


@pytest.mark.parametrize("quantize", ["none", "float16", "dynamic", "int8", "int16x8"])
def test_every_variant_has_the_three_signatures(quantize, gru_generator, test_images, tmp_path):
    path = export_tflite(gru_generator, tmp_path, name=quantize, quantize=quantize,
                         representative_images=test_images)  # fmt: skip
    captioner = TFLiteCaptioner(path)  # raises when a signature is missing
    assert sorted(captioner.interpreter.get_signature_list()) == [
        "caption",
        "decode_step",
        "encode",
    ]
    tokens, score = captioner.caption_image(test_images[0])
    assert tokens.shape == (gru_generator.max_length,) and np.isfinite(score)
    sizes = json.loads((path / "metadata.json").read_text())["size"]
    assert sizes["file"] == (path / "model.tflite").stat().st_size
    if quantize in ("int8", "int16x8"):
        # The word projection (read by ARG_MAX / LOG_SOFTMAX) keeps float16 weights in
        # `decode_step` and in the loop; every other FULLY_CONNECTED has int8 weights.
        word, other = _fully_connected_weight_types(path / "model.tflite")
        assert word == [schema.TensorType.FLOAT16] * 2
        assert set(other) == {schema.TensorType.INT8}


def _fully_connected_weight_types(model_file) -> tuple[list, list]:
    """Weight dtypes of the word projections and of the other FULLY_CONNECTED ops."""
    model = read_model_t(pathlib.Path(model_file).read_bytes())
    word, other = [], []
    readers = {schema.BuiltinOperator.ARG_MAX, schema.BuiltinOperator.LOG_SOFTMAX}
    for subgraph in model.subgraphs:
        read = {t for op in subgraph.operators if _code(model, op) in readers for t in op.inputs}
        producer = {t: op for op in subgraph.operators for t in op.outputs}
        for op in subgraph.operators:
            if _code(model, op) != schema.BuiltinOperator.FULLY_CONNECTED:
                continue
            weight = op.inputs[1]
            if weight in producer:  # float16 weights pass through a DEQUANTIZE
                weight = producer[weight].inputs[0]
            kind = word if any(t in read for t in op.outputs) else other
            kind.append(subgraph.tensors[weight].type)
    return word, other


def test_a_file_without_the_caption_signature_is_refused(gru_export, gru_generator, tmp_path):
    """An int8 file written before int8 had the loop (encode + decode_step only)."""
    module = tflite_export.CaptionerTFLiteModule(gru_generator)
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        module.concrete_functions(["encode", "decode_step"]), module
    )
    old = tmp_path / "old_tflite"
    old.mkdir()
    for name in ("metadata.json", "vocab.txt"):
        (old / name).write_bytes((gru_export / name).read_bytes())
    (old / "model.tflite").write_bytes(converter.convert())
    with pytest.raises(ValueError, match=r"lacks the signature\(s\) \['caption'\]"):
        TFLiteCaptioner(old)


@pytest.mark.slow
def test_dynamic_range_export_runs(gru_generator, test_images, tmp_path):
    path = export_tflite(gru_generator, tmp_path, name="dynamic", quantize="dynamic")
    assert non_builtin_ops(path / "model.tflite") == []
    result = TFLiteCaptioner(path).caption_images(test_images)
    assert len(result["text"]) == len(test_images)


def test_a_failed_export_leaves_no_folder(gru_generator, tmp_path, monkeypatch):
    def broken(path):
        raise OSError("disk full")

    monkeypatch.setattr(gru_generator.tokenizer, "save_vocabulary", broken)
    with pytest.raises(OSError, match="disk full"):
        export_tflite(gru_generator, tmp_path, name="broken")
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments_are_clear_errors(gru_generator, gru_export, tmp_path):
    with pytest.raises(ValueError, match=r"`quantize` must be one of .*Received: quantize='int4'"):
        export_tflite(gru_generator, tmp_path, quantize="int4")
    with pytest.raises(ValueError, match="needs `representative_images`"):
        export_tflite(gru_generator.model, tmp_path, tokenizer=gru_generator.tokenizer,
                      quantize="int8")  # fmt: skip
    with pytest.raises(ValueError, match="needs its `tokenizer`"):
        export_tflite(gru_generator.model, tmp_path)
    with pytest.raises(FileExistsError, match="Refusing to overwrite"):
        export_tflite(gru_generator, gru_export.parent, name=gru_export.name[: -len("_tflite")])
    with pytest.raises(FileNotFoundError, match="No TFLite captioner at"):
        TFLiteCaptioner(tmp_path)


def test_op_listing_finds_flex_ops():
    function = tf.function(
        tf.autograph.experimental.do_not_convert(lambda x: tf.bitwise.bitwise_and(x, 3)),
        input_signature=[tf.TensorSpec([2], tf.int32)],
    )
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()])
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS,
        tf.lite.OpsSet.SELECT_TF_OPS,
    ]
    flatbuffer = converter.convert()
    assert non_builtin_ops(flatbuffer) == ["CUSTOM:FlexBitwiseAnd"]
    with pytest.raises(ValueError, match="Not a TFLite flatbuffer"):
        list_tflite_ops(b"not a model at all")


def test_state_names_follow_tf_nest_order():
    state = {"self_keys": [1, 2], "grid": 0, "cross_keys": [3]}
    names = tflite_export.state_names(state)
    assert names == ["state_cross_keys_0", "state_grid", "state_self_keys_0", "state_self_keys_1"]
    assert tf.nest.flatten(state) == [3, 0, 1, 2]


def test_caption_tflite_files_reads_like_training(gru_export, gru_generator, tiny_shapes_dir):
    paths = sorted((tiny_shapes_dir / "Images").glob("*.png"))[:2]
    results = caption_tflite_files(gru_export, paths)
    images = np.stack([load_image(str(p), (32, 32)) for p in paths])
    texts = _keras_greedy(gru_generator, images)[2]
    assert [r["path"] for r in results] == [str(p) for p in paths]
    assert [r["caption"] for r in results] == texts
    with pytest.raises(FileNotFoundError, match="Image file.s. not found: /no/such.png"):
        caption_tflite_files(gru_export, ["/no/such.png"])


def test_tflite_caption_reports_bad_files_and_captions_the_rest(
    gru_export, tiny_shapes_dir, tmp_path, capsys
):
    from xmodal_keras.cli import main

    good = str(sorted((tiny_shapes_dir / "Images").glob("*.png"))[0])
    bomb = bytearray(pathlib.Path(good).read_bytes())
    bomb[16:24] = (20_000).to_bytes(4, "big") * 2  # the header claims 400 megapixels
    (tmp_path / "bomb.png").write_bytes(bytes(bomb))
    (tmp_path / "cut.png").write_bytes(pathlib.Path(good).read_bytes()[:100])
    paths = [good, str(tmp_path / "bomb.png"), str(tmp_path / "cut.png")]
    results = caption_tflite_files(gru_export, paths)
    assert results[0]["caption"] == caption_tflite_files(gru_export, [good])[0]["caption"]
    assert results[0]["error"] is None
    assert "header says 20000 x 20000 pixels" in results[1]["error"]
    assert results[2]["caption"] is None and results[2]["error"]
    assert main(["caption", str(gru_export), *paths]) == 1
    printed = capsys.readouterr()
    assert printed.out.splitlines() == [f"{good}: {results[0]['caption']}"]
    errors = printed.err.splitlines()
    assert errors[0].startswith(f"{paths[1]}: cannot caption: image header says 20000 x 20000")
    assert errors[1].startswith(f"{paths[2]}: cannot caption: ")
    assert errors[2] == "2 of 3 image(s) could not be captioned"


def test_cli_tflite_export_prints_the_size_breakdown(gru_run, tmp_path, capsys):
    from xmodal_keras.cli import main

    assert main(["export", str(gru_run.path), "--format", "tflite", "--out", str(tmp_path)]) == 0
    size = (tmp_path / f"{gru_run.path.name}_tflite" / "model.tflite").stat().st_size
    lines = capsys.readouterr().out.splitlines()
    assert f"model.tflite: {size / 1e6:.3f} MB = weights " in "\n".join(lines)
    assert any(" + scales 0.000 + structure " in line for line in lines)


def test_cli_refuses_jit_compile_for_a_tflite_export(gru_run, tmp_path, capsys):
    """XLA is a SavedModel option; asking for it with tflite is an error, not a no-op."""
    from xmodal_keras.cli import main

    args = ["export", str(gru_run.path), "--format", "tflite", "--jit-compile"]
    assert main([*args, "--out", str(tmp_path)]) == 2
    assert "--jit-compile compiles a captioner SavedModel" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
