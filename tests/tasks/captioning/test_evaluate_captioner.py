"""evaluate_captioner / caption_image_files on a tiny trained run (shared, trained once)."""

import json
import pathlib
import shutil

import pytest
from captioner_runs import shared_tiny_run, untrained_run
from PIL import Image

from xmodal_keras.data import read_captions, read_scenes
from xmodal_keras.evaluation.scene_faithfulness import scene_faithfulness
from xmodal_keras.tasks.captioning.evaluate import evaluate_captioner, format_metrics_table
from xmodal_keras.tasks.captioning.predict import attention_map_paths, caption_image_files

FAST_METRICS = ("bleu", "rouge_l", "cider")  # no METEOR: its JVM start is paid in the CLI test


@pytest.fixture(scope="module")
def run(tiny_shapes_dir, tmp_path_factory):
    return shared_tiny_run(tiny_shapes_dir, tmp_path_factory)[0]


@pytest.fixture(scope="module")
def test_split(tiny_shapes_dir):
    frame = read_captions(tiny_shapes_dir)
    return frame[frame.split == "test"]


@pytest.fixture(scope="module")
def greedy(run):
    return evaluate_captioner(run.path, split="test", metrics=FAST_METRICS)


def test_greedy_evaluation_scores_every_test_image(run, test_split, tiny_shapes_dir, greedy):
    num_images = test_split.image_id.nunique()
    assert greedy["num_images"] == num_images
    assert {"bleu_4", "rouge_l", "cider", "scene_faithfulness"} <= set(greedy)
    assert 0.0 <= greedy["bleu_4"] <= 1.0 and 0.0 <= greedy["scene_faithfulness"] <= 1.0

    folder = run.path / "metrics" / "test_greedy"
    assert json.loads((folder / "metrics.json").read_text())["num_images"] == num_images
    rows = [json.loads(line) for line in (folder / "captions.jsonl").read_text().splitlines()]
    assert [row["image_id"] for row in rows] == sorted(test_split.image_id.unique())
    assert all(len(row["references"]) == 5 for row in rows)
    # Faithfulness is the share of the written captions true of their scene.
    captions = {row["image_id"]: row["generated"] for row in rows}
    expected = scene_faithfulness(read_scenes(tiny_shapes_dir), captions)
    assert greedy["scene_faithfulness"] == pytest.approx(expected)


def test_other_data_is_scored_into_its_own_folder(
    run, test_split, tiny_shapes_dir, tmp_path, greedy
):
    copy = shutil.copytree(tiny_shapes_dir, tmp_path / "copy")
    own = (run.path / "metrics" / "test_greedy" / "metrics.json").read_text()
    scores = evaluate_captioner(run, split="test", data=str(copy), metrics=FAST_METRICS)
    # The same images and captions elsewhere: the same captions and scores.
    assert {k: v for k, v in scores.items() if k != "seconds"} == pytest.approx(
        {k: v for k, v in greedy.items() if k != "seconds"}
    )
    written = run.path / "metrics" / "data_copy" / "test_greedy" / "captions.jsonl"
    assert len(written.read_text().splitlines()) == greedy["num_images"]
    assert (run.path / "metrics" / "test_greedy" / "metrics.json").read_text() == own
    broken = pathlib.Path(test_split.image_path.iloc[0]).name  # one the test split reads
    (copy / "Images" / broken).write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(ValueError, match=broken):
        evaluate_captioner(run, split="test", data=str(copy), metrics=FAST_METRICS)


def test_beam_evaluation_of_a_few_images(run):
    metrics = evaluate_captioner(run, beam_width=3, max_images=2, metrics=("bleu",))
    assert metrics["num_images"] == 2
    lines = (run.path / "metrics" / "test_beam3" / "captions.jsonl").read_text().splitlines()
    assert len(lines) == 2


def test_bad_arguments(run):
    with pytest.raises(ValueError, match="Received: split='dev'"):
        evaluate_captioner(run, split="dev")
    with pytest.raises(ValueError, match="max_images=0"):
        evaluate_captioner(run, max_images=0)
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        evaluate_captioner(run.path / "nothing")


def test_caption_files_match_evaluation_and_draw_attention(run, test_split, tmp_path, greedy):
    rows = (run.path / "metrics" / "test_greedy" / "captions.jsonl").read_text().splitlines()
    first_two = [json.loads(line) for line in rows[:2]]
    paths = [row["image_path"] for row in first_two]
    results = caption_image_files(run.path, paths, attention_map=tmp_path / "maps" / "a.png")
    assert [r["caption"] for r in results] == [row["generated"] for row in first_two]
    expected_maps = attention_map_paths(tmp_path / "maps" / "a.png", paths)
    for result, expected in zip(results, expected_maps, strict=True):
        assert result["attention_map"] == str(expected)
        with Image.open(expected) as picture:
            assert picture.format == "PNG"

    with pytest.raises(ValueError, match="greedy decoding only"):
        caption_image_files(run.path, paths, beam_width=2, attention_map=tmp_path / "b.png")
    with pytest.raises(FileNotFoundError, match="No such image file"):
        caption_image_files(run.path, [tmp_path / "missing.png"])


def test_caption_reports_each_unreadable_file_and_captions_the_rest(
    run, test_split, tmp_path, capsys
):
    from xmodal_keras.cli import main

    good = sorted(test_split.image_path.unique())[0]
    cut = tmp_path / "cut.png"
    data = pathlib.Path(good).read_bytes()
    cut.write_bytes(data[:100])
    bomb = bytearray(data)
    bomb[16:24] = (20_000).to_bytes(4, "big") * 2  # the header claims 400 megapixels
    (tmp_path / "bomb.png").write_bytes(bytes(bomb))
    paths = [str(cut), good, str(tmp_path / "bomb.png")]
    results = caption_image_files(run.path, paths)
    assert results[1]["caption"] == caption_image_files(run.path, [good])[0]["caption"]
    assert [r["error"] is None for r in results] == [False, True, False]
    assert "header says 20000 x 20000 pixels" in results[2]["error"]
    assert main(["caption", str(run.path), *paths]) == 1
    printed = capsys.readouterr()
    assert printed.out.splitlines() == [f"{good}: {results[1]['caption']}"]
    assert printed.err.splitlines()[0].startswith(f"{cut}: cannot caption: ")
    assert printed.err.splitlines()[-1] == "2 of 3 image(s) could not be captioned"


def test_an_lstm_run_evaluates_and_refuses_attention_maps(tiny_shapes_dir, test_split, tmp_path):
    """Show and Tell has no attention: captions and metrics work, maps are a clear error."""
    lstm = untrained_run(tiny_shapes_dir, tmp_path / "lstm", decoder="lstm")
    assert evaluate_captioner(lstm, max_images=2, metrics=("bleu",))["num_images"] == 2
    paths = sorted(test_split.image_path.unique())[:2]
    assert [r["path"] for r in caption_image_files(lstm.path, paths)] == paths
    with pytest.raises(ValueError, match="no attention maps.*decoder LSTMCaptionDecoder"):
        caption_image_files(lstm.path, paths, attention_map=tmp_path / "a.png")


def test_format_metrics_table_columns():
    table = format_metrics_table(
        {"greedy": {"bleu_4": 0.41, "meteor": float("nan")}, "beam 3": {"bleu_4": 0.4}}
    )
    assert table.splitlines() == [
        "metric  greedy  beam 3",
        "BLEU-4  0.410   0.400",
        "METEOR  n/a",
    ]
