"""train_retrieval: a tiny run end to end, its run directory, metrics, index and retrieve."""

import dataclasses
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from task_runs import retrieval_config as tiny_config
from task_runs import shared_retrieval_config, shared_retrieval_run

from xmodal_keras.cli import main
from xmodal_keras.evaluation.retrieval_index import RetrievalIndex
from xmodal_keras.runs.run_directory import RunDirectory
from xmodal_keras.tasks.retrieval.retrieve import (
    evaluate_retrieval,
    format_matches,
    load_dual_encoder_run,
    retrieval_metrics_path,
    retrieve,
)
from xmodal_keras.tasks.retrieval.settings import INDEX_FILE, RetrievalTrainConfig
from xmodal_keras.tasks.retrieval.train import train_retrieval


@pytest.fixture(scope="module")
def tiny_run(tiny_shapes_dir, tmp_path_factory):
    """The session's tiny retrieval run (shared with the fusion `init_from` tests)."""
    return shared_retrieval_config(tiny_shapes_dir), shared_retrieval_run(
        tiny_shapes_dir, tmp_path_factory
    )


def test_run_directory_and_metrics(tiny_run, capsys, tiny_shapes_dir):
    config, run = tiny_run
    assert isinstance(run, RunDirectory)
    for path in (run.config_path, run.vocabulary_path, run.model_path, run.history_path):
        assert path.is_file(), path
    assert RetrievalTrainConfig.from_dict(json.loads(run.config_path.read_text())) == (
        config.resolved()
    )
    history = pd.read_csv(run.history_path)
    assert {"loss", "val_loss"} <= set(history.columns) and np.isfinite(history.loss[0])
    for split in ("val", "test"):
        metrics = json.loads(retrieval_metrics_path(run, split).read_text())
        for direction in ("image_to_text", "text_to_image"):
            recalls = [metrics[f"{direction}_recall@{k}"] for k in (1, 5, 10)]
            assert all(0.0 <= r <= 1.0 for r in recalls) and recalls == sorted(recalls)
        # 40 images: the test split is small, so recall@10 must see most of it.
        assert metrics["num_images"] >= 1 and metrics["num_captions"] == 5 * metrics["num_images"]
    index = RetrievalIndex.load(run.path / INDEX_FILE)
    assert index.image_embeddings.shape == (index.num_images, 8)
    np.testing.assert_allclose(np.linalg.norm(index.text_embeddings, axis=1), 1.0, rtol=1e-5)


def test_evaluate_scores_other_data_into_its_own_folder(
    tiny_run, tiny_shapes_dir, tmp_path, capsys
):
    _, run = tiny_run
    own = json.loads(retrieval_metrics_path(run, "test").read_text())
    copy = shutil.copytree(tiny_shapes_dir, tmp_path / "same images")
    scores = evaluate_retrieval(run.path, splits=("test",), data=str(copy))
    assert scores["test"] == pytest.approx(own)  # the same images and captions: same recall
    written = run.path / "metrics" / "data_same_images" / "test_retrieval" / "metrics.json"
    assert json.loads(written.read_text()) == pytest.approx(own)
    assert json.loads(retrieval_metrics_path(run, "test").read_text()) == own  # kept

    assert main(["evaluate", str(run.path), "--split", "test"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"test: R@1 i->t {own['image_to_text_recall@1']:.3f} ")
    assert main(["evaluate", str(run.path), "--beam", "2"]) == 2
    assert "--beam and --max-images are for captioner runs" in capsys.readouterr().err


def test_reloaded_model_embeds_like_the_index(tiny_run):
    _, run = tiny_run
    model, tokenizer, config = load_dual_encoder_run(run.path)
    index = RetrievalIndex.load(run.path / INDEX_FILE)
    ids = tokenizer(index.captions[:3])
    assert (
        ids.shape[1] == model.get_layer("text_tower").input.shape[1] == 21
    )  # the default sequence_length when the data is not the built-in shapes
    np.testing.assert_allclose(
        model.get_layer("text_tower")(ids), index.text_embeddings[:3], atol=1e-5
    )


def test_retrieve_text_and_image(tiny_run):
    _, run = tiny_run
    index = RetrievalIndex.load(run.path / INDEX_FILE)
    by_text = retrieve(run.path, query_text=index.captions[0], k=3)
    assert [m["rank"] for m in by_text] == [1, 2, 3]
    assert [m["score"] for m in by_text] == sorted((m["score"] for m in by_text), reverse=True)
    assert all(m["image_id"] in index.image_ids for m in by_text)
    by_image = retrieve(run.path, image_path=index.image_paths[0], k=4)
    assert len(by_image) == 4 and len({m["caption"] for m in by_image}) == 4
    assert all(m["caption"] in index.captions for m in by_image)
    text = format_matches(by_image)
    assert text.splitlines()[0].startswith(" 1. ") and by_image[0]["caption"] in text


def test_retrieve_errors(tiny_run, tmp_path):
    _, run = tiny_run
    with pytest.raises(ValueError, match="exactly one of"):
        retrieve(run.path)
    with pytest.raises(ValueError, match="exactly one of"):
        retrieve(run.path, query_text="a", image_path="b.png")
    with pytest.raises(ValueError, match="Received: k=0"):
        retrieve(run.path, query_text="a", k=0)
    with pytest.raises(FileNotFoundError, match="No such image file"):
        retrieve(run.path, image_path=tmp_path / "missing.png")
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        retrieve(tmp_path, query_text="a")


def test_resume_with_other_settings_is_refused(tiny_run):
    config, run = tiny_run
    with pytest.raises(ValueError, match="projection_dim: 8 -> 16"):
        train_retrieval(dataclasses.replace(config, projection_dim=16), run.path, verbose=0)


def test_a_run_written_before_newer_settings_still_resumes(tmp_path):
    config = tiny_config("shapes").resolved()
    run = RunDirectory(tmp_path / "old").create()
    old = config.to_config()
    del old["allow_outside_root"], old["encoder"]  # settings added after the first runs
    run.write_config(old)
    config.check_resumable(run)  # no error: they read as their defaults
    with pytest.raises(ValueError, match="encoder: 'small_cnn' -> 'residual_cnn'"):
        dataclasses.replace(config, encoder="residual_cnn").check_resumable(run)


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"text_encoder": "lstm"}, "text_encoder='lstm'"),
        ({"batch_size": 1}, "batch_size=1"),
        ({"index_split": "dev"}, "index_split='dev'"),
        ({"projection_dim": 0}, "projection_dim=0"),
    ],
)
def test_bad_settings(overrides, match):
    with pytest.raises(ValueError, match=f"Received: {match}"):
        tiny_config("shapes", **overrides)


def test_unknown_config_key():
    with pytest.raises(ValueError, match=r"Unknown retrieval settings \['bogus'\]"):
        RetrievalTrainConfig.from_dict({"bogus": 1})
