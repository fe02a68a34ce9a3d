import keras
import numpy as np
import pytest
from helpers import run_model_saving_test

from xmodal_keras.layers.contrastive_logits import ContrastiveLogits
from xmodal_keras.models.dual_encoder import build_dual_encoder
from xmodal_keras.training.compile_dual_encoder import compile_dual_encoder

RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, size=(4, 32, 32, 3)).astype("uint8")
IDS = np.array([[2, 4, 5, 3, 0, 0], [2, 6, 3, 0, 0, 0], [2, 7, 8, 9, 3, 0], [2, 4, 3, 0, 0, 0]])
INPUTS = {"images": IMAGES, "token_ids": IDS.astype("int32")}
TINY = {
    "vocabulary_size": 12,
    "sequence_length": 6,
    "image_shape": (32, 32, 3),
    "encoder_kwargs": {"hidden_dim": 8, "num_layers": 2},
    "embedding_dim": 8,
    "hidden_dim": 8,
    "projection_dim": 4,
}


@pytest.mark.parametrize("text_encoder", ["bigru", "transformer"])
def test_logits_towers_and_reload(text_encoder):
    model = build_dual_encoder(**TINY, text_encoder=text_encoder)
    assert set(model.input) == {"images", "token_ids"}
    logits = np.asarray(model(INPUTS))
    assert logits.shape == (4, 4)
    image_embeddings = np.asarray(model.get_layer("image_tower")(IMAGES))
    text_embeddings = np.asarray(model.get_layer("text_tower")(INPUTS["token_ids"]))
    assert image_embeddings.shape == text_embeddings.shape == (4, 4)
    np.testing.assert_allclose(np.linalg.norm(image_embeddings, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(text_embeddings, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(
        logits, image_embeddings @ text_embeddings.T / 0.07, rtol=1e-4, atol=1e-4
    )
    restored = run_model_saving_test(model, INPUTS, atol=1e-5)
    for tower, data in (("image_tower", IMAGES), ("text_tower", INPUTS["token_ids"])):
        np.testing.assert_allclose(
            restored.get_layer(tower)(data), model.get_layer(tower)(data), atol=1e-6
        )
    assert isinstance(restored.get_layer("logits"), ContrastiveLogits)


def test_one_fit_step_moves_towers_and_temperature():
    model = build_dual_encoder(**TINY)
    compile_dual_encoder(model, total_steps=2, learning_rate=1e-2, warmup_steps=0)
    parts = {
        name: model.get_layer(name).trainable_weights for name in ("image_tower", "text_tower")
    }
    parts["logits"] = [model.get_layer("logits").logit_scale]
    before = {name: [np.array(w) for w in weights] for name, weights in parts.items()}
    history = model.fit(INPUTS, np.arange(4), batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    for name, weights in parts.items():
        changed = [not np.array_equal(b, w) for b, w in zip(before[name], weights, strict=True)]
        assert all(changed), f"{name}: unchanged weights after one step"


def test_frozen_temperature():
    model = build_dual_encoder(**TINY, trainable_temperature=False, initial_temperature=0.5)
    assert "logits/logit_scale" not in {w.path for w in model.trainable_weights}
    assert model.get_layer("logits").temperature == pytest.approx(0.5)


def test_weight_decay_skips_temperature():
    model = compile_dual_encoder(build_dual_encoder(**TINY), total_steps=4)
    optimizer = model.optimizer
    scale = model.get_layer("logits").logit_scale
    assert not optimizer._use_weight_decay(scale)
    kernel = model.get_layer("text_tower").get_layer("text_projection").projection_dense.kernel
    assert optimizer._use_weight_decay(kernel)


def test_bad_projection_dim():
    with pytest.raises(ValueError, match="Received: projection_dim=0"):
        build_dual_encoder(**{**TINY, "projection_dim": 0})


def test_compile_bad_total_steps():
    with pytest.raises(ValueError, match="Received: total_steps=0"):
        compile_dual_encoder(keras.Sequential(), total_steps=0)
