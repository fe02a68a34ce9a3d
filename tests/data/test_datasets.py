import logging

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from PIL import Image

from xmodal_keras.data import datasets
from xmodal_keras.data.datasets import (
    DatasetPlan,
    build_caption_augmentation,
    make_caption_dataset,
    make_pair_dataset,
    plan_caption_dataset,
    plan_pair_dataset,
)
from xmodal_keras.data.text_tokenizer import CaptionTokenizer
from xmodal_keras.data.validation import DataValidationError

NUM_IMAGES = 6
CAPTIONS_PER_IMAGE = 5
SEQ = 6


def color(i):
    return (40 * i, 255 - 30 * i, (70 * i) % 256)


def write_images(root, count=NUM_IMAGES):
    paths = []
    for i in range(count):
        path = root / f"img_{i}.png"
        Image.fromarray(np.full((8, 10, 3), color(i), np.uint8)).save(path)
        paths.append(str(path))
    return paths


def caption_frame(root, count=NUM_IMAGES):
    rows = []
    for i, path in enumerate(write_images(root, count)):
        for j in range(CAPTIONS_PER_IMAGE):
            rows.append((f"img_{i}", path, f"Image{i} caption{j}.", "train"))
    # interleave rows so grouping by image is really exercised
    frame = pd.DataFrame(rows, columns=["image_id", "image_path", "caption", "split"])
    return frame.sample(frac=1.0, random_state=0).reset_index(drop=True)


def tokenizer_for(frame):
    return CaptionTokenizer.from_captions(frame["caption"], sequence_length=SEQ)


def image_index(image):
    """Recover the image number from a solid-colour image."""
    pixel = tuple(int(v) for v in image[0, 0])
    return [color(i) for i in range(NUM_IMAGES)].index(pixel)


def epoch_pairs(dataset, tokenizer):
    pairs = []
    for inputs, _ in dataset:
        texts = tokenizer.detokenize(inputs["token_ids"]).numpy()
        for image, text in zip(inputs["images"].numpy(), texts, strict=True):
            pairs.append((image_index(image), text.decode()))
    return pairs


def test_shapes_dtypes_and_token_layout(tmp_path):
    frame = caption_frame(tmp_path)
    tokenizer = tokenizer_for(frame)
    dataset = make_caption_dataset(frame, tokenizer, image_size=(4, 5), batch_size=7)
    inputs_spec, target_spec = dataset.element_spec
    assert inputs_spec["images"].shape.as_list() == [None, 4, 5, 3]
    assert inputs_spec["images"].dtype == tf.uint8
    assert inputs_spec["token_ids"].shape.as_list() == [None, SEQ]
    assert inputs_spec["token_ids"].dtype == tf.int32
    assert target_spec.shape.as_list() == [None, SEQ]
    assert target_spec.dtype == tf.int32
    batches = list(dataset)
    assert [int(b[1].shape[0]) for b in batches] == [7, 7, 7, 7, 2]
    token_ids = np.concatenate([b[0]["token_ids"].numpy() for b in batches])
    caption_out = np.concatenate([b[1].numpy() for b in batches])
    assert np.all(token_ids[:, 0] == tokenizer.start_id)
    np.testing.assert_array_equal(token_ids[:, 1:], caption_out[:, :-1])
    # "image3 caption2 ." = 3 words: out = w w w <end> <pad> <pad>
    np.testing.assert_array_equal(caption_out[:, 3], tokenizer.end_id)
    np.testing.assert_array_equal(caption_out[:, 4:], 0)
    assert np.all(caption_out[:, :3] > 3)


def test_each_image_with_all_its_captions_once_per_epoch(tmp_path):
    frame = caption_frame(tmp_path)
    tokenizer = tokenizer_for(frame)
    dataset = make_caption_dataset(frame, tokenizer, image_size=(4, 4), batch_size=4, seed=3)
    expected = sorted((i, f"image{i} caption{j} .") for i in range(6) for j in range(5))
    for _ in range(2):
        assert sorted(epoch_pairs(dataset, tokenizer)) == expected


@pytest.mark.parametrize("cache, expected_decodes", [(False, 2 * NUM_IMAGES), (True, NUM_IMAGES)])
def test_each_image_decoded_once_per_epoch(tmp_path, monkeypatch, cache, expected_decodes):
    frame = caption_frame(tmp_path)
    calls = []
    real_load_image = datasets.load_image

    def counting_load_image(path, image_size):
        def record(p):
            calls.append(p.numpy())
            return np.int32(0)

        marker = tf.py_function(record, [path], tf.int32)
        with tf.control_dependencies([marker]):
            return tf.identity(real_load_image(path, image_size))

    monkeypatch.setattr(datasets, "load_image", counting_load_image)
    dataset = make_caption_dataset(
        frame, tokenizer_for(frame), image_size=(4, 4), batch_size=8, cache=cache
    )
    pairs = sum(int(batch[1].shape[0]) for _ in range(2) for batch in dataset)
    assert pairs == 2 * NUM_IMAGES * CAPTIONS_PER_IMAGE
    assert len(calls) == expected_decodes
    assert len(set(calls)) == NUM_IMAGES


def test_seeded_order(tmp_path):
    frame = caption_frame(tmp_path)
    tokenizer = tokenizer_for(frame)

    def order(seed, epochs=1):
        dataset = make_caption_dataset(frame, tokenizer, image_size=(4, 4), seed=seed)
        return [epoch_pairs(dataset, tokenizer) for _ in range(epochs)]

    first, second = order(seed=1, epochs=2)
    assert order(seed=1) == [first]
    assert order(seed=2) != [first]
    assert second != first  # reshuffled each epoch
    assert sorted(second) == sorted(first)
    unshuffled = make_caption_dataset(frame, tokenizer, image_size=(4, 4), shuffle=False)
    # no shuffle: images in first-appearance order, each image's captions in frame order
    image_order = [int(i.split("_")[1]) for i in dict.fromkeys(frame["image_id"])]
    expected = [
        (i, tokenizer.detokenize(tokenizer([caption])).numpy()[0].decode())
        for i in image_order
        for caption in frame.loc[frame["image_id"] == f"img_{i}", "caption"]
    ]
    assert epoch_pairs(unshuffled, tokenizer) == expected


def test_bad_image_raises_naming_path(tmp_path):
    frame = caption_frame(tmp_path)
    bad = tmp_path / "img_2.png"
    bad.write_text("this is not a PNG")
    with pytest.raises(DataValidationError) as info:
        make_caption_dataset(frame, tokenizer_for(frame))
    message = str(info.value)
    assert f"{bad}: expected a JPEG, PNG, GIF, BMP or WEBP image" in message
    assert "not an image (PIL: cannot identify image file)" in message
    assert message.startswith("1 problem in the caption frame's images")
    assert len(info.value.problems) == 1


def test_skip_mode_drops_and_counts(tmp_path, caplog):
    frame = caption_frame(tmp_path)
    (tmp_path / "img_2.png").write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="xmodal_keras.data.datasets"):
        plan = plan_caption_dataset(frame, on_bad_image="skip")
    assert plan.num_skipped_images == 1
    assert plan.num_skipped_rows == CAPTIONS_PER_IMAGE
    assert plan.skipped == [(str(tmp_path / "img_2.png"), "empty file")]
    assert plan.num_images == NUM_IMAGES - 1
    assert "Skipping 1 bad image(s) and their 5 caption row(s)" in caplog.text
    tokenizer = tokenizer_for(frame)
    pairs = epoch_pairs(make_caption_dataset(plan, tokenizer, image_size=(4, 4)), tokenizer)
    assert len(pairs) == (NUM_IMAGES - 1) * CAPTIONS_PER_IMAGE
    assert 2 not in {image for image, _ in pairs}
    direct = make_caption_dataset(frame, tokenizer, image_size=(4, 4), on_bad_image="skip")
    assert sorted(epoch_pairs(direct, tokenizer)) == sorted(pairs)


def test_skip_mode_drops_files_failing_only_in_tf(tmp_path):
    frame = caption_frame(tmp_path, count=3)
    jpeg = tmp_path / "big.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(jpeg)
    data = jpeg.read_bytes()
    # A JPEG cut short (content is sniffed, the .png name does not matter): PIL's header
    # check passes, TF's decoder fails.
    (tmp_path / "img_1.png").write_bytes(data[: len(data) * 2 // 3])
    assert plan_caption_dataset(frame, check_images="header").num_skipped_images == 0
    tokenizer = tokenizer_for(frame)
    header_only = {"image_size": (4, 4), "check_images": "header"}
    dataset = make_caption_dataset(frame, tokenizer, on_bad_image="skip", **header_only)
    pairs = epoch_pairs(dataset, tokenizer)
    assert sorted({image for image, _ in pairs}) == [0, 2]
    with pytest.raises(tf.errors.InvalidArgumentError):
        list(make_caption_dataset(frame, tokenizer, **header_only))
    # The default pre-flight decodes every image: the file is named before training starts.
    plan = plan_caption_dataset(frame, on_bad_image="skip")
    assert plan.skipped[0][0] == str(tmp_path / "img_1.png")
    assert plan.skipped[0][1].startswith("cannot be decoded (JPEG: jpeg::Uncompress failed")
    with pytest.raises(DataValidationError, match=r"img_1\.png: .*cannot be decoded"):
        make_caption_dataset(frame, tokenizer, image_size=(4, 4))


def test_argument_validation(tmp_path):
    frame = caption_frame(tmp_path, count=1)
    tokenizer = tokenizer_for(frame)
    with pytest.raises(ValueError, match="Received: batch_size=0"):
        make_caption_dataset(frame, tokenizer, batch_size=0)
    with pytest.raises(ValueError, match=r"Received: image_size=\(64,\)"):
        make_caption_dataset(frame, tokenizer, image_size=(64,))
    with pytest.raises(ValueError, match="Received: on_bad_image='ignore'"):
        make_caption_dataset(frame, tokenizer, on_bad_image="ignore")
    with pytest.raises(ValueError, match="Received: check_images='full'"):
        make_caption_dataset(frame, tokenizer, check_images="full")
    with pytest.raises(ValueError, match=r"The caption frame is empty. Received: len\(frame\)=0"):
        make_caption_dataset(frame.iloc[:0], tokenizer)
    with pytest.raises(ValueError, match=r"missing columns \['caption'\]"):
        make_caption_dataset(frame.drop(columns="caption"), tokenizer)
    with pytest.raises(ValueError, match=r"missing columns \['text', 'label'\]"):
        make_pair_dataset(frame)


def test_augmentation_keeps_uint8(tmp_path):
    frame = caption_frame(tmp_path, count=2)
    augment = build_caption_augmentation(seed=1)
    assert not any("Flip" in type(layer).__name__ for layer in augment.layers)
    dataset = make_caption_dataset(
        frame, tokenizer_for(frame), image_size=(8, 8), batch_size=4, augment=augment
    )
    inputs, _ = next(iter(dataset))
    assert inputs["images"].dtype == tf.uint8
    assert inputs["images"].shape == (4, 8, 8, 3)


def test_pair_dataset(tmp_path):
    paths = write_images(tmp_path, 4)
    frame = pd.DataFrame(
        {
            "id": [f"p{i}" for i in range(5)],
            "image_path": paths + [paths[0]],  # one image shared by two pairs
            "text": ["zero", "one", "two", "three", "zero again"],
            "label": np.array([0, 1, 1, -1, 0], np.int64),
            "split": ["train"] * 5,
            "extra": [1.0] * 5,
        }
    )
    dataset = make_pair_dataset(frame, image_size=(4, 4), batch_size=2, seed=5)
    inputs_spec, label_spec = dataset.element_spec
    assert inputs_spec["images"].shape.as_list() == [None, 4, 4, 3]
    assert inputs_spec["images"].dtype == tf.uint8
    assert inputs_spec["text"].dtype == tf.string
    assert inputs_spec["text"].shape.as_list() == [None]
    assert label_spec.dtype == tf.int32
    seen = []
    for inputs, labels in dataset:
        for image, text, label in zip(
            inputs["images"].numpy(), inputs["text"].numpy(), labels, strict=True
        ):
            seen.append((image_index(image), text.decode(), int(label)))
    expected = [
        (0, "zero", 0),
        (1, "one", 1),
        (2, "two", 1),
        (3, "three", -1),
        (0, "zero again", 0),
    ]
    assert sorted(seen) == sorted(expected)
    plan = plan_pair_dataset(frame)
    assert isinstance(plan, DatasetPlan) and plan.num_skipped_images == 0
    with pytest.raises(ValueError, match="`label` column must hold integers"):
        make_pair_dataset(frame.assign(label=["a", "b", "c", "d", "e"]))
