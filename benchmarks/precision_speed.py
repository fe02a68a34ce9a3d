"""Train-step time of the default captioner in float32 and in mixed_bfloat16, same run.

What `precision="auto"` (`xmodal_keras/training/precision.py`) was chosen on: it picks
mixed_bfloat16 only on CPUs with AMX bfloat16 units. The model is the default
`CaptionerTrainConfig()` captioner (residual_cnn + 2-layer Transformer, hidden 256) at
64 px, sequence length 21, vocabulary 44 (the shapes data's), compiled as training
compiles it; random uint8 images and token ids, batch 64, through `model.fit`. The two
precisions are timed in turn (`--repeats`, median of `--steps` steps after 5 warm-up
steps): this machine's speed drifts from minute to minute, so only interleaved timings
compare.

Measured on the 2-core AMX machine the tests run on (`amx_bf16` in /proc/cpuinfo),
nothing else running:

    .venv/bin/python benchmarks/precision_speed.py --repeats 2 --steps 15

| precision | ms/step | pairs/s | vs float32 |
|---|---:|---:|---:|
| float32 | 397 | 161 | 1.00x |
| mixed_bfloat16 | 302 | 212 | 1.31x |

The same command varied: one run gave 512 ms for every timing of both precisions (the
machine held at one speed), another 388 / 290 ms (1.34x). In the same caption-quality run
(`caption_quality.py`, 8 minutes, data pipeline included) ours trained at 203 and 200
pairs/s in mixed_bfloat16 while the float32 baseline ran at 127 and 124 (in float32 a
session earlier: 118 and 125 against 111 and 105). Per step it learns the same: 120 steps
on 2,000 shapes images end at loss 1.689 in mixed_bfloat16 and 1.686 in float32.
"""

import argparse
import time

import numpy as np
import tensorflow as tf

from xmodal_keras.tasks.captioning.settings import CaptionerTrainConfig
from xmodal_keras.tasks.captioning.train import build_captioner_from_config
from xmodal_keras.training.compile_captioner import compile_captioner
from xmodal_keras.training.precision import cpu_flags

VOCABULARY, LENGTH = 44, 21


def make_model(precision: str):
    """The default captioner, compiled as training compiles it."""
    config = CaptionerTrainConfig(sequence_length=LENGTH, precision=precision)
    model = build_captioner_from_config(config, VOCABULARY)
    compile_captioner(model, total_steps=1000, learning_rate=config.learning_rate)
    return model


def seconds_per_step(model, batch: int, steps: int) -> float:
    rng = np.random.default_rng(0)
    inputs = {
        "images": rng.integers(0, 256, (batch * 8, 64, 64, 3)).astype("uint8"),
        "token_ids": rng.integers(1, VOCABULARY, (batch * 8, LENGTH)).astype("int32"),
    }
    targets = rng.integers(1, VOCABULARY, (batch * 8, LENGTH)).astype("int32")
    data = tf.data.Dataset.from_tensor_slices((inputs, targets)).batch(batch).repeat()
    model.fit(data.prefetch(2), steps_per_epoch=5, epochs=1, verbose=0)  # trace + warm up
    start = time.perf_counter()
    model.fit(data.prefetch(2), steps_per_epoch=steps, epochs=1, verbose=0)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timings, median")
    args = parser.parse_args()
    print(f"AMX bfloat16 units: {'amx_bf16' in cpu_flags()}")
    models = {p: make_model(p) for p in PRECISIONS_TIMED}
    times = {p: [] for p in PRECISIONS_TIMED}
    for _ in range(args.repeats):  # interleaved: the machine's speed drifts between minutes
        for name, model in models.items():
            times[name].append(seconds_per_step(model, args.batch_size, args.steps))
    print({name: [round(t * 1000) for t in ts] for name, ts in times.items()})
    rows = [(name, float(np.median(ts))) for name, ts in times.items()]
    print("| precision | ms/step | pairs/s | vs float32 |\n|---|---:|---:|---:|")
    baseline = rows[0][1]
    for name, seconds in rows:
        print(
            f"| {name} | {seconds * 1000:.0f} | {args.batch_size / seconds:.0f} | "
            f"{baseline / seconds:.2f}x |"
        )


PRECISIONS_TIMED = ("float32", "mixed_bfloat16")

if __name__ == "__main__":
    main()
