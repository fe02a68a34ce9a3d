"""Captioner training throughput: image-caption pairs/s of `model.fit`, both decoders.

Prints, in the same run and on the same shapes data (train split, 5 captions per image):

- gru / transformer, ours: `model.fit` fed by `make_caption_dataset(cache=True,
  repeat=True)` (each image decoded once for its 5 captions, then cached in memory),
  compiled with `compile_captioner` (masked loss, AdamW, warm-up + cosine);
- transformer, XLA: the same, compiled with `jit_compile=True`;
- transformer, cached frozen features: the image encoder frozen, its region grid computed
  once per image and cached; only the decoder trains on (grid, caption) pairs;
- transformer, naive input: the same Transformer model (same seed, same config) fed by
  a plain tf.data pipeline over the flat caption frame that decodes each image once per
  caption with `load_image`, no cache -- to show whether the input pipeline is the
  bottleneck of training;
- with a GPU visible: transformer rows in mixed_float16 (float32 logits) too.

Every model is built and fitted under `get_strategy(--strategy)` (`auto`: several GPUs ->
MirroredStrategy); the table shows the number of replicas; the batch is per replica.

Each row runs `model.fit(epochs=2, steps_per_epoch=N)` with N = one pass over the train
pairs, so the first (warm-up) epoch traces the train step and fills the cache; only the
second epoch is timed (a callback reads the clock at epoch begin/end). "input alone" is
the pipeline by itself, iterated for the same number of batches after one warm-up pass,
so a row whose training rate is close to its input rate is input-bound.

Data: `load_shapes(num_images, image_size)` (generated once into `$XMODAL_DATA_DIR` or
`~/.cache/xmodal_keras`); pass `--data-dir` to use a temporary directory instead.

Run:

    .venv/bin/python benchmarks/training.py --num-images 400 --batch-size 64
"""

import argparse
import os
import pathlib
import tempfile
import time

import keras
import pandas as pd
import tensorflow as tf

from xmodal_keras.data.datasets import make_caption_dataset
from xmodal_keras.data.image_preprocessing import load_image
from xmodal_keras.data.readers import read_captions
from xmodal_keras.data.shapes import generate_shapes, load_shapes
from xmodal_keras.data.text_tokenizer import CaptionTokenizer
from xmodal_keras.models import build_gru_captioner, build_transformer_captioner
from xmodal_keras.training.compile_captioner import compile_captioner
from xmodal_keras.training.distribute import get_strategy, strategy_name


class EpochTimer(keras.callbacks.Callback):
    """Wall-clock seconds of each epoch."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def naive_dataset(frame: pd.DataFrame, tokenizer, image_size, batch_size) -> tf.data.Dataset:
    """Flat caption rows -> batches; each image decoded once per caption, no cache."""
    tokens = tokenizer(tf.constant(frame["caption"].tolist()))
    dataset = tf.data.Dataset.from_tensor_slices((frame["image_path"].tolist(), tokens))
    dataset = dataset.shuffle(len(frame), seed=0, reshuffle_each_iteration=True).repeat()
    dataset = dataset.map(
        lambda path, ids: (load_image(path, image_size), ids),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    dataset = dataset.batch(batch_size).map(
        lambda images, ids: ({"images": images, "token_ids": ids[:, :-1]}, ids[:, 1:])
    )
    return dataset.prefetch(tf.data.AUTOTUNE)


def frozen_features_dataset(
    frame: pd.DataFrame, tokenizer, encoder: keras.Model, image_size, batch_size
) -> tf.data.Dataset:
    """(cached region grid, caption) batches: each image encoded once by the frozen encoder."""
    paths = frame["image_path"].unique().tolist()
    index = {path: i for i, path in enumerate(paths)}
    images = tf.data.Dataset.from_tensor_slices(paths).map(
        lambda path: load_image(path, image_size), num_parallel_calls=tf.data.AUTOTUNE
    )
    grids = tf.concat([encoder(batch)["grid"] for batch in images.batch(64)], axis=0)
    tokens = tokenizer(tf.constant(frame["caption"].tolist()))
    rows = tf.constant([index[path] for path in frame["image_path"]])
    dataset = tf.data.Dataset.from_tensor_slices((rows, tokens))
    dataset = dataset.shuffle(len(frame), seed=0, reshuffle_each_iteration=True).repeat()
    dataset = dataset.batch(batch_size).map(
        lambda rows, ids: (
            {"grid": tf.gather(grids, rows), "token_ids": ids[:, :-1]},
            ids[:, 1:],
        )
    )
    return dataset.prefetch(tf.data.AUTOTUNE)


def decoder_only_model(model: keras.Model) -> keras.Model:
    """The captioner's decoder alone: `{"grid", "token_ids"}` -> logits."""
    encoder = model.get_layer("image_encoder")
    grid_shape = encoder.output["grid"].shape[1:]
    inputs = {
        "grid": keras.Input(grid_shape, name="grid"),
        "token_ids": keras.Input(
            model.input["token_ids"].shape[1:], dtype="int32", name="token_ids"
        ),
    }
    logits = model.get_layer("caption_decoder")(inputs["token_ids"], inputs["grid"])
    return keras.Model(inputs, logits, name="frozen_encoder_captioner")


def input_rate(dataset: tf.data.Dataset, steps: int, batch_size: int) -> float:
    """Pairs/s of the pipeline alone, over `steps` batches after `steps` warm-up batches."""
    iterator = iter(dataset)
    for _ in range(steps):
        next(iterator)
    start = time.perf_counter()
    for _ in range(steps):
        next(iterator)
    return steps * batch_size / (time.perf_counter() - start)


def build_model(
    decoder: str,
    tokenizer: CaptionTokenizer,
    args: argparse.Namespace,
    precision: str = "float32",
) -> keras.Model:
    keras.utils.set_random_seed(args.seed)
    if precision != "float32":
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy(precision)
        try:
            model = build_model(decoder, tokenizer, args)
        finally:
            keras.config.set_dtype_policy(previous)
        logits = keras.layers.Activation("linear", dtype="float32")(model.output)
        return keras.Model(model.input, logits)
    common = {
        "vocabulary_size": tokenizer.vocabulary_size,
        "sequence_length": tokenizer.sequence_length,
        "image_shape": (args.image_size, args.image_size, 3),
        "encoder": "small_cnn",
        "encoder_kwargs": {"hidden_dim": args.encoder_dim},
    }
    if decoder == "gru":
        return build_gru_captioner(
            embedding_dim=args.gru_embedding_dim, hidden_dim=args.gru_hidden_dim, **common
        )
    return build_transformer_captioner(
        hidden_dim=args.hidden_dim, num_layers=args.num_layers, num_heads=args.num_heads, **common
    )


def run_row(
    name: str,
    decoder: str,
    dataset: tf.data.Dataset,
    tokenizer: CaptionTokenizer,
    args: argparse.Namespace,
    steps: int,
    *,
    strategy: tf.distribute.Strategy,
    jit_compile: bool = False,
    precision: str = "float32",
    frozen_features: bool = False,
) -> dict:
    """Train a fresh model for 2 epochs of `steps`; time the second.

    `dataset` is a dataset, or (frozen_features) a function of the built model."""
    with strategy.scope():
        model = build_model(decoder, tokenizer, args, precision)
        if frozen_features:
            dataset = dataset(model)
            model = decoder_only_model(model)
        compile_captioner(model, total_steps=2 * steps, jit_compile=jit_compile)
    global_batch = args.batch_size * strategy.num_replicas_in_sync
    timer = EpochTimer()
    model.fit(dataset, epochs=2, steps_per_epoch=steps, callbacks=[timer], verbose=0, shuffle=False)
    seconds = timer.seconds[-1]
    row = {
        "name": name,
        "params": model.count_params(),
        "replicas": strategy.num_replicas_in_sync,
        "pairs_per_s": steps * global_batch / seconds,
        "ms_per_step": 1000 * seconds / steps,
        "warmup_s": timer.seconds[0],
        "input_per_s": input_rate(dataset, steps, global_batch),
    }
    print(
        f"  {name}: {row['pairs_per_s']:.0f} pairs/s, {row['ms_per_step']:.0f} ms/step "
        f"(warm-up epoch {row['warmup_s']:.1f} s), input alone {row['input_per_s']:.0f} pairs/s",
        flush=True,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=400, help="shapes images (all splits)")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--steps", type=int, default=None, help="steps per epoch; default one pass over train"
    )
    parser.add_argument(
        "--sequence-length", type=int, default=21, help="21: the longest shapes caption fits"
    )
    parser.add_argument("--decoders", nargs="+", default=["gru", "transformer"])
    parser.add_argument("--no-baseline", action="store_true", help="skip the naive-input row")
    parser.add_argument("--encoder-dim", type=int, default=64, help="small_cnn hidden_dim")
    parser.add_argument("--hidden-dim", type=int, default=128, help="transformer hidden_dim")
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--num-heads", type=int, default=4)
    parser.add_argument("--gru-embedding-dim", type=int, default=128)
    parser.add_argument("--gru-hidden-dim", type=int, default=256)
    parser.add_argument("--data-dir", choices=["cache", "temp"], default="cache")
    parser.add_argument("--strategy", default="auto", help="get_strategy name (default: auto)")
    parser.add_argument("--no-xla", action="store_true", help="skip the XLA row")
    parser.add_argument("--no-frozen", action="store_true", help="skip the frozen-features row")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name in args.decoders:
        if name not in ("transformer", "gru"):
            parser.error(f"--decoders: unknown decoder {name!r}")

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        if args.data_dir == "temp":
            root = generate_shapes(pathlib.Path(tmp) / "shapes", args.num_images, args.image_size)
        else:
            root = load_shapes(num_images=args.num_images, image_size=args.image_size)
        frame = read_captions(root / "Flickr8k.token.txt")
        frame = frame[frame["split"] == "train"].reset_index(drop=True)
        tokenizer = CaptionTokenizer.from_captions(
            frame["caption"], sequence_length=args.sequence_length
        )
        strategy = get_strategy(args.strategy)
        replicas = strategy.num_replicas_in_sync
        gpus = tf.config.list_logical_devices("GPU")
        steps = args.steps or -(-len(frame) // (args.batch_size * replicas))
        print(
            f"data: shapes train split, {frame['image_path'].nunique()} images "
            f"({args.image_size}px), {len(frame)} pairs, vocabulary {tokenizer.vocabulary_size}, "
            f"ready in {time.perf_counter() - start:.1f} s; batch {args.batch_size}, "
            f"{steps} steps per epoch, second of 2 epochs timed; small_cnn hidden "
            f"{args.encoder_dim}; transformer hidden {args.hidden_dim}, {args.num_layers} "
            f"layers, {args.num_heads} heads; gru embedding {args.gru_embedding_dim}, hidden "
            f"{args.gru_hidden_dim}; {os.cpu_count()} CPU cores, {len(gpus)} GPU(s), strategy "
            f"{strategy_name(strategy)} with {replicas} replica(s) (batch per replica); "
            f"TF {tf.__version__}, Keras {keras.__version__}",
            flush=True,
        )
        shape = (args.image_size, args.image_size)
        global_batch = args.batch_size * replicas
        rows = []

        def ours():
            return make_caption_dataset(
                frame,
                tokenizer,
                image_size=shape,
                batch_size=global_batch,
                cache=True,
                repeat=True,
                seed=args.seed,
            )

        def row(name, decoder, dataset, **kwargs):
            rows.append(
                run_row(name, decoder, dataset, tokenizer, args, steps, strategy=strategy, **kwargs)
            )

        for decoder in args.decoders:
            row(f"{decoder}, cached input (ours)", decoder, ours())
        if not args.no_xla:
            row("transformer, cached input, XLA", "transformer", ours(), jit_compile=True)
        if not args.no_frozen:
            row(
                "transformer, cached frozen features (decoder only)",
                "transformer",
                lambda model: frozen_features_dataset(
                    frame, tokenizer, model.get_layer("image_encoder"), shape, global_batch
                ),
                frozen_features=True,
            )
        if gpus:
            row("transformer, cached input, mixed_float16", "transformer", ours(),
                precision="mixed_float16")  # fmt: skip
            row("transformer, cached input, mixed_float16 + XLA", "transformer", ours(),
                precision="mixed_float16", jit_compile=True)  # fmt: skip
        if not args.no_baseline:
            row(
                "transformer, naive input (decode per caption, no cache)",
                "transformer",
                naive_dataset(frame, tokenizer, shape, global_batch),
            )

    print()
    naive = next((r for r in rows if r["name"].startswith("transformer, naive")), None)
    print(
        "| decoder / input | params | replicas | batch/replica | pairs/s | ms/step "
        "| input alone (pairs/s) | vs naive |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        speedup = f"{r['pairs_per_s'] / naive['pairs_per_s']:.2f}x" if naive else "-"
        print(
            f"| {r['name']} | {r['params']:,} | {r['replicas']} | {args.batch_size} | "
            f"{r['pairs_per_s']:,.0f} | {r['ms_per_step']:,.0f} | {r['input_per_s']:,.0f} | "
            f"{speedup} |"
        )


if __name__ == "__main__":
    main()
