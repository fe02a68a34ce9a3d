"""Each recipe's `main` runs end to end on tiny data in its real format (random weights,
tiny dims): Flickr8k layout (the shapes dataset is written in it) and COCO captions JSON."""

import importlib.util
import json
import pathlib

import pytest

RECIPES = pathlib.Path(__file__).parents[2] / "recipes"
TINY_FLAGS = [
    "--encoder", "small_cnn", "--weights", "none", "--trainable-blocks", "none",
    "--encoder-hidden-dim", "8", "--image-size", "32", "--hidden-dim", "8",
    "--epochs", "1", "--batch-size", "80", "--min-count", "1", "--max-eval-images", "3",
]  # fmt: skip


def load_recipe(name: str):
    spec = importlib.util.spec_from_file_location(name, RECIPES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_run(out: pathlib.Path, metrics: dict, metrics_dir: str) -> None:
    assert {"bleu_4", "meteor", "rouge_l", "cider"} <= set(metrics)
    for name in ("config.json", "vocab.txt", "model.keras", "history.csv"):
        assert (out / name).is_file(), name
    assert json.loads((out / "config.json").read_text())["epochs"] == 1
    lines = (out / "metrics" / metrics_dir / "captions.jsonl").read_text().splitlines()
    assert len(lines) == 3


@pytest.mark.slow
def test_flickr8k_show_attend_tell(tiny_shapes_dir, tmp_path):
    recipe = load_recipe("flickr8k_show_attend_tell")
    assert recipe.RunSettings().weights == "imagenet"
    out = tmp_path / "run"
    metrics = recipe.main(
        ["--data", str(tiny_shapes_dir), "--out", str(out), *TINY_FLAGS,
         "--embedding-dim", "8", "--attention-dim", "8"]
    )  # fmt: skip
    check_run(out, metrics, "test_beam3")


def write_coco_json(path: pathlib.Path, frame) -> None:
    """A COCO captions file for the rows of `frame` (image ids made numeric)."""
    ids = {image_id: i for i, image_id in enumerate(sorted(frame.image_id.unique()), start=1)}
    images = [{"id": ids[i], "file_name": i} for i in ids]
    annotations = [
        {"id": k, "image_id": ids[row.image_id], "caption": row.caption}
        for k, row in enumerate(frame.itertuples(), start=1)
    ]
    path.write_text(json.dumps({"images": images, "annotations": annotations}))


@pytest.mark.slow
def test_coco_transformer_captioner(tiny_shapes_dir, tmp_path):
    from xmodal_keras.data import read_captions

    recipe = load_recipe("coco_transformer_captioner")
    frame = read_captions(tiny_shapes_dir)
    train_json = tmp_path / "captions_train2017.json"
    val_json = tmp_path / "captions_val2017.json"
    write_coco_json(train_json, frame[frame.split == "train"])
    write_coco_json(val_json, frame[frame.split != "train"])
    out = tmp_path / "run"
    images = str(tiny_shapes_dir / "Images")
    metrics = recipe.main(
        ["--train-captions", str(train_json), "--val-captions", str(val_json),
         "--train-images", images, "--val-images", images, "--out", str(out), *TINY_FLAGS,
         "--num-layers", "1", "--num-heads", "1", "--intermediate-dim", "16"]
    )  # fmt: skip
    check_run(out, metrics, "val_beam3")
