import numpy as np
import pytest

from xmodal_keras.evaluation.retrieval import retrieval_recall


def brute_force_recall(images, texts, owner, k):
    """Loop over queries, sort all candidates, look for a positive in the top k."""
    i2t = []
    for i, image in enumerate(images):
        scores = texts @ image
        # Stable sort of (-score, is_positive): a tied negative ranks before a positive.
        order = sorted(range(len(texts)), key=lambda j: (-scores[j], owner[j] == i))
        i2t.append(any(owner[j] == i for j in order[:k]))
    t2i = []
    for j, text in enumerate(texts):
        scores = images @ text
        order = sorted(range(len(images)), key=lambda i: (-scores[i], i == owner[j]))
        t2i.append(owner[j] in order[:k])
    return float(np.mean(i2t)), float(np.mean(t2i))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    num_images, dim = 13, 4
    owner = np.concatenate([np.arange(num_images), rng.integers(0, num_images, size=30)])
    rng.shuffle(owner)
    images = rng.normal(size=(num_images, dim)).astype("float32")
    # Texts near their image, with noise: recall is neither 0 nor 1.
    texts = (images[owner] + 1.5 * rng.normal(size=(len(owner), dim))).astype("float32")
    ks = (1, 2, 5, 10)
    result = retrieval_recall(images, texts, owner, ks=ks, chunk_size=4)
    for k in ks:
        i2t, t2i = brute_force_recall(images, texts, owner, k)
        assert result[f"image_to_text_recall@{k}"] == pytest.approx(i2t)
        assert result[f"text_to_image_recall@{k}"] == pytest.approx(t2i)
    assert 0 < result["text_to_image_recall@1"] < 1
    assert result["mean_recall"] == pytest.approx(
        np.mean([v for key, v in result.items() if key != "mean_recall"])
    )


def test_any_caption_counts_for_image_to_text():
    images = np.eye(2, dtype="float32")
    # Image 0 has a good caption and a bad one; image 1's only caption is closer to image 0.
    texts = np.array([[1, 0], [0.1, 0.9], [0.9, 0.2]], "float32")
    result = retrieval_recall(images, texts, [0, 0, 1], ks=(1, 2))
    assert result["image_to_text_recall@1"] == 0.5  # image 0 hits, image 1 misses at 1
    assert result["text_to_image_recall@1"] == pytest.approx(1 / 3)
    assert result["image_to_text_recall@2"] == 1.0


def test_constant_embeddings_score_nothing_at_one():
    result = retrieval_recall(np.ones((4, 3)), np.ones((8, 3)), np.repeat(np.arange(4), 2))
    assert result["image_to_text_recall@1"] == 0.0
    assert result["text_to_image_recall@1"] == 0.0
    assert result["text_to_image_recall@5"] == 1.0  # only 4 images


@pytest.mark.parametrize(
    "owner, match",
    [
        ([0, 1], "caption_image_index"),
        ([0, 1, 3], "caption_image_index"),
        ([0, 0, 0], "no caption for images"),
    ],
)
def test_bad_index(owner, match):
    with pytest.raises(ValueError, match=match):
        retrieval_recall(np.ones((3, 2)), np.ones((3, 2)), owner)


def test_bad_shapes_and_ks():
    with pytest.raises(ValueError, match="same dim"):
        retrieval_recall(np.ones((2, 2)), np.ones((2, 3)), [0, 1])
    with pytest.raises(ValueError, match=r"Received: ks=\(0,\)"):
        retrieval_recall(np.ones((2, 2)), np.ones((2, 2)), [0, 1], ks=(0,))
