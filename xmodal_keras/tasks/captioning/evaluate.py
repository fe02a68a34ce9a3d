"""`evaluate_captioner`: caption every image of a split with a trained run and score it.

Metrics are the COCO caption standard (`compute_caption_metrics`: BLEU-1..4, METEOR,
ROUGE-L, CIDEr-D) and, for the shapes data (a dataset root with `scenes.jsonl`), scene
faithfulness: the share of captions whose every object and relation is true of the image.
Results go to `RUN/metrics/<split>_<greedy|beamK>/metrics.json` and `captions.jsonl`;
for other data than the run's (`data=`), to `RUN/metrics/data_<name>/<split>_.../`.
"""

import dataclasses
import math
import os
import time
from collections.abc import Mapping, Sequence

from xmodal_keras.data.image_files import preflight_images
from xmodal_keras.data.shapes import read_scenes
from xmodal_keras.decoding.caption_generator import CaptionGenerator
from xmodal_keras.decoding.caption_images import caption_paths
from xmodal_keras.evaluation.caption_metrics import METRIC_GROUPS, compute_caption_metrics
from xmodal_keras.evaluation.caption_results import write_caption_results
from xmodal_keras.evaluation.scene_faithfulness import scene_faithfulness
from xmodal_keras.runs.run_directory import RunDirectory
from xmodal_keras.tasks.captioning.data import data_name, read_caption_data, shapes_root
from xmodal_keras.tasks.captioning.predict import load_captioner

SPLITS = ("train", "val", "test")

_LABELS = {
    "bleu_1": "BLEU-1",
    "bleu_2": "BLEU-2",
    "bleu_3": "BLEU-3",
    "bleu_4": "BLEU-4",
    "meteor": "METEOR",
    "rouge_l": "ROUGE-L",
    "cider": "CIDEr",
    "scene_faithfulness": "scene faithfulness",
    "num_images": "images",
    "seconds": "seconds",
}


def evaluate_captioner(
    run_dir: str | os.PathLike | RunDirectory,
    split: str = "test",
    beam_width: int | None = None,
    max_images: int | None = None,
    *,
    data: str | Sequence[str] | None = None,
    data_format: str = "auto",
    batch_size: int = 64,
    metrics: Sequence[str] = METRIC_GROUPS,
) -> dict[str, float]:
    """Caption the images of `split` with the run's model and compute the caption metrics.

    Args:
        run_dir: a run directory from `train_captioner`.
        split: `"train"`, `"val"` or `"test"`. Defaults to `"test"`.
        data: score this caption data (paths, as `--data` of training) instead of the
            run's own; its images are checked first. Defaults to None.
        data_format: the reader of `data` (`"auto"` detects it). Defaults to `"auto"`.
        beam_width: beam search of this width; None decodes greedily. Defaults to None.
        max_images: score only the first N images (sorted by id). Defaults to all.
        batch_size: images per decoding batch. Defaults to 64.
        metrics: metric groups of `compute_caption_metrics` ("bleu", "meteor", "rouge_l",
            "cider"). Defaults to all (METEOR starts a Java process: ~15 s the first time).

    Returns:
        `{"bleu_1".."bleu_4", "meteor", "rouge_l", "cider", ["scene_faithfulness"],
        "num_images", "seconds"}` (METEOR is NaN without Java). Also written, with every
        generated caption, to `metrics/<split>_<greedy|beamK>/` (under
        `metrics/data_<name>/` for other `data`).

    Raises:
        ValueError: bad arguments, or the split has no images.
    """
    if split not in SPLITS:
        raise ValueError(f"`split` must be one of {SPLITS}. Received: split={split!r}")
    if max_images is not None and (not isinstance(max_images, int) or max_images < 1):
        raise ValueError(f"`max_images` must be an int >= 1 or None. Received: {max_images=!r}")
    run = run_dir if isinstance(run_dir, RunDirectory) else RunDirectory(run_dir)
    start = time.perf_counter()
    model, tokenizer, config = load_captioner(run)
    if data is not None:
        config = dataclasses.replace(config, data=data, format=data_format)
    frame = read_caption_data(config)
    frame = frame[frame.split == split]
    whose = "The run's data" if data is None else f"The data {data_name(data)}"
    if frame.empty:
        raise ValueError(
            f"{whose} has no {split!r} captions; pick another split. Received: split={split!r}"
        )
    if data is not None:
        preflight_images(frame, source=data_name(data))
    references = frame.groupby("image_id", sort=True)["caption"].apply(list).to_dict()
    image_paths = frame.groupby("image_id", sort=True)["image_path"].first().to_dict()
    image_ids = sorted(references)[:max_images]

    generator = CaptionGenerator(model, tokenizer)
    out = caption_paths(
        generator, [image_paths[i] for i in image_ids], beam_width=beam_width, batch_size=batch_size
    )
    candidates = dict(zip(image_ids, out["text"], strict=True))
    references = {i: references[i] for i in image_ids}
    scores = compute_caption_metrics(references, candidates, metrics=tuple(metrics))
    root = shapes_root(config)
    if root is not None:
        scores["scene_faithfulness"] = scene_faithfulness(read_scenes(root), candidates)
    scores["num_images"] = len(image_ids)
    scores["seconds"] = round(time.perf_counter() - start, 1)
    rows = [
        {
            "image_id": i,
            "image_path": image_paths[i],
            "generated": candidates[i],
            "references": references[i],
        }
        for i in image_ids
    ]
    write_caption_results(run.metrics_dir_for(split, beam_width, data=data), scores, rows)
    return scores


def _format_value(key: str, value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if key == "scene_faithfulness":
        return f"{100 * value:.1f} %"
    if key in ("num_images",):
        return str(int(value))
    if key == "seconds":
        return f"{value:.1f}"
    return f"{value:.3f}"


def format_metrics_table(
    metrics: Mapping[str, float] | Mapping[str, Mapping[str, float]],
) -> str:
    """A plain-text table of caption metrics: one column, or one per named result.

    Example:

    >>> print(format_metrics_table({"bleu_4": 0.4123, "cider": 1.5, "scene_faithfulness": 0.8}))
    metric              value
    BLEU-4              0.412
    CIDEr               1.500
    scene faithfulness  80.0 %
    >>> print(format_metrics_table({"greedy": {"bleu_4": 0.4}, "beam 3": {"bleu_4": 0.42}}))
    metric  greedy  beam 3
    BLEU-4  0.400   0.420
    """
    if metrics and all(isinstance(v, Mapping) for v in metrics.values()):
        columns = {str(name): dict(values) for name, values in metrics.items()}
    else:
        columns = {"value": dict(metrics)}
    keys = [k for k in _LABELS if any(k in c for c in columns.values())]
    keys += sorted({k for c in columns.values() for k in c} - set(keys))
    rows = [["metric", *columns]]
    for key in keys:
        rows.append(
            [_LABELS.get(key, key)]
            + [_format_value(key, c[key]) if key in c else "" for c in columns.values()]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
