"""The text tokenizer of a retrieval or fusion run: built, saved with the run, loaded back.

A from-scratch text tower reads a `CaptionTokenizer` built on the train texts (`vocab.txt`).
A `keras_hub:PRESET_OR_DIR` text tower reads its preset's WordPiece vocabulary through a
`WordPieceTextTokenizer` (core ops), whose settings the run keeps beside `vocab.txt` in
`text_tokenizer.json`, so the run needs no preset and no TF-Text to load, serve or resume.
A run `from_preset` a CLIP preset reads its BPE through a `ClipTextTokenizer` (Python), kept
the same way (`vocab.txt` + `text_tokenizer.json` with the merges).
"""

from collections.abc import Sequence

from xmodal_keras.data.clip_text_tokenizer import ClipTextTokenizer
from xmodal_keras.data.text_tokenizer import CaptionTokenizer
from xmodal_keras.data.wordpiece_text_tokenizer import TextTokenizer, WordPieceTextTokenizer
from xmodal_keras.encoders.keras_hub_presets import is_keras_hub_preset
from xmodal_keras.encoders.keras_hub_text_encoder import load_keras_hub_tokenizer
from xmodal_keras.models.clip_dual_encoder import load_clip_tokenizer
from xmodal_keras.runs.run_directory import RunDirectory


def run_tokenizer(run: RunDirectory, texts: Sequence[str], config) -> TextTokenizer:
    """The tokenizer of a text tower that reads `config.sequence_length` ids: the run's own
    when it is resumed (`load_run_tokenizer`), else the preset's (`keras_hub:` text
    encoders) or one built on `texts` with the config's `min_count` and
    `max_vocabulary_size` (`<start>`, the words, `<end>`: the `CaptionTokenizer`'s
    `sequence_length` is one less)."""
    if run.vocabulary_path.is_file() and run.has_config():
        return load_run_tokenizer(run, config)
    if getattr(config, "from_preset", None):
        return ClipTextTokenizer.from_keras_hub(
            load_clip_tokenizer(config.from_preset), config.sequence_length
        )
    if is_keras_hub_preset(config.text_encoder):
        return WordPieceTextTokenizer.from_keras_hub(
            load_keras_hub_tokenizer(config.text_encoder), config.sequence_length
        )
    return CaptionTokenizer.from_captions(
        texts,
        sequence_length=config.sequence_length - 1,
        min_count=config.min_count,
        max_size=config.max_vocabulary_size,
    )


def load_run_tokenizer(run: RunDirectory, config) -> TextTokenizer:
    """The tokenizer `save_run_tokenizer` wrote to `run`, making `config.sequence_length`
    ids a text."""
    if getattr(config, "from_preset", None) or is_keras_hub_preset(config.text_encoder):
        kind = ClipTextTokenizer if getattr(config, "from_preset", None) else WordPieceTextTokenizer
        tokenizer = kind.from_files(run.vocabulary_path, run.text_tokenizer_path)
        if tokenizer.ids_length != config.sequence_length:
            raise ValueError(
                f"{run.text_tokenizer_path} makes {tokenizer.ids_length} ids a text but the "
                f"run's config.json has sequence_length={config.sequence_length}"
            )
        return tokenizer
    return CaptionTokenizer.from_vocabulary_file(run.vocabulary_path, config.sequence_length - 1)


def save_run_tokenizer(run: RunDirectory, tokenizer: TextTokenizer) -> None:
    """Write `vocab.txt` (and, for a WordPiece tokenizer, `text_tokenizer.json`)."""
    run.save_vocabulary(tokenizer)
    if isinstance(tokenizer, WordPieceTextTokenizer | ClipTextTokenizer):
        run.save_tokenizer_settings(tokenizer)
