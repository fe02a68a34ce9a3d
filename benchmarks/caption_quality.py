"""Caption quality of our default captioner against a plain keras.io-style baseline.

For each dataset (the built-in `shapes`, and `digits`, made from the real scanned digits
and photos scikit-learn ships, see `xmodal_keras/data/digits.py`) this trains:

- **ours**: `train_captioner` with the library's defaults (`CaptionerTrainConfig()`:
  `residual_cnn` encoder, Transformer decoder), only `data`, `epochs` and
  `val_metrics_every=0` set (the per-epoch val BLEU/CIDEr callback would spend the budget);
- **baseline**: `benchmarks/keras_io_captioner.py` (4 x Conv+BN+ReLU to an 8x8x128 grid,
  2 KerasHub TransformerDecoder layers, Adam 1e-3, clipnorm 1, warm-up + cosine);
- optionally our GRU (Show, Attend and Tell) and LSTM (Show and Tell) captioners
  (`--decoders transformer gru lstm`).

Each gets the same wall-clock training budget (`--minutes`): a probe (`--probe-seconds`) measures
its steps/s, the schedule is sized for the whole epochs that fit, and a callback stops it
at the budget. Rows print val and test CIDEr, BLEU-4 and METEOR (greedy and beam 3; the
same `compute_caption_metrics` scores both), training pairs/s and minutes.

`--select` instead trains each candidate setting of `SELECTION_CANDIDATES` for a fixed
number of epochs on both datasets and prints val CIDEr (greedy) and val token accuracy:
the defaults were chosen on that table (val only), then checked on test by the main table.

Default selection. 2,000 images per dataset (shapes: 1,600 / 200 / 200; digits: 1,500 /
250 / 250), 3 epochs, Transformer decoder at the library defaults otherwise (hidden 256,
2 layers, batch 64, AdamW, warm-up + cosine, clipnorm 1), scored on **val** (greedy), on 2
CPU cores shared with other jobs (minutes are only indicative):

    .venv/bin/python benchmarks/caption_quality.py --select --num-images 2000 --epochs 3

| dataset | setting | val CIDEr | val BLEU-4 | val token acc | minutes |
|---|---|---|---|---|---|
| shapes | small_cnn (old default), lr 1e-3 | 1.879 | 0.372 | 0.666 | 5.0 |
| shapes | residual_cnn, lr 1e-3 | 3.776 | 0.593 | 0.767 | 4.6 |
| shapes | residual_cnn, lr 2e-3, label smoothing 0.1 | 3.700 | 0.593 | 0.767 | 5.0 |
| shapes | residual_cnn, lr 3e-4 (range test) | 3.271 | 0.560 | 0.743 | 8.1 |
| shapes | residual_cnn, decoder hidden 128, lr 2e-3 | 3.464 | 0.569 | 0.758 | 3.7 |
| digits | small_cnn (old default), lr 1e-3 | 1.316 | 0.329 | 0.661 | 4.1 |
| digits | residual_cnn, lr 1e-3 | 1.639 | 0.470 | 0.698 | 7.3 |
| digits | residual_cnn, lr 2e-3, label smoothing 0.1 | 1.829 | 0.473 | 0.704 | 7.1 |
| digits | residual_cnn, lr 3e-4 (range test) | 1.912 | 0.484 | 0.704 | 7.5 |
| digits | residual_cnn, decoder hidden 128, lr 2e-3 | 1.548 | 0.452 | 0.693 | 5.9 |

Result at equal time (test, greedy; full table in the README): at 4 minutes ours / baseline
CIDEr is 1.74x (shapes) and 9.9x (digits); at 8 minutes in float32 (4 epochs each) it was
0.97x (5.640 / 5.813) and 1.05x (4.706 / 4.503): the baseline catches up once its
batch-norm statistics settle. With `precision="auto"` (mixed_bfloat16 on this AMX CPU:
203 pairs/s, the float32 baseline 127 in the same run) ours trains 5 epochs on shapes (in
6.6 of the 8 minutes: a sixth did not fit the probe's estimate) and 7 on digits (the
budget cut the 8th of its schedule):
1.00x (5.759 / 5.779) and 1.12x (5.012 / 4.479). The 1.2x target is not reached.
A perfect captioner reaches 6.656 on shapes and 5.434 on digits (`caption_ceiling.py`):
1.2x the baseline (6.935, 5.375) is above it on shapes and 99 % of it on digits, so the
target cannot be met at 8 minutes; this script prints each model's share of the ceiling.

Tried and not kept, at the 8-minute budget on shapes (4,000 images), val split:
- training on each image with all 5 of its captions at once (the encoder runs once per
  image, its features repeated per caption; 1.7x the pairs/s): 7 epochs, val token accuracy
  0.846 and val CIDEr 5.474 greedy, against 0.856 and 5.641 for 4 epochs of caption pairs.
  A batch then holds 13 scenes instead of ~64, and one image's captions are largely the
  same information: scenes per second, not pairs per second, is what training needs
  (branch `experiment/group-captions`);
- dropout 0: 10 % faster steps, no better per step (120 steps on 2,000 shapes images: loss
  1.689 with and without).

The selection below ran 3 epochs on 2,000 images. At the 8-minute
budget (4 epochs, 4,000 images; val CIDEr greedy; the default's from its benchmark run,
which trains the same 4 epochs) label smoothing 0.1 stays ahead of 0 on both datasets:
shapes 5.641 vs 5.550, digits 4.650 vs 4.604 (val token accuracy 0.856 vs 0.850 and 0.836
vs 0.832):

    .venv/bin/python benchmarks/caption_quality.py --select --num-images 4000 --epochs 4 \
        --candidates "residual_cnn lr 2e-3 ls 0"

Chosen: `residual_cnn`, lr 2e-3, label smoothing 0.1: within 2 % of the best val CIDEr on
shapes and 4 % on digits, where every other setting is 13 % or more below the best on one
of the two. The residual encoder doubles val CIDEr on shapes and adds 25-45 % on digits.
The learning-rate range test (`xmodal tune captioner`: lowest smoothed loss at ~3e-3 on
both, suggestion a tenth of it) picked the best rate for digits and the worst for shapes:
it is the tool for a user's own data, not a default. lr and label smoothing were changed
together, so their separate effects are not known. Not searched (kept): decoder width 256,
batch 64, 10 epochs, dropout 0.1, weight decay 1e-4, clipnorm 1.
"""

import argparse
import dataclasses
import json
import math
import pathlib
import sys
import tempfile
import time

import keras
import numpy as np
import pandas as pd

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import caption_ceiling  # noqa: E402
import keras_io_captioner as baseline  # noqa: E402

from xmodal_keras.data.digits import load_digits_scenes  # noqa: E402
from xmodal_keras.data.shapes import load_shapes  # noqa: E402
from xmodal_keras.evaluation.caption_metrics import compute_caption_metrics
from xmodal_keras.runs.run_directory import RunDirectory
from xmodal_keras.tasks.captioning.evaluate import evaluate_captioner
from xmodal_keras.tasks.captioning.settings import CaptionerTrainConfig
from xmodal_keras.tasks.captioning.train import train_captioner

DATASETS = {"shapes": load_shapes, "digits": load_digits_scenes}
METRICS = ("bleu", "meteor", "cider")
# Settings compared by `--select`, as overrides of `CaptionerTrainConfig`.
SELECTION_CANDIDATES = {
    "small_cnn (old default)": {"encoder": "small_cnn", "encoder_hidden_dim": 64},
    "residual_cnn": {"encoder": "residual_cnn", "encoder_hidden_dim": None},
    "residual_cnn lr 2e-3 ls 0.1": {
        "encoder": "residual_cnn",
        "encoder_hidden_dim": None,
        "learning_rate": 2e-3,
        "label_smoothing": 0.1,
    },
    "residual_cnn lr 2e-3 ls 0": {
        "encoder": "residual_cnn",
        "encoder_hidden_dim": None,
        "learning_rate": 2e-3,
        "label_smoothing": 0.0,
    },
    # What `xmodal tune captioner` suggests on both datasets (the rate at the lowest
    # smoothed loss, ~3e-3, divided by 10).
    "residual_cnn lr 3e-4 (range test)": {
        "encoder": "residual_cnn",
        "encoder_hidden_dim": None,
        "learning_rate": 3e-4,
    },
    "residual_cnn hidden 128 lr 2e-3": {
        "encoder": "residual_cnn",
        "encoder_hidden_dim": None,
        "hidden_dim": 128,
        "learning_rate": 2e-3,
    },
}


@dataclasses.dataclass
class Row:
    dataset: str
    model: str
    scores: dict
    pairs_per_second: float
    minutes: float
    epochs: int


def dataset_root(name: str, num_images: int) -> pathlib.Path:
    return DATASETS[name](num_images=num_images, image_size=64)


def _pairs(root: pathlib.Path, split: str = "train") -> int:
    return sum(len(c) for c in baseline.load_captions(root)[split].values())


def _rate(budget: baseline.TimeBudget) -> float:
    """Steps/s over the second half of a probe (after tracing and the first batches)."""
    times = np.asarray(budget.batch_times)
    half = times[times >= times[-1] / 2]
    return (len(half) - 1) / max(half[-1] - half[0], 1e-9)


class _Probe(baseline.TimeBudget):
    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.batch_times = []

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, logs)
        self.batch_times.append(self.elapsed)


def _epochs_for(budget_s: float, steps_per_second: float, root: pathlib.Path, batch: int) -> int:
    """Whole epochs that fit the budget; a val batch (forward only) counts 1/3 of a step."""
    steps = math.ceil(_pairs(root) / batch) + math.ceil(_pairs(root, "val") / batch) / 3
    return max(1, math.floor(budget_s * steps_per_second / steps))


def _our_config(root: pathlib.Path, decoder: str, epochs: int, **overrides) -> CaptionerTrainConfig:
    return CaptionerTrainConfig(
        data=str(root), decoder=decoder, epochs=epochs, val_metrics_every=0, **overrides
    )


def run_ours(
    name: str,
    root: pathlib.Path,
    decoder: str,
    budget_s: float,
    probe_s: float,
    work: pathlib.Path,
    overrides: dict | None = None,
) -> Row:
    config = _our_config(root, decoder, epochs=100, **(overrides or {}))
    probe = _Probe(probe_s)
    train_captioner(config, work / f"{name}_{decoder}_probe", callbacks=[probe], verbose=0)
    epochs = _epochs_for(budget_s, _rate(probe), root, config.batch_size)
    budget = baseline.TimeBudget(budget_s)
    run = train_captioner(
        dataclasses.replace(config, epochs=epochs), work / f"{name}_{decoder}", callbacks=[budget]
    )
    scores = {}
    for split in ("val", "test"):
        for beam in (None, 3):
            result = evaluate_captioner(run, split, beam_width=beam, metrics=METRICS)
            scores[(split, beam or 1)] = result
    pairs = budget.steps * config.batch_size / budget.elapsed
    return Row(name, f"ours ({decoder})", scores, pairs, budget.elapsed / 60, epochs)


def _score_baseline(captioner, data, split: str, beam: int) -> dict:
    paths = sorted(data[split])
    texts = captioner.caption(paths, beam=beam)
    references = {p: data[split][p] for p in paths}
    return compute_caption_metrics(
        references, dict(zip(paths, texts, strict=True)), metrics=METRICS
    )


def run_baseline(name: str, root: pathlib.Path, budget_s: float, probe_s: float) -> Row:
    probe_budget = _Probe(probe_s)
    data = baseline.load_captions(root)
    vectorizer = baseline.make_vectorizer([c for caps in data["train"].values() for c in caps])
    model, _, _ = baseline.build_model(vectorizer.vocabulary_size())
    steps_per_epoch = math.ceil(_pairs(root) / baseline.BATCH_SIZE)
    baseline.compile_model(model, total_steps=100 * steps_per_epoch)
    train_data = baseline.make_dataset(data["train"], vectorizer, shuffle=True)
    model.fit(train_data, epochs=100, callbacks=[probe_budget], verbose=0)
    epochs = _epochs_for(budget_s, _rate(probe_budget), root, baseline.BATCH_SIZE)
    captioner, budget, data = baseline.train(root, epochs, seconds=budget_s)
    scores = {
        (split, beam): _score_baseline(captioner, data, split, beam)
        for split in ("val", "test")
        for beam in (1, 3)
    }
    pairs = budget.steps * baseline.BATCH_SIZE / budget.elapsed
    return Row(name, "baseline (keras.io style)", scores, pairs, budget.elapsed / 60, epochs)


def print_table(rows: list[Row]) -> None:
    header = (
        "| dataset | model | test CIDEr greedy | test CIDEr beam 3 | test BLEU-4 greedy | "
        "test BLEU-4 beam 3 | test METEOR greedy | val CIDEr greedy | val CIDEr beam 3 | "
        "epochs | pairs/s | train min |"
    )
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for row in rows:
        s = row.scores
        print(
            f"| {row.dataset} | {row.model} | {s['test', 1]['cider']:.3f} | "
            f"{s['test', 3]['cider']:.3f} | {s['test', 1]['bleu_4']:.3f} | "
            f"{s['test', 3]['bleu_4']:.3f} | {s['test', 1]['meteor']:.3f} | "
            f"{s['val', 1]['cider']:.3f} | {s['val', 3]['cider']:.3f} | {row.epochs} | "
            f"{row.pairs_per_second:.0f} | {row.minutes:.1f} |",
            flush=True,
        )
    by_dataset = {}
    for row in rows:
        by_dataset.setdefault(row.dataset, {})[row.model] = row.scores["test", 1]["cider"]
    for name, models in by_dataset.items():
        ours = models.get("ours (transformer)")
        base = models.get("baseline (keras.io style)")
        if ours is not None and base:
            print(f"{name}: ours / baseline test CIDEr (greedy) = {ours / base:.2f}x (target 1.2x)")


def print_ceilings(rows: list[Row], num_images: int) -> None:
    """Each model's test CIDEr (greedy) as a share of what a perfect captioner reaches."""
    for name in dict.fromkeys(row.dataset for row in rows):
        bound = caption_ceiling.ceiling(name, num_images, "test", draws=200, simulations=6)
        perfect = bound["perfect perception"]
        oracle = bound["oracle"]
        print(f"{name}: a perfect captioner reaches test CIDEr {perfect:.3f} (oracle {oracle:.3f})")
        for row in rows:
            if row.dataset == name:
                cider = row.scores["test", 1]["cider"]
                print(f"  {row.model}: {cider:.3f} = {cider / perfect:.0%} of it")


def select(
    datasets: list[str], num_images: int, epochs: int, work: pathlib.Path, candidates: list[str]
) -> None:
    """Val CIDEr (greedy) and val token accuracy of every candidate on every dataset."""
    rows = []
    for name in datasets:
        root = dataset_root(name, num_images)
        for label in candidates:
            overrides = SELECTION_CANDIDATES[label]
            config = _our_config(root, "transformer", epochs, **overrides)
            start = time.perf_counter()
            slug = label.split(" (")[0].replace(" ", "_").replace(".", "")
            out = work / f"select_{name}_{slug}"
            # A finished run in --work-dir is scored again, not retrained.
            finished = (out / "model.keras").is_file()
            run = RunDirectory(out) if finished else train_captioner(config, out, verbose=2)
            seconds = time.perf_counter() - start
            history = pd.read_csv(run.history_path)
            scores = evaluate_captioner(run, "val", metrics=("bleu", "cider"))
            rows.append(
                (
                    name,
                    label,
                    scores["cider"],
                    scores["bleu_4"],
                    history["val_masked_token_accuracy"].iloc[-1],
                    seconds / 60,
                )
            )
            print(f"{rows[-1]}", flush=True)
    print(f"\nselection: {epochs} epochs, {num_images} images per dataset, val split")
    print("| dataset | setting | val CIDEr | val BLEU-4 | val token acc | minutes |")
    print("|---|---|---|---|---|---|")
    for name, label, cider, bleu, accuracy, minutes in rows:
        print(f"| {name} | {label} | {cider:.3f} | {bleu:.3f} | {accuracy:.3f} | {minutes:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--num-images", type=int, default=4000)
    parser.add_argument("--minutes", type=float, default=8.0, help="training budget per model")
    parser.add_argument("--probe-seconds", type=float, default=60.0, help="throughput probe")
    parser.add_argument("--decoders", nargs="+", default=["transformer"])
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--select", action="store_true", help="run the default selection")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per --select candidate")
    parser.add_argument(
        "--candidates",
        nargs="+",
        default=list(SELECTION_CANDIDATES),
        choices=list(SELECTION_CANDIDATES),
        help="--select: which candidates (default: all)",
    )
    parser.add_argument("--work-dir", type=pathlib.Path, default=None)
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="FIELD=VALUE",
        help="train ours with these CaptionerTrainConfig overrides (JSON values), "
        "e.g. --set dropout=0 precision='\"mixed_bfloat16\"'",
    )
    args = parser.parse_args()
    overrides = {key: json.loads(value) for key, value in (s.split("=", 1) for s in args.set)}
    keras.config.disable_interactive_logging()
    work = args.work_dir or pathlib.Path(tempfile.mkdtemp(prefix="caption_quality_"))
    if args.select:
        select(args.datasets, args.num_images, args.epochs, work, args.candidates)
        return
    rows = []
    budget = args.minutes * 60
    for name in args.datasets:
        root = dataset_root(name, args.num_images)
        for decoder in args.decoders:
            rows.append(run_ours(name, root, decoder, budget, args.probe_seconds, work, overrides))
            print_table(rows[-1:])
        if not args.no_baseline:
            rows.append(run_baseline(name, root, budget, args.probe_seconds))
            print_table(rows[-1:])
    print(
        f"\n{args.num_images} images per dataset (64 px), {args.minutes:g} min of training "
        f"per model, runs in {work}"
    )
    print_table(rows)
    print_ceilings(rows, args.num_images)


if __name__ == "__main__":
    main()
