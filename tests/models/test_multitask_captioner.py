"""Multi-task captioner: a contrastive head on the captioner's own image encoder."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import run_model_saving_test

from xmodal_keras.data.datasets import make_caption_dataset
from xmodal_keras.data.readers import read_captions
from xmodal_keras.data.text_tokenizer import CaptionTokenizer
from xmodal_keras.decoding.caption_generator import CaptionGenerator
from xmodal_keras.losses.info_nce_loss import InfoNCELoss
from xmodal_keras.models.dual_encoder import build_dual_encoder
from xmodal_keras.models.gru_captioner import build_gru_captioner
from xmodal_keras.models.lstm_captioner import build_lstm_captioner
from xmodal_keras.models.multitask_captioner import (
    build_multitask_captioner,
    captioner_from_multitask,
    multitask_captioner_targets,
    multitask_retrieval_towers,
)
from xmodal_keras.models.transformer_captioner import build_transformer_captioner
from xmodal_keras.training.compile_multitask_captioner import compile_multitask_captioner

VOCAB, LENGTH, IMAGE = 12, 6, (32, 32, 3)
CAPTIONERS = {
    "gru": lambda vocab=VOCAB, length=LENGTH: build_gru_captioner(
        vocabulary_size=vocab, sequence_length=length, image_shape=IMAGE,
        encoder_kwargs={"hidden_dim": 8}, embedding_dim=8, hidden_dim=8,
    ),
    "lstm": lambda vocab=VOCAB, length=LENGTH: build_lstm_captioner(
        vocabulary_size=vocab, sequence_length=length, image_shape=IMAGE,
        encoder_kwargs={"hidden_dim": 8}, embedding_dim=8, hidden_dim=8,
    ),
    "transformer": lambda vocab=VOCAB, length=LENGTH: build_transformer_captioner(
        vocabulary_size=vocab, sequence_length=length, image_shape=IMAGE,
        encoder_kwargs={"hidden_dim": 8}, hidden_dim=8, num_heads=2, num_layers=1,
    ),
}  # fmt: skip
TOWER = {"embedding_dim": 8, "hidden_dim": 8, "projection_dim": 4}
RNG = np.random.default_rng(0)
INPUTS = {
    "images": RNG.integers(0, 256, (3, *IMAGE)).astype("uint8"),
    "token_ids": np.array([[2, 4, 5, 3, 0, 0], [2, 7, 8, 9, 3, 0], [2, 6, 3, 0, 0, 0]], "int32"),
}


@pytest.fixture(params=sorted(CAPTIONERS))
def kind(request):
    return request.param


def test_outputs_share_the_captioner_layers(kind):
    captioner = CAPTIONERS[kind]()
    model = build_multitask_captioner(captioner, **TOWER)
    out = model(INPUTS)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "caption": (3, LENGTH, VOCAB),
        "contrastive": (3, 3),
    }
    # The caption output is the captioner itself; its layers are shared, not copied.
    np.testing.assert_array_equal(out["caption"].numpy(), captioner(INPUTS).numpy())
    for name in ("image_encoder", "caption_decoder"):
        assert model.get_layer(name) is captioner.get_layer(name)
    # The image encoder runs once per batch for both heads: no second call was added.
    assert len(model.get_layer("image_encoder")._inbound_nodes) == 1
    # Contrastive logits = exp(logit_scale) x cosine similarities of the towers' outputs.
    image_tower, text_tower = multitask_retrieval_towers(model)
    images = np.asarray(image_tower(INPUTS["images"]))
    texts = np.asarray(text_tower(INPUTS["token_ids"]))
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(out["contrastive"].numpy(), images @ texts.T / 0.07, atol=1e-4)


def test_keras_file_round_trip_and_captioner_inside(kind):
    captioner = CAPTIONERS[kind]()
    model = build_multitask_captioner(captioner, text_encoder="transformer", num_heads=2, **TOWER)
    restored = run_model_saving_test(model, INPUTS, atol=1e-5)
    inner = captioner_from_multitask(restored)
    assert set(inner.input) == {"images", "token_ids"}
    np.testing.assert_allclose(inner(INPUTS).numpy(), captioner(INPUTS).numpy(), atol=1e-5)


def test_targets_group_rows_with_the_same_image():
    a, b, c = RNG.integers(0, 256, (3, *IMAGE)).astype("uint8")
    images = np.stack([a, b, a, c, b])
    caption_out = np.ones((5, LENGTH), "int32")
    inputs, targets = multitask_captioner_targets({"images": images}, caption_out)
    assert targets["contrastive"].dtype == tf.int32
    assert targets["contrastive"].numpy().tolist() == [0, 1, 0, 3, 1]
    assert targets["caption"] is caption_out and inputs["images"] is images
    # One pixel differs: another image.
    images[2, 0, 0, 0] ^= 1
    _, targets = multitask_captioner_targets({"images": images}, caption_out)
    assert targets["contrastive"].numpy().tolist() == [0, 1, 2, 3, 1]


def caption_data(tiny_shapes_dir, *, batch_size, shuffle):
    frame = read_captions(tiny_shapes_dir)
    train = frame[frame.split == "train"]
    tokenizer = CaptionTokenizer.from_captions(train.caption, sequence_length=8)
    dataset = make_caption_dataset(
        train, tokenizer, image_size=IMAGE[:2], batch_size=batch_size, shuffle=shuffle,
        cache=True, drop_remainder=True,
    )  # fmt: skip
    return dataset.map(multitask_captioner_targets), tokenizer


def test_training_lowers_both_losses_and_the_captioner_decodes(tiny_shapes_dir):
    keras.utils.set_random_seed(0)
    data, tokenizer = caption_data(tiny_shapes_dir, batch_size=16, shuffle=True)
    captioner = CAPTIONERS["gru"](tokenizer.vocabulary_size, 8)
    model = build_multitask_captioner(captioner, embedding_dim=8, hidden_dim=8, projection_dim=8)
    compile_multitask_captioner(
        model, total_steps=150, contrastive_weight=3.0, learning_rate=5e-3, weight_decay=0.0
    )
    history = model.fit(data.repeat(), steps_per_epoch=10, epochs=15, verbose=0).history
    assert {"loss", "caption_loss", "contrastive_loss", "caption_masked_token_accuracy"} <= set(
        history
    )
    contrastive, caption = history["contrastive_loss"], history["caption_loss"]
    # Equal logits score log(16) whatever the groups: the encoder learnt to tell images apart.
    assert contrastive[-1] < np.log(16) - 0.3, contrastive
    assert caption[-1] < caption[0] - 0.5, caption

    # Greedy decoding: the captioner inside the multi-task model and the original
    # captioner object are one captioner.
    images = next(iter(data))[0]["images"][:4]
    results = [
        CaptionGenerator(m, tokenizer).generate(images)
        for m in (captioner, captioner_from_multitask(model))
    ]
    tokens = results[0]["tokens"].numpy()
    assert tokens.shape == (4, 8)
    np.testing.assert_array_equal(results[1]["tokens"].numpy(), tokens)
    assert all(len(text.split()) >= 1 for text in results[0]["text"].numpy().astype(str))


def test_contrastive_loss_trains_the_captioner_image_encoder():
    keras.utils.set_random_seed(1)
    captioner = CAPTIONERS["gru"]()
    model = build_multitask_captioner(captioner, **TOWER)
    encoder = captioner.get_layer("image_encoder")
    decoder = captioner.get_layer("caption_decoder")
    with tf.GradientTape() as tape:
        loss = InfoNCELoss()(np.arange(3), model(INPUTS, training=True)["contrastive"])
    variables = model.trainable_variables
    gradients = dict(zip((v.path for v in variables), tape.gradient(loss, variables), strict=True))
    encoder_paths = {v.path for v in encoder.trainable_variables}
    assert encoder_paths and encoder_paths <= set(gradients)
    assert any(float(tf.reduce_max(tf.abs(gradients[p]))) > 0 for p in encoder_paths)
    assert all(gradients[v.path] is None for v in decoder.trainable_variables)

    # One SGD step on the contrastive loss alone changes what the captioner says.
    logits_before = captioner(INPUTS).numpy()
    keras.optimizers.SGD(0.5).apply(
        [g for g in gradients.values() if g is not None],
        [v for v in variables if gradients[v.path] is not None],
    )
    assert np.abs(captioner(INPUTS).numpy() - logits_before).max() > 1e-4


def test_bad_arguments():
    dual_encoder = build_dual_encoder(
        vocabulary_size=VOCAB, sequence_length=LENGTH, image_shape=IMAGE,
        encoder_kwargs={"hidden_dim": 8}, **TOWER,
    )  # fmt: skip
    with pytest.raises(ValueError, match="must be a model from `build_gru_captioner`.*dual_enc"):
        build_multitask_captioner(dual_encoder)
    with pytest.raises(ValueError, match="Received: captioner='not a model'"):
        build_multitask_captioner("not a model")
    captioner = CAPTIONERS["gru"]()
    with pytest.raises(ValueError, match="Received: projection_dim=0"):
        build_multitask_captioner(captioner, projection_dim=0)
    with pytest.raises(ValueError, match="must come from `build_multitask_captioner`"):
        captioner_from_multitask(captioner)
    model = build_multitask_captioner(captioner, **TOWER)
    with pytest.raises(ValueError, match="Received: contrastive_weight=-1"):
        compile_multitask_captioner(model, total_steps=10, contrastive_weight=-1)
    with pytest.raises(ValueError, match="Received: inputs=ndarray"):
        multitask_captioner_targets(INPUTS["images"], None)
