"""`ClipTextTokenizer`: CLIP's byte-level BPE, packed `<|startoftext|> pieces <|endoftext|> 0...`.

A CLIP text tower reads what `keras_hub.models.CLIPPreprocessor` makes: the start token,
the BPE pieces, the end token (its position is where the tower pools), then padding id
0, `sequence_length` ids in all. KerasHub's `CLIPTokenizer` does the BPE, in Python (the
`tokenizers` package), so this tokenizer cannot go into a serving graph: a CLIP run's
export has `embed_token_ids` but no `embed_text`, and clients tokenise with this class
(`ServingClient.embed_text(texts, tokenizer=...)`). The run keeps it as `vocab.txt`
(the tokens in id order) and `text_tokenizer.json` (the merges and the length), so
loading a run needs no preset.
"""

import json
import os
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from xmodal_keras.data.text_tokenizer import read_tokenizer_files, text_batch

START_TOKEN = "<|startoftext|>"
END_TOKEN = "<|endoftext|>"
KIND = "clip_bpe"


class ClipTextTokenizer:
    """Texts -> int32 ids `[N, sequence_length]` for a CLIP text tower (Python, not in-graph).

    Args:
        vocabulary: the BPE tokens in id order (`<|startoftext|>` and `<|endoftext|>`
            among them).
        merges: the BPE merge rules, `"a b"` each, in rank order.
        sequence_length: ids per text, start and end tokens included (>= 3).

    Example:

    >>> letters = [chr(c) for c in range(97, 123)]
    >>> vocabulary = letters + [c + "</w>" for c in letters] + ["ab</w>", START_TOKEN, END_TOKEN]
    >>> tokenizer = ClipTextTokenizer(vocabulary, merges=["a b</w>"], sequence_length=6)
    >>> tokenizer(["AB c"]).numpy().tolist()
    [[53, 52, 28, 54, 0, 0]]
    """

    # Whether a serving graph can hold this tokenizer (CaptionTokenizer and
    # WordPieceTextTokenizer say True).
    runs_in_graph = False

    def __init__(self, vocabulary: Sequence[str], merges: Sequence[str], sequence_length: int):
        import keras_hub  # noqa: PLC0415 (keras_hub is slow to import; only CLIP runs need it)

        vocabulary = list(vocabulary)
        if len(set(vocabulary)) != len(vocabulary) or not all(
            isinstance(token, str) and token for token in vocabulary
        ):
            raise ValueError("`vocabulary` must be distinct non-empty strings.")
        missing = [token for token in (START_TOKEN, END_TOKEN) if token not in vocabulary]
        if missing:
            raise ValueError(f"A CLIP vocabulary must hold {missing[0]!r}.")
        if isinstance(sequence_length, bool) or not isinstance(sequence_length, int):
            raise ValueError(
                f"`sequence_length` must be an int >= 3. Received: {sequence_length!r}"
            )
        if sequence_length < 3:
            raise ValueError(
                f"`sequence_length` must be an int >= 3. Received: {sequence_length!r}"
            )
        self.vocabulary = vocabulary
        self.merges = [str(merge) for merge in merges]
        if not self.merges:  # KerasHub's BPE cannot build its merge table from none
            raise ValueError("`merges` must hold at least one BPE merge rule.")
        self.sequence_length = sequence_length
        self._bpe = keras_hub.models.CLIPTokenizer(
            vocabulary={token: index for index, token in enumerate(vocabulary)},
            merges=self.merges,
        )
        self.start_id = vocabulary.index(START_TOKEN)
        self.end_id = vocabulary.index(END_TOKEN)
        self.pad_id = 0

    @classmethod
    def from_keras_hub(cls, tokenizer, sequence_length: int) -> "ClipTextTokenizer":
        """The tokenizer of a KerasHub `CLIPTokenizer` (from `from_preset`)."""
        by_id = sorted(tokenizer.vocabulary.items(), key=lambda item: item[1])
        if [index for _, index in by_id] != list(range(len(by_id))):
            raise ValueError("The CLIP vocabulary's ids must be 0..N-1 without gaps.")
        merges = [m for m in tokenizer.merges if not str(m).lstrip().startswith("#version")]
        return cls([token for token, _ in by_id], merges, sequence_length)

    @property
    def vocabulary_size(self) -> int:
        return len(self.vocabulary)

    @property
    def ids_length(self) -> int:
        """Ids per text: `sequence_length`."""
        return self.sequence_length

    def get_vocabulary(self) -> list[str]:
        return list(self.vocabulary)

    def __call__(self, texts) -> tf.Tensor:
        """`[N]` strings -> `[N, sequence_length]` int32 ids (a scalar string -> `[L]`)."""
        ids, _ = self.tokenize_with_mask(texts)
        return tf.constant(ids)

    def tokenize_with_mask(self, texts) -> tuple[np.ndarray, np.ndarray]:
        """`(token_ids, padding_mask)` as int32 NumPy arrays (mask 1 on real tokens)."""
        batch, scalar = text_batch(texts)
        strings = [text.decode("utf-8", errors="replace") for text in batch.numpy().tolist()]
        ids = np.full((len(strings), self.sequence_length), self.pad_id, np.int32)
        mask = np.zeros_like(ids)
        pieces = self._bpe(strings) if strings else []
        for row, text_pieces in enumerate(pieces):
            kept = [self.start_id, *list(text_pieces)[: self.sequence_length - 2], self.end_id]
            ids[row, : len(kept)] = kept
            mask[row, : len(kept)] = 1
        if scalar:
            return ids[0], mask[0]
        return ids, mask

    def settings(self) -> dict:
        """Everything but the vocabulary: what `save_settings` writes."""
        return {"kind": KIND, "sequence_length": self.sequence_length, "merges": self.merges}

    def save_vocabulary(self, path: str | os.PathLike) -> None:
        """Write the tokens to `path`, one a line in id order (UTF-8)."""
        with open(path, "w", encoding="utf-8", newline="\n") as file:
            file.write("\n".join(self.vocabulary) + "\n")

    def save_settings(self, path: str | os.PathLike) -> None:
        """Write `settings()` to `path` as JSON."""
        with open(path, "w", encoding="utf-8") as file:
            json.dump(self.settings(), file)

    @classmethod
    def from_files(
        cls, vocabulary_path: str | os.PathLike, settings_path: str | os.PathLike
    ) -> "ClipTextTokenizer":
        """The tokenizer `save_vocabulary` and `save_settings` wrote."""
        vocabulary, settings = read_tokenizer_files(vocabulary_path, settings_path)
        if not isinstance(settings, dict) or settings.get("kind") != KIND:
            raise ValueError(
                f"{os.fspath(settings_path)!r} must be a JSON object with kind {KIND!r}, "
                f"'sequence_length' and 'merges'. Received: {settings!r:.200}"
            )
        return cls(vocabulary, settings.get("merges", []), settings.get("sequence_length"))
