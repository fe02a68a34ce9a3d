"""Tests for the shapes dataset on disk and its cache (xmodal_keras/data/shapes/writer.py)."""

import collections
import itertools
import json
import re

import pytest
from PIL import Image
from scene_samples import CAPTION_PATTERN, sampled_scenes

from xmodal_keras.data import shapes
from xmodal_keras.data.shapes import writer
from xmodal_keras.data.validation import DataValidationError

TOKEN_LINE = re.compile(r"^(shapes_\d{5}\.png)#([0-4])\t(.+)$")


def _all_files(root):
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_scene_dict_round_trip():
    for scene in sampled_scenes(20, 32):
        data = json.loads(json.dumps(shapes.scene_to_dict(scene)))
        assert shapes.scene_from_dict(data) == scene


# ----------------------------------------------------------------------------- dataset


def test_dataset_layout(tiny_shapes_dir):
    root = tiny_shapes_dir
    names = [f"shapes_{i:05d}.png" for i in range(40)]
    assert sorted(p.name for p in (root / "Images").iterdir()) == names
    with Image.open(root / "Images" / names[0]) as image:
        assert image.format == "PNG" and image.mode == "RGB" and image.size == (32, 32)

    raw = (root / "Flickr8k.token.txt").read_bytes()
    assert b"\r" not in raw and raw.endswith(b"\n")
    captions = collections.defaultdict(dict)
    for line in raw.decode("utf-8").splitlines():
        match = TOKEN_LINE.match(line)
        assert match, line
        name, k, caption = match.groups()
        assert CAPTION_PATTERN.match(caption)
        captions[name][int(k)] = caption
    assert sorted(captions) == names
    for name in names:
        assert sorted(captions[name]) == [0, 1, 2, 3, 4]
        assert len(set(captions[name].values())) == 5

    split_files = {
        "train": "Flickr_8k.trainImages.txt",
        "val": "Flickr_8k.devImages.txt",
        "test": "Flickr_8k.testImages.txt",
    }
    splits = {
        split: (root / file).read_text(encoding="utf-8").splitlines()
        for split, file in split_files.items()
    }
    assert {split: len(files) for split, files in splits.items()} == {
        "train": 32,
        "val": 4,
        "test": 4,
    }
    assert sorted(itertools.chain(*splits.values())) == names  # a partition
    assert all(files == sorted(files) for files in splits.values())

    scenes = shapes.read_scenes(root)
    assert sorted(scenes) == names
    info = json.loads((root / "shapes.json").read_text(encoding="utf-8"))
    assert info["num_images"] == 40 and info["image_size"] == 32 and info["seed"] == 7
    assert info["splits"] == {"train": 32, "val": 4, "test": 4}


def test_fusion_view_is_balanced_and_labels_are_true(tiny_shapes_dir):
    root = tiny_shapes_dir
    scenes = shapes.read_scenes(root)
    files = {"train": "train.jsonl", "val": "dev.jsonl", "test": "test.jsonl"}
    image_lists = {
        "train": "Flickr_8k.trainImages.txt",
        "val": "Flickr_8k.devImages.txt",
        "test": "Flickr_8k.testImages.txt",
    }
    ids = set()
    first_labels = collections.Counter()
    for split, file in files.items():
        records = _read_jsonl(root / file)
        images = (root / image_lists[split]).read_text(encoding="utf-8").splitlines()
        assert len(records) == 2 * len(images)
        assert collections.Counter(r["label"] for r in records) == {0: len(images), 1: len(images)}
        by_image = collections.defaultdict(dict)
        for record in records:
            assert sorted(record) == ["id", "img", "label", "text"]
            assert record["id"] not in ids
            ids.add(record["id"])
            assert (root / record["img"]).is_file()
            name = record["img"].removeprefix("Images/")
            assert name in images
            statement = shapes.parse_statement(record["text"])
            assert record["label"] == int(shapes.statement_holds(scenes[name], statement))
            by_image[name][record["label"]] = statement
            if record["id"].endswith("_0"):
                first_labels[record["label"]] += 1
        for name, pair in by_image.items():  # one true and one false statement per image
            assert sorted(pair) == [0, 1], name
            before = shapes.statement_fields(pair[1])
            after = shapes.statement_fields(pair[0])
            assert sum(before[f] != after[f] for f in before) == 1
    assert set(first_labels) == {0, 1}  # the id does not give the label away


def test_same_seed_gives_byte_identical_files(tmp_path, tiny_shapes_dir):
    first = shapes.generate_shapes(tmp_path / "a", num_images=40, image_size=32, seed=7)
    second = shapes.generate_shapes(tmp_path / "b", num_images=40, image_size=32, seed=7)
    files = _all_files(first)
    assert len(files) == 40 + 9
    assert files == _all_files(second)
    assert files == _all_files(tiny_shapes_dir)
    other = _all_files(shapes.generate_shapes(tmp_path / "c", num_images=40, image_size=32, seed=8))
    assert set(other) == set(files)
    assert other["Flickr8k.token.txt"] != files["Flickr8k.token.txt"]
    assert sum(other[name] != files[name] for name in files if name.startswith("Images/")) >= 35


def test_generate_shapes_returns_the_root(tmp_path):
    root = shapes.generate_shapes(tmp_path / "nested" / "shapes", num_images=10, image_size=32)
    assert root == (tmp_path / "nested" / "shapes")
    assert (root / "scenes.jsonl").is_file()
    assert sorted(p.name for p in (tmp_path / "nested").iterdir()) == ["shapes"]


def test_generation_failure_leaves_no_partial_dataset(tmp_path, monkeypatch):
    real_render = shapes.render_scene
    calls = []

    def failing_render(scene, image_size, rng):
        calls.append(scene.image_id)
        if len(calls) == 6:
            raise RuntimeError("disk on fire")
        return real_render(scene, image_size, rng)

    monkeypatch.setattr(writer, "render_scene", failing_render)
    with pytest.raises(RuntimeError, match="disk on fire"):
        shapes.generate_shapes(tmp_path / "out", num_images=20, image_size=32)
    assert list(tmp_path.iterdir()) == []

    # A previous dataset survives a failed regeneration untouched.
    monkeypatch.setattr(writer, "render_scene", real_render)
    root = shapes.generate_shapes(tmp_path / "out", num_images=10, image_size=32, seed=1)
    before = _all_files(root)
    calls.clear()
    monkeypatch.setattr(writer, "render_scene", failing_render)
    with pytest.raises(RuntimeError, match="disk on fire"):
        shapes.generate_shapes(root, num_images=10, image_size=32, seed=2)
    assert _all_files(root) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_generate_shapes_replaces_only_empty_dirs_or_previous_datasets(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert shapes.generate_shapes(empty, num_images=10, image_size=32) == empty
    shapes.generate_shapes(empty, num_images=12, image_size=32, seed=3)  # replaces it
    info = json.loads((empty / "shapes.json").read_text(encoding="utf-8"))
    assert (info["num_images"], info["seed"]) == (12, 3)
    assert len(list((empty / "Images").iterdir())) == 12
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match=r"not a shapes dataset.*Received: out_dir="):
        shapes.generate_shapes(busy, num_images=10, image_size=32)
    assert [p.name for p in busy.iterdir()] == ["notes.txt"]

    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(ValueError, match=r"must be a directory\. Received: out_dir="):
        shapes.generate_shapes(a_file, num_images=10, image_size=32)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_images": 9}, "`num_images` must be an integer >= 10. Received: num_images=9"),
        ({"num_images": 10.0}, "Received: num_images=10.0"),
        ({"num_images": True}, "Received: num_images=True"),
        (
            {"image_size": 31},
            "`image_size` must be an integer between 32 and 1024. Received: image_size=31",
        ),
        ({"image_size": 2048}, "Received: image_size=2048"),
        ({"seed": -1}, "`seed` must be an integer >= 0. Received: seed=-1"),
        ({"seed": "0"}, "Received: seed='0'"),
    ],
)
def test_argument_validation(tmp_path, kwargs, message):
    arguments = {"num_images": 10, "image_size": 32, "seed": 0} | kwargs
    with pytest.raises(ValueError, match=re.escape(message)):
        shapes.generate_shapes(tmp_path / "out", **arguments)
    with pytest.raises(ValueError, match=re.escape(message)):
        shapes.shapes_dir(**arguments)
    assert not (tmp_path / "out").exists()


def test_read_scenes_reports_every_bad_line(tmp_path):
    good = shapes.scene_to_dict(sampled_scenes(1, 32)[0])
    bad_shape = json.loads(json.dumps(good))
    bad_shape["objects"][0]["shape"] = "hexagon"
    missing = {k: v for k, v in good.items() if k != "background"}
    lines = [json.dumps(good), "{not json", json.dumps(missing), json.dumps(bad_shape)]
    (tmp_path / "scenes.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataValidationError) as error:
        shapes.read_scenes(tmp_path)
    message = str(error.value)
    assert message.startswith("3 problems in ")
    assert "scenes.jsonl:2: expected a JSON object, got invalid JSON" in message
    assert "scenes.jsonl:3: field 'background': expected a value (missing field)" in message
    assert "scenes.jsonl:4: expected a valid scene" in message and "hexagon" in message
    with pytest.raises(FileNotFoundError, match="No scenes.jsonl"):
        shapes.read_scenes(tmp_path / "nowhere")


# ----------------------------------------------------------------------------- cache


def test_shapes_dir_location(tmp_path, monkeypatch):
    monkeypatch.setenv("XMODAL_DATA_DIR", str(tmp_path / "data"))
    assert shapes.shapes_dir(10, 32, 3) == tmp_path / "data" / "shapes-v1-n10-32px-seed3"
    monkeypatch.delenv("XMODAL_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert shapes.shapes_dir() == tmp_path / "xdg" / "xmodal_keras" / "shapes-v1-n5000-64px-seed0"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    expected = tmp_path / "home" / ".cache" / "xmodal_keras" / "shapes-v1-n10-32px-seed0"
    assert shapes.shapes_dir(10, 32) == expected


def test_load_shapes_generates_once(tmp_path, monkeypatch):
    monkeypatch.setenv("XMODAL_DATA_DIR", str(tmp_path))
    real_generate = shapes.generate_shapes
    calls = []

    def counting_generate(*args, **kwargs):
        calls.append(args)
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(writer, "generate_shapes", counting_generate)
    root = shapes.load_shapes(num_images=10, image_size=32, seed=4)
    assert root == tmp_path / "shapes-v1-n10-32px-seed4"
    stamp = (root / "Flickr8k.token.txt").stat().st_mtime_ns
    assert shapes.load_shapes(num_images=10, image_size=32, seed=4) == root
    assert len(calls) == 1
    assert (root / "Flickr8k.token.txt").stat().st_mtime_ns == stamp
    assert len(shapes.read_scenes(root)) == 10
    shapes.load_shapes(num_images=10, image_size=32, seed=5)  # other parameters: another dir
    assert len(calls) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "shapes-v1-n10-32px-seed4",
        "shapes-v1-n10-32px-seed5",
    ]


def test_load_shapes_after_an_interrupted_generation(tmp_path, monkeypatch):
    monkeypatch.setenv("XMODAL_DATA_DIR", str(tmp_path))
    real_render = shapes.render_scene

    def failing_render(scene, image_size, rng):
        raise KeyboardInterrupt

    monkeypatch.setattr(writer, "render_scene", failing_render)
    with pytest.raises(KeyboardInterrupt):
        shapes.load_shapes(num_images=10, image_size=32)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(writer, "render_scene", real_render)
    root = shapes.load_shapes(num_images=10, image_size=32)
    assert len(shapes.read_scenes(root)) == 10
