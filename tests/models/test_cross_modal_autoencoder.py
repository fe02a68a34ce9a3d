import keras
import numpy as np
import pytest
from helpers import run_model_saving_test

from xmodal_keras.models.cross_modal_autoencoder import (
    build_cross_modal_autoencoder,
    cross_modal_autoencoder_targets,
    shared_code_model,
)

RNG = np.random.default_rng(0)


def paired_features(n=256):
    """Two views of one 2-d latent: each modality is a fixed linear map of it."""
    latent = RNG.normal(size=(n, 2)).astype("float32")
    image = latent @ RNG.normal(size=(2, 6)).astype("float32")
    text = latent @ RNG.normal(size=(2, 4)).astype("float32")
    return {"image": image, "text": text}


def test_outputs_and_reload():
    model = build_cross_modal_autoencoder(
        feature_dims={"image": 6, "text": 4}, code_dim=3, hidden_dim=8
    )
    features = {k: v[:2] for k, v in paired_features(2).items()}
    out = model(features)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "image_from_image": (2, 6),
        "image_from_text": (2, 6),
        "image_from_shared": (2, 6),
        "text_from_image": (2, 4),
        "text_from_text": (2, 4),
        "text_from_shared": (2, 4),
    }
    assert tuple(shared_code_model(model)(features).shape) == (2, 3)
    run_model_saving_test(model, features, atol=1e-5)


def test_fit_learns_cross_modal_reconstruction():
    keras.utils.set_random_seed(0)
    features = paired_features()
    model = build_cross_modal_autoencoder(
        feature_dims={"image": 6, "text": 4}, code_dim=4, hidden_dim=32
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    targets = cross_modal_autoencoder_targets(features)
    before = model.evaluate(features, targets, verbose=0, return_dict=True)
    model.fit(features, targets, batch_size=32, epochs=15, verbose=0)
    after = model.evaluate(features, targets, verbose=0, return_dict=True)
    # Text alone rebuilds the image features (and back) far better than at the start.
    for key in ("image_from_text_loss", "text_from_image_loss"):
        assert after[key] < 0.2 * before[key], (key, before[key], after[key])


@pytest.mark.parametrize(
    "feature_dims, match",
    [
        ({"image": 4}, "two or more"),
        ({"image": 4, "shared": 3}, "other than 'shared'"),
        ({"image": 4, "text": 0}, "Received: feature_dims\\['text'\\]=0"),
    ],
)
def test_bad_feature_dims(feature_dims, match):
    with pytest.raises(ValueError, match=match):
        build_cross_modal_autoencoder(feature_dims=feature_dims)
