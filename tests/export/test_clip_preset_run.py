"""`xmodal train retrieval --from keras_hub:DIR` on a tiny random CLIP preset, end to end:
a zero-shot run (`--epochs 0`), `xmodal retrieve` and `xmodal evaluate` on it, its export
(`embed_image` + `embed_token_ids`: CLIP's BPE is not core ops, so no `embed_text`) served
by `ServingHarness` (a test double for the TF Serving binary around the real SavedModel)
to a `ServingClient` that tokenises with the run's tokenizer; then a fine-tuned run whose
towers stay frozen through its first epoch (`tower_frozen_epochs`)."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras_hub_presets import tiny_clip_preset
from serving_harness import ServingHarness

from xmodal_keras.cli import main
from xmodal_keras.export.client import ServingClient
from xmodal_keras.export.graph_ops import non_core_ops, saved_model_ops
from xmodal_keras.tasks.fusion.settings import read_init_from_settings
from xmodal_keras.tasks.retrieval.retrieve import load_dual_encoder_run
from xmodal_keras.tasks.retrieval.settings import RetrievalTrainConfig
from xmodal_keras.tasks.retrieval.train import train_retrieval

SMALL = ["--batch-size=16", "--strategy=default", "--precision=float32", "--sequence-length=16"]
TEXTS = ["a red circle", "a blue square below a star"]


@pytest.fixture(scope="module")
def preset(tmp_path_factory) -> str:
    return "keras_hub:" + str(tiny_clip_preset(tmp_path_factory.mktemp("clip") / "tiny_clip"))


@pytest.fixture(scope="module")
def zero_shot_run(preset, tiny_shapes_dir, tmp_path_factory):
    run = tmp_path_factory.mktemp("clip_runs") / "zero_shot"
    argv = ["train", "retrieval", "--data", str(tiny_shapes_dir), "--from", preset]
    assert main([*argv, "--epochs=0", *SMALL, "--out", str(run)]) == 0
    return run


def test_a_zero_shot_run_is_the_preset_and_retrieves(zero_shot_run, preset, capsys):
    config = json.loads((zero_shot_run / "config.json").read_text())
    assert (config["from_preset"], config["image_size"], config["epochs"]) == (preset, 32, 0)
    assert json.loads((zero_shot_run / "text_tokenizer.json").read_text())["kind"] == "clip_bpe"
    assert (zero_shot_run / "metrics" / "test_retrieval" / "metrics.json").is_file()
    capsys.readouterr()
    assert main(["retrieve", str(zero_shot_run), "--query", "a red circle", "-k", "2"]) == 0
    assert "1." in capsys.readouterr().out
    assert main(["evaluate", str(zero_shot_run), "--split", "val"]) == 0
    assert "R@1 i->t" in capsys.readouterr().out
    with pytest.raises(ValueError, match="is a CLIP preset run"):
        read_init_from_settings(zero_shot_run)


def test_the_export_serves_images_and_client_tokenised_text(
    zero_shot_run, tiny_shapes_dir, tmp_path, capsys
):
    assert main(["export", str(zero_shot_run), "--out", str(tmp_path), "--name", "clip"]) == 0
    assert "clients tokenise" in capsys.readouterr().out
    version = tmp_path / "clip" / "1"
    assert non_core_ops(saved_model_ops(version)) == []
    loaded = tf.saved_model.load(str(version))
    assert {"embed_image", "embed_token_ids"} <= set(loaded.signatures)
    assert "embed_text" not in loaded.signatures
    model, tokenizer, _ = load_dual_encoder_run(zero_shot_run)
    expected_text = np.asarray(model.get_layer("text_tower")(tokenizer(TEXTS)))
    image_bytes = sorted((tiny_shapes_dir / "Images").glob("*.png"))[0].read_bytes()
    expected_image = loaded.signatures["embed_image"](image_bytes=tf.constant([image_bytes]))
    with ServingHarness({"clip": tmp_path / "clip"}) as server:
        for address, grpc in ((server.rest_address, False), (server.grpc_address, True)):
            with ServingClient(address, "clip", grpc=grpc) as client:
                text = client.embed_text(TEXTS, tokenizer=tokenizer)
                np.testing.assert_allclose(text, expected_text, atol=1e-5)
                image = client.embed([image_bytes])
                np.testing.assert_allclose(image, expected_image["embedding"], atol=1e-5)


class _TowersAtEpochEnd(keras.callbacks.Callback):
    """The first weight of each tower at the start and after every epoch."""

    def __init__(self):
        super().__init__()
        self.weights: list[dict[str, np.ndarray]] = []

    def on_train_begin(self, logs=None):
        self.weights.append(self._first_weights())

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self._first_weights())

    def _first_weights(self) -> dict[str, np.ndarray]:
        return {
            tower: np.array(self.model.get_layer(tower).trainable_weights[0])
            for tower in ("image_tower", "text_tower")
        }


def test_a_run_from_the_preset_fine_tunes_after_a_frozen_epoch(
    zero_shot_run, preset, tiny_shapes_dir, tmp_path
):
    config = RetrievalTrainConfig(
        data=str(tiny_shapes_dir),
        from_preset=preset,
        epochs=2,
        batch_size=16,
        sequence_length=16,
        strategy="default",
        precision="float32",
        tower_learning_rate_scale=0.1,
        tower_frozen_epochs=1,
    )
    watch = _TowersAtEpochEnd()
    run = train_retrieval(config, tmp_path / "tuned", callbacks=[watch], verbose=0)
    assert run.read_config()["tower_frozen_epochs"] == 1
    start, after_frozen_epoch, after_second_epoch = watch.weights
    original, _, _ = load_dual_encoder_run(zero_shot_run)
    for tower in ("image_tower", "text_tower"):
        preset_weight = np.array(original.get_layer(tower).trainable_weights[0])
        np.testing.assert_array_equal(start[tower], preset_weight)
        np.testing.assert_array_equal(after_frozen_epoch[tower], start[tower])
        assert not np.allclose(after_second_epoch[tower], start[tower]), tower
