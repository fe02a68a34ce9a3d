import difflib
import os
from unittest import mock

import numpy as np
import pytest

from xmodal_keras.data import digits
from xmodal_keras.data.readers import read_captions, read_pairs
from xmodal_keras.data.text_tokenizer import normalize_caption


@pytest.fixture(scope="module")
def digits_root(tmp_path_factory):
    return digits.generate_digits_scenes(
        tmp_path_factory.mktemp("digits") / "d", num_images=48, image_size=32
    )


def test_real_digit_pools_are_disjoint_and_cover_the_scans():
    source = digits.digit_source()
    pools = [set(source.pools[split].tolist()) for split in ("train", "val", "test")]
    assert sum(len(p) for p in pools) == len(source.labels) == 1797
    assert not (pools[0] & pools[1]) and not (pools[0] & pools[2]) and not (pools[1] & pools[2])
    # Every digit class appears in every pool (so val and test show all ten).
    for pool in source.pools.values():
        assert set(source.labels[pool].tolist()) == set(range(10))


def test_scenes_use_their_pool_and_captions_describe_them():
    source = digits.digit_source()
    rng = np.random.default_rng(3)
    relations = set()
    for index in range(60):
        scene = digits.sample_digit_scene(rng, source.pools["test"], f"{index}.png")
        assert all(d.sample in set(source.pools["test"].tolist()) for d in scene.digits)
        assert all(source.labels[d.sample] == d.digit for d in scene.digits)
        image = digits.render_digit_scene(scene, source, 64, rng)
        assert image.shape == (64, 64, 3) and image.dtype == np.uint8
        captions = digits.describe_digit_scene(scene, rng)
        assert len(set(captions)) == digits.CAPTIONS_PER_IMAGE
        for caption in captions:
            for digit in scene.digits:
                assert digits.DIGIT_NAMES[digit.digit] in caption.split()
        if scene.relation is not None:
            relations.add(scene.relation)
            subject, reference = scene.digits
            assert subject.digit != reference.digit
            axis = "x" if scene.relation in ("left", "right") else "y"
            sign = 1 if scene.relation in ("right", "below") else -1
            gap = getattr(subject, axis) - getattr(reference, axis)
            # The boxes are apart along the relation's axis.
            assert sign * gap >= (subject.side + reference.side) / 2 * (1 - digits.SIZE_JITTER)
    assert relations == set(digits.RELATIONS)


def test_the_pixels_come_from_the_scan():
    source = digits.digit_source()
    rng = np.random.default_rng(0)
    scene = digits.sample_digit_scene(rng, source.pools["train"], "a.png")
    dark = digits.DigitScene(scene.image_id, (), None, scene.background, scene.crop)
    with_digits = digits.render_digit_scene(scene, source, 64, np.random.default_rng(1))
    background = digits.render_digit_scene(dark, source, 64, np.random.default_rng(1))
    changed = np.abs(with_digits.astype(int) - background.astype(int)).sum(-1) > 30
    ink = sum(np.count_nonzero(source.scans[d.sample] > 8) for d in scene.digits)
    assert ink > 0 and changed.sum() > ink  # upscaled ink covers more pixels than the 8x8 scan


def test_statement_pairs_change_one_thing():
    rng = np.random.default_rng(5)
    source = digits.digit_source()
    for index in range(40):
        scene = digits.sample_digit_scene(rng, source.pools["train"], f"{index}.png")
        true, false = digits.make_statement_pair(scene, rng)
        assert true != false
        assert true == digits.statement_text(scene.digits, scene.relation)
        # One contiguous change: a digit, colour or size word, or the relation phrase.
        opcodes = difflib.SequenceMatcher(a=true.split(), b=false.split()).get_opcodes()
        edits = [op for op in opcodes if op[0] != "equal"]
        assert len(edits) == 1 and edits[0][0] == "replace", (true, false)


def test_dataset_reads_with_the_standard_readers(digits_root):
    frame = read_captions(digits_root, "flickr8k")
    per_image = frame.groupby("image_id").size()
    assert (per_image == 5).all() and len(per_image) == 48
    images = frame.groupby("split")["image_id"].nunique().to_dict()
    assert images == {"train": 36, "val": 6, "test": 6}
    vocabulary = {w for c in frame.caption for w in normalize_caption(c).split()}
    assert set(digits.DIGIT_NAMES) & vocabulary and len(vocabulary) <= 50
    pairs = read_pairs(digits_root)
    assert pairs.groupby("split").size().to_dict() == {"train": 72, "val": 12, "test": 12}
    assert (pairs.groupby("image_path")["label"].sum() == 1).all()  # one true, one false


def test_read_digit_scenes_gives_the_scenes_the_captions_describe(digits_root, tmp_path):
    scenes = digits.read_digit_scenes(digits_root)
    frame = read_captions(digits_root, "flickr8k")
    assert set(scenes) == {os.path.basename(p) for p in frame.image_path}
    for image_path, captions in frame.groupby("image_path").caption:
        scene = scenes[os.path.basename(image_path)]
        for digit in scene.digits:
            # every caption names each digit (its name) and, unless it names only the digits,
            # its colour
            assert all(digits.DIGIT_NAMES[digit.digit] in c for c in captions), captions
        if scene.relation is not None:
            phrases = digits.RELATION_PHRASES[scene.relation]
            phrases += digits.RELATION_PHRASES[digits.INVERSE_RELATION[scene.relation]]
            assert any(p in c for c in captions for p in phrases), captions
    with pytest.raises(FileNotFoundError, match="digits.json"):
        digits.read_digit_scenes(tmp_path)
    (tmp_path / "digits.json").write_text('{"generator": "xmodal_keras.data.shapes"}')
    with pytest.raises(ValueError, match="field 'generator'"):
        digits.read_digit_scenes(tmp_path)


def test_generation_is_deterministic_and_atomic(digits_root, tmp_path):
    again = digits.generate_digits_scenes(tmp_path / "again", num_images=48, image_size=32)
    for name in ("Flickr8k.token.txt", "test.jsonl", "Images/digits_00007.png"):
        assert (again / name).read_bytes() == (digits_root / name).read_bytes()
    assert oct((again).stat().st_mode & 0o777) == "0o755"
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    with pytest.raises(ValueError, match="not a digits dataset"):
        digits.generate_digits_scenes(other, num_images=16, image_size=32)
    with pytest.raises(ValueError, match="num_images"):
        digits.generate_digits_scenes(tmp_path / "few", num_images=3)


def test_load_digits_scenes_caches(tmp_path):
    with mock.patch.dict(os.environ, {"XMODAL_DATA_DIR": str(tmp_path)}):
        root = digits.load_digits_scenes(num_images=16, image_size=32)
        stamp = (root / "digits.json").stat().st_mtime_ns
        assert digits.load_digits_scenes(num_images=16, image_size=32) == root
        assert (root / "digits.json").stat().st_mtime_ns == stamp
        assert root.name == "digits-v1-n16-32px-seed0"
