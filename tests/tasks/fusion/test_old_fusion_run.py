"""A fusion run written by xmodal_keras 0.1 (settings version 1: `sequence_length` was the
tokenizer's length, one less than the text encoder's `token_ids`) still loads, evaluates
to the metrics it wrote, resumes with the same flags and exports. The fixture is a tiny
image+text run trained by that code (commit a4f5a0c), kept as it was written."""

import json

import pytest
import tensorflow as tf
from old_runs import copied_old_run, old_run_path
from task_runs import fusion_config

from xmodal_keras.runs.run_directory import RunDirectory
from xmodal_keras.tasks.fusion.evaluate import evaluate_fusion, load_fusion_run
from xmodal_keras.tasks.fusion.export import export_saved_model
from xmodal_keras.tasks.fusion.settings import FusionTrainConfig

OLD_RUN = old_run_path("fusion")


@pytest.fixture(scope="module")
def old_run(tmp_path_factory) -> RunDirectory:
    return copied_old_run("fusion", tmp_path_factory)


def test_old_sequence_length_reads_as_the_token_ids_length(old_run):
    written = json.loads((OLD_RUN / "config.json").read_text())
    assert "settings_version" not in written and written["sequence_length"] == 16
    model, tokenizer, config = load_fusion_run(old_run)
    assert config.sequence_length == model.input["token_ids"].shape[1] == 17
    assert tokenizer.sequence_length + 1 == 17


def test_old_run_evaluates_to_the_metrics_it_wrote_and_resumes(old_run):
    scores = evaluate_fusion(old_run, splits=("val",))["val"]
    written = json.loads((OLD_RUN / "metrics" / "val_classification" / "metrics.json").read_text())
    assert scores["accuracy"] == written["accuracy"] and scores["auroc"] == written["auroc"]
    same = fusion_config(
        "shapes-verify", shapes_num_images=40, shapes_image_size=32, baselines=False
    )
    assert same.resolved().for_run(old_run) == FusionTrainConfig.from_dict(old_run.read_config())


def test_old_run_exports_a_classify_signature(old_run, tmp_path):
    version = export_saved_model(old_run, base_dir=tmp_path, name="old", version=1)
    classify = tf.saved_model.load(str(version)).signatures["classify"]
    assert set(classify.structured_input_signature[1]) == {"image_bytes", "text"}
