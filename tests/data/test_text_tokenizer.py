import keras
import numpy as np
import pytest
import tensorflow as tf

from xmodal_keras.data.text_tokenizer import (
    END,
    PAD,
    SPECIAL_TOKENS,
    START,
    UNK,
    CaptionTokenizer,
    build_vocabulary,
    normalize_caption,
    normalize_captions_in_graph,
)

VOCAB = ["<pad>", "<unk>", "<start>", "<end>", "a", "dog", "runs", ",", "!", "on", "grass"]


def make_tokenizer(sequence_length=6):
    return CaptionTokenizer(vocabulary=VOCAB, sequence_length=sequence_length)


def test_special_tokens():
    assert (PAD, UNK, START, END) == ("<pad>", "<unk>", "<start>", "<end>")
    tokenizer = make_tokenizer()
    assert (tokenizer.pad_id, tokenizer.start_id, tokenizer.end_id) == (0, 2, 3)
    assert tokenizer.vocabulary_size == len(VOCAB)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("A dog, running!", "a dog , running !"),
        ("  Two   DOGS\tplay.\n", "two dogs play ."),
        ("The dog's ball", "the dog ' s ball"),
        ("black-and-white", "black - and - white"),
        ("ＡＢＣ　ｄｅｆ", "abc def"),  # full-width letters and ideographic space (NFKC)
        ("Café ÉTÉ", "café été"),
        ("cafe\u0301", "café"),  # combining accent composed by NFKC
        ("fish & chips $5", "fish & chips $ 5"),
        ("¿Qué?", "¿ qué ?"),
        ("", ""),
        ("   ", ""),
    ],
)
def test_normalize_caption(text, expected):
    assert normalize_caption(text) == expected


def test_graph_normalisation_agrees_on_nfkc_input():
    import unicodedata

    texts = [
        "A dog, running!",
        "  Two   DOGS\tplay.\n",
        "The dog's ball",
        "black-and-white (really)",
        "Café ÉTÉ «quoted» — dash",
        "ΣΊΣΥΦΟΣ Москва",
        "fish & chips $5 + 3 = 8",
        "¿Qué? ¡Sí!",
        "emoji 🙂 here",
        "a\u00a0b\u2003c",
        "",
    ]
    texts = [unicodedata.normalize("NFKC", text) for text in texts]
    graph = [t.decode("utf-8") for t in normalize_captions_in_graph(tf.constant(texts)).numpy()]
    assert graph == [normalize_caption(text) for text in texts]


def test_build_vocabulary_order_min_count_max_size():
    captions = ["b a c", "a c", "c a d", "A!"]
    # counts: a 4, c 3, ! 1, b 1, d 1 -> ties alphabetical ("!" < "b" < "d")
    assert build_vocabulary(captions) == list(SPECIAL_TOKENS) + ["a", "c", "!", "b", "d"]
    assert build_vocabulary(captions, min_count=2) == list(SPECIAL_TOKENS) + ["a", "c"]
    assert build_vocabulary(captions, max_size=5) == list(SPECIAL_TOKENS) + ["a"]
    assert build_vocabulary(captions, max_size=4) == list(SPECIAL_TOKENS)
    with pytest.raises(ValueError, match="Received: max_size=3"):
        build_vocabulary(captions, max_size=3)
    with pytest.raises(ValueError, match="Received: min_count=0"):
        build_vocabulary(captions, min_count=0)


def test_tokenize_start_end_pad_unknown():
    tokenizer = make_tokenizer(sequence_length=6)
    ids = tokenizer(tf.constant(["A dog runs!", "a CAT runs", ""]))
    assert ids.dtype == tf.int32
    assert ids.shape == (3, 7)
    np.testing.assert_array_equal(
        ids.numpy(),
        [
            [2, 4, 5, 6, 8, 3, 0],
            [2, 4, 1, 6, 3, 0, 0],  # "cat" -> <unk>
            [2, 3, 0, 0, 0, 0, 0],
        ],
    )
    np.testing.assert_array_equal(tokenizer.tokenize(["a dog"]).numpy(), [[2, 4, 5, 3, 0, 0, 0]])
    # scalar and [batch, 1] inputs
    np.testing.assert_array_equal(tokenizer("a dog").numpy(), [2, 4, 5, 3, 0, 0, 0])
    assert tokenizer(tf.constant([["a dog"], ["dog"]])).shape == (2, 7)


def test_truncation_keeps_end_at_last_position():
    tokenizer = make_tokenizer(sequence_length=4)
    ids = tokenizer(["a dog runs on grass , a dog"]).numpy()
    np.testing.assert_array_equal(ids, [[2, 4, 5, 6, 3]])
    exact = tokenizer(["a dog runs"]).numpy()  # exactly sequence_length - 1 words
    np.testing.assert_array_equal(exact, [[2, 4, 5, 6, 3]])


def test_detokenize_inverts_tokenize():
    tokenizer = make_tokenizer(sequence_length=8)
    captions = ["a dog runs on grass", "dog , dog !", "a", ""]
    texts = tokenizer.detokenize(tokenizer(captions)).numpy()
    assert [t.decode() for t in texts] == captions
    # stops at the first <end>, drops <pad>/<start>, keeps <unk>, out-of-range -> <unk>
    out = tokenizer.detokenize(tf.constant([[2, 4, 1, 3, 5, 6], [4, 0, 5, 99, 2, -1]]))
    assert out.numpy().tolist() == [b"a <unk>", b"a dog <unk> <unk>"]
    assert tokenizer.detokenize([2, 5, 3]).numpy() == b"dog"


def test_vocabulary_file_round_trip(tmp_path):
    vocabulary = list(SPECIAL_TOKENS) + ["café", "dog", "naïve", "東京", ","]
    tokenizer = CaptionTokenizer(vocabulary=vocabulary, sequence_length=5)
    path = tmp_path / "sub" / "vocab.txt"
    tokenizer.save_vocabulary(path)
    assert path.read_text(encoding="utf-8") == "\n".join(vocabulary) + "\n"
    loaded = CaptionTokenizer.from_vocabulary_file(path, sequence_length=5)
    assert loaded.vocabulary == vocabulary
    text = tf.constant(["Café, naïve dog 東京"])
    np.testing.assert_array_equal(loaded(text).numpy(), tokenizer(text).numpy())


def test_from_captions():
    tokenizer = CaptionTokenizer.from_captions(
        ["A dog.", "A cat.", "a dog"], sequence_length=4, min_count=2
    )
    assert tokenizer.vocabulary == list(SPECIAL_TOKENS) + ["a", ".", "dog"]
    assert tokenizer.sequence_length == 4


def test_bad_arguments():
    with pytest.raises(ValueError, match="must start with"):
        CaptionTokenizer(vocabulary=["a", "b"], sequence_length=4)
    with pytest.raises(ValueError, match="Received: sequence_length=1"):
        CaptionTokenizer(vocabulary=VOCAB, sequence_length=1)
    with pytest.raises(ValueError, match=r"Received: vocabulary\[5\]='a'"):
        CaptionTokenizer(vocabulary=list(SPECIAL_TOKENS) + ["a", "a"], sequence_length=4)
    with pytest.raises(ValueError, match="without whitespace"):
        CaptionTokenizer(vocabulary=list(SPECIAL_TOKENS) + ["a b"], sequence_length=4)


def test_get_config_round_trip():
    tokenizer = make_tokenizer(sequence_length=5)
    config = tokenizer.get_config()
    assert config["vocabulary"] == VOCAB
    assert config["sequence_length"] == 5
    clone = CaptionTokenizer.from_config(config)
    assert clone.get_config() == config
    restored = keras.layers.deserialize(keras.layers.serialize(tokenizer))
    assert isinstance(restored, CaptionTokenizer)
    assert restored.vocabulary == VOCAB


def test_saved_in_keras_model_with_safe_mode(tmp_path):
    tokenizer = make_tokenizer(sequence_length=5)
    inputs = keras.Input(shape=(), dtype="string", name="text")
    ids = tokenizer(inputs)
    assert ids.shape == (None, 6)
    assert ids.dtype == "int32"
    model = keras.Model(inputs, ids)
    texts = tf.constant(["A dog runs on grass!", "cat"])
    expected = model(texts).numpy()
    path = tmp_path / "tok.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(reloaded(texts).numpy(), expected)
    layer = [layer for layer in reloaded.layers if isinstance(layer, CaptionTokenizer)][0]
    assert layer.vocabulary == VOCAB


def _all_op_types(concrete_function):
    graph_def = concrete_function.graph.as_graph_def()
    ops = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        ops.update(node.op for node in function.node_def)
    return ops


def test_graph_uses_core_tf_ops_only():
    tokenizer = make_tokenizer(sequence_length=5)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def tokenize(texts):
        return tokenizer(texts)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
    def detokenize(ids):
        return tokenizer.detokenize(ids)

    for function in (tokenize, detokenize):
        ops = _all_op_types(function.get_concrete_function())
        assert ops
        # Ops registered by tensorflow_text (or any other add-on library) are not in tf.raw_ops.
        not_core = sorted(op for op in ops if not hasattr(tf.raw_ops, op))
        assert not_core == []
        assert not ops & {"PyFunc", "EagerPyFunc", "PyFuncStateless"}
    assert "LookupTableFindV2" in _all_op_types(tokenize.get_concrete_function())


def test_works_inside_tf_data():
    tokenizer = make_tokenizer(sequence_length=4)
    dataset = tf.data.Dataset.from_tensor_slices(["a dog", "grass"]).batch(2).map(tokenizer)
    np.testing.assert_array_equal(next(iter(dataset)).numpy(), [[2, 4, 5, 3, 0], [2, 10, 3, 0, 0]])
