"""Tests for the built-in shapes dataset (xmodal_keras/data/shapes.py)."""

import collections
import itertools
import json
import re

import numpy as np
import pytest
from PIL import Image

from xmodal_keras.data import shapes
from xmodal_keras.data.validation import DataValidationError

CAPTION_PATTERN = re.compile(r"^[a-z]+( [a-z]+)*$")
TOKEN_LINE = re.compile(r"^(shapes_\d{5}\.png)#([0-4])\t(.+)$")


def _sampled_scenes(count, image_size, seed=0):
    return [
        shapes.sample_scene(np.random.default_rng([seed, i]), f"s{i}.png", image_size)
        for i in range(count)
    ]


def _all_files(root):
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _object_pixels(obj, image_size, seed):
    """Pixels close to the object's colour when it is rendered alone on its background."""
    scene = shapes.Scene("one.png", (obj,), None, "noisy")
    image = shapes.render_scene(scene, image_size, np.random.default_rng(seed)).astype(int)
    colour = np.array(shapes.COLOUR_RGB[obj.colour])
    return np.all(np.abs(image - colour) < 50, axis=-1)


# ----------------------------------------------------------------------------- vocabulary


def test_constants_cover_the_issue():
    assert len(shapes.SHAPES) >= 5 and len(set(shapes.SHAPES)) == len(shapes.SHAPES)
    assert len(shapes.COLOURS) >= 6 and len(set(shapes.COLOURS)) == len(shapes.COLOURS)
    assert shapes.SIZES == ("small", "large")
    assert shapes.RELATIONS == ("left", "right", "above", "below")
    assert set(shapes.BACKGROUNDS) == {"noisy", "shaded", "striped", "checkered"}


def test_vocabulary_is_small_and_lowercase():
    assert len(shapes.VOCABULARY) <= 50
    assert all(re.fullmatch(r"[a-z]+", word) for word in shapes.VOCABULARY)
    assert set(shapes.SHAPES + shapes.COLOURS + shapes.SIZES) <= set(shapes.VOCABULARY)


# ----------------------------------------------------------------------------- scenes


@pytest.mark.parametrize("image_size", [32, 64])
def test_sampled_scenes_are_well_formed(image_size):
    scenes = _sampled_scenes(300, image_size)
    counts = collections.Counter(len(scene.objects) for scene in scenes)
    assert set(counts) == {1, 2, 3}
    assert {scene.background for scene in scenes} == set(shapes.BACKGROUNDS)
    relations = collections.Counter(s.relation.relation for s in scenes if s.relation)
    assert set(relations) == set(shapes.RELATIONS)
    for scene in scenes:
        descriptions = [obj.description for obj in scene.objects]
        assert len(set(descriptions)) == len(descriptions)
        for obj in scene.objects:  # inside the image
            assert obj.half_extent + shapes.EDGE_MARGIN <= obj.x <= 1 - obj.half_extent
            assert obj.half_extent + shapes.EDGE_MARGIN <= obj.y <= 1 - obj.half_extent
        for a, b in itertools.combinations(scene.objects, 2):  # bounding boxes do not touch
            reach = a.half_extent + b.half_extent
            assert abs(a.x - b.x) > reach or abs(a.y - b.y) > reach
        if len(scene.objects) == 1:
            assert scene.relation is None
        else:
            assert (scene.relation.subject, scene.relation.reference) == (0, 1)


@pytest.mark.parametrize("image_size", [32, 64])
def test_stated_relation_has_clear_separation_in_pixels(image_size):
    for scene in _sampled_scenes(300, image_size, seed=1):
        if scene.relation is None:
            continue
        a, b = scene.objects[0], scene.objects[1]
        relation = scene.relation.relation
        horizontal = relation in ("left", "right")
        first, second = (a, b) if relation in ("left", "above") else (b, a)
        along = (second.x - first.x) if horizontal else (second.y - first.y)
        across = abs(a.y - b.y) if horizontal else abs(a.x - b.x)
        # The boxes are >= 2 px apart along the relation axis and the centres roughly aligned
        # on the other axis, so the orthogonal relations are clearly false.
        assert (along - a.half_extent - b.half_extent) * image_size >= 2 - 1e-6
        assert across <= 0.1 * (a.half_extent + b.half_extent) + 1e-4
        assert shapes.relation_holds(a, b, relation)
        for other in shapes.RELATIONS:
            if other != relation:
                assert not shapes.relation_holds(a, b, other)


def test_stated_relation_is_visually_true_in_rendered_pixels():
    for scene in _sampled_scenes(60, 32, seed=2):
        if scene.relation is None:
            continue
        a, b = scene.objects[0], scene.objects[1]
        mask_a, mask_b = _object_pixels(a, 32, 0), _object_pixels(b, 32, 1)
        assert mask_a.sum() >= 9 and mask_b.sum() >= 9
        rows_a, cols_a = np.nonzero(mask_a)
        rows_b, cols_b = np.nonzero(mask_b)
        relation = scene.relation.relation
        if relation == "left":
            assert cols_a.max() + 1 < cols_b.min()
        elif relation == "right":
            assert cols_b.max() + 1 < cols_a.min()
        elif relation == "above":
            assert rows_a.max() + 1 < rows_b.min()
        else:
            assert rows_b.max() + 1 < rows_a.min()


def test_sample_scene_is_deterministic():
    first = shapes.sample_scene(np.random.default_rng(11), "a.png", 64)
    second = shapes.sample_scene(np.random.default_rng(11), "a.png", 64)
    assert first == second
    assert first.image_id == "a.png"


def test_scene_dict_round_trip():
    for scene in _sampled_scenes(20, 32):
        data = json.loads(json.dumps(shapes.scene_to_dict(scene)))
        assert shapes.scene_from_dict(data) == scene


# ----------------------------------------------------------------------------- rendering


def test_render_scene_shape_dtype_and_determinism():
    scene = _sampled_scenes(1, 48)[0]
    image = shapes.render_scene(scene, 48, np.random.default_rng(3))
    assert image.shape == (48, 48, 3) and image.dtype == np.uint8
    again = shapes.render_scene(scene, 48, np.random.default_rng(3))
    np.testing.assert_array_equal(image, again)


@pytest.mark.parametrize("shape", shapes.SHAPES)
def test_every_shape_and_colour_is_drawn_at_its_centre(shape):
    for colour in shapes.COLOURS:
        obj = shapes.SceneObject(shape, colour, "small", x=0.5, y=0.5, half_extent=0.11)
        scene = shapes.Scene("a.png", (obj,), None, "striped")
        image = shapes.render_scene(scene, 32, np.random.default_rng(0)).astype(int)
        centre = image[16, 16]
        assert np.all(np.abs(centre - np.array(shapes.COLOUR_RGB[colour])) < 40), (colour, centre)
        corner = image[1, 1]  # the background stays dark
        assert corner.max() < 170


def test_small_shapes_are_distinguishable_at_32_px():
    masks = {
        shape: _object_pixels(shapes.SceneObject(shape, "white", "small", 0.5, 0.5, 0.11), 32, 0)
        for shape in shapes.SHAPES
    }
    for first, second in itertools.combinations(shapes.SHAPES, 2):
        assert np.sum(masks[first] != masks[second]) >= 4, (first, second)
    small = _object_pixels(shapes.SceneObject("square", "red", "small", 0.5, 0.5, 0.11), 32, 0)
    large = _object_pixels(shapes.SceneObject("square", "red", "large", 0.5, 0.5, 0.19), 32, 0)
    assert large.sum() >= 2.2 * small.sum()


# ----------------------------------------------------------------------------- captions


def _check_caption_truth(scene, caption):
    texts = [obj.description.text for obj in scene.objects]
    for text in texts:  # every object is mentioned
        assert text in caption, (caption, text)
    for i, j in itertools.permutations(range(len(texts)), 2):
        for relation in shapes.RELATIONS:
            stated = any(
                f"{texts[i]} {verb}{phrase} {texts[j]}" in caption
                for phrase in shapes.RELATION_PHRASES[relation]
                for verb in ("", "is ")
            ) or any(
                f"{texts[j]} with {texts[i]} {phrase}" in caption
                for phrase in shapes.RELATION_PRONOUN_PHRASES[relation]
            )
            if stated:
                assert shapes.relation_holds(scene.objects[i], scene.objects[j], relation)
                return True
    return False


def test_describe_scene_gives_five_distinct_true_captions():
    with_relation = 0
    multi_object_captions = 0
    for index, scene in enumerate(_sampled_scenes(200, 64, seed=3)):
        captions = shapes.describe_scene(scene, np.random.default_rng(index))
        assert len(captions) == 5 and len(set(captions)) == 5
        for caption in captions:
            assert CAPTION_PATTERN.match(caption), caption
            assert set(caption.split()) <= set(shapes.VOCABULARY)
            stated = _check_caption_truth(scene, caption)
            if len(scene.objects) > 1:
                multi_object_captions += 1
                with_relation += stated
    assert with_relation >= 0.6 * multi_object_captions


def test_describe_scene_examples_and_synonyms():
    a = shapes.SceneObject("circle", "red", "small", x=0.2, y=0.5, half_extent=0.1)
    b = shapes.SceneObject("square", "blue", "large", x=0.7, y=0.5, half_extent=0.2)
    scene = shapes.Scene("a.png", (a, b), shapes.Relation(0, "left", 1), "striped")
    seen = set()
    for seed in range(40):
        seen.update(shapes.describe_scene(scene, np.random.default_rng(seed)))
    assert "a small red circle to the left of a large blue square" in seen
    assert "a large blue square with a small red circle on its left" in seen
    assert "a small red circle on the left of a large blue square" in seen
    assert "a large blue square to the right of a small red circle" in seen
    assert "a small red circle and a large blue square" in seen
    one = shapes.Scene("b.png", (a,), None, "checkered")
    assert "there is a small red circle on a checkered background" in {
        caption
        for seed in range(40)
        for caption in shapes.describe_scene(one, np.random.default_rng(seed))
    }


def test_describe_scene_rejects_bad_arguments():
    scene = _sampled_scenes(1, 32)[0]
    with pytest.raises(ValueError, match=r"Received: num_captions=0"):
        shapes.describe_scene(scene, np.random.default_rng(0), num_captions=0)
    with pytest.raises(ValueError, match=r"Received: num_captions=99"):
        shapes.describe_scene(scene, np.random.default_rng(0), num_captions=99)
    lonely = shapes.Scene("a.png", scene.objects[:1], shapes.Relation(0, "left", 1), "noisy")
    with pytest.raises(ValueError, match=r"Received: relation=Relation\(.*\) with 1 objects"):
        shapes.describe_scene(lonely, np.random.default_rng(0))


# ----------------------------------------------------------------------------- statements


def test_statement_text_and_parse_round_trip():
    red = shapes.ObjectDescription("circle", "red", "small")
    blue = shapes.ObjectDescription("square", "blue", "large")
    cases = {
        shapes.Statement(red): "there is a small red circle",
        shapes.Statement(
            red, "left", blue
        ): "a small red circle is to the left of a large blue square",
        shapes.Statement(
            red, "right", blue
        ): "a small red circle is to the right of a large blue square",
        shapes.Statement(blue, "above", red): "a large blue square is above a small red circle",
        shapes.Statement(blue, "below", red): "a large blue square is below a small red circle",
    }
    for statement, text in cases.items():
        assert shapes.statement_text(statement) == text
        assert shapes.parse_statement(text) == statement
    for bad in ["a small red circle", "there is a huge red circle", "a red circle is above it"]:
        with pytest.raises(ValueError, match="Not a shapes statement"):
            shapes.parse_statement(bad)


def test_statement_requires_relation_and_reference_together():
    red = shapes.ObjectDescription("circle", "red", "small")
    with pytest.raises(ValueError, match=r"Received: relation='left', reference=None"):
        shapes.Statement(red, "left")
    with pytest.raises(ValueError, match=r"Received: colour='pink'"):
        shapes.ObjectDescription("circle", "pink", "small")
    with pytest.raises(ValueError, match=r"Received: relation='near'"):
        shapes.Statement(red, "near", red)


def test_statement_holds_on_a_hand_made_scene():
    a = shapes.SceneObject("circle", "red", "small", x=0.2, y=0.5, half_extent=0.1)
    b = shapes.SceneObject("square", "blue", "large", x=0.7, y=0.5, half_extent=0.2)
    c = shapes.SceneObject("star", "green", "small", x=0.2, y=0.15, half_extent=0.1)
    scene = shapes.Scene("a.png", (a, b, c), shapes.Relation(0, "left", 1), "noisy")

    def holds(text):
        return shapes.statement_holds(scene, shapes.parse_statement(text))

    assert holds("a small red circle is to the left of a large blue square")
    assert holds("a large blue square is to the right of a small red circle")
    assert holds("a small green star is above a small red circle")
    assert holds("there is a small green star")
    assert not holds("there is a large green star")
    assert not holds("a small red circle is to the right of a large blue square")
    assert not holds("a small red circle is above a large blue square")
    assert holds("a small red circle is below a small green star")
    assert holds("a small green star is to the left of a large blue square")  # diagonal
    assert not holds("a small red circle is above a small green star")
    assert not holds("a small red square is to the left of a large blue square")


def test_statement_pairs_are_hard_negatives():
    kinds = collections.Counter()
    for index, scene in enumerate(_sampled_scenes(400, 32, seed=4)):
        positive, negative = shapes.make_statement_pair(scene, np.random.default_rng(index))
        assert shapes.statement_holds(scene, positive)
        assert not shapes.statement_holds(scene, negative)
        before, after = shapes.statement_fields(positive), shapes.statement_fields(negative)
        changed = [field for field in before if before[field] != after[field]]
        assert len(changed) == 1, (positive, negative)
        kinds[changed[0].split(".")[-1]] += 1
        assert negative.subject != negative.reference
        for statement in (positive, negative):
            text = shapes.statement_text(statement)
            assert CAPTION_PATTERN.match(text) and set(text.split()) <= set(shapes.VOCABULARY)
            assert shapes.parse_statement(text) == statement
    assert set(kinds) == {"shape", "colour", "size", "relation"}


def test_text_alone_cannot_tell_true_from_false_statements():
    """False statements follow the true statements' text distribution (chance for text)."""
    true_fields, false_fields = [], []
    for index, scene in enumerate(_sampled_scenes(3000, 32, seed=5)):
        positive, negative = shapes.make_statement_pair(scene, np.random.default_rng(index))
        true_fields.append(shapes.statement_fields(positive))
        false_fields.append(shapes.statement_fields(negative))
    for field in true_fields[0]:  # every field's distribution matches
        true_counts = collections.Counter(f[field] for f in true_fields)
        false_counts = collections.Counter(f[field] for f in false_fields)
        total_variation = sum(
            abs(true_counts[v] - false_counts[v]) for v in set(true_counts) | set(false_counts)
        ) / (2 * len(true_fields))
        assert total_variation < 0.04, (field, true_counts, false_counts)
    # A per-field naive Bayes text classifier, trained on half, is at chance on the rest.
    half = len(true_fields) // 2
    counts = collections.defaultdict(lambda: np.ones(2))
    for label, rows in ((1, true_fields[:half]), (0, false_fields[:half])):
        for row in rows:
            for item in row.items():
                counts[item][label] += 1
    correct = 0
    for label, rows in ((1, true_fields[half:]), (0, false_fields[half:])):
        for row in rows:
            score = sum(np.log(counts[item][1] / counts[item][0]) for item in row.items())
            correct += (score > 0) == bool(label)
    accuracy = correct / (2 * (len(true_fields) - half))
    assert 0.46 < accuracy < 0.54


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

    monkeypatch.setattr(shapes, "render_scene", failing_render)
    with pytest.raises(RuntimeError, match="disk on fire"):
        shapes.generate_shapes(tmp_path / "out", num_images=20, image_size=32)
    assert list(tmp_path.iterdir()) == []

    # A previous dataset survives a failed regeneration untouched.
    monkeypatch.setattr(shapes, "render_scene", real_render)
    root = shapes.generate_shapes(tmp_path / "out", num_images=10, image_size=32, seed=1)
    before = _all_files(root)
    calls.clear()
    monkeypatch.setattr(shapes, "render_scene", failing_render)
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
    good = shapes.scene_to_dict(_sampled_scenes(1, 32)[0])
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

    monkeypatch.setattr(shapes, "generate_shapes", counting_generate)
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

    monkeypatch.setattr(shapes, "render_scene", failing_render)
    with pytest.raises(KeyboardInterrupt):
        shapes.load_shapes(num_images=10, image_size=32)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(shapes, "render_scene", real_render)
    root = shapes.load_shapes(num_images=10, image_size=32)
    assert len(shapes.read_scenes(root)) == 10
