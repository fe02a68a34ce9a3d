import keras
import numpy as np
import pytest

from xmodal_keras.losses.info_nce_loss import InfoNCELoss

RNG = np.random.default_rng(0)


def _log_softmax(x, axis):
    x = x - x.max(axis=axis, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=axis, keepdims=True))


def numpy_clip_loss(image_embeddings, text_embeddings, temperature):
    """CLIP's pseudo-code (Radford et al., 2021, Figure 3) in NumPy."""
    i = image_embeddings / np.linalg.norm(image_embeddings, axis=1, keepdims=True)
    t = text_embeddings / np.linalg.norm(text_embeddings, axis=1, keepdims=True)
    logits = i @ t.T / temperature
    labels = np.arange(len(logits))
    loss_i = -_log_softmax(logits, axis=1)[labels, labels].mean()
    loss_t = -_log_softmax(logits, axis=0)[labels, labels].mean()
    return (loss_i + loss_t) / 2, logits


def test_equals_numpy_clip_reference():
    images = RNG.normal(size=(5, 8))
    texts = RNG.normal(size=(5, 8))
    expected, logits = numpy_clip_loss(images, texts, temperature=0.07)
    actual = InfoNCELoss()(np.arange(5), logits.astype("float32"))
    np.testing.assert_allclose(float(actual), expected, rtol=1e-5)
    # [batch, 1] labels and arbitrary distinct ids give the same loss.
    same = InfoNCELoss()(np.array([[7], [3], [9], [0], [4]]), logits.astype("float32"))
    np.testing.assert_allclose(float(same), expected, rtol=1e-5)


def test_asymmetric_logits_use_both_directions():
    logits = RNG.normal(size=(4, 4)).astype("float32") * 3
    labels = np.arange(4)
    rows = -_log_softmax(logits, 1)[labels, labels]
    cols = -_log_softmax(logits, 0)[labels, labels]
    per_example = InfoNCELoss(reduction=None)(labels, logits)
    np.testing.assert_allclose(per_example, (rows + cols) / 2, rtol=1e-5)


def test_repeated_ids_are_soft_positives():
    # Captions 0 and 1 describe the same image (id 5): both are positives of rows 0 and 1.
    logits = RNG.normal(size=(3, 3)).astype("float32")
    groups = np.array([5, 5, 2])
    targets = (groups[:, None] == groups[None, :]).astype("float64")
    targets /= targets.sum(1, keepdims=True)
    rows = -(targets * _log_softmax(logits, 1)).sum(1)
    cols = -(targets * _log_softmax(logits, 0)).sum(0)
    np.testing.assert_allclose(
        float(InfoNCELoss()(groups, logits)), np.mean((rows + cols) / 2), rtol=1e-5
    )
    # A perfect model under duplicates: uniform over the two positives, no penalty beyond it.
    perfect = np.where(targets > 0, 20.0, -20.0).astype("float32")
    np.testing.assert_allclose(
        float(InfoNCELoss()(groups, perfect)), (2 * np.log(2) + 0) / 3, atol=1e-4
    )


def test_sample_weight_and_float16_logits():
    logits = RNG.normal(size=(3, 3)).astype("float32")
    per_example = np.asarray(InfoNCELoss(reduction=None)(np.arange(3), logits))
    weighted = InfoNCELoss(reduction="sum")(np.arange(3), logits, sample_weight=[1.0, 0.0, 2.0])
    np.testing.assert_allclose(float(weighted), per_example[0] + 2 * per_example[2], rtol=1e-5)
    half = InfoNCELoss()(np.arange(3), logits.astype("float16"))
    assert half.dtype == "float32"
    np.testing.assert_allclose(float(half), per_example.mean(), rtol=1e-2)


def test_serialization_round_trip():
    loss = InfoNCELoss(name="clip", reduction="sum")
    revived = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(revived, InfoNCELoss)
    assert revived.get_config() == loss.get_config()


@pytest.mark.parametrize("batch", [1, 2])
def test_tiny_batches(batch):
    value = InfoNCELoss()(np.arange(batch), np.zeros((batch, batch), "float32"))
    np.testing.assert_allclose(float(value), np.log(batch), atol=1e-6)
