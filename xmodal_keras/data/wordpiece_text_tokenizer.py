"""`WordPieceTextTokenizer`: raw text -> a BERT-style packed row of ids, in core TF ops.

The text tower of a KerasHub preset (`BertBackbone`, `DistilBertBackbone`, ...) reads
`[CLS] pieces... [SEP] [PAD]...`. KerasHub builds that row with its tokenizer (TF-Text
kernels) and `MultiSegmentPacker`; this layer builds the same row from
`CoreWordPieceTokenizer` (core ops), so the serving graph that takes raw text loads in
stock TF Serving. It has `CaptionTokenizer`'s interface where the tasks use it (called on
strings, `vocabulary_size`, `get_vocabulary`, `ids_length`, `save_vocabulary`), and
writes its settings beside the run's `vocab.txt` (`save_settings` / `from_files`).

Example:

>>> vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "red", "circ", "##le"]
>>> tokenizer = WordPieceTextTokenizer(vocabulary, sequence_length=7, lowercase=True)
>>> tokenizer(["A red circle", "a blue"]).numpy().tolist()
[[2, 4, 5, 6, 7, 3, 0], [2, 4, 1, 3, 0, 0, 0]]
"""

import json
import os
from collections.abc import Sequence

import keras
import tensorflow as tf

from xmodal_keras.api_export import xmodal_export
from xmodal_keras.data.clip_text_tokenizer import ClipTextTokenizer
from xmodal_keras.data.core_wordpiece_tokenizer import CoreWordPieceTokenizer
from xmodal_keras.data.text_tokenizer import CaptionTokenizer, read_tokenizer_files, text_batch

WORDPIECE_SETTINGS = (
    "lowercase",
    "strip_accents",
    "split_on_cjk",
    "suffix_indicator",
    "oov_token",
)
PACKING_TOKENS = ("start_token", "end_token", "pad_token")


@xmodal_export
class WordPieceTextTokenizer(keras.layers.Layer):
    """Raw strings `[batch]` -> int32 ids `[batch, sequence_length]`: start, pieces, end, pad.

    Each row is `start_token`, the WordPiece ids of the text cut to `sequence_length - 2`,
    `end_token`, then `pad_token` up to `sequence_length`: what KerasHub's BERT
    preprocessors give for one segment. The padding id must be 0, the id the towers'
    padding masks (`PaddingMask`) treat as padding.

    Args:
        vocabulary: the WordPiece tokens, id = position (see `CoreWordPieceTokenizer`).
        sequence_length: ids a row holds (the text tower's input length), >= 3.
        lowercase, strip_accents, split_on_cjk, suffix_indicator, oov_token: as in
            `CoreWordPieceTokenizer` (and KerasHub's `WordPieceTokenizer`).
        start_token, end_token, pad_token: the packing tokens. Default to BERT's
            `"[CLS]"`, `"[SEP]"`, `"[PAD]"`.
        **kwargs: forwarded to `keras.layers.Layer`.
    """

    runs_in_graph = True  # a serving graph can hold it (core ops)

    def __init__(
        self,
        vocabulary: Sequence[str],
        sequence_length: int,
        *,
        lowercase: bool = False,
        strip_accents: bool = False,
        split_on_cjk: bool = True,
        suffix_indicator: str = "##",
        oov_token: str = "[UNK]",
        start_token: str = "[CLS]",
        end_token: str = "[SEP]",
        pad_token: str = "[PAD]",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(sequence_length, bool) or not isinstance(sequence_length, int):
            raise ValueError(
                f"`sequence_length` must be an int >= 3. Received: {sequence_length=!r}"
            )
        if sequence_length < 3:
            raise ValueError(
                "`sequence_length` must be >= 3 (start, one piece, end). "
                f"Received: sequence_length={sequence_length}"
            )
        self.wordpiece = CoreWordPieceTokenizer(
            vocabulary,
            lowercase=lowercase,
            strip_accents=strip_accents,
            split_on_cjk=split_on_cjk,
            suffix_indicator=suffix_indicator,
            oov_token=oov_token,
            name="wordpiece",
        )
        vocabulary = self.wordpiece.vocabulary
        for setting, token in (
            ("start_token", start_token),
            ("end_token", end_token),
            ("pad_token", pad_token),
        ):
            if token not in vocabulary:
                raise ValueError(
                    f"`{setting}` must be in the vocabulary. Received: {setting}={token!r}"
                )
        if vocabulary.index(pad_token) != 0:
            raise ValueError(
                "The padding token must have id 0 (the towers mask id 0). Received: "
                f"pad_token={pad_token!r} with id {vocabulary.index(pad_token)}"
            )
        self.sequence_length = sequence_length
        self.start_token = start_token
        self.end_token = end_token
        self.pad_token = pad_token
        self.start_id = vocabulary.index(start_token)
        self.end_id = vocabulary.index(end_token)
        self.pad_id = 0
        self.unk_id = vocabulary.index(oov_token)
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.supports_jit = False
        self.built = True

    @classmethod
    def from_keras_hub(cls, tokenizer, sequence_length: int) -> "WordPieceTextTokenizer":
        """The packing tokenizer of a KerasHub WordPiece tokenizer (`BertTokenizer`, ...),
        its vocabulary, settings and `start_token`/`end_token`/`pad_token`."""
        core = CoreWordPieceTokenizer.from_keras_hub(tokenizer)
        tokens = {}
        for setting in PACKING_TOKENS:
            token = getattr(tokenizer, setting, None)
            if token is None:
                raise ValueError(
                    f"The KerasHub tokenizer has no `{setting}`: only BERT-style WordPiece "
                    f"tokenizers are supported. Received: {type(tokenizer).__name__}"
                )
            tokens[setting] = token
        return cls(
            core.vocabulary,
            sequence_length,
            **{setting: getattr(core, setting) for setting in WORDPIECE_SETTINGS},
            **tokens,
        )

    @property
    def vocabulary_size(self) -> int:
        return len(self.wordpiece.vocabulary)

    @property
    def ids_length(self) -> int:
        """Ids a row holds: the text tower's input length."""
        return self.sequence_length

    def get_vocabulary(self) -> list[str]:
        return self.wordpiece.get_vocabulary()

    def piece_coverage(self, texts: Sequence[str]) -> float:
        """Share of the WordPiece tokens of `texts` (uncut) that are not `oov_token`."""
        ids = self.wordpiece(tf.constant(list(texts), tf.string)).flat_values
        if ids.shape[0] == 0:
            return 1.0
        return float(tf.reduce_mean(tf.cast(tf.not_equal(ids, self.unk_id), tf.float32)))

    def call(self, texts):
        texts, scalar = text_batch(texts)
        pieces = self.wordpiece(texts)[:, : self.sequence_length - 2]
        rows = pieces.nrows(out_type=tf.int32)
        start = tf.fill(tf.stack([rows, 1]), tf.constant(self.start_id, tf.int32))
        end = tf.fill(tf.stack([rows, 1]), tf.constant(self.end_id, tf.int32))
        ids = tf.concat([start, pieces, end], axis=1)
        ids = ids.to_tensor(default_value=self.pad_id, shape=[None, self.sequence_length])
        return ids[0] if scalar else ids

    def tokenize(self, texts) -> tf.Tensor:
        """Same as calling the layer: raw strings -> int32 ids."""
        return self(texts)

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) == 2 and input_shape[-1] == 1:
            input_shape = input_shape[:1]
        return input_shape + (self.sequence_length,)

    def compute_output_spec(self, texts):
        return keras.KerasTensor(self.compute_output_shape(texts.shape), dtype="int32")

    def settings(self) -> dict:
        """Everything but the vocabulary: what `save_settings` writes."""
        return {
            "sequence_length": self.sequence_length,
            **{setting: getattr(self.wordpiece, setting) for setting in WORDPIECE_SETTINGS},
            **{setting: getattr(self, setting) for setting in PACKING_TOKENS},
        }

    def save_vocabulary(self, path: str | os.PathLike) -> None:
        """Write the vocabulary to `path` (UTF-8, one token a line)."""
        with open(path, "w", encoding="utf-8", newline="\n") as file:
            file.write("\n".join(self.get_vocabulary()) + "\n")

    def save_settings(self, path: str | os.PathLike) -> None:
        """Write `settings()` to `path` as JSON."""
        with open(path, "w", encoding="utf-8") as file:
            json.dump(self.settings(), file, indent=2)

    @classmethod
    def from_files(
        cls, vocabulary_path: str | os.PathLike, settings_path: str | os.PathLike
    ) -> "WordPieceTextTokenizer":
        """The tokenizer `save_vocabulary` and `save_settings` wrote."""
        vocabulary, settings = read_tokenizer_files(vocabulary_path, settings_path)
        expected = {"sequence_length", *WORDPIECE_SETTINGS, *PACKING_TOKENS}
        if not isinstance(settings, dict) or set(settings) != expected:
            raise ValueError(
                f"{os.fspath(settings_path)!r} must be a JSON object with the keys "
                f"{sorted(expected)}. Received: {settings!r:.200}"
            )
        return cls(vocabulary, **settings)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"vocabulary": self.get_vocabulary(), **self.settings()})
        return config


TextTokenizer = CaptionTokenizer | WordPieceTextTokenizer | ClipTextTokenizer
"""What a text tower's run keeps: the words of its data, or a preset's WordPiece."""
