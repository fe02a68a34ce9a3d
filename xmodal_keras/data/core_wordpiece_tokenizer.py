"""A WordPiece tokenizer built from core TensorFlow ops only: KerasHub's ids, no TF-Text.

`keras_hub.tokenizers.WordPieceTokenizer` runs on tensorflow-text kernels
(`FastWordpieceTokenizeWithOffsets`, `RegexSplitWithOffsets`, `CaseFoldUTF8`,
`NormalizeUTF8`) that stock TF Serving does not have. `CoreWordPieceTokenizer` gives the
same token ids with `tf.strings`, `tf.lookup.StaticHashTable` and `tf.while_loop`, so a
serving graph that tokenises raw text loads in a plain TF Serving.

The pipeline gives the words of KerasHub's (`split=True`, no special tokens in strings):

1. Split on whitespace (`\\s`, which in RE2 is ASCII only, `\\p{Cc}`, `\\p{Cf}`), keeping
   punctuation (ASCII non-alphanumerics and `\\p{P}`) and, with `split_on_cjk`, CJK
   ideographs as words of their own: KerasHub's RE2 classes with `tf.strings.regex_replace`,
   then `tf.strings.split`. KerasHub strips accents before splitting; here the few
   characters whose stripped form splits differently (4 in Unicode 14: "≠" -> "=", ...)
   are replaced before the split, the rest of the stripping is done per word after it.
2. ASCII words: `tf.strings.lower` when lowercasing. Other words: with `strip_accents`,
   marks that come alone are removed with KerasHub's RE2 `\\p{Mn}`, then one code point ->
   string `StaticHashTable`, computed in Python from `unicodedata`, maps every character
   to its NFD with the Mn marks dropped and/or its NFKC_Casefold (what TF-Text's
   `case_fold_utf8` does: NFKC, full case folding, default ignorables dropped). Words that
   then hold combining or composable characters are put into NFC in-graph (canonical
   decomposition table, reordering with a stable sort, a composition pair table and Hangul
   arithmetic in a `tf.while_loop`), so decomposed input ("e" + U+0301) ends as ICU's.
3. WordPiece, greedy longest-match-first: a word in the vocabulary is one lookup; for the
   others a `tf.while_loop` takes one piece of every word per step, looking all candidate
   substrings up at once. A word with no full segmentation, longer than 100 UTF-8 bytes
   (TF-Text's `max_bytes_per_token`) or not valid UTF-8 is one `oov_token`; an empty word
   gives no token.

TF-Text's quirks are kept: its split reads a string only up to the first NUL character.

Agreement with TF-Text (measured on TF 2.21, tensorflow-text 2.21, Python 3.11): TF-Text
normalises with ICU data of a newer Unicode (16) than Python 3.11's `unicodedata` (14.0).
Over every code point (in a word, lowercasing and stripping), the words differ for 127
code points, all unassigned in Unicode 14 (e.g. U+1E030, a Cyrillic modifier letter of
Unicode 15 that ICU folds to "а"; Unicode 16's outlined letters U+1CCD6...): this layer
leaves them as they are, TF-Text maps them. A newer Python shrinks the list (the tables
are built from the `unicodedata` that runs). The character classes (`\\p{P}`, `\\p{Mn}`,
`\\p{Cc}`, `\\p{Cf}`) come from RE2 on both sides. One more limit, outside ordinary text:
with `strip_accents=True` and `lowercase=False`, two adjacent non-Mn combining marks (25
rare code points such as U+302E) are not canonically reordered as NFD would. The tests
check id-for-id equality with KerasHub on a 10,000+ sentence corpus and code point by
code point.

Example:

>>> vocabulary = ["[UNK]", "the", "qu", "##ick", "br", "##own", "fox", "."]
>>> tokenizer = CoreWordPieceTokenizer(vocabulary=vocabulary, lowercase=True)
>>> tokenizer(["The quick brown fox.", "the fax"]).to_list()
[[1, 2, 3, 4, 5, 6, 7], [1, 0]]
"""

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from xmodal_keras.api_export import xmodal_export
from xmodal_keras.data.unicode_text import (
    MAX_BYTES_PER_WORD,
    NFC,
    OWN_WORD_AND_CJK_CLASS,
    OWN_WORD_CLASS,
    SPACE_CLASS,
    UNMAPPED,
    is_valid_utf8,
    map_characters,
    string_table,
    unicode_tables,
    update_some,
    where_not_ascii,
)


def _vocabulary_table(mapping: dict[bytes, int]) -> tf.lookup.StaticHashTable:
    keys = list(mapping) or [b""]
    values = np.array([mapping.get(key, -1) for key in keys], dtype=np.int32)
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(keys, tf.string), values), -1
    )


@xmodal_export
class CoreWordPieceTokenizer(keras.layers.Layer):
    """WordPiece tokenizer in core TensorFlow ops: KerasHub's `WordPieceTokenizer` ids.

    Gives the same ids as `keras_hub.tokenizers.WordPieceTokenizer(vocabulary, lowercase,
    strip_accents, split=True, split_on_cjk, suffix_indicator, oov_token,
    sequence_length)` without tensorflow-text ops, so it runs in stock TF Serving. See the
    module docstring for the pipeline and the (unassigned-in-Unicode-14) code points where
    the normalisation differs from TF-Text's ICU. KerasHub's uncased BERT presets
    (`BertTokenizer`) set `lowercase=True` and leave `strip_accents=False`.

    Input: a string scalar or a 1-D batch of strings. Output: int32 ids, a `tf.RaggedTensor`
    `[batch, None]` (a 1-D tensor for a scalar input), or with `sequence_length` a dense
    `[batch, sequence_length]` tensor cut or padded with 0, as KerasHub does.

    Args:
        vocabulary: the WordPiece tokens, id = position; suffix pieces start with
            `suffix_indicator`. Must hold `oov_token`; no duplicate or empty tokens.
        sequence_length: pad or cut the ids to this length, or None for ragged output.
            Defaults to None.
        lowercase: NFKC_Casefold every word (TF-Text's `case_fold_utf8`). Defaults to False.
        strip_accents: NFD and drop Mn marks before splitting. Defaults to False.
        split_on_cjk: make every CJK ideograph a word of its own. Defaults to True.
        suffix_indicator: prefix of the pieces that continue a word. Defaults to "##".
        oov_token: the token of a word that cannot be segmented. Defaults to "[UNK]".
        **kwargs: forwarded to `keras.layers.Layer`.

    Example:

    >>> vocabulary = ["[UNK]", "the", "qu", "##ick", "br", "##own", "fox", "."]
    >>> tokenizer = CoreWordPieceTokenizer(
    ...     vocabulary=vocabulary, lowercase=True, strip_accents=True, sequence_length=8)
    >>> tokenizer(["THÉ qüick fox."]).numpy().tolist()
    [[1, 2, 3, 6, 7, 0, 0, 0]]
    >>> tokenizer("the brown").numpy().tolist()
    [1, 4, 5, 0, 0, 0, 0, 0]
    """

    def __init__(
        self,
        vocabulary: Sequence[str],
        sequence_length: int | None = None,
        lowercase: bool = False,
        strip_accents: bool = False,
        split_on_cjk: bool = True,
        suffix_indicator: str = "##",
        oov_token: str = "[UNK]",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(vocabulary, str) or not isinstance(vocabulary, Sequence):
            raise ValueError(
                f"`vocabulary` must be a list of strings. Received: vocabulary={vocabulary!r:.80}"
            )
        self.vocabulary = [str(token) for token in vocabulary]
        if sequence_length is not None and (
            not isinstance(sequence_length, int) or sequence_length < 1
        ):
            raise ValueError(
                "`sequence_length` must be None or an int >= 1. "
                f"Received: sequence_length={sequence_length!r}"
            )
        for name, value in (
            ("lowercase", lowercase),
            ("strip_accents", strip_accents),
            ("split_on_cjk", split_on_cjk),
        ):
            if not isinstance(value, bool):
                raise ValueError(f"`{name}` must be a bool. Received: {name}={value!r}")
        if not isinstance(suffix_indicator, str) or not suffix_indicator:
            raise ValueError(
                "`suffix_indicator` must be a non-empty string. "
                f"Received: suffix_indicator={suffix_indicator!r}"
            )
        if oov_token not in self.vocabulary:
            raise ValueError(
                f"`oov_token` must be in `vocabulary`. Received: oov_token={oov_token!r}"
            )
        seen = set()
        for index, token in enumerate(self.vocabulary):
            if not token:  # TF-Text refuses them too
                raise ValueError(
                    f"`vocabulary` has an empty token. Received: vocabulary[{index}]={token!r}"
                )
            if token in seen:
                raise ValueError(
                    f"`vocabulary` has a duplicate token. Received: vocabulary[{index}]={token!r}"
                )
            seen.add(token)
        self.sequence_length = sequence_length
        self.lowercase = lowercase
        self.strip_accents = strip_accents
        self.split_on_cjk = split_on_cjk
        self.suffix_indicator = suffix_indicator
        self.oov_token = oov_token

        self._own_word_class = OWN_WORD_AND_CJK_CLASS if split_on_cjk else OWN_WORD_CLASS
        self._max_piece_chars = self._longest_piece()
        self._oov_id = self.vocabulary.index(oov_token)
        tables = unicode_tables(lowercase, strip_accents)
        # RE2 replacement strings read "\\" and "\N" specially.
        self._resplit = {
            code_point: tables.strip[code_point].replace("\\", "\\\\")
            for code_point in tables.resplit
        }
        with tf.init_scope():
            normalise = lowercase or strip_accents
            self._word_table = string_table(tables.words) if normalise else None
            self._nfc = NFC(tables) if lowercase else None
            self._vocabulary_table = _vocabulary_table(
                {token.encode(): i for i, token in enumerate(self.vocabulary)}
            )
            # The keys of `_greedy_pieces`: 0xFF + token for a word's first piece, the "##"
            # pieces without their indicator after it (0xFF is never in UTF-8 text).
            cut = len(suffix_indicator)
            pieces = {UNMAPPED + token.encode(): i for i, token in enumerate(self.vocabulary)}
            for i, token in enumerate(self.vocabulary):
                if token.startswith(suffix_indicator) and len(token) > cut:
                    pieces[token[cut:].encode()] = i
            self._piece_table = _vocabulary_table(pieces)
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.supports_jit = False
        self.built = True

    def _longest_piece(self) -> int:
        """Characters of the longest piece a word can match (suffix pieces without "##")."""
        longest = 1
        for token in self.vocabulary:
            if token.startswith(self.suffix_indicator):
                longest = max(longest, len(token) - len(self.suffix_indicator))
            longest = max(longest, len(token))
        return min(longest, MAX_BYTES_PER_WORD)

    @classmethod
    def from_keras_hub(cls, tokenizer, **kwargs) -> "CoreWordPieceTokenizer":
        """The same tokenizer as a KerasHub `WordPieceTokenizer` (or `BertTokenizer`).

        Copies the vocabulary and the settings; refuses settings this layer does not
        have (`split=False`, special tokens split out of strings, non-integer output).
        """
        for name, supported in (("split", True), ("special_tokens_in_strings", False)):
            if getattr(tokenizer, name, supported) != supported:
                raise ValueError(
                    f"`{name}={not supported}` is not supported. "
                    f"Received: tokenizer.{name}={getattr(tokenizer, name)!r}"
                )
        if getattr(tokenizer, "compute_dtype", "int32") != "int32":
            raise ValueError(
                "Only int32 ids are supported. "
                f"Received: tokenizer.compute_dtype={tokenizer.compute_dtype!r}"
            )
        settings = {
            "vocabulary": list(tokenizer.get_vocabulary()),
            "sequence_length": tokenizer.sequence_length,
            "lowercase": bool(tokenizer.lowercase),
            "strip_accents": bool(tokenizer.strip_accents),
            "split_on_cjk": bool(tokenizer.split_on_cjk),
            "suffix_indicator": tokenizer.suffix_indicator,
            "oov_token": tokenizer.oov_token,
        }
        settings.update(kwargs)
        return cls(**settings)

    def get_vocabulary(self) -> list[str]:
        return list(self.vocabulary)

    def vocabulary_size(self) -> int:
        return len(self.vocabulary)

    def pretokenize(self, texts) -> tf.RaggedTensor:
        """Strings `[batch]` -> normalised words `[batch, None]`, before WordPiece.

        KerasHub strips accents from the whole text, splits it, then case-folds each word.
        Here the text is split first and each non-ASCII word goes through one character
        table (strip, then case fold): the same words, because stripping changes no word
        boundary -- but for a few characters such as "≠" (-> "=" + U+0338): the texts that
        hold one of those are stripped whole before splitting, as KerasHub does.
        """
        texts = tf.convert_to_tensor(texts, dtype=tf.string)
        # TF-Text's `regex_split` reads each string only up to its first NUL character:
        # KerasHub tokenises "ab\x00cd" as "ab". Cut there too, to give the same ids.
        texts = tf.strings.regex_replace(texts, r"(?s)\x00.*", "")
        # One RE2 replace per such character (a handful of literal characters: fast, and
        # unlike a character table it leaves invalid UTF-8 bytes as they are).
        for code_point, replacement in self._resplit.items():
            texts = tf.strings.regex_replace(texts, f"\\x{{{code_point:X}}}", replacement)
        texts = tf.strings.regex_replace(texts, self._own_word_class, r" \0 ")
        texts = tf.strings.regex_replace(texts, SPACE_CLASS, " ")
        words = tf.strings.split(texts)  # on ASCII whitespace, which RE2's `\s` is
        return words.with_flat_values(
            where_not_ascii(words.flat_values, self._normalize_words, self._normalize_ascii)
        )

    def _normalize_ascii(self, words: tf.Tensor) -> tf.Tensor:
        return tf.strings.lower(words) if self.lowercase else words

    def _normalize_words(self, words: tf.Tensor) -> tf.Tensor:
        """Strip and/or case-fold non-ASCII words: the character table, then NFC if needed.

        A word that is not valid UTF-8 becomes the single byte 0xFF: TF-Text passes such
        bytes through and its WordPiece finds no match, so it is the oov token (here as
        well, 0xFF matching nothing).
        """
        valid = is_valid_utf8(words)
        if self._word_table is not None:
            words = self._normalize_valid(words)
        return tf.where(valid, words, UNMAPPED)

    def _normalize_valid(self, words: tf.Tensor) -> tf.Tensor:
        if self.strip_accents:  # the marks that come alone, with KerasHub's regex
            words = tf.strings.regex_replace(words, r"\p{Mn}", "")
        words = map_characters(words, self._word_table)
        if not self.lowercase:
            return words
        # Words over 3 x 100 bytes stay over 100 after composing (at most 3 bytes -> 1):
        # they become the oov token either way, so they skip the per-character loop.
        short = tf.strings.length(words) <= 3 * MAX_BYTES_PER_WORD
        compose = self._nfc.needs_composition(tf.strings.unicode_decode(words, "UTF-8"))
        return update_some(words, tf.where(compose & short), self._nfc)

    def _word_piece(self, words: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Words (1-D) -> (ids, word index of each id), greedy longest match first.

        A word in the vocabulary is its own longest match, a word over 100 bytes is the oov
        token, an empty word gives nothing: one lookup. The others go through
        `_greedy_pieces`.
        """
        whole = self._vocabulary_table.lookup(words)
        num_bytes = tf.strings.length(words)
        too_long = num_bytes > MAX_BYTES_PER_WORD
        single = too_long | ((whole >= 0) & (num_bytes > 0))
        single_word = tf.cast(tf.where(single)[:, 0], tf.int32)
        single_id = tf.gather(tf.where(too_long, self._oov_id, whole), single_word)
        other_word = tf.cast(tf.where(tf.logical_not(single) & (num_bytes > 0))[:, 0], tf.int32)
        other_id, other_index, other_rank = tf.cond(
            tf.size(other_word) > 0,
            lambda: self._greedy_pieces(tf.gather(words, other_word)),
            lambda: (tf.zeros([0], tf.int32),) * 3,
        )
        # Merge: each id goes to its place in the output (word order, then rank).
        counts = tf.tensor_scatter_nd_update(
            tf.cast(single, tf.int32),
            other_word[:, tf.newaxis],
            tf.math.bincount(other_index, minlength=tf.size(other_word), dtype=tf.int32),
        )
        place = tf.cumsum(counts, exclusive=True)
        other_word = tf.gather(other_word, other_index)
        index = tf.concat(
            [tf.gather(place, single_word), tf.gather(place, other_word) + other_rank], axis=0
        )
        index, total = index[:, tf.newaxis], tf.reduce_sum(counts)[tf.newaxis]
        ids = tf.scatter_nd(index, tf.concat([single_id, other_id], 0), total)
        word = tf.scatter_nd(index, tf.concat([single_word, other_word], 0), total)
        return ids, word

    def _greedy_pieces(self, words: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """`_word_piece` for non-empty words of at most 100 bytes not in the vocabulary.

        Returns (ids, word index, rank of the id in its word), in no particular order.

        A `tf.while_loop` walks all words at once, one piece per step: at each word's
        current character, every substring up to the longest piece is cut from one buffer
        of the joined words, each behind a 0xFF byte (byte offsets, no string copies), and
        looked up in one table: with its 0xFF byte at a word's start (the keys of every
        token), bare after it (the keys of the "##" pieces, indicator dropped). The longest
        match is the piece; a word left with no match is the oov token.
        """
        code_points, char_offset = tf.strings.unicode_decode_with_offsets(words, "UTF-8")
        num_chars = tf.cast(code_points.row_lengths(), tf.int32)
        num_bytes = tf.strings.length(words) + 1
        position_word = tf.cast(code_points.value_rowids(), tf.int32)
        word_start = tf.cast(code_points.row_starts(), tf.int32)
        start = tf.range(tf.shape(position_word)[0]) - tf.gather(word_start, position_word)
        # Byte span of every character in the buffer.
        char_begin = tf.cast(char_offset.flat_values, tf.int32) + tf.gather(
            tf.cumsum(num_bytes, exclusive=True) + 1, position_word
        )
        char_end = tf.concat(
            [char_begin[1:] - tf.where(start[1:] > 0, 0, 1), [tf.reduce_sum(num_bytes)]], 0
        )
        buffer = tf.strings.reduce_join(tf.strings.join([UNMAPPED, words]))
        lengths = tf.range(1, self._max_piece_chars + 1)[tf.newaxis, :]
        num_words = tf.size(num_chars)

        def step(i, offset, failed, active, found):
            # Candidates (word, length) of the active words, in row-major order.
            candidates = tf.where(active, tf.minimum(self._max_piece_chars, num_chars - offset), 0)
            cells = tf.cast(tf.where(lengths <= candidates[:, tf.newaxis]), tf.int32)
            word, length = cells[:, 0], cells[:, 1] + 1
            here = tf.gather(word_start + offset, word)
            begin = tf.gather(char_begin, here) - tf.where(tf.gather(offset, word) > 0, 0, 1)
            end = tf.gather(char_end, here + length - 1)
            ids = self._piece_table.lookup(tf.strings.substr(buffer, begin, end - begin))
            best = tf.math.unsorted_segment_max(tf.where(ids >= 0, length, 0), word, num_words)
            best = tf.maximum(best, 0)
            first_cell = tf.cumsum(candidates, exclusive=True)
            best_id = tf.gather(
                tf.concat([ids, [-1]], 0),
                tf.where(best > 0, first_cell + best - 1, tf.shape(ids)[0]),
            )
            ok = active & (best > 0)
            hit = tf.cast(tf.where(ok)[:, 0], tf.int32)
            # One row per piece found: (id, word, rank of the piece in its word = step).
            rows = tf.stack([tf.gather(best_id, hit), hit, tf.fill(tf.shape(hit), i)], axis=1)
            found = found.write(i + 1, rows)
            offset = offset + tf.where(ok, best, 0)
            failed = failed | (active & tf.equal(best, 0))
            return i + 1, offset, failed, ok & (offset < num_chars), found

        start_state = (
            tf.constant(0),
            tf.zeros_like(num_chars),
            tf.zeros_like(num_chars, tf.bool),
            num_chars > 0,
            # Element 0 is empty, so that `concat` has one even when no step runs.
            tf.TensorArray(
                tf.int32, size=1, dynamic_size=True, infer_shape=False, element_shape=[None, 3]
            ).write(0, tf.zeros([0, 3], tf.int32)),
        )
        _, _, failed, _, found = tf.while_loop(
            lambda i, offset, failed, active, found: tf.reduce_any(active), step, start_state
        )
        found = found.concat()
        # A word that cannot be segmented is one oov token: drop the pieces it had.
        found = tf.boolean_mask(found, tf.logical_not(tf.gather(failed, found[:, 1])))
        failed_word = tf.cast(tf.where(failed)[:, 0], tf.int32)
        oov = tf.stack(
            [tf.fill(tf.shape(failed_word), self._oov_id), failed_word, tf.zeros_like(failed_word)],
            axis=1,
        )
        found = tf.concat([found, oov], axis=0)
        return found[:, 0], found[:, 1], found[:, 2]

    def call(self, texts):
        texts = tf.convert_to_tensor(texts, dtype=tf.string)
        scalar = texts.shape.rank == 0
        if scalar:
            texts = tf.reshape(texts, [1])
        elif texts.shape.rank != 1:
            raise ValueError(
                "`texts` must be a scalar or a 1-D batch of strings. "
                f"Received: texts.shape={texts.shape}"
            )
        words = self.pretokenize(texts)
        token_ids, token_word = self._word_piece(words.flat_values)
        ids = tf.RaggedTensor.from_value_rowids(
            token_ids,
            tf.gather(words.value_rowids(), token_word),
            nrows=words.nrows(),
        )
        if self.sequence_length:
            ids = ids.to_tensor(default_value=0, shape=[None, self.sequence_length])
        elif scalar:
            return ids.flat_values
        return ids[0] if scalar else ids

    def tokenize(self, texts):
        """Same as calling the layer: raw strings -> int32 ids."""
        return self(texts)

    def compute_output_spec(self, texts):
        shape = tuple(texts.shape) + (self.sequence_length,)
        return keras.KerasTensor(shape, dtype="int32")

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "vocabulary": list(self.vocabulary),
                "sequence_length": self.sequence_length,
                "lowercase": self.lowercase,
                "strip_accents": self.strip_accents,
                "split_on_cjk": self.split_on_cjk,
                "suffix_indicator": self.suffix_indicator,
                "oov_token": self.oov_token,
            }
        )
        return config
