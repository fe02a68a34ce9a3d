"""A trained captioner run: `load_captioner` and `caption_image_files`.

`caption_image_files` checks each file's header first (the serving graph's pixel limit),
reports a file that cannot be read instead of failing the others, and can draw one
attention heat-map per image.
"""

import os
import pathlib
from collections.abc import Sequence

import keras
import numpy as np

from xmodal_keras.data.image_header import DEFAULT_MAX_PIXELS
from xmodal_keras.data.image_preprocessing import read_image_files
from xmodal_keras.data.text_tokenizer import CaptionTokenizer
from xmodal_keras.decoding.caption_generator import CaptionGenerator
from xmodal_keras.decoding.caption_images import (
    DEFAULT_BATCH_SIZE,
    caption_batches,
    decoding_options,
)
from xmodal_keras.evaluation.plots import plot_attention_map
from xmodal_keras.models.captioner_input_names import with_current_input_names
from xmodal_keras.runs.run_directory import MODEL_FILE, RunDirectory
from xmodal_keras.tasks.captioning.settings import CaptionerTrainConfig


def load_captioner(run_dir: str | os.PathLike | RunDirectory):
    """Load a trained captioner run: `(model, tokenizer, config)`.

    `model` comes from `model.keras` (`keras.saving.load_model(..., safe_mode=True)`; a
    run saved by xmodal_keras 0.1 gets its inputs renamed, `with_current_input_names`),
    `tokenizer` from `vocab.txt` and the config's `sequence_length`, `config` is the
    `CaptionerTrainConfig` of `config.json`.

    Raises:
        FileNotFoundError: if the run has no `config.json` or no `model.keras` (not trained
            to the end yet).
    """
    run = run_dir if isinstance(run_dir, RunDirectory) else RunDirectory(run_dir)
    config = CaptionerTrainConfig.from_dict(run.read_config())
    if not run.model_path.is_file():
        raise FileNotFoundError(
            f"No trained model in {run.path}: {MODEL_FILE} is missing (training did not finish; "
            "run the same `xmodal train captioner` command again to resume)"
        )
    # No optimizer: loading is for inference, export and transfer. (A KerasHub image backbone
    # rebuilds its layers trainable, so a partly frozen run's optimizer state would not fit.)
    model = keras.saving.load_model(run.model_path, safe_mode=True, compile=False)
    model = with_current_input_names(model)
    sequence_length = model.input["token_ids"].shape[1]
    tokenizer = CaptionTokenizer.from_vocabulary_file(run.vocabulary_path, sequence_length)
    return model, tokenizer, config


def attention_map_paths(
    out_path: str | os.PathLike, image_paths: Sequence[str | os.PathLike]
) -> list[pathlib.Path]:
    """Where each image's heat-map goes: `out_path` itself for one image; for several,
    `<out stem>_<image stem><out suffix>` beside it (`maps.png` + `a/cat.jpg` ->
    `maps_cat.png`), with a 1-based position prefix (`maps_2_cat.png`) when two images
    share a stem.

    Example:

    >>> [p.name for p in attention_map_paths("maps.png", ["a/cat.jpg", "b/dog.png"])]
    ['maps_cat.png', 'maps_dog.png']
    >>> [p.name for p in attention_map_paths("m.png", ["a/cat.jpg", "b/cat.png"])]
    ['m_1_cat.png', 'm_2_cat.png']
    """
    out = pathlib.Path(out_path)
    if len(image_paths) == 1:
        return [out]
    stems = [pathlib.Path(p).stem for p in image_paths]
    unique = len(set(stems)) == len(stems)
    suffix = out.suffix or ".png"
    return [
        out.with_name(f"{out.stem}_{stem}{suffix}" if unique else f"{out.stem}_{i}_{stem}{suffix}")
        for i, stem in enumerate(stems, start=1)
    ]


def _words(tokens: np.ndarray, tokenizer) -> list[str]:
    vocabulary = tokenizer.get_vocabulary()
    words = []
    for token in tokens:
        if token == tokenizer.pad_id:
            break
        words.append(vocabulary[token])  # "<end>" included: its map shows where it stopped
        if token == tokenizer.end_id:
            break
    return words


def caption_image_files(
    run_dir,
    paths: Sequence[str | os.PathLike],
    *,
    beam_width: int | None = None,
    attention_map: str | os.PathLike | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> list[dict]:
    """Caption image files with a trained run; optionally write attention heat-maps.

    Each file's header is checked before it is decoded (`read_image_files`: at most
    `max_pixels`); a file that fails is reported in its result, the others are captioned.

    Args:
        run_dir: a run directory from `train_captioner` (or a `RunDirectory`).
        paths: image files.
        beam_width: beam search width; None decodes greedily. Defaults to None.
        attention_map: PNG path for the heat-map (one picture per generated word over the
            image); with several images one file per image, see `attention_map_paths`.
            Greedy only. Defaults to None.
        batch_size: images per decoding batch. Defaults to 64.
        max_pixels: largest width x height an image may declare. Defaults to 40 MP.

    Returns:
        One dict per image, in order: `{"path", "caption", "score", "attention_map",
        "error"}` (`attention_map` is the PNG written, or None; for a file that could not
        be read `caption` and `score` are None and `error` says why, else it is None).

    Raises:
        FileNotFoundError: a missing image file or run.
        ValueError: `attention_map` with `beam_width`, or no paths.
    """
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise ValueError("Give at least one image file. Received: paths=[]")
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(f"No such image file: {', '.join(missing)}")
    if attention_map is not None and beam_width is not None:
        raise ValueError(
            "Attention maps come with greedy decoding only; drop --beam. "
            f"Received: beam_width={beam_width}, attention_map={os.fspath(attention_map)!r}"
        )
    options = decoding_options(beam_width)
    model, tokenizer, _ = load_captioner(run_dir)
    generator = CaptionGenerator(model, tokenizer)
    images, failures = read_image_files(paths, generator.image_shape[:2], max_pixels=max_pixels)
    errors = dict(failures)
    readable = [i for i, image in enumerate(images) if image is not None]
    with_maps = attention_map is not None
    batches = (
        np.stack([images[i] for i in readable[start : start + batch_size]])
        for start in range(0, len(readable), batch_size)
    )
    out = caption_batches(generator, batches, options, with_maps)
    map_paths = attention_map_paths(attention_map, paths) if with_maps else [None] * len(paths)
    results = [
        {"path": path, "caption": None, "score": None, "attention_map": None, "error": None}
        for path in paths
    ]
    for j, i in enumerate(readable):
        if with_maps:
            words = _words(out["tokens"][j], tokenizer)
            map_paths[i].parent.mkdir(parents=True, exist_ok=True)
            plot_attention_map(
                out["images"][j], words, out["attention"][j][: len(words)], map_paths[i]
            )
        results[i].update(
            caption=out["text"][j],
            score=out["scores"][j],
            attention_map=None if map_paths[i] is None else str(map_paths[i]),
        )
    for result in results:
        if result["caption"] is None:
            result["error"] = errors[result["path"]]
    return results
