"""train_fusion: a tiny run end to end, with baselines, metrics files and resume."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from captioner_runs import untrained_run
from task_runs import fusion_config as tiny_config
from task_runs import shared_retrieval_run

from xmodal_keras.runs.run_directory import RunDirectory
from xmodal_keras.tasks.fusion.data import balanced_class_weight, make_fusion_dataset
from xmodal_keras.tasks.fusion.evaluate import (
    COMPARISON_FILE,
    FIT_FILE,
    classification_metrics_dir,
    evaluate_fusion,
    is_fusion_run,
    load_fusion_run,
)
from xmodal_keras.tasks.fusion.settings import FusionTrainConfig
from xmodal_keras.tasks.fusion.train import BASELINES_DIR, train_fusion

METRIC_KEYS = {"accuracy", "macro_f1", "auroc", "confusion_matrix", "num_examples", "num_classes"}


@pytest.fixture(scope="module")
def tiny_run(tiny_shapes_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("fusion") / "run"
    config = tiny_config(tiny_shapes_dir, fusion="gated")
    return config, train_fusion(config, out, verbose=0)


def test_run_directory_metrics_and_baselines(tiny_run):
    config, run = tiny_run
    assert isinstance(run, RunDirectory) and is_fusion_run(run)
    for path in (run.config_path, run.vocabulary_path, run.model_path, run.history_path):
        assert path.is_file(), path
    assert FusionTrainConfig.from_dict(json.loads(run.config_path.read_text())) == (
        config.resolved()
    )
    history = pd.read_csv(run.history_path)
    assert {"loss", "accuracy", "auroc", "val_loss", "val_accuracy"} <= set(history.columns)
    for split in ("val", "test"):
        folder = classification_metrics_dir(run, split)
        metrics = json.loads((folder / "metrics.json").read_text())
        assert METRIC_KEYS <= set(metrics)
        assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["num_classes"] == 2
        assert np.sum(metrics["confusion_matrix"]) == metrics["num_examples"] > 0
        assert (folder / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    fit = json.loads((run.metrics_dir / FIT_FILE).read_text())
    assert fit["params"] > 0 and fit["train_pairs_per_second"] > 0 and fit["epochs_run"] == 1
    comparison = json.loads((run.metrics_dir / COMPARISON_FILE).read_text())
    assert set(comparison) == {"val", "test"}
    assert set(comparison["test"]) == {"fusion", "image_only", "text_only"}
    for name, modalities in (("image_only", ["image"]), ("text_only", ["text"])):
        baseline = RunDirectory(run.path / BASELINES_DIR / name)
        assert baseline.read_config()["modalities"] == modalities
        model, _, _ = load_fusion_run(baseline)
        assert list(model.input) == [{"image": "images", "text": "token_ids"}[modalities[0]]]
        assert comparison["test"][name]["params"] < comparison["test"]["fusion"]["params"]


def test_reloaded_model_reproduces_the_metrics(tiny_run):
    _, run = tiny_run
    before = json.loads((classification_metrics_dir(run, "test") / "metrics.json").read_text())
    model, tokenizer, config = load_fusion_run(run.path)
    assert set(model.input) == {"images", "token_ids"}
    assert (
        model.input["token_ids"].shape[1] == config.sequence_length == 41
    )  # a data path: 40 words
    after = evaluate_fusion(run.path, splits=("test",))["test"]
    assert after["confusion_matrix"] == before["confusion_matrix"]
    assert after["auroc"] == pytest.approx(before["auroc"], abs=1e-6)


def test_resume_extends_and_rejects_other_settings(tiny_run, capsys):
    config, run = tiny_run
    with pytest.raises(ValueError, match=r"other settings.*fusion: 'gated' -> 'concat'"):
        train_fusion(dataclasses.replace(config, fusion="concat"), run.path, verbose=0)
    capsys.readouterr()
    train_fusion(dataclasses.replace(config, epochs=2), run.path, verbose=0)
    history = pd.read_csv(run.history_path)
    assert history.epoch.tolist() == [0, 1]  # epoch 0 restored, only epoch 1 trained
    out = capsys.readouterr().out
    assert "image_only" in out and "text_only" in out  # the table, baselines reused
    assert out.count("trained ") == 1


def test_dataset_keeps_only_the_modalities_inputs(tiny_shapes_dir):
    from xmodal_keras.data.readers import read_pairs
    from xmodal_keras.data.text_tokenizer import CaptionTokenizer

    frame = read_pairs(tiny_shapes_dir)
    frame = frame[frame.split == "train"].head(4)
    tokenizer = CaptionTokenizer.from_captions(frame.text, sequence_length=6)
    inputs, labels = next(
        iter(make_fusion_dataset(frame, tokenizer, modalities=("text",), batch_size=4))
    )
    assert list(inputs) == ["token_ids"] and inputs["token_ids"].shape == (4, 7)
    assert sorted(labels.numpy().tolist()) == sorted(frame.label.tolist())


def test_config_validation_and_class_weight():
    with pytest.raises(ValueError, match=r"`modalities` must be distinct names .*'smell'"):
        FusionTrainConfig(modalities=("image", "smell"))
    with pytest.raises(ValueError, match="`fusion` must be one of"):
        FusionTrainConfig(fusion="sum")
    with pytest.raises(ValueError, match="Received: class_weight='auto'"):
        FusionTrainConfig(class_weight="auto")
    assert balanced_class_weight([0, 0, 0, 1], 2) == {0: 4 / 6, 1: 2.0}
    assert balanced_class_weight([0, 0], 3) == {0: 1 / 3, 1: 1.0, 2: 1.0}


@pytest.fixture(scope="module")
def tiny_retrieval_run(tiny_shapes_dir, tmp_path_factory):
    """The session's tiny retrieval run (its text tower 12 wide: not the fusion default)."""
    return shared_retrieval_run(tiny_shapes_dir, tmp_path_factory)


def test_init_from_starts_the_towers_from_the_dual_encoder(
    tiny_shapes_dir, tiny_retrieval_run, tmp_path
):
    from xmodal_keras.tasks.fusion.train import build_fusion_model_from_config
    from xmodal_keras.tasks.retrieval.retrieve import load_dual_encoder_run

    dual_encoder, tokenizer, source = load_dual_encoder_run(tiny_retrieval_run)
    config = tiny_config(
        tiny_shapes_dir, fusion="product", init_from=tiny_retrieval_run.path, baselines=False
    ).resolved()
    assert config.init_from == str(tiny_retrieval_run.path)
    assert (config.hidden_dim, config.sequence_length) == (12, source.resolved().sequence_length)
    model = build_fusion_model_from_config(config, tokenizer.vocabulary_size, 2, dual_encoder)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    token_ids = tokenizer(["a red circle", "a blue square", "there is a large star"])
    for modality, inputs in (("image", images), ("text", token_ids)):
        pooled = model.get_layer(f"{modality}_encoder")(inputs)["pooled"]
        projected = np.asarray(model.get_layer(f"{modality}_projection")(pooled))
        projected = projected / np.linalg.norm(projected, axis=-1, keepdims=True)
        expected = np.asarray(dual_encoder.get_layer(f"{modality}_tower")(inputs))
        np.testing.assert_allclose(projected, expected, atol=1e-5)

    run = train_fusion(dataclasses.replace(config, epochs=1), tmp_path / "run", verbose=0)
    written = FusionTrainConfig.from_dict(run.read_config())
    assert written == config and written.init_from == str(tiny_retrieval_run.path)
    assert run.vocabulary_path.read_text() == tiny_retrieval_run.vocabulary_path.read_text()
    fit = json.loads((run.metrics_dir / FIT_FILE).read_text())
    assert fit["vocabulary_coverage"] == 1.0 and fit["init_from"] == config.init_from
    model, _, _ = load_fusion_run(run)
    assert model.input["token_ids"].shape[1] == config.sequence_length


def test_init_from_rejects_a_run_it_cannot_start_from(tiny_run, tiny_shapes_dir, tmp_path):
    _, fusion_run = tiny_run
    expected = (
        r"`init_from` must be a finished retrieval run or Transformer captioner run .* "
        r"Received: init_from="
    )
    with pytest.raises(ValueError, match=expected + r".* is a fusion run"):
        FusionTrainConfig(init_from=fusion_run.path).resolved()
    with pytest.raises(ValueError, match=expected + r".* has no config.json"):
        train_fusion(FusionTrainConfig(init_from=tmp_path), tmp_path / "out", verbose=0)
    gru = untrained_run(tiny_shapes_dir, tmp_path / "gru", decoder="gru")
    with pytest.raises(ValueError, match=expected + r".* is a gru captioner run"):
        FusionTrainConfig(init_from=gru.path).resolved()


def test_init_from_a_transformer_captioner_run(tiny_shapes_dir, tmp_path):
    from xmodal_keras.tasks.captioning.predict import load_captioner
    from xmodal_keras.tasks.fusion.train import build_fusion_model_from_config

    source = untrained_run(tiny_shapes_dir, tmp_path / "captioner", decoder="transformer")
    captioner, _, source_config = load_captioner(source)
    config = tiny_config(
        tiny_shapes_dir, init_from=source.path, image_size=64, baselines=False
    ).resolved()
    assert (config.fusion, config.image_size) == ("cross_attention", source_config.image_size)
    assert config.sequence_length == source_config.sequence_length + 1 == 13
    run = train_fusion(config, tmp_path / "run", verbose=0)
    assert run.vocabulary_path.read_text() == source.vocabulary_path.read_text()
    model, tokenizer, written = load_fusion_run(run)
    assert written == config
    assert model.input["token_ids"].shape[1] == captioner.input["token_ids"].shape[1] + 1
    assert model.get_layer("captioner_text_reader").decoder.hidden_dim == 8
    # The baselines start from the same captioner layers (built here, not trained).
    for modalities, inputs in ((("text",), ["token_ids"]), (("image",), ["images"])):
        baseline = build_fusion_model_from_config(
            config.unimodal(modalities), tokenizer.vocabulary_size, 2, captioner
        )
        assert sorted(baseline.input) == inputs


def test_a_source_trained_on_other_shapes_data_is_warned_about(tiny_shapes_dir, tmp_path, capsys):
    from xmodal_keras.tasks.fusion.train import _warn_about_other_shapes_data

    source = untrained_run(tiny_shapes_dir, tmp_path / "captioner", decoder="transformer")
    source.write_config({**source.read_config(), "data": "shapes", "shapes_num_images": 300})
    same = FusionTrainConfig(init_from=source.path, shapes_num_images=300).resolved()
    _warn_about_other_shapes_data(same)
    assert capsys.readouterr().out == ""
    _warn_about_other_shapes_data(dataclasses.replace(same, shapes_num_images=200))
    printed = capsys.readouterr().out
    assert "trained on other shapes data ({'shapes_num_images': 300," in printed
    assert "its training images may be in this run's val and test splits" in printed
