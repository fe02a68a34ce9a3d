"""A KerasHub text tower (`--text-encoder keras_hub:DIR`, a tiny BERT preset): a retrieval run
trained, saved with its WordPiece tokenizer, reloaded in safe mode and resumed with the same
settings; a fusion classifier with the tower fine-tuning its last layer; both exported to
SavedModels that take raw text with core ops only, run by `saved_model_cli`'s TF1 loader in
a fresh process. (A fusion *run* with a preset, from the command line, is
tests/test_cli_pretrained_towers.py, marked slow.)"""

import json

import numpy as np
import pytest
import tensorflow as tf
from export_checks import tf1_session_run
from keras_hub_presets import tiny_bert_preset
from task_runs import fusion_config, retrieval_config

from xmodal_keras.data.wordpiece_text_tokenizer import WordPieceTextTokenizer
from xmodal_keras.export.fusion_export import export_fusion_classifier
from xmodal_keras.export.graph_ops import non_core_ops, saved_model_ops
from xmodal_keras.models.dual_encoder import TEXT_TOWER_NAME
from xmodal_keras.tasks.fusion.train import build_fusion_model_from_config
from xmodal_keras.tasks.retrieval.export import export_saved_model as export_retrieval
from xmodal_keras.tasks.retrieval.retrieve import load_dual_encoder_run, retrieve
from xmodal_keras.tasks.retrieval.settings import RetrievalTrainConfig
from xmodal_keras.tasks.retrieval.train import train_retrieval

TEXTS = ["a small red circle", "a LARGE blue triangle above a white square!", "zebra"]
LENGTH = 12


@pytest.fixture(scope="module")
def preset(tmp_path_factory) -> str:
    return "keras_hub:" + str(tiny_bert_preset(tmp_path_factory.mktemp("bert") / "tiny_bert"))


@pytest.fixture(scope="module")
def retrieval_run(preset, tiny_shapes_dir, tmp_path_factory):
    config = retrieval_config(tiny_shapes_dir, text_encoder=preset, sequence_length=LENGTH)
    out = tmp_path_factory.mktemp("hub_retrieval") / "run"
    return config, train_retrieval(config, out, verbose=0)


@pytest.fixture(scope="module")
def classifier(preset, tiny_shapes_dir, retrieval_run):
    """A fusion classifier with the preset tower (untrained) and the run's tokenizer."""
    config = fusion_config(
        tiny_shapes_dir, text_encoder=preset, text_trainable_layers=1, sequence_length=LENGTH
    )
    _, tokenizer, _ = load_dual_encoder_run(retrieval_run[1])
    return build_fusion_model_from_config(config, tokenizer.vocabulary_size, 2), tokenizer


@pytest.fixture(scope="module")
def exports(retrieval_run, classifier, tmp_path_factory):
    base = tmp_path_factory.mktemp("hub_exports")
    model, tokenizer = classifier
    return {
        "retrieval": export_retrieval(retrieval_run[1], base_dir=base, name="clip", version=1),
        "fusion": export_fusion_classifier(model, tokenizer, base_dir=base, name="fusion"),
    }


def test_retrieval_run_keeps_the_preset_tokenizer(retrieval_run):
    config, run = retrieval_run
    settings = json.loads(run.text_tokenizer_path.read_text())
    assert settings["sequence_length"] == LENGTH and settings["lowercase"] is True
    model, tokenizer, loaded = load_dual_encoder_run(run)
    assert isinstance(tokenizer, WordPieceTextTokenizer)
    assert model.get_layer(TEXT_TOWER_NAME).input.shape[1] == tokenizer.ids_length == LENGTH
    # [CLS] a small red circ ##le [SEP]: the preset's pieces, not the data's words
    assert tokenizer.get_vocabulary()[2] == "[CLS]"
    assert tokenizer(["a red circle"]).numpy()[0, :6].tolist()[-1] == tokenizer.end_id
    assert loaded.text_encoder == config.resolved().text_encoder
    matches = retrieve(run, query_text="a small red circle", k=2)
    assert [match["rank"] for match in matches] == [1, 2]


def test_retrieval_run_resumes_with_the_same_settings(retrieval_run):
    config, run = retrieval_run
    assert config.resolved().for_run(run) == RetrievalTrainConfig.from_dict(run.read_config())


def test_fusion_classifier_fine_tunes_the_last_layer_only(classifier):
    model, _ = classifier
    backbone = model.get_layer("text_encoder").get_layer("preset_backbone").backbone
    assert [bool(layer.trainable) for layer in backbone.transformer_layers] == [False, True]


def test_exports_hold_core_ops_only(exports):
    for version in exports.values():
        ops = saved_model_ops(version)
        assert non_core_ops(ops) == []
        assert "LookupTableFindV2" in ops  # the WordPiece vocabulary, in-graph


def test_raw_text_signatures_in_saved_model_cli_equal_the_keras_models(
    exports, retrieval_run, classifier, tmp_path
):
    images = [
        tf.io.encode_png(np.full((32, 32, 3), value, np.uint8)).numpy() for value in (0, 90, 200)
    ]
    texts = np.array([text.encode() for text in TEXTS])
    calls = [
        (exports["retrieval"], "embed_text", {"text": texts}),
        (exports["fusion"], "classify", {"image_bytes": np.array(images), "text": texts}),
    ]
    (embedded, classified), _ = tf1_session_run(calls, tmp_path)

    model, tokenizer, _ = load_dual_encoder_run(retrieval_run[1])
    expected = model.get_layer(TEXT_TOWER_NAME)(tokenizer(TEXTS), training=False)
    np.testing.assert_allclose(embedded["embedding"], expected, atol=1e-5)

    model, tokenizer = classifier
    decoded = tf.stack([tf.io.decode_png(image) for image in images])
    probabilities = model({"images": decoded, "token_ids": tokenizer(TEXTS)}, training=False)
    np.testing.assert_allclose(classified["probabilities"], probabilities, atol=1e-5)


def test_token_ids_signature_equals_raw_text_and_refuses_bad_ids(exports, retrieval_run):
    _, tokenizer, _ = load_dual_encoder_run(retrieval_run[1])
    signatures = tf.saved_model.load(str(exports["retrieval"])).signatures
    ids = tokenizer(TEXTS)
    # A client's own padding may hold any id: the mask decides.
    noisy = tf.where(ids == 0, tf.fill(tf.shape(ids), 7), ids)
    mask = tf.cast(ids != 0, tf.int32)
    from_ids = signatures["embed_token_ids"](token_ids=noisy, padding_mask=mask)["embedding"]
    from_text = signatures["embed_text"](text=tf.constant(TEXTS))["embedding"]
    np.testing.assert_allclose(from_ids, from_text, atol=1e-6)
    too_big = tf.fill([1, LENGTH], tokenizer.vocabulary_size)
    with pytest.raises(tf.errors.InvalidArgumentError, match="token_ids must be <"):
        signatures["embed_token_ids"](token_ids=too_big, padding_mask=tf.ones_like(too_big))
