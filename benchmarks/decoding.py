"""Caption decoding speed: in-graph greedy with KV cache vs a per-token Python loop.

Prints captions per second, in the same run, on the same weights and the same images,
for each decoder (Transformer, GRU, LSTM) and batch size:

- ours: `CaptionGenerator(model, tokenizer).generate(images)` -- the image is encoded
  once, then one `tf.while_loop` inside a `tf.function` runs the decoder's `step` for the
  whole batch (Transformer: key/value caches written with core ops; GRU, LSTM: the recurrent
  state);
- full-model loop (the baseline of issue 3): the keras.io way, a Python loop over
  positions that calls the whole captioner, `model.predict_on_batch({"image",
  "caption_in"})`, on the prefix padded to `sequence_length` and takes the argmax of
  position `i` in numpy -- image re-encoded and the whole prefix re-decoded every token;
- decoder-only loop: keras.io's exact loop (image encoded once, then the decoder layer
  re-run on the padded prefix per token), wrapped in a `tf.function` so it is not slowed
  by eager execution: the strongest "no KV cache, Python loop" baseline.

Every caption is forced to the full length (`sequence_length` = 20 tokens) in all three
methods: the models have random weights, and the output bias of `<pad>`, `<start>` and
`<end>` is set to -1e4 (same change for every method, it is part of "the weights"), so
greedy decoding never stops early and never feeds a pad id back. The script checks that
every caption has 20 tokens and that the three methods return identical token ids.

Run:

    .venv/bin/python benchmarks/decoding.py --batch-sizes 1 32 --repeats 5
"""

import argparse
import os
import statistics
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
    """keras.io-style greedy: the whole captioner on the padded prefix, once per token."""
    tokens = np.zeros((len(images), length + 1), np.int32)
    tokens[:, 0] = START_ID
    for i in range(length):
        logits = model.predict_on_batch({"image": images, "caption_in": tokens[:, :-1]})
        tokens[:, i + 1] = np.argmax(logits[:, i, :], axis=-1)
    return tokens[:, 1:]


def make_decoder_only_loop(model: keras.Model):
    """keras.io's exact loop: encode once, then the decoder on the padded prefix per token."""
    encoder = model.get_layer(IMAGE_ENCODER_NAME)
    decoder = model.get_layer(CAPTION_DECODER_NAME)
    encode = tf.function(lambda images: encoder(tf.cast(images, tf.float32), training=False))
    # Every decoder takes (token_ids, grid, pooled); the Transformer ignores `pooled`, the
    # LSTM `grid`.
    decode = tf.function(
        lambda token_ids, grid, pooled: decoder(token_ids, grid, pooled, training=False)
    )

    def loop(images: np.ndarray, length: int) -> np.ndarray:
        features = encode(images)
        tokens = np.zeros((len(images), length + 1), np.int32)
        tokens[:, 0] = START_ID
        for i in range(length):
            logits = decode(tokens[:, :-1], features["grid"], features["pooled"]).numpy()
            tokens[:, i + 1] = np.argmax(logits[:, i, :], axis=-1)
        return tokens[:, 1:]

    return loop


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
) -> dict:
    """One table row: captions/s of the three methods and whether their tokens agree."""
    generator = CaptionGenerator(model, tokenizer)
    xla_generator = CaptionGenerator(model, tokenizer, jit_compile=True)
    decoder_only = make_decoder_only_loop(model)

    def ours():
        result = generator.generate(images)
        return result["tokens"].numpy(), result["text"].numpy()

    def ours_xla():
        result = xla_generator.generate(images)
        return result["tokens"].numpy(), result["text"].numpy()

    def full():
        tokens = full_model_loop(model, images, length)
        return tokens, tokenizer.detokenize(tokens).numpy()

    def prefix():
        tokens = decoder_only(images, length)
        return tokens, tokenizer.detokenize(tokens).numpy()

    seconds, results = time_interleaved(
        {"ours": ours, "ours_xla": ours_xla, "full": full, "prefix": prefix}, repeats
    )
    tokens = results["ours"][0]
    full_length = tokens.shape[1] == length and not np.isin(tokens, NEVER_CHOSEN).any()
    batch_size = len(images)
    return {
        "decoder": name,
        "batch": batch_size,
        "ours": batch_size / seconds["ours"],
        "ours_xla": batch_size / seconds["ours_xla"],
        "full": batch_size / seconds["full"],
        "prefix": batch_size / seconds["prefix"],
        "length": f"{tokens.shape[1]}" + ("" if full_length else " (ended early!)"),
        "same_full": np.array_equal(tokens, results["full"][0]),
        "same_xla": np.array_equal(tokens, results["ours_xla"][0]),
        "same_prefix": np.array_equal(tokens, results["prefix"][0]),
    }


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
    for name in args.decoders:
        model = models[name]
        for batch_size in args.batch_sizes:
            images = rng.integers(0, 256, (batch_size, args.image_size, args.image_size, 3))
            images = images.astype(np.uint8)

            rows.append(measure(name, model, tokenizer, images, args.length, args.repeats))
            row = rows[-1]
            print(
                f"  {name} batch {batch_size}: ours {row['ours']:.1f}, full-model loop "
                f"{row['full']:.1f}, decoder-only loop {row['prefix']:.1f} captions/s",
                flush=True,
            )

    def yes_no(value: bool) -> str:
        return "yes" if value else "NO"

    print()
    print(
        "| decoder | batch | tokens | ours: in-graph greedy (captions/s) | full-model loop "
        "(captions/s) | speed-up | decoder-only loop (captions/s) | speed-up | "
        "ours + XLA (captions/s) | XLA speed-up vs full-model | tokens identical |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for row in rows:
        print(
            f"| {row['decoder']} | {row['batch']} | {row['length']} | {row['ours']:,.1f} | "
            f"{row['full']:,.1f} | {row['ours'] / row['full']:.1f}x | {row['prefix']:,.1f} | "
            f"{row['ours'] / row['prefix']:.1f}x | {row['ours_xla']:,.1f} | "
            f"{row['ours_xla'] / row['full']:.1f}x | full-model: {yes_no(row['same_full'])}, "
            f"decoder-only: {yes_no(row['same_prefix'])}, XLA: {yes_no(row['same_xla'])} |"
        )


if __name__ == "__main__":
    main()
