"""WordPieceTextTokenizer: KerasHub's BERT preprocessing ids from core ops, saved and reloaded."""

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf
from keras_hub_presets import BERT_SPECIAL_TOKENS, SHAPES_PIECES

from xmodal_keras.data.wordpiece_text_tokenizer import WordPieceTextTokenizer
from xmodal_keras.export.graph_ops import non_core_ops

VOCABULARY = [*BERT_SPECIAL_TOKENS, *SHAPES_PIECES]
TEXTS = [
    "A small red circle.",
    "a LARGE blue triangle, above a white square!",
    "an unknown shape",
    "",
    "circles and triangles " * 10,  # longer than the row: cut, still ends with [SEP]
    "Ünïcödé circle",
]


@pytest.fixture(scope="module")
def keras_hub_tokenizer():
    return keras_hub.models.BertTokenizer(vocabulary=VOCABULARY, lowercase=True)


@pytest.mark.parametrize("sequence_length", [3, 8, 20])
def test_ids_equal_keras_hub_bert_preprocessing(keras_hub_tokenizer, sequence_length):
    ours = WordPieceTextTokenizer.from_keras_hub(keras_hub_tokenizer, sequence_length)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
        tokenizer=keras_hub_tokenizer, sequence_length=sequence_length
    )
    expected = preprocessor(tf.constant(TEXTS))
    ids = ours(TEXTS).numpy()
    np.testing.assert_array_equal(ids, expected["token_ids"].numpy())
    np.testing.assert_array_equal(ids != 0, expected["padding_mask"].numpy())
    assert ids.shape == (len(TEXTS), sequence_length) and ours.ids_length == sequence_length


def test_scalar_and_column_inputs(keras_hub_tokenizer):
    tokenizer = WordPieceTextTokenizer.from_keras_hub(keras_hub_tokenizer, 8)
    row = tokenizer(["a red circle"]).numpy()
    np.testing.assert_array_equal(tokenizer("a red circle").numpy(), row[0])
    np.testing.assert_array_equal(tokenizer(tf.constant([["a red circle"]])).numpy(), row)
    with pytest.raises(ValueError, match="scalar, \\[batch\\] or \\[batch, 1\\]"):
        tokenizer(tf.constant([["a", "b"]]))


def test_saved_files_and_config_give_the_same_tokenizer(keras_hub_tokenizer, tmp_path):
    tokenizer = WordPieceTextTokenizer.from_keras_hub(keras_hub_tokenizer, 9)
    tokenizer.save_vocabulary(tmp_path / "vocab.txt")
    tokenizer.save_settings(tmp_path / "text_tokenizer.json")
    again = WordPieceTextTokenizer.from_files(
        tmp_path / "vocab.txt", tmp_path / "text_tokenizer.json"
    )
    from_config = WordPieceTextTokenizer.from_config(tokenizer.get_config())
    for other in (again, from_config):
        assert other.settings() == tokenizer.settings()
        np.testing.assert_array_equal(other(TEXTS).numpy(), tokenizer(TEXTS).numpy())
    assert again.get_vocabulary() == VOCABULARY


def test_bad_settings_file_names_the_file(keras_hub_tokenizer, tmp_path):
    tokenizer = WordPieceTextTokenizer.from_keras_hub(keras_hub_tokenizer, 9)
    tokenizer.save_vocabulary(tmp_path / "vocab.txt")
    (tmp_path / "text_tokenizer.json").write_text('{"sequence_length": 9}')
    with pytest.raises(ValueError, match="text_tokenizer.json.*must be a JSON object with"):
        WordPieceTextTokenizer.from_files(tmp_path / "vocab.txt", tmp_path / "text_tokenizer.json")
    (tmp_path / "text_tokenizer.json").write_text("{not json")
    with pytest.raises(ValueError, match="Cannot read the tokenizer settings"):
        WordPieceTextTokenizer.from_files(tmp_path / "vocab.txt", tmp_path / "text_tokenizer.json")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"sequence_length": 2}, "sequence_length.*>= 3"),
        ({"pad_token": "[MASK]"}, "padding token must have id 0"),
        ({"start_token": "<s>"}, "start_token.*must be in the vocabulary"),
    ],
)
def test_bad_arguments(change, message):
    with pytest.raises(ValueError, match=message):
        WordPieceTextTokenizer(VOCABULARY, **{"sequence_length": 8, **change})


def test_piece_coverage_counts_unknown_pieces():
    tokenizer = WordPieceTextTokenizer(VOCABULARY, 8, lowercase=True)
    # "a", "red", "circ", "##le" known; "zebra" is one [UNK]
    assert tokenizer.piece_coverage(["a red circle zebra"]) == pytest.approx(4 / 5)


def test_graph_has_core_ops_only(keras_hub_tokenizer):
    tokenizer = WordPieceTextTokenizer.from_keras_hub(keras_hub_tokenizer, 8)
    function = tf.function(tokenizer, input_signature=[tf.TensorSpec([None], tf.string)])
    graph = function.get_concrete_function().graph.as_graph_def()
    ops = {node.op for node in graph.node}
    for library_function in graph.library.function:
        ops.update(node.op for node in library_function.node_def)
    assert "StringSplitV2" in ops and non_core_ops(ops) == []


def test_lives_in_a_keras_model_that_reloads_in_safe_mode(keras_hub_tokenizer, tmp_path):
    texts = keras.Input(shape=(), dtype="string")
    ids = WordPieceTextTokenizer.from_keras_hub(keras_hub_tokenizer, 8)(texts)
    model = keras.Model(texts, ids)
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_array_equal(again(tf.constant(TEXTS)), model(tf.constant(TEXTS)))
