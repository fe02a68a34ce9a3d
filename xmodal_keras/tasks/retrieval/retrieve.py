"""A trained retrieval run: `load_dual_encoder_run`, recall@K on a split (`evaluate_retrieval`)
and text-to-image / image-to-text search over its index (`retrieve`)."""

import dataclasses
import json
import os
import pathlib
from collections.abc import Sequence

import keras
import numpy as np
import pandas as pd

from xmodal_keras.atomic_files import atomic_write_text
from xmodal_keras.data.image_files import preflight_images
from xmodal_keras.data.image_preprocessing import load_image
from xmodal_keras.evaluation.retrieval_index import RetrievalIndex, build_retrieval_index
from xmodal_keras.models.dual_encoder import IMAGE_TOWER_NAME, TEXT_TOWER_NAME
from xmodal_keras.runs.run_directory import MODEL_FILE, RunDirectory
from xmodal_keras.tasks.captioning.data import data_name, read_caption_data
from xmodal_keras.tasks.retrieval.run_tokenizer import TextTokenizer, load_run_tokenizer
from xmodal_keras.tasks.retrieval.settings import INDEX_FILE, SPLITS, RetrievalTrainConfig


def retrieval_metrics_path(run: RunDirectory, split: str, *, data=None) -> pathlib.Path:
    """`metrics/<split>_retrieval/metrics.json` of a run (under `metrics/data_<name>/` for
    other `data` than the run's)."""
    return run.evaluation_dir(data) / f"{split}_retrieval" / "metrics.json"


def evaluate_retrieval(
    run_dir: str | os.PathLike | RunDirectory,
    *,
    splits: Sequence[str] = ("val", "test"),
    model: keras.Model | None = None,
    tokenizer: TextTokenizer | None = None,
    config: RetrievalTrainConfig | None = None,
    frame: pd.DataFrame | None = None,
    data: str | Sequence[str] | None = None,
    data_format: str = "auto",
) -> dict[str, dict]:
    """Recall@1/5/10 image->text and text->image of a retrieval run on each of `splits`
    that has captions; written to `metrics/<split>_retrieval/metrics.json`.

    `train_retrieval` passes its model, tokenizer, config and frame; `xmodal evaluate RUN`
    loads them. With `data` (caption data, as `--data` of training, read with
    `data_format`) that data is scored instead of the run's, after its images are
    checked, into `metrics/data_<name>/`.

    Returns:
        `{split: {"image_to_text_recall@1", ..., "num_images", "num_captions"}}`.
    """
    run = run_dir if isinstance(run_dir, RunDirectory) else RunDirectory(run_dir)
    if model is None or tokenizer is None or config is None:
        model, tokenizer, config = load_dual_encoder_run(run)
    if data is not None:
        config = dataclasses.replace(config, data=data, format=data_format)
        frame = read_caption_data(config)
        preflight_images(frame, source=data_name(data))
    frame = read_caption_data(config) if frame is None else frame
    image_tower = model.get_layer(IMAGE_TOWER_NAME)
    text_tower = model.get_layer(TEXT_TOWER_NAME)
    shape = (config.image_size, config.image_size)
    results = {}
    for split in splits:
        if split not in SPLITS:
            raise ValueError(f"`splits` must be from {SPLITS}. Received: split={split!r}")
        rows = frame[frame.split == split]
        if rows.empty:
            continue
        index = build_retrieval_index(image_tower, text_tower, tokenizer, rows, image_size=shape)
        metrics = {**index.recall(), "num_images": index.num_images, "num_captions": len(rows)}
        path = retrieval_metrics_path(run, split, data=data)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(metrics, indent=2, sort_keys=True) + "\n")
        results[split] = metrics
    return results


def format_recall(split: str, metrics: dict) -> str:
    """`"test R@1 i->t 0.512 t->i 0.498"`."""
    return (
        f"{split} R@1 i->t {metrics['image_to_text_recall@1']:.3f} "
        f"t->i {metrics['text_to_image_recall@1']:.3f}"
    )


def load_dual_encoder_run(run_dir: str | os.PathLike | RunDirectory):
    """Load a trained retrieval run: `(model, tokenizer, config)`.

    `model` from `model.keras` (safe mode), `tokenizer` from `vocab.txt` (`load_run_tokenizer`),
    `config` the `RetrievalTrainConfig` of `config.json`.
    """
    run = run_dir if isinstance(run_dir, RunDirectory) else RunDirectory(run_dir)
    config = RetrievalTrainConfig.from_dict(run.read_config())
    if not run.model_path.is_file():
        raise FileNotFoundError(
            f"No trained model in {run.path}: {MODEL_FILE} is missing (training did not finish; "
            "run the same `xmodal train retrieval` command again to resume)"
        )
    # No optimizer: loading is for inference, export and transfer. (A KerasHub image backbone
    # rebuilds its layers trainable, so a partly frozen run's optimizer state would not fit.)
    model = keras.saving.load_model(run.model_path, safe_mode=True, compile=False)
    return model, load_run_tokenizer(run, config), config


def retrieve(
    run_dir: str | os.PathLike | RunDirectory,
    query_text: str | None = None,
    image_path: str | os.PathLike | None = None,
    k: int = 5,
) -> list[dict]:
    """Top `k` matches for a text query (images) or an image query (captions).

    Searches the run's `retrieval_index.npz` (the `index_split` gallery embedded after
    training). Exactly one of `query_text` and `image_path` must be given.

    Returns:
        For a text: `[{"rank", "score", "image_id", "image_path"}]`; for an image:
        `[{"rank", "score", "caption", "image_id"}]` (distinct caption texts), best first.
    """
    if (query_text is None) == (image_path is None):
        raise ValueError(
            "Give exactly one of `query_text` and `image_path`. "
            f"Received: query_text={query_text!r}, image_path={image_path!r}"
        )
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"`k` must be a positive int. Received: k={k!r}")
    run = run_dir if isinstance(run_dir, RunDirectory) else RunDirectory(run_dir)
    model, tokenizer, config = load_dual_encoder_run(run)
    index_path = run.path / INDEX_FILE
    if not index_path.is_file():
        raise FileNotFoundError(f"No retrieval index in {run.path}: {INDEX_FILE} is missing")
    index = RetrievalIndex.load(index_path)
    if query_text is not None:
        query = model.get_layer(TEXT_TOWER_NAME)(tokenizer([str(query_text)]), training=False)
        return index.search_images(np.asarray(query)[0], k=k)
    if not os.path.isfile(image_path):
        raise FileNotFoundError(f"No such image file: {os.fspath(image_path)!r}")
    image = load_image(os.fspath(image_path), (config.image_size, config.image_size))
    query = model.get_layer(IMAGE_TOWER_NAME)(image[None], training=False)
    return index.search_captions(np.asarray(query)[0], k=k)


def format_matches(matches: list[dict]) -> str:
    """One line per match, for the CLI: `rank. score  image_id  path-or-caption`."""
    lines = []
    for match in matches:
        what = match.get("caption", match.get("image_path"))
        lines.append(f"{match['rank']:>2}. {match['score']:+.3f}  {match['image_id']}  {what}")
    return "\n".join(lines)
