"""A retrieval run written by xmodal_keras 0.1 (settings version 1: `sequence_length` was
the tokenizer's length, one less than the text tower's `token_ids`) still loads,
evaluates to the metrics it wrote, retrieves, resumes with the same flags and exports.
The fixture is a tiny run trained by that code (commit a4f5a0c), kept as it was written."""

import json

import numpy as np
import pytest
import tensorflow as tf
from old_runs import copied_old_run, old_run_path
from task_runs import retrieval_config

from xmodal_keras.models.dual_encoder import TEXT_TOWER_NAME
from xmodal_keras.runs.run_directory import RunDirectory
from xmodal_keras.tasks.retrieval.export import export_saved_model
from xmodal_keras.tasks.retrieval.retrieve import (
    evaluate_retrieval,
    load_dual_encoder_run,
    retrieve,
)
from xmodal_keras.tasks.retrieval.settings import RetrievalTrainConfig

OLD_RUN = old_run_path("retrieval")


@pytest.fixture(scope="module")
def old_run(tmp_path_factory) -> RunDirectory:
    return copied_old_run("retrieval", tmp_path_factory)


def test_old_sequence_length_reads_as_the_token_ids_length(old_run):
    written = json.loads((OLD_RUN / "config.json").read_text())
    assert "settings_version" not in written and written["sequence_length"] == 22
    model, tokenizer, config = load_dual_encoder_run(old_run)
    ids_length = model.get_layer(TEXT_TOWER_NAME).input.shape[1]
    assert config.sequence_length == ids_length == tokenizer.sequence_length + 1 == 23


def test_old_run_evaluates_to_the_metrics_it_wrote(old_run):
    scores = evaluate_retrieval(old_run, splits=("val",))["val"]
    written = json.loads((OLD_RUN / "metrics" / "val_retrieval" / "metrics.json").read_text())
    assert scores == pytest.approx(written)


def test_old_run_retrieves_and_resumes_with_the_flags_it_was_trained_with(old_run):
    matches = retrieve(old_run, query_text="a red circle", k=2)
    assert [match["rank"] for match in matches] == [1, 2]
    # The same command today: the default sequence_length (23) is the old default (22) + 1.
    same = retrieval_config("shapes", shapes_num_images=40, shapes_image_size=32)
    assert same.resolved().for_run(old_run) == RetrievalTrainConfig.from_dict(old_run.read_config())


def test_old_run_exports_embed_text_like_the_text_tower(old_run, tmp_path):
    version = export_saved_model(old_run, base_dir=tmp_path, name="old", version=1)
    embed_text = tf.saved_model.load(str(version)).signatures["embed_text"]
    served = embed_text(text=tf.constant(["a red circle"]))["embedding"]
    model, tokenizer, _ = load_dual_encoder_run(old_run)
    expected = model.get_layer(TEXT_TOWER_NAME)(tokenizer(tf.constant(["a red circle"])))
    np.testing.assert_allclose(served, expected, atol=1e-5)
