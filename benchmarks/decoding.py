"""Caption decoding speed: in-graph greedy with KV cache against the loops people write.

Prints captions per second, in the same run, on the same weights and the same images,
for each decoder (Transformer, GRU, LSTM) and batch size:

- ours: `CaptionGenerator(model, tokenizer).generate(images)` -- the image is encoded
  once, then one `tf.while_loop` inside a `tf.function` runs the decoder's `step` for the
  whole batch (Transformer: key/value caches written with core ops; GRU, LSTM: the recurrent
  state); "+ XLA" compiles that loop;
- keras.io loop: the keras.io captioning example's exact inference, eager: the image
  encoded once, then the decoder called eagerly on the padded prefix per token;
- no-cache loop (the baseline the speed-ups divide by): the same loop with the encoder and
  the decoder call each inside a `tf.function`, so eager execution does not slow it: the
  strongest "no KV cache, Python loop" baseline;
- naive full-model loop: the whole captioner (`model.predict_on_batch({"images",
  "token_ids"})`) on the padded prefix per token: image re-encoded every token;
- SavedModel: the export TF Serving loads (`export_captioner_saved_model`), loaded with
  `tf.saved_model.load` and called through its `caption_pixels` signature (uint8 images,
  greedy); "+ XLA" the same exported with `jit_compile=True` (`xmodal export
  --jit-compile`; TF Serving needs `--xla_cpu_compilation_enabled=true` for it);
- LiteRT: the float32 `.tflite` export's in-model `caption` loop on the LiteRT
  interpreter, one image a call (its batch is 1), 2 threads.

Below the table: the SavedModel's time per call against ours (the target is within 10 %)
and, at batch 1, its latency against LiteRT's (the target is within 3x).

Every caption is forced to the full length (`sequence_length` = 20 tokens) in every
method: the models have random weights, and the output bias of `<pad>`, `<start>` and
`<end>` is set to -1e4 (same change for every method, it is part of "the weights"), so
greedy decoding never stops early and never feeds a pad id back. The script checks that
every caption has 20 tokens and that every method returns the same token ids, and exits
with status 1 (after the table) when one does not.

Run:

    .venv/bin/python benchmarks/decoding.py --batch-sizes 1 32 --repeats 5
"""

import argparse
import functools
import os
import pathlib
import statistics
import sys
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from xmodal_keras.data.text_tokenizer import (
    END_ID,
    PAD_ID,
    SPECIAL_TOKENS,
    START_ID,
    CaptionTokenizer,
)
from xmodal_keras.decoding import CaptionGenerator
from xmodal_keras.export.saved_model_export import export_captioner_saved_model
from xmodal_keras.export.tflite_captioner import TFLiteCaptioner
from xmodal_keras.export.tflite_export import export_captioner_tflite
from xmodal_keras.models import (
    build_gru_captioner,
    build_lstm_captioner,
    build_transformer_captioner,
)
from xmodal_keras.models.captioner_parts import CAPTION_DECODER_NAME, IMAGE_ENCODER_NAME

NEVER_CHOSEN = (PAD_ID, START_ID, END_ID)


def build_models(args: argparse.Namespace) -> dict[str, keras.Model]:
    """The captioners, random weights, with pad/start/end made impossible to pick."""
    common = {
        "vocabulary_size": args.vocabulary_size,
        "sequence_length": args.length,
        "image_shape": (args.image_size, args.image_size, 3),
        "encoder": "small_cnn",
        "encoder_kwargs": {"hidden_dim": args.encoder_dim},
    }
    keras.utils.set_random_seed(args.seed)
    models = {
        "transformer": build_transformer_captioner(
            hidden_dim=args.hidden_dim,
            num_layers=args.num_layers,
            num_heads=args.num_heads,
            **common,
        ),
        "gru": build_gru_captioner(
            embedding_dim=args.hidden_dim, hidden_dim=args.hidden_dim, **common
        ),
        "lstm": build_lstm_captioner(
            embedding_dim=args.hidden_dim, hidden_dim=args.hidden_dim, **common
        ),
    }
    for model in models.values():
        bias = model.get_layer(CAPTION_DECODER_NAME).logits_dense.bias
        values = keras.ops.convert_to_numpy(bias).copy()
        values[list(NEVER_CHOSEN)] = -1e4
        bias.assign(values)
    return models


def full_model_loop(model: keras.Model, images: np.ndarray, length: int) -> np.ndarray:
    """Naive greedy: the whole captioner on the padded prefix, once per token."""
    tokens = np.zeros((len(images), length + 1), np.int32)
    tokens[:, 0] = START_ID
    for i in range(length):
        logits = model.predict_on_batch({"images": images, "token_ids": tokens[:, :-1]})
        tokens[:, i + 1] = np.argmax(logits[:, i, :], axis=-1)
    return tokens[:, 1:]


def make_prefix_loop(model: keras.Model, *, compiled: bool):
    """keras.io's loop: encode once, then the decoder on the padded prefix per token;
    eager as in the example, or with each call in a `tf.function` (`compiled`)."""
    encoder = model.get_layer(IMAGE_ENCODER_NAME)
    decoder = model.get_layer(CAPTION_DECODER_NAME)

    def encode(images):
        return encoder(tf.cast(images, tf.float32), training=False)

    # Every decoder takes (token_ids, grid, pooled); the Transformer ignores `pooled`, the
    # LSTM `grid`.
    def decode(token_ids, grid, pooled):
        return decoder(token_ids, grid, pooled, training=False)

    if compiled:
        encode, decode = tf.function(encode), tf.function(decode)

    def loop(images: np.ndarray, length: int) -> np.ndarray:
        features = encode(images)
        tokens = np.zeros((len(images), length + 1), np.int32)
        tokens[:, 0] = START_ID
        for i in range(length):
            logits = decode(tokens[:, :-1], features["grid"], features["pooled"])
            tokens[:, i + 1] = np.argmax(keras.ops.convert_to_numpy(logits)[:, i, :], axis=-1)
        return tokens[:, 1:]

    return loop


def make_saved_model(model, tokenizer, folder, name: str, jit_compile: bool):
    """The SavedModel's `caption_pixels`: uint8 images -> token ids."""
    version = export_captioner_saved_model(
        model, tokenizer, base_dir=folder, name=name, jit_compile=jit_compile
    )
    loaded = tf.saved_model.load(str(version))
    caption_pixels = loaded.signatures["caption_pixels"]

    def saved_model(images: np.ndarray) -> np.ndarray:
        return caption_pixels(images=tf.constant(images))["tokens"].numpy()

    saved_model.loaded = loaded  # the signature needs its object alive
    return saved_model


def make_exported(name: str, model: keras.Model, tokenizer: CaptionTokenizer, folder) -> dict:
    """The SavedModel (plain and XLA) and the LiteRT `caption` loop, as functions of uint8
    images returning token ids."""
    folder = pathlib.Path(folder)
    tflite = export_captioner_tflite(model, folder, name=name, tokenizer=tokenizer)
    litert = TFLiteCaptioner(tflite, num_threads=2)
    return {
        "saved_model": make_saved_model(model, tokenizer, folder, name, jit_compile=False),
        "saved_model_xla": make_saved_model(
            model, tokenizer, folder, f"{name}_xla", jit_compile=True
        ),
        "litert": lambda images: np.stack(litert.caption_images(images)["tokens"]),
    }


METHODS = {
    "ours": "ours",
    "ours_xla": "ours + XLA",
    "eager": "keras.io loop (eager)",
    "prefix": "no-cache loop (tf.function)",
    "full": "naive full-model loop",
    "saved_model": "SavedModel",
    "saved_model_xla": "SavedModel + XLA",
    "litert": "LiteRT",
}


def time_interleaved(functions: dict, repeats: int) -> tuple[dict, dict]:
    """Median seconds per call of each function, and its last result.

    One untimed warm-up call each (tracing excluded), then `repeats` rounds that call every
    function once in turn, so load from other processes hits all methods alike.
    """
    results = {name: function() for name, function in functions.items()}
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            results[name] = function()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}, results


def measure(
    name: str,
    model: keras.Model,
    tokenizer: CaptionTokenizer,
    images: np.ndarray,
    length: int,
    repeats: int,
    exported: dict,
) -> dict:
    """One table row: captions/s of every method and whether its tokens equal ours."""
    generator = CaptionGenerator(model, tokenizer)
    xla_generator = CaptionGenerator(model, tokenizer, jit_compile=True)
    eager = make_prefix_loop(model, compiled=False)
    prefix = make_prefix_loop(model, compiled=True)
    functions = {
        "ours": lambda: generator.generate(images)["tokens"].numpy(),
        "ours_xla": lambda: xla_generator.generate(images)["tokens"].numpy(),
        "eager": lambda: eager(images, length),
        "prefix": lambda: prefix(images, length),
        "full": lambda: full_model_loop(model, images, length),
        **{method: functools.partial(function, images) for method, function in exported.items()},
    }
    seconds, tokens = time_interleaved(functions, repeats)
    ours = tokens["ours"]
    row = {
        "decoder": name,
        "batch": len(images),
        "full_length": ours.shape[1] == length and not np.isin(ours, NEVER_CHOSEN).any(),
        "mismatched": [METHODS[m] for m in METHODS if not np.array_equal(tokens[m], ours)],
    }
    row.update({method: len(images) / seconds[method] for method in METHODS})
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per cell (median)")
    parser.add_argument("--decoders", nargs="+", default=["transformer", "gru", "lstm"])
    parser.add_argument("--length", type=int, default=20, help="tokens generated per caption")
    parser.add_argument("--vocabulary-size", type=int, default=50)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--hidden-dim", type=int, default=256)
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--num-heads", type=int, default=4)
    parser.add_argument("--encoder-dim", type=int, default=64, help="small_cnn hidden_dim")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name in args.decoders:
        if name not in ("transformer", "gru", "lstm"):
            parser.error(f"--decoders: unknown decoder {name!r}")

    vocabulary = list(SPECIAL_TOKENS) + [
        f"w{i}" for i in range(args.vocabulary_size - len(SPECIAL_TOKENS))
    ]
    tokenizer = CaptionTokenizer(vocabulary=vocabulary, sequence_length=args.length)
    models = build_models(args)
    rng = np.random.default_rng(args.seed)
    print(
        f"models: random weights, vocabulary {args.vocabulary_size}, {args.length} tokens per "
        f"caption, {args.image_size}x{args.image_size} images, small_cnn hidden "
        f"{args.encoder_dim}; transformer hidden {args.hidden_dim}, {args.num_layers} layers, "
        f"{args.num_heads} heads; gru, lstm embedding/hidden {args.hidden_dim}; median of "
        f"{args.repeats} interleaved calls; {os.cpu_count()} CPU cores, TF {tf.__version__}, "
        f"Keras {keras.__version__}"
    )

    rows = []
    folder = tempfile.TemporaryDirectory()
    for name in args.decoders:
        model = models[name]
        exported = make_exported(name, model, tokenizer, folder.name)
        for batch_size in args.batch_sizes:
            images = rng.integers(0, 256, (batch_size, args.image_size, args.image_size, 3))
            images = images.astype(np.uint8)
            rows.append(
                measure(name, model, tokenizer, images, args.length, args.repeats, exported)
            )
            row = rows[-1]
            print(
                f"  {name} batch {batch_size}: "
                + ", ".join(f"{METHODS[m]} {row[m]:.1f}" for m in METHODS)
                + " captions/s",
                flush=True,
            )

    print()
    print(
        "| decoder | batch | "
        + " | ".join(f"{label} (captions/s)" for label in METHODS.values())
        + " | ours / no-cache loop | ours + XLA / no-cache loop | tokens |"
    )
    print("| --- | ---: |" + " ---: |" * (len(METHODS) + 2) + " --- |")
    failed = False
    for row in rows:
        problems = [f"differ: {', '.join(row['mismatched'])}"] if row["mismatched"] else []
        if not row["full_length"]:
            problems.append("ended early")
        failed = failed or bool(problems)
        print(
            f"| {row['decoder']} | {row['batch']} | "
            + " | ".join(f"{row[m]:,.1f}" for m in METHODS)
            + f" | {row['ours'] / row['prefix']:.1f}x | {row['ours_xla'] / row['prefix']:.1f}x | "
            + ("; ".join(problems) or f"{args.length}, identical")
            + " |"
        )
    print()
    print("| decoder | batch | SavedModel ms a call | ours ms a call | SavedModel / ours | "
          "SavedModel + XLA / ours + XLA | SavedModel / LiteRT latency (batch 1) | "
          "SavedModel + XLA / LiteRT (batch 1) |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        ms = {m: 1000 * row["batch"] / row[m] for m in METHODS}
        versus_litert = ["", ""]
        if row["batch"] == 1:
            versus_litert = [
                f"{ms[m] / ms['litert']:.1f}x" for m in ("saved_model", "saved_model_xla")
            ]
        plain, xla = ms["saved_model"] / ms["ours"], ms["saved_model_xla"] / ms["ours_xla"]
        print(
            f"| {row['decoder']} | {row['batch']} | {ms['saved_model']:.1f} | {ms['ours']:.1f} | "
            f"{plain:.2f} | {xla:.2f} | {versus_litert[0]} | {versus_litert[1]} |"
        )
    if failed:
        print("FAILED: a method's tokens differ from ours (see the last column)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
