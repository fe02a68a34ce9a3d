"""A run written by xmodal_keras 0.1 (inputs `image` / `caption_in`) still loads, captions,
evaluates and exports. The fixture is a tiny Transformer run trained by that code
(commit 6549f1e) and kept as it was written: `config.json`, `model.keras`, `vocab.txt`,
`history.csv`."""

import io

import keras
import numpy as np
import pytest
import tensorflow as tf
from old_runs import copied_old_run, old_run_path
from PIL import Image

from xmodal_keras.decoding.caption_generator import CaptionGenerator
from xmodal_keras.models.captioner_input_names import with_current_input_names
from xmodal_keras.runs.run_directory import RunDirectory
from xmodal_keras.tasks.captioning.evaluate import evaluate_captioner
from xmodal_keras.tasks.captioning.export import export_saved_model
from xmodal_keras.tasks.captioning.predict import caption_image_files, load_captioner

OLD_RUN = old_run_path("captioner")
IMAGES = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype("uint8")


@pytest.fixture(scope="module")
def old_run(tmp_path_factory) -> RunDirectory:
    return copied_old_run("captioner", tmp_path_factory)


def test_fixture_is_a_run_with_the_old_input_names():
    model = keras.saving.load_model(OLD_RUN / "model.keras", safe_mode=True)
    assert set(model.input) == {"image", "caption_in"}


def test_old_run_loads_with_current_input_names_and_same_logits(old_run):
    old = keras.saving.load_model(old_run.model_path, safe_mode=True)
    model, tokenizer, config = load_captioner(old_run)
    assert set(model.input) == {"images", "token_ids"}
    assert model.input["token_ids"].shape[1] == config.sequence_length == tokenizer.sequence_length
    token_ids = tokenizer(tf.constant(["a red circle", "two blue squares"])).numpy()[:, :-1]
    np.testing.assert_allclose(
        model({"images": IMAGES, "token_ids": token_ids}),
        old({"image": IMAGES, "caption_in": token_ids}),
        atol=1e-6,
    )
    assert with_current_input_names(model) is model


def test_old_run_captions_image_files_and_evaluates(old_run, tmp_path):
    path = tmp_path / "scene.png"
    Image.fromarray(IMAGES[0]).save(path)
    [result] = caption_image_files(old_run, [path])
    assert isinstance(result["caption"], str)
    scores = evaluate_captioner(old_run, split="val", max_images=3, metrics=("bleu",))
    assert 0.0 <= scores["bleu_4"] <= 1.0


def test_old_run_exports_a_saved_model_that_captions_like_the_model(old_run, tmp_path):
    version = export_saved_model(old_run, base_dir=tmp_path, name="old", version=1)
    served = tf.saved_model.load(str(version)).signatures["serving_default"]
    buffer = io.BytesIO()
    Image.fromarray(IMAGES[0]).save(buffer, format="PNG")
    outputs = served(image_bytes=tf.constant([buffer.getvalue()]))
    model, tokenizer, _ = load_captioner(old_run)
    expected = CaptionGenerator(model, tokenizer).generate(IMAGES[:1])
    np.testing.assert_array_equal(outputs["tokens"], expected["tokens"])
