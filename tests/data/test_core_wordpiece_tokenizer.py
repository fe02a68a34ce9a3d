"""`CoreWordPieceTokenizer` against KerasHub's tensorflow-text `WordPieceTokenizer`.

KerasHub runs its Python implementation in eager mode: every comparison here calls it
inside a `tf.function`, where it runs the TF-Text kernels a serving graph would.
"""

import subprocess
import sys
import textwrap
import unicodedata

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf
from keras_hub.src.tokenizers.word_piece_tokenizer import pretokenize
from wordpiece_corpus import make_corpus, make_vocabulary

from xmodal_keras.data.core_wordpiece_tokenizer import CoreWordPieceTokenizer
from xmodal_keras.export.graph_ops import non_core_ops, saved_model_ops

TEXTS = tf.TensorSpec([None], tf.string)
# (lowercase, strip_accents): BERT uncased with accent stripping, KerasHub's `BertTokenizer`
# uncased presets (`lowercase=True` only), cased, and strip-only.
SETTINGS = [(True, True), (True, False), (False, False), (False, True)]
VOCAB = ["[PAD]", "[UNK]", "the", "qu", "##ick", "br", "##own", "fox", ".", "caf", "##e", "é"]


@pytest.fixture(scope="module")
def corpus_and_vocabulary():
    corpus = make_corpus()
    return corpus, make_vocabulary(corpus)


def _keras_hub(vocabulary, **kwargs):
    tokenizer = keras_hub.tokenizers.WordPieceTokenizer(vocabulary=vocabulary, **kwargs)
    return tf.function(tokenizer, input_signature=[TEXTS])


def _ours(vocabulary, **kwargs):
    tokenizer = CoreWordPieceTokenizer(vocabulary=vocabulary, **kwargs)
    return tf.function(tokenizer, input_signature=[TEXTS])


@pytest.mark.parametrize("lowercase, strip_accents", SETTINGS)
def test_same_ids_as_keras_hub_on_corpus(corpus_and_vocabulary, lowercase, strip_accents):
    corpus, vocabulary = corpus_and_vocabulary
    assert len(corpus) >= 10_000
    settings = {"lowercase": lowercase, "strip_accents": strip_accents}
    texts = tf.constant(corpus)
    expected = _keras_hub(vocabulary, **settings)(texts).to_list()
    got = _ours(vocabulary, **settings)(texts).to_list()
    different = [i for i, (a, b) in enumerate(zip(expected, got, strict=True)) if a != b]
    num_tokens = sum(map(len, expected))
    num_oov = sum(ids.count(vocabulary.index("[UNK]")) for ids in expected)
    print(
        f"\n{settings}: {len(corpus) - len(different)}/{len(corpus)} sentences equal, "
        f"{num_tokens} tokens ({num_oov} [UNK]), vocabulary {len(vocabulary)}"
    )
    assert 0.02 < num_oov / num_tokens < 0.3  # the corpus exercises both paths
    assert different == [], [(corpus[i], expected[i], got[i]) for i in different[:3]]


def test_normalisation_differs_only_on_code_points_python_does_not_know():
    """Every code point, in context ("A" c "b" c): the words equal TF-Text's but for code
    points unassigned in Python's `unicodedata` (TF-Text's ICU has a newer Unicode).

    Lowercasing and accent stripping together use every table (NFD, NFKC_Casefold, NFC)."""
    lowercase = strip_accents = True
    code_points = [c for c in range(1, 0x110000) if not 0xD800 <= c <= 0xDFFF]
    texts = tf.constant([f"A{chr(c)}b{chr(c)}" for c in code_points])
    settings = (lowercase, strip_accents, True, True)
    expected = tf.function(lambda t: pretokenize(t, *settings), input_signature=[TEXTS])(texts)
    tokenizer = CoreWordPieceTokenizer(
        vocabulary=VOCAB, lowercase=lowercase, strip_accents=strip_accents
    )
    got = tf.function(tokenizer.pretokenize, input_signature=[TEXTS])(texts)

    def joined(words):
        return tf.strings.reduce_join(words, axis=-1, separator="\x01").numpy()

    differ = np.nonzero(joined(expected) != joined(got))[0]
    unassigned = [c for c in np.array(code_points)[differ] if unicodedata.category(chr(c)) == "Cn"]
    print(
        f"\nUnicode {unicodedata.unidata_version}: {len(differ)} of {len(code_points)} code "
        f"points differ, {len(unassigned)} of them unassigned in Python"
    )
    assert len(unassigned) == len(differ)
    assert len(differ) < 200


def test_dense_output_and_scalar_input_like_keras_hub(corpus_and_vocabulary):
    corpus, vocabulary = corpus_and_vocabulary
    texts = tf.constant(corpus[:300])
    settings = {"lowercase": True, "strip_accents": True, "sequence_length": 12}
    expected = _keras_hub(vocabulary, **settings)(texts).numpy()
    got = _ours(vocabulary, **settings)(texts)
    assert got.dtype == tf.int32 and got.shape == (300, 12)
    np.testing.assert_array_equal(got.numpy(), expected)
    # A scalar: 1-D ids, `sequence_length` long when set.
    for sequence_length in (None, 4):
        theirs = keras_hub.tokenizers.WordPieceTokenizer(
            vocabulary=VOCAB, lowercase=True, sequence_length=sequence_length
        )
        ours = CoreWordPieceTokenizer(
            vocabulary=VOCAB, lowercase=True, sequence_length=sequence_length
        )
        scalar = tf.constant("The quick fox.")
        expected = tf.function(theirs)(scalar).numpy()
        np.testing.assert_array_equal(ours(scalar).numpy(), expected)
        np.testing.assert_array_equal(tf.function(ours)(scalar).numpy(), expected)


def test_invalid_utf8_and_nul_like_keras_hub():
    vocabulary = ["[UNK]", "ab", "cd", "\ufffd", "##cd", "a", "##b", "x", "=", "##\ufffd"]
    texts = tf.constant(
        [b"ab\xffcd", b"ab\xff", b"\xc3", b"ab \xe4\xb8 cd", b"x \xffab \xfe a"]
        + [b"a\xe2\x89\xa0b \xff", b"\xef\xbf\xbd ab\xef\xbf\xbd", b"ab\x00cd", b"\x00x"]
    )
    for lowercase in (True, False):
        settings = {"lowercase": lowercase, "strip_accents": lowercase}
        expected = _keras_hub(vocabulary, **settings)(texts).to_list()
        assert _ours(vocabulary, **settings)(texts).to_list() == expected, settings


def test_eager_calls_and_edge_shapes():
    tokenizer = CoreWordPieceTokenizer(vocabulary=VOCAB, lowercase=True, strip_accents=True)
    assert tokenizer(["The quick fox.", "", "  ", "Cafe\u0301 é"]).to_list() == [
        [2, 3, 4, 7, 8],
        [],
        [],
        [9, 10, 1],  # accents stripped: "é" is "e", which only "##e" has
    ]
    assert tokenizer(tf.constant([], tf.string)).to_list() == []
    assert tokenizer("").numpy().tolist() == []
    with pytest.raises(ValueError, match="texts.shape"):
        tokenizer(tf.constant([["a"]]))


def test_works_inside_tf_data():
    tokenizer = CoreWordPieceTokenizer(vocabulary=VOCAB, lowercase=True, sequence_length=4)
    dataset = tf.data.Dataset.from_tensor_slices(["The fox", "brown"]).batch(2).map(tokenizer)
    np.testing.assert_array_equal(next(iter(dataset)).numpy(), [[2, 7, 0, 0], [5, 6, 0, 0]])


def _export(path) -> CoreWordPieceTokenizer:
    tokenizer = CoreWordPieceTokenizer(
        vocabulary=VOCAB, lowercase=True, strip_accents=True, sequence_length=8
    )
    archive = keras.export.ExportArchive()
    archive.track(tokenizer)
    archive.add_endpoint("serve", tokenizer.call, input_signature=[TEXTS])
    archive.write_out(str(path), verbose=False)
    return tokenizer


def test_saved_model_has_core_ops_only(tmp_path):
    tokenizer = _export(tmp_path)
    ops = saved_model_ops(tmp_path)
    assert {"StaticRegexReplace", "LookupTableFindV2", "While"} <= ops
    assert non_core_ops(ops) == []
    assert not ops & {"CaseFoldUTF8", "NormalizeUTF8", "RegexSplitWithOffsets"}
    served = tf.saved_model.load(str(tmp_path)).serve(tf.constant(["Thé QUICK fox."]))
    np.testing.assert_array_equal(served.numpy(), tokenizer(["Thé QUICK fox."]).numpy())


@pytest.mark.slow
def test_saved_model_loads_without_tensorflow_text(tmp_path):
    tokenizer = _export(tmp_path)
    texts = ["Thé QUICK fox.", "café"]
    expected = tokenizer(texts).numpy().tolist()
    # A fresh interpreter with TensorFlow only: loading fails if a TF-Text kernel is needed.
    script = textwrap.dedent(
        f"""
        import sys, tensorflow as tf
        served = tf.saved_model.load({str(tmp_path)!r}).serve(tf.constant({texts!r}))
        assert "tensorflow_text" not in sys.modules
        print(served.numpy().tolist())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == str(expected)


def test_config_round_trip_and_keras_file(tmp_path):
    tokenizer = CoreWordPieceTokenizer(
        vocabulary=VOCAB, lowercase=True, strip_accents=True, sequence_length=6, name="wp"
    )
    config = tokenizer.get_config()
    assert config["vocabulary"] == VOCAB and config["sequence_length"] == 6
    assert CoreWordPieceTokenizer.from_config(config).get_config() == config
    inputs = keras.Input(shape=(), dtype="string")
    outputs = tokenizer(inputs)
    assert outputs.shape == (None, 6) and outputs.dtype == "int32"
    model = keras.Model(inputs, outputs)
    model.save(tmp_path / "tokenizer.keras")
    reloaded = keras.saving.load_model(tmp_path / "tokenizer.keras", safe_mode=True)
    texts = tf.constant(["The quick brown fox.", "café"])
    np.testing.assert_array_equal(reloaded(texts).numpy(), model(texts).numpy())


def test_from_keras_hub_copies_vocabulary_and_settings():
    theirs = keras_hub.tokenizers.WordPieceTokenizer(
        vocabulary=VOCAB, lowercase=True, strip_accents=True, sequence_length=5
    )
    ours = CoreWordPieceTokenizer.from_keras_hub(theirs)
    assert ours.get_vocabulary() == VOCAB
    assert (ours.lowercase, ours.strip_accents, ours.sequence_length) == (True, True, 5)
    texts = tf.constant(["The QUÍCK brown fox."])
    np.testing.assert_array_equal(ours(texts).numpy(), tf.function(theirs)(texts).numpy())
    with pytest.raises(ValueError, match="special_tokens_in_strings"):
        CoreWordPieceTokenizer.from_keras_hub(
            keras_hub.tokenizers.WordPieceTokenizer(
                vocabulary=VOCAB, special_tokens=["[PAD]"], special_tokens_in_strings=True
            )
        )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"vocabulary": "vocab.txt"}, "vocabulary"),
        ({"vocabulary": ["a", "b"]}, "oov_token"),
        ({"vocabulary": ["[UNK]", "a", "a"]}, "duplicate"),
        ({"vocabulary": ["[UNK]", ""]}, "empty token"),
        ({"vocabulary": VOCAB, "sequence_length": 0}, "sequence_length"),
        ({"vocabulary": VOCAB, "lowercase": "yes"}, "lowercase"),
        ({"vocabulary": VOCAB, "suffix_indicator": ""}, "suffix_indicator"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CoreWordPieceTokenizer(**kwargs)
