"""Unicode text in core TensorFlow ops, as tensorflow-text's ICU kernels give it.

What `CoreWordPieceTokenizer` needs to match KerasHub's `WordPieceTokenizer` without
TF-Text: KerasHub's RE2 split classes; code point -> string tables computed in Python
from `unicodedata` (NFKC_Casefold as TF-Text's `case_fold_utf8`, NFD with the Mn marks
dropped) and applied with a `StaticHashTable` (`map_characters`); an in-graph NFC
(`NFC`: canonical decomposition, reordering, pair composition, Hangul arithmetic); and
helpers that run a function only on the words that need it.

Example:

>>> tables = unicode_tables(lowercase=True, strip_accents=True)
>>> words = tf.constant(["Café", "ÉCOLE"])
>>> map_characters(words, string_table(tables.words)).numpy().tolist()
[b'cafe', b'ecole']
"""

import functools
import unicodedata
from typing import NamedTuple

import numpy as np
import tensorflow as tf

# KerasHub's pre-tokenisation patterns (keras_hub/src/tokenizers/word_piece_tokenizer.py),
# RE2 syntax. RE2's `\s` is ASCII whitespace only: U+00A0 or U+3000 do not split words.
WHITESPACE_REGEX = r"\s|\p{Cc}|\p{Cf}"
PUNCTUATION_REGEX = r"[!-/]|[:-@]|[\[-`]|[{-~]|[\p{P}]"
CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)
CJK_REGEX = "|".join(f"[\\x{{{low:X}}}-\\x{{{high:X}}}]" for low, high in CJK_RANGES)
# The same, merged into character classes: RE2 replaces without capture groups faster.
_ASCII_PUNCTUATION = ((0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E))
OWN_WORD_CLASS = r"[!-/:-@\[-`{-~\p{P}]"
OWN_WORD_AND_CJK_CLASS = (
    r"[!-/:-@\[-`{-~\p{P}"
    + "".join(f"\\x{{{low:X}}}-\\x{{{high:X}}}" for low, high in CJK_RANGES)
    + "]"
)
# What splits besides ASCII whitespace, which `tf.strings.split` splits on itself.
SPACE_CLASS = r"[\p{Cc}\p{Cf}]"
# TF-Text's `FastWordpieceTokenizer(max_bytes_per_token=100)`, KerasHub's default.
MAX_BYTES_PER_WORD = 100

# Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt): NFKC_Casefold drops them.
_DEFAULT_IGNORABLE_RANGES = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)
# Planes 4-13 are unassigned and 15-16 private use: no mapping there (14 has ignorables).
_MAPPED_RANGES = ((0, 0x3FFFF), (0xE0000, 0xE0FFF))

# Hangul syllables compose arithmetically (Unicode chapter 3.12), not through a table.
_S_BASE, _L_BASE, _V_BASE, _T_BASE = 0xAC00, 0x1100, 0x1161, 0x11A7
_L_COUNT, _V_COUNT, _T_COUNT = 19, 21, 28
_S_COUNT = _L_COUNT * _V_COUNT * _T_COUNT
# The value a character table returns for "not in the table": an invalid UTF-8 byte, never
# a real replacement string.
UNMAPPED = b"\xff"
# Composition pairs are looked up as one int64 key: first code point << 21 | second.
_PAIR_SHIFT = 21


def _is_default_ignorable(code_point: int) -> bool:
    return any(low <= code_point <= high for low, high in _DEFAULT_IGNORABLE_RANGES)


def _code_points():
    for low, high in _MAPPED_RANGES:
        for code_point in range(low, high + 1):
            if not 0xD800 <= code_point <= 0xDFFF:
                yield code_point


def _nfkc_casefold(text: str) -> str:
    """Unicode's NFKC_Casefold of `text` (NFKC, full case folding, NFKC, ignorables dropped,
    repeated until stable), from Python's `unicodedata`."""
    previous = None
    while text != previous:
        previous = text
        text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
        text = "".join(c for c in text if not _is_default_ignorable(ord(c)))
    return text


def _strip_marks(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def _split_class(char: str) -> str:
    """How KerasHub's split treats `char`: "space" (dropped), "own" (a word alone) or "word"."""
    code_point, category = ord(char), unicodedata.category(char)
    if char in "\t\n\f\r " or category in ("Cc", "Cf"):
        return "space"
    ascii_punctuation = any(low <= code_point <= high for low, high in _ASCII_PUNCTUATION)
    cjk = any(low <= code_point <= high for low, high in CJK_RANGES)
    return "own" if ascii_punctuation or category.startswith("P") or cjk else "word"


def _splits_alike(char: str, replacement: str) -> bool:
    """Whether splitting sees the same word boundaries with `replacement` for `char`."""
    kind = _split_class(char)
    if kind == "word":
        return all(_split_class(c) == "word" for c in replacement)
    return len(replacement) == 1 and _split_class(replacement) == kind


class UnicodeTables(NamedTuple):
    """Python-side data of the in-graph normalisation; every dict maps code points."""

    strip: dict[int, str]  # NFD with Mn marks dropped (NFC-composed again when lowercasing)
    resplit: tuple[int, ...]  # code points whose stripped form splits differently ("≠" -> "=")
    words: dict[int, str]  # per word: the strip, then NFKC_Casefold (NFC)
    decompose: dict[int, str]  # canonical decomposition (NFD) but for Hangul syllables
    properties: dict[int, int]  # canonical combining class + 256 if it can compose backwards
    pairs: dict[int, int]  # (first << 21 | second) -> primary composite


@functools.lru_cache(maxsize=4)
def unicode_tables(lowercase: bool, strip_accents: bool) -> UnicodeTables:
    """The character tables for one setting, computed once per process from `unicodedata`."""
    strip, resplit, words, decompose, properties, pairs = {}, [], {}, {}, {}, {}
    for code_point in _code_points():
        char = chr(code_point)
        decomposition = unicodedata.decomposition(char)
        is_hangul = _S_BASE <= code_point < _S_BASE + _S_COUNT
        canonical = bool(decomposition) and not decomposition.startswith("<")
        value = char
        if strip_accents and (canonical or (is_hangul and not lowercase)):
            value = _strip_marks(char)
            if not _splits_alike(char, value):
                resplit.append(code_point)
            # Lowercasing ends in NFC, so its tables keep characters composed (a Hangul
            # syllable stays one): same result, and fewer words take the NFC path.
            if lowercase:
                value = unicodedata.normalize("NFC", value)
            if value != char:
                strip[code_point] = value
        if lowercase and (
            value != char
            or decomposition
            or char.casefold() != char
            or _is_default_ignorable(code_point)
        ):
            value = _nfkc_casefold(value)
        if value != char:
            words[code_point] = value
        if not lowercase:
            continue
        if canonical:
            decompose[code_point] = unicodedata.normalize("NFD", char)
            parts = [int(part, 16) for part in decomposition.split()]
            if len(parts) == 2 and unicodedata.normalize("NFC", char) == char:
                pairs[parts[0] << _PAIR_SHIFT | parts[1]] = code_point
        combining_class = unicodedata.combining(char)
        if combining_class:
            properties[code_point] = combining_class
    if lowercase:
        seconds = {key & ((1 << _PAIR_SHIFT) - 1) for key in pairs}
        seconds |= set(range(_V_BASE, _V_BASE + _V_COUNT))
        seconds |= set(range(_T_BASE + 1, _T_BASE + _T_COUNT))
        for code_point in seconds:
            properties[code_point] = properties.get(code_point, 0) + 256
    return UnicodeTables(strip, tuple(resplit), words, decompose, properties, pairs)


def string_table(mapping: dict[int, str]) -> tf.lookup.StaticHashTable:
    keys = np.array(sorted(mapping), dtype=np.int32)
    values = np.array([mapping[key].encode("utf-8") for key in keys.tolist()], dtype=object)
    if not len(keys):  # a table needs one entry: map U+0000 to itself
        keys, values = np.array([0], dtype=np.int32), np.array([b"\x00"], dtype=object)
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(keys, values, tf.int32, tf.string), UNMAPPED
    )


def _int_table(mapping: dict[int, int], key_dtype, default: int) -> tf.lookup.StaticHashTable:
    keys = np.array(sorted(mapping) or [-1], dtype=key_dtype.as_numpy_dtype)
    values = np.array([mapping.get(key, default) for key in keys.tolist()], dtype=np.int32)
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(keys, values, key_dtype, tf.int32), default
    )


def map_characters(texts: tf.Tensor, table: tf.lookup.StaticHashTable) -> tf.Tensor:
    """Replace each character of `texts` (1-D) that is in `table` by its string."""
    code_points = tf.strings.unicode_decode(texts, "UTF-8")
    flat = code_points.flat_values
    mapped = table.lookup(flat)
    same = tf.strings.unicode_encode(flat[:, tf.newaxis], "UTF-8")
    pieces = tf.where(tf.equal(mapped, UNMAPPED), same, mapped)
    return tf.strings.reduce_join(code_points.with_flat_values(pieces), axis=-1)


def is_valid_utf8(texts: tf.Tensor) -> tf.Tensor:
    return tf.equal(tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8", errors="replace"), texts)


def update_some(texts: tf.Tensor, indices: tf.Tensor, function) -> tf.Tensor:
    """`texts` with `function` applied to `texts[indices]`; when `indices` is empty, the ops
    of `function` do not run at all (a `tf.cond`: most batches need no rare path)."""
    return tf.cond(
        tf.size(indices) > 0,
        lambda: tf.tensor_scatter_nd_update(texts, indices, function(tf.gather_nd(texts, indices))),
        lambda: tf.identity(texts),
    )


def where_not_ascii(texts: tf.Tensor, function, ascii_function=None) -> tf.Tensor:
    """`function` on the strings of `texts` (1-D) that are not pure ASCII, `ascii_function`
    (or nothing) on the rest: most text is ASCII, and ASCII needs no character tables."""
    not_ascii = tf.where(tf.logical_not(tf.strings.regex_full_match(texts, r"[\x00-\x7f]*")))
    base = texts if ascii_function is None else ascii_function(texts)
    return update_some(base, not_ascii, function)


class NFC(tf.Module):
    """Canonical composition (NFC) of strings whose characters are each already NFC.

    A `tf.Module`, so that the layer tracks its tables (a SavedModel needs them tracked).
    """

    def __init__(self, tables: UnicodeTables):
        super().__init__(name="nfc")
        self.decompose = string_table(tables.decompose)
        self.properties = _int_table(tables.properties, tf.int32, 0)
        self.pairs = _int_table(tables.pairs, tf.int64, -1)

    def needs_composition(self, code_points: tf.RaggedTensor) -> tf.Tensor:
        """Per string: holds a combining mark or a character that composes backwards."""
        flags = tf.ragged.map_flat_values(self.properties.lookup, code_points)
        return tf.reduce_any(flags > 0, axis=-1)

    def _compose_pair(self, first: tf.Tensor, second: tf.Tensor) -> tf.Tensor:
        key = tf.bitwise.left_shift(tf.cast(first, tf.int64), _PAIR_SHIFT) | tf.cast(
            second, tf.int64
        )
        composite = self.pairs.lookup(tf.where(second >= 0, key, -1))
        l_index, v_index = first - _L_BASE, second - _V_BASE
        s_index, t_index = first - _S_BASE, second - _T_BASE
        lv = (l_index >= 0) & (l_index < _L_COUNT) & (v_index >= 0) & (v_index < _V_COUNT)
        lvt = (
            (s_index >= 0)
            & (s_index < _S_COUNT)
            & tf.equal(s_index % _T_COUNT, 0)
            & (t_index > 0)
            & (t_index < _T_COUNT)
        )
        composite = tf.where(lv, _S_BASE + (l_index * _V_COUNT + v_index) * _T_COUNT, composite)
        return tf.where(lvt, first + t_index, composite)

    def __call__(self, texts: tf.Tensor) -> tf.Tensor:
        """NFC of `texts` (1-D): decompose, reorder marks, compose (UAX #15's algorithm)."""
        code_points = tf.strings.unicode_decode(map_characters(texts, self.decompose), "UTF-8")
        flat = code_points.flat_values
        combining_class = self.properties.lookup(flat) % 256
        # Canonical ordering: a stable sort by class within each run that a starter (or the
        # start of a string) opens.
        index = tf.range(tf.shape(flat, out_type=tf.int64)[0])
        first = tf.equal(index, tf.gather(code_points.row_starts(), code_points.value_rowids()))
        starts_run = tf.equal(combining_class, 0) | first
        run = tf.cumsum(tf.cast(starts_run, tf.int64))
        order = tf.argsort(run * 256 + tf.cast(combining_class, tf.int64), stable=True)
        code_points = code_points.with_flat_values(tf.gather(flat, order))
        combining_class = code_points.with_flat_values(tf.gather(combining_class, order))

        # One padding column, so that column 0 exists even when every string is empty.
        chars = tf.pad(
            code_points.to_tensor(default_value=-1), [[0, 0], [0, 1]], constant_values=-1
        )
        classes = tf.pad(combining_class.to_tensor(default_value=0), [[0, 0], [0, 1]])
        lengths = tf.cast(code_points.row_lengths(), tf.int32)
        rows = tf.range(tf.shape(chars)[0])

        def step(i, out, starter, starter_pos, last_class, comp_pos):
            char, char_class = chars[:, i], classes[:, i]
            valid = i < lengths
            composite = self._compose_pair(starter, char)
            compose = (
                valid & (composite >= 0) & ((last_class < char_class) | tf.equal(last_class, 0))
            )
            keep = valid & tf.logical_not(compose)
            position = tf.where(compose, starter_pos, tf.where(valid, comp_pos, i))
            value = tf.where(compose, composite, tf.where(valid, char, -1))
            out = tf.tensor_scatter_nd_update(out, tf.stack([rows, position], axis=1), value)
            new_starter = keep & tf.equal(char_class, 0)
            starter = tf.where(compose, composite, tf.where(new_starter, char, starter))
            starter_pos = tf.where(new_starter, comp_pos, starter_pos)
            last_class = tf.where(keep, char_class, last_class)
            comp_pos = tf.where(keep, comp_pos + 1, comp_pos)
            return i + 1, out, starter, starter_pos, last_class, comp_pos

        width = tf.shape(chars)[1] - 1
        start = (
            tf.constant(1),
            chars,
            chars[:, 0],
            tf.zeros_like(rows),
            tf.where(tf.equal(classes[:, 0], 0), 0, 256),  # a leading mark composes with nothing
            tf.minimum(lengths, 1),
        )
        _, out, _, _, _, comp_pos = tf.while_loop(lambda i, *_: i < width, step, start)
        composed = tf.RaggedTensor.from_tensor(out, lengths=comp_pos)
        return tf.strings.unicode_encode(composed, "UTF-8")
