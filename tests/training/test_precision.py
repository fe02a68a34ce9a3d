"""`precision="auto"`: bfloat16 where the CPU has AMX units, float32 elsewhere; resumed
runs keep what they started with."""

import shutil

import pytest
from captioner_runs import shared_tiny_run, tiny_config

from xmodal_keras.runs.run_directory import RunDirectory
from xmodal_keras.tasks.captioning.settings import CaptionerTrainConfig
from xmodal_keras.tasks.captioning.train import train_captioner
from xmodal_keras.training import precision


@pytest.fixture
def amx_machine(monkeypatch):
    """Pretend this is a CPU machine with AMX bfloat16 units."""
    monkeypatch.setattr(precision, "_auto_precision", lambda: "mixed_bfloat16")


def test_auto_is_bfloat16_only_on_cpus_with_amx_units():
    amx = frozenset({"avx2", "avx512f", "amx_bf16", "amx_tile"})
    assert precision.pick_precision(amx, has_gpu=False) == "mixed_bfloat16"
    assert precision.pick_precision(amx, has_gpu=True) == "float32"
    # bfloat16 instructions without AMX units: not measured, so not picked.
    assert precision.pick_precision(frozenset({"avx512_bf16"}), has_gpu=False) == "float32"
    assert precision.resolve_precision("auto") in ("float32", "mixed_bfloat16")
    assert precision.resolve_precision("mixed_float16") == "mixed_float16"
    with pytest.raises(ValueError, match="Received: precision='bfloat16'"):
        precision.resolve_precision("bfloat16")


def test_the_flags_come_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: x\nflags\t\t: fpu sse2 amx_bf16\n\n")
    assert precision.cpu_flags(info) == {"fpu", "sse2", "amx_bf16"}
    assert precision.cpu_flags(tmp_path / "missing") == frozenset()


def test_auto_is_written_as_what_it_picked(amx_machine):
    assert CaptionerTrainConfig().resolved().precision == "mixed_bfloat16"
    assert CaptionerTrainConfig(precision="float32").resolved().precision == "float32"


def test_a_resumed_run_keeps_its_precision(
    tiny_shapes_dir, tmp_path, tmp_path_factory, capsys, monkeypatch
):
    # A finished float32 run of 1 epoch: the session's shared run, copied (it is extended).
    shared, _ = shared_tiny_run(tiny_shapes_dir, tmp_path_factory)
    out = shutil.copytree(shared.path, tmp_path / "run")
    assert RunDirectory(out).read_config()["precision"] == "float32"
    # "auto" would now pick bfloat16: the run keeps float32.
    monkeypatch.setattr(precision, "_auto_precision", lambda: "mixed_bfloat16")
    capsys.readouterr()
    train_captioner(tiny_config(tiny_shapes_dir, precision="auto", epochs=2), out, verbose=0)
    printed = capsys.readouterr().out
    assert "precision float32" in printed and "trained 2 epochs (1 restored" in printed
    assert RunDirectory(out).read_config()["precision"] == "float32"


def _mixed_layers(model) -> set[str]:
    layers = model._flatten_layers(include_self=False, recursive=True)
    return {layer.name for layer in layers if layer.dtype_policy.name == "mixed_bfloat16"}


def test_retrieval_trains_in_bfloat16_and_exports_float32_embeddings(tiny_shapes_dir, tmp_path):
    import numpy as np
    import tensorflow as tf
    from task_runs import retrieval_config

    from xmodal_keras.export.float32_model import float32_copy
    from xmodal_keras.tasks.retrieval.export import export_saved_model
    from xmodal_keras.tasks.retrieval.retrieve import load_dual_encoder_run
    from xmodal_keras.tasks.retrieval.train import train_retrieval

    config = retrieval_config(tiny_shapes_dir, precision="mixed_bfloat16", jit_compile=True)
    run = train_retrieval(config, tmp_path / "run", verbose=0)
    model, tokenizer, loaded = load_dual_encoder_run(run)
    assert loaded.precision == "mixed_bfloat16" and loaded.jit_compile
    assert {"block1_conv", "bigru_0"} <= _mixed_layers(model)  # both towers
    assert model.output.dtype == "float32"  # the logits the loss reads

    version = export_saved_model(run.path, base_dir=tmp_path / "serving")
    texts = ["a red circle", "a blue square"]
    served = tf.saved_model.load(str(version)).signatures["embed_text"](text=tf.constant(texts))
    twin = float32_copy(model).get_layer("text_tower")
    np.testing.assert_allclose(served["embedding"], twin(tokenizer(texts)), atol=1e-5)


def test_fusion_trains_in_bfloat16_and_exports_to_litert(tiny_shapes_dir, tmp_path):
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter
    from task_runs import fusion_config

    from xmodal_keras.export.float32_model import float32_copy
    from xmodal_keras.export.fusion_tflite_export import export_fusion_classifier_tflite
    from xmodal_keras.export.tflite_ops import non_builtin_ops
    from xmodal_keras.tasks.fusion.evaluate import load_fusion_run
    from xmodal_keras.tasks.fusion.train import train_fusion

    config = fusion_config(tiny_shapes_dir, precision="mixed_bfloat16", baselines=False)
    run = train_fusion(config, tmp_path / "run", verbose=0)
    model, tokenizer, loaded = load_fusion_run(run)
    assert loaded.precision == "mixed_bfloat16" and _mixed_layers(model)
    assert model.get_layer("probabilities").dtype_policy.name == "float32"

    path = export_fusion_classifier_tflite(model, tmp_path, name="fusion", tokenizer=tokenizer)
    assert non_builtin_ops(path / "model.tflite") == []
    runner = Interpreter(model_path=str(path / "model.tflite")).get_signature_runner("classify")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (1, 32, 32, 3)).astype("uint8")
    token_ids = tokenizer(["a red circle"]).numpy()
    expected = float32_copy(model)({"images": images, "token_ids": token_ids}).numpy()
    got = runner(images=images, token_ids=token_ids)["probabilities"]
    np.testing.assert_allclose(got, expected, atol=1e-5)
