import numpy as np
import pytest

from xmodal_keras.models.dual_encoder import build_dual_encoder
from xmodal_keras.models.dual_encoder_transfer import (
    build_fusion_classifier_from_dual_encoder,
    dual_encoder_encoders,
    find_layer,
    transfer_weights_by_name,
)

RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, size=(2, 32, 32, 3)).astype("uint8")
IDS = np.array([[2, 4, 5, 3, 0, 0], [2, 6, 3, 0, 0, 0]], "int32")
TINY = {
    "vocabulary_size": 12,
    "sequence_length": 6,
    "image_shape": (32, 32, 3),
    "encoder_kwargs": {"hidden_dim": 8, "num_layers": 2},
    "embedding_dim": 8,
    "hidden_dim": 8,
    "projection_dim": 4,
}


@pytest.fixture(scope="module")
def dual_encoder():
    model = build_dual_encoder(**TINY)
    # "Train" it: weights no fresh model has.
    model.set_weights([w + RNG.normal(size=w.shape).astype(w.dtype) for w in model.get_weights()])
    return model


def test_encoders_are_trained_copies(dual_encoder):
    encoders = dual_encoder_encoders(dual_encoder)
    image_original = find_layer(dual_encoder, "image_encoder")
    np.testing.assert_allclose(
        encoders["image"](IMAGES)["pooled"], image_original(IMAGES)["pooled"]
    )
    text_original = find_layer(dual_encoder, "text_encoder")
    np.testing.assert_allclose(encoders["text"](IDS)["pooled"], text_original(IDS)["pooled"])
    # Copies, not shared: changing the copy leaves the dual encoder alone.
    encoders["text"].set_weights([w * 0 for w in encoders["text"].get_weights()])
    assert np.abs(np.asarray(text_original(IDS)["pooled"])).sum() > 0


def test_classifier_starts_from_the_towers(dual_encoder):
    classifier = build_fusion_classifier_from_dual_encoder(
        dual_encoder, num_classes=2, fusion="concat"
    )
    assert classifier({"images": IMAGES, "token_ids": IDS}).shape == (2, 1)
    for head in ("image_projection", "text_projection"):
        for a, b in zip(
            find_layer(classifier, head).get_weights(),
            find_layer(dual_encoder, head).get_weights(),
            strict=True,
        ):
            np.testing.assert_array_equal(a, b)
    # The classifier's image path reproduces the tower's embedding before normalisation.
    tower = dual_encoder.get_layer("image_tower")
    projected = find_layer(tower, "image_projection")(
        find_layer(tower, "image_encoder")(IMAGES)["pooled"]
    )
    classifier_image = find_layer(classifier, "image_projection")(
        [layer for layer in classifier.layers if "image_encoder" in layer.name][0](IMAGES)["pooled"]
    )
    np.testing.assert_allclose(classifier_image, projected, atol=1e-6)


def test_frozen_encoders_and_other_projection_dim(dual_encoder):
    classifier = build_fusion_classifier_from_dual_encoder(
        dual_encoder, num_classes=3, projection_dim=6, freeze_encoders=True
    )
    trainable = {id(w) for w in classifier.trainable_weights}
    encoders = [layer for layer in classifier.layers if layer.name.endswith("_encoder")]
    assert len(encoders) == 2
    assert all(id(w) not in trainable for e in encoders for w in e.weights)
    assert find_layer(classifier, "text_projection").projection_dim == 6


def test_transfer_errors(dual_encoder):
    other = build_dual_encoder(**{**TINY, "projection_dim": 6})
    with pytest.raises(ValueError, match="do not fit 'text_projection'"):
        transfer_weights_by_name(dual_encoder, other, ["text_projection"])
    with pytest.raises(ValueError, match="exactly one layer named 'nope'"):
        transfer_weights_by_name(dual_encoder, other, {"nope": "text_projection"})
    assert transfer_weights_by_name(dual_encoder, other, ["text_encoder"]) == ["text_encoder"]
