"""Caption normalisation, vocabulary building and an in-graph caption tokenizer.

Two normalisers that agree with each other:

- `normalize_caption` (Python) is used to count words and build the vocabulary;
- `normalize_captions_in_graph` (core TF ops only) runs inside `CaptionTokenizer`, so the
  same layer tokenises raw strings in tf.data, in a `.keras` model and in a TF Serving graph
  (stock TF Serving has no TF-Text kernels, so no `tensorflow_text` op is used here).

Both lowercase, split punctuation and symbols (Unicode categories P* and S*) off as separate
tokens and collapse whitespace. Only the Python one applies Unicode NFKC (core TF has no
NFKC op): the two agree on NFKC-normalised input, which covers ordinary text; full-width or
compatibility characters sent to a serving graph stay un-normalised and may map to `<unk>`.

Example:

>>> normalize_caption("A dog, running!")
'a dog , running !'
>>> tokenizer = CaptionTokenizer.from_captions(["A dog runs.", "A cat sits."], sequence_length=6)
>>> tokenizer.vocabulary
['<pad>', '<unk>', '<start>', '<end>', '.', 'a', 'cat', 'dog', 'runs', 'sits']
>>> tokenizer(["a dog sits"]).numpy().tolist()
[[2, 5, 7, 9, 3, 0, 0]]
>>> tokenizer.detokenize([[2, 5, 7, 9, 3, 0, 0]]).numpy().tolist()
[b'a dog sits']
"""

import collections
import json
import math
import os
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

import keras
import tensorflow as tf

from xmodal_keras.api_export import xmodal_export

PAD = "<pad>"
UNK = "<unk>"
START = "<start>"
END = "<end>"
SPECIAL_TOKENS = (PAD, UNK, START, END)
PAD_ID, UNK_ID, START_ID, END_ID = 0, 1, 2, 3

# Whitespace = these characters + Unicode category Z*, in both normalisers.
_EXTRA_WHITESPACE = frozenset("\t\n\v\f\r")
_GRAPH_WHITESPACE = r"[\t\n\v\f\r\p{Z}]"
_GRAPH_PUNCTUATION = r"([\p{P}\p{S}])"


def normalize_caption(text: str) -> str:
    """Normalise one caption: NFKC, lowercase, punctuation/symbols split off, spaces collapsed.

    Punctuation and symbols (Unicode categories P* and S*) become separate tokens.

    Example:

    >>> normalize_caption("  A  dog, running!\\n")
    'a dog , running !'
    >>> normalize_caption("ＣＡＦÉ's")
    "café ' s"
    """
    text = unicodedata.normalize("NFKC", text).lower()
    pieces = []
    for ch in text:
        category = unicodedata.category(ch)
        if ch in _EXTRA_WHITESPACE or category[0] == "Z":
            pieces.append(" ")
        elif category[0] in "PS":
            pieces.append(f" {ch} ")
        else:
            pieces.append(ch)
    return " ".join(token for token in "".join(pieces).split(" ") if token)


def caption_sequence_length(captions: Iterable[str], coverage: float = 0.99) -> int:
    """The decoder length T (tokens + 1) that holds `coverage` of `captions` whole, counted
    after `normalize_caption` (punctuation is a token).

    A fixed length either cuts the longer captions of a dataset (the model never learns
    their end, and greedy decoding stops mid-phrase at the limit) or pads short ones.

    >>> caption_sequence_length(["a dog", "a big red dog runs.", "a cat"], coverage=1.0)
    7
    """
    if not 0.0 < coverage <= 1.0:
        raise ValueError(f"`coverage` must be in (0, 1]. Received: {coverage=!r}")
    counts = sorted(len(normalize_caption(caption).split()) for caption in captions)
    if not counts:
        raise ValueError("`captions` is empty: there is no length to measure.")
    covered = counts[min(len(counts), math.ceil(coverage * len(counts))) - 1]
    return max(2, covered + 1)


def normalize_captions_in_graph(texts: tf.Tensor) -> tf.Tensor:
    """`normalize_caption` with core TF ops (any shape of `tf.string`), except NFKC.

    Core TF has no NFKC op, so this agrees with `normalize_caption` on NFKC-normalised input
    only (ordinary text is). Lowercasing uses simple per-character case mapping, which
    differs from Python's `str.lower` only for rare characters such as "İ".

    Example:

    >>> normalize_captions_in_graph(tf.constant(["A dog, running!"])).numpy().tolist()
    [b'a dog , running !']
    """
    texts = tf.convert_to_tensor(texts, dtype=tf.string)
    texts = tf.strings.lower(texts, encoding="utf-8")
    texts = tf.strings.regex_replace(texts, _GRAPH_WHITESPACE, " ")
    texts = tf.strings.regex_replace(texts, _GRAPH_PUNCTUATION, r" \1 ")
    texts = tf.strings.regex_replace(texts, " +", " ")
    return tf.strings.strip(texts)


def build_vocabulary(
    captions: Iterable[str], min_count: int = 1, max_size: int | None = None
) -> list[str]:
    """Vocabulary of normalised words: specials first, then by descending count, ties A-Z.

    Args:
        captions: raw caption strings (normalised here with `normalize_caption`).
        min_count: drop words seen fewer times. Defaults to 1.
        max_size: total vocabulary size including the 4 special tokens, or None for no
            limit. Defaults to None.

    Example:

    >>> build_vocabulary(["b a", "a c", "c a"], max_size=6)
    ['<pad>', '<unk>', '<start>', '<end>', 'a', 'c']
    """
    if isinstance(captions, str):
        raise ValueError(
            "`captions` must be an iterable of strings, not one string. "
            f"Received: captions={captions!r}"
        )
    if min_count < 1:
        raise ValueError(f"`min_count` must be >= 1. Received: min_count={min_count}")
    if max_size is not None and max_size < len(SPECIAL_TOKENS):
        raise ValueError(
            f"`max_size` must be None or >= {len(SPECIAL_TOKENS)} (the special tokens). "
            f"Received: max_size={max_size}"
        )
    counts = collections.Counter()
    for caption in captions:
        counts.update(normalize_caption(str(caption)).split())
    for token in SPECIAL_TOKENS:
        counts.pop(token, None)
    words = sorted(
        (word for word, count in counts.items() if count >= min_count),
        key=lambda word: (-counts[word], word),
    )
    if max_size is not None:
        words = words[: max_size - len(SPECIAL_TOKENS)]
    return list(SPECIAL_TOKENS) + words


def _validate_vocabulary(vocabulary: Sequence[str]) -> list[str]:
    vocabulary = [str(token) for token in vocabulary]
    if tuple(vocabulary[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
        raise ValueError(
            f"`vocabulary` must start with {list(SPECIAL_TOKENS)}. "
            f"Received: vocabulary[:4]={vocabulary[: len(SPECIAL_TOKENS)]}"
        )
    seen = set()
    for index, token in enumerate(vocabulary):
        if not token or token != token.strip() or len(token.split()) != 1:
            raise ValueError(
                "Every vocabulary token must be a non-empty string without whitespace. "
                f"Received: vocabulary[{index}]={token!r}"
            )
        if token in seen:
            raise ValueError(
                f"`vocabulary` has a duplicate token. Received: vocabulary[{index}]={token!r}"
            )
        seen.add(token)
    return vocabulary


def read_tokenizer_files(
    vocabulary_path: str | os.PathLike, settings_path: str | os.PathLike
) -> tuple[list[str], Any]:
    """The tokens (one a line, UTF-8) and the parsed JSON settings that a tokenizer's
    `save_vocabulary` and `save_settings` wrote; a `ValueError` names a settings file that
    cannot be read."""
    with open(vocabulary_path, encoding="utf-8", newline="") as file:
        vocabulary = file.read().split("\n")
    if vocabulary and vocabulary[-1] == "":
        vocabulary.pop()
    try:
        with open(settings_path, encoding="utf-8") as file:
            settings = json.load(file)
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(
            f"Cannot read the tokenizer settings {os.fspath(settings_path)!r}: {error}"
        ) from error
    return vocabulary, settings


def text_batch(texts) -> tuple[tf.Tensor, bool]:
    """`(texts as a [batch] string tensor, whether they were one scalar)` from a scalar,
    `[batch]` or `[batch, 1]` string input (what the tokenizers accept)."""
    texts = tf.convert_to_tensor(texts, dtype=tf.string)
    scalar = texts.shape.rank == 0
    if scalar:
        texts = tf.reshape(texts, [1])
    elif texts.shape.rank == 2 and texts.shape[-1] == 1:
        texts = tf.squeeze(texts, axis=-1)
    elif texts.shape.rank != 1:
        raise ValueError(
            "`texts` must be a scalar, [batch] or [batch, 1] string tensor. "
            f"Received: texts.shape={texts.shape}"
        )
    return texts, scalar


@xmodal_export
class CaptionTokenizer(keras.layers.Layer):
    """Raw caption strings -> int32 ids `[batch, sequence_length + 1]`, in-graph, core ops.

    Each row is `<start> word ... <end> <pad> ...`. A caption longer than
    `sequence_length - 1` words is truncated and still ends with `<end>` (at the last
    position), so a model always learns to stop. Slicing `ids[:, :-1]` / `ids[:, 1:]` gives
    the decoder input / target of length `sequence_length`. Raw text is normalised in-graph
    with `normalize_captions_in_graph`; unknown words map to `<unk>` (id 1).

    Args:
        vocabulary: list of tokens starting with `<pad>`, `<unk>`, `<start>`, `<end>`
            (ids 0-3), e.g. from `build_vocabulary`.
        sequence_length: decoder sequence length `T`; outputs have `T + 1` ids.
        **kwargs: forwarded to `keras.layers.Layer`.

    Example:

    >>> tokenizer = CaptionTokenizer(
    ...     vocabulary=["<pad>", "<unk>", "<start>", "<end>", "a", "dog"], sequence_length=3)
    >>> tokenizer(["A dog", "a big dog"]).numpy().tolist()
    [[2, 4, 5, 3], [2, 4, 1, 3]]
    """

    runs_in_graph = True  # a serving graph can hold it (core ops)

    def __init__(self, vocabulary: Sequence[str], sequence_length: int, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary = _validate_vocabulary(vocabulary)
        if not isinstance(sequence_length, int) or sequence_length < 2:
            raise ValueError(
                "`sequence_length` must be an int >= 2. "
                f"Received: sequence_length={sequence_length!r}"
            )
        self.sequence_length = sequence_length
        self._lookup = keras.layers.StringLookup(
            vocabulary=self.vocabulary[len(SPECIAL_TOKENS) - 2 :],
            mask_token=PAD,
            oov_token=UNK,
            num_oov_indices=1,
            name="lookup",
        )
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.supports_jit = False
        self.built = True

    @property
    def vocabulary_size(self) -> int:
        return len(self.vocabulary)

    @property
    def ids_length(self) -> int:
        """Ids a row holds (`sequence_length + 1`): the text tower's input length."""
        return self.sequence_length + 1

    @property
    def pad_id(self) -> int:
        return PAD_ID

    @property
    def unk_id(self) -> int:
        return UNK_ID

    @property
    def start_id(self) -> int:
        return START_ID

    @property
    def end_id(self) -> int:
        return END_ID

    def get_vocabulary(self) -> list[str]:
        return list(self.vocabulary)

    def call(self, texts):
        texts, scalar = text_batch(texts)
        words = tf.strings.split(normalize_captions_in_graph(texts))
        word_ids = tf.ragged.map_flat_values(
            lambda flat: tf.cast(self._lookup(flat), tf.int32), words
        )
        word_ids = word_ids[:, : self.sequence_length - 1]
        rows = word_ids.nrows(out_type=tf.int32)
        start = tf.fill(tf.stack([rows, 1]), tf.constant(START_ID, tf.int32))
        end = tf.fill(tf.stack([rows, 1]), tf.constant(END_ID, tf.int32))
        ids = tf.concat([start, word_ids, end], axis=1)
        ids = ids.to_tensor(default_value=PAD_ID, shape=[None, self.sequence_length + 1])
        return ids[0] if scalar else ids

    def tokenize(self, texts) -> tf.Tensor:
        """Same as calling the layer: raw strings -> int32 ids."""
        return self(texts)

    def detokenize(self, ids) -> tf.Tensor:
        """Ids `[..., length]` -> `tf.string` `[...]`: words up to the first `<end>`.

        `<pad>` and `<start>` are dropped, ids outside the vocabulary read as `<unk>`, words
        are joined with single spaces (vocabulary constant + `tf.gather` +
        `tf.strings.reduce_join`, core ops only).
        """
        ids = tf.cast(tf.convert_to_tensor(ids), tf.int32)
        single = ids.shape.rank == 1
        if single:
            ids = ids[tf.newaxis]
        ids = tf.where((ids >= 0) & (ids < self.vocabulary_size), ids, UNK_ID)
        before_end = tf.equal(tf.cumsum(tf.cast(tf.equal(ids, END_ID), tf.int32), axis=-1), 0)
        keep = before_end & tf.not_equal(ids, PAD_ID) & tf.not_equal(ids, START_ID)
        words = tf.gather(tf.constant(self.vocabulary, dtype=tf.string), ids)
        texts = tf.strings.reduce_join(tf.ragged.boolean_mask(words, keep), axis=-1, separator=" ")
        return texts[0] if single else texts

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) == 2 and input_shape[-1] == 1:
            input_shape = input_shape[:1]
        return input_shape + (self.sequence_length + 1,)

    def compute_output_spec(self, texts):
        return keras.KerasTensor(self.compute_output_shape(texts.shape), dtype="int32")

    def save_vocabulary(self, path: str | os.PathLike) -> None:
        """Write the vocabulary to `path` (vocab.txt style: UTF-8, one token per line)."""
        path = os.fspath(path)
        if os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="\n") as file:
            file.write("\n".join(self.vocabulary) + "\n")

    @classmethod
    def from_vocabulary_file(
        cls, path: str | os.PathLike, sequence_length: int, **kwargs
    ) -> "CaptionTokenizer":
        """Build a tokenizer from a file written by `save_vocabulary`."""
        with open(path, encoding="utf-8", newline="") as file:
            vocabulary = file.read().split("\n")
        if vocabulary and vocabulary[-1] == "":
            vocabulary.pop()
        vocabulary = [token.removesuffix("\r") for token in vocabulary]
        return cls(vocabulary=vocabulary, sequence_length=sequence_length, **kwargs)

    @classmethod
    def from_captions(
        cls,
        captions: Iterable[str],
        sequence_length: int,
        min_count: int = 1,
        max_size: int | None = None,
        **kwargs,
    ) -> "CaptionTokenizer":
        """Build the vocabulary from raw captions (see `build_vocabulary`) and a tokenizer."""
        vocabulary = build_vocabulary(captions, min_count=min_count, max_size=max_size)
        return cls(vocabulary=vocabulary, sequence_length=sequence_length, **kwargs)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {"vocabulary": list(self.vocabulary), "sequence_length": self.sequence_length}
        )
        return config
