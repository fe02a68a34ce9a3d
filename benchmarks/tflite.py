"""On-device captioning: LiteRT (TFLite) size, latency and parity vs the Keras generator.

For each decoder (GRU, Transformer) of a trained run, exports `model.tflite` as float32
("none"), "float16", "dynamic" (int8 weights), "int8" (full-integer, calibrated on 64
train images) and "int16x8" (int16 activations) and prints, in the same run on the
same CPU and images (the test split; `--split val` for choosing settings):

- file size (MB) and its share of the float32 file exported in the same run, then a
  table of where the bytes go (`tflite_size.size_breakdown`: weights by dtype,
  quantization scales, structure);
- p50 per-caption latency (batch 1, greedy) on the LiteRT interpreter
  (`ai_edge_litert.interpreter.Interpreter`) with 1 and 2 threads: the in-model loop (the
  `caption` signature, in every variant), and, for "none" and "int8", the app-driven loop
  (`encode` + `decode_step` called from Python per token);
- the Keras `CaptionGenerator.generate` on one image (in-graph greedy in a
  `tf.function`, TensorFlow's default threads on the same cores);
- parity: the share of images whose tokens equal the Keras greedy tokens, and BLEU-4
  against the split's references (int8 / int16x8 - float32 printed below the table).

Without `--run` it trains tiny models first (shapes data, 32x32, width 32; ~4 minutes in
all on 2 CPU cores), so the figures show the mechanics, not a good captioner.

Run:

    .venv/bin/python benchmarks/tflite.py                       # trains tiny GRU + Transformer
    .venv/bin/python benchmarks/tflite.py --run runs/demo --images 200
    .venv/bin/python benchmarks/tflite.py --run runs/demo runs/digits --split val --images 100
"""

import argparse
import contextlib
import io
import pathlib
import statistics
import tempfile
import time

import numpy as np

from xmodal_keras.decoding import CaptionGenerator
from xmodal_keras.evaluation import compute_caption_metrics
from xmodal_keras.export.tflite_captioner import TFLiteCaptioner
from xmodal_keras.export.tflite_export import QUANTIZATIONS, load_image_files
from xmodal_keras.export.tflite_size import size_breakdown
from xmodal_keras.tasks.captioning.data import read_caption_data
from xmodal_keras.tasks.captioning.export import export_tflite
from xmodal_keras.tasks.captioning.predict import load_captioner
from xmodal_keras.tasks.captioning.settings import CaptionerTrainConfig
from xmodal_keras.tasks.captioning.train import train_captioner


def train_tiny_runs(args: argparse.Namespace, out: pathlib.Path) -> list[pathlib.Path]:
    runs = []
    for decoder in args.decoders:
        config = CaptionerTrainConfig(
            data="shapes",
            decoder=decoder,
            image_size=args.image_size,
            encoder_hidden_dim=args.hidden_dim,
            embedding_dim=args.hidden_dim,
            hidden_dim=args.hidden_dim,
            num_layers=1,
            num_heads=2,
            dropout=0.0,
            epochs=args.epochs,
            batch_size=64,
            learning_rate=3e-3,
            val_metrics_every=0,
            shapes_num_images=args.train_images,
            shapes_image_size=args.image_size,
        )
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            train_captioner(config, out / decoder, verbose=0)
        print(f"trained tiny {decoder} in {time.perf_counter() - start:.0f} s")
        runs.append(out / decoder)
    return runs


def split_images(run: pathlib.Path, split: str, count: int):
    """(image ids, image paths, references) of the run's first `count` `split` images."""
    _, _, config = load_captioner(run)
    frame = read_caption_data(config.resolved())
    frame = frame[frame["split"] == split]
    if frame.empty:
        raise SystemExit(f"{run}: the run's data has no {split!r} images")
    ids = sorted(frame["image_id"].unique())[:count]
    frame = frame[frame["image_id"].isin(ids)]
    paths = dict(zip(frame["image_id"], frame["image_path"], strict=False))
    references = frame.groupby("image_id")["caption"].apply(list).to_dict()
    return ids, [paths[i] for i in ids], references


def p50_ms(function, images) -> float:
    function(images[0])  # warm-up (first call allocates / traces)
    times = []
    for image in images:
        start = time.perf_counter()
        function(image)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def bleu4(ids, texts, references) -> float:
    candidates = dict(zip(ids, texts, strict=True))
    refs = {i: references[i] for i in ids}
    return compute_caption_metrics(refs, candidates, tokenizer="simple", metrics=("bleu",))[
        "bleu_4"
    ]


def benchmark_run(run: pathlib.Path, args: argparse.Namespace, out: pathlib.Path) -> None:
    model, tokenizer, config = load_captioner(run)
    generator = CaptionGenerator(model, tokenizer)
    ids, paths, references = split_images(run, args.split, args.images)
    images = load_image_files(paths, generator.image_shape)

    keras_out = generator.generate(images)
    keras_tokens = keras_out["tokens"].numpy()
    keras_texts = [t.decode() for t in keras_out["text"].numpy()]
    keras_ms = p50_ms(lambda image: generator.generate(image[None])["tokens"].numpy(), images)
    rows = [
        (
            "keras generator",
            "",
            f"{keras_ms:.2f}",
            "(TF)",
            "100.0%",
            bleu4(ids, keras_texts, references),
        )
    ]
    bleu = {}
    sizes = {}
    # float32 first: every size is also printed as a share of it, from the same run.
    for quantize in sorted(args.quantize, key=lambda q: q != "none"):
        path = export_tflite(run, out / config.decoder, name=quantize, quantize=quantize)
        sizes[quantize] = size_breakdown(path / "model.tflite")
        size = sizes[quantize]["file"] / 1e6
        if "none" in sizes:
            size_text = f"{size:.3f} ({100 * sizes[quantize]['file'] / sizes['none']['file']:.1f}%)"
        else:
            size_text = f"{size:.3f}"
        loops = ["caption", "decode_step loop"] if quantize in ("none", "int8") else ["caption"]
        for loop in loops:
            timings = []
            for threads in (1, 2):
                captioner = TFLiteCaptioner(path, num_threads=threads)
                caption = (
                    captioner.caption_image if loop == "caption" else captioner.caption_with_steps
                )
                timings.append(p50_ms(caption, images))
            tokens = np.stack([caption(image)[0] for image in images])
            texts = [captioner.detokenize(row) for row in tokens]
            agreement = 100 * np.mean(np.all(tokens == keras_tokens, axis=1))
            score = bleu4(ids, texts, references)
            bleu.setdefault(quantize, score)
            rows.append(
                (f"tflite {quantize} ({loop})", size_text, f"{timings[0]:.2f}",
                 f"{timings[1]:.2f}", f"{agreement:.1f}%", score)
            )  # fmt: skip

    height, width = generator.image_shape[:2]
    print(
        f"\n{config.decoder} decoder: {run} - {len(images)} {args.split} images, "
        f"{height}x{width}, max_length {generator.max_length}"
    )
    header = ("variant", "MB (% f32)", "p50 ms 1 thr", "p50 ms 2 thr", "tokens == keras", "BLEU-4")
    print(
        f"{header[0]:<32}{header[1]:>16}{header[2]:>14}{header[3]:>14}{header[4]:>17}{header[5]:>8}"
    )
    for name, size, one, two, agreement, score in rows:
        print(f"{name:<32}{size:>16}{one:>14}{two:>14}{agreement:>17}{score:>8.4f}")
    for variant in ("int8", "int16x8"):
        if variant in bleu and "none" in bleu:
            print(f"BLEU-4 {variant} - float32: {bleu[variant] - bleu['none']:+.4f}")
    print_size_table(sizes)


def print_size_table(sizes: dict[str, dict]) -> None:
    """Where each file's bytes go, in MB, and the file as a share of the float32 file."""
    dtypes = sorted(
        {d for s in sizes.values() for d, n in s["weights_by_dtype"].items() if n >= 1000}
    )
    columns = ["file", *[f"w {d}" for d in dtypes], "scales", "structure", "% of f32"]
    print(f"\n{'size (MB)':<12}" + "".join(f"{c:>16}" for c in columns))
    for quantize, s in sizes.items():
        values = [s["file"], *[s["weights_by_dtype"].get(d, 0) for d in dtypes]]
        values += [s["scales"], s["structure"]]
        cells = [f"{v / 1e6:.3f}" for v in values]
        cells.append(f"{100 * s['file'] / sizes['none']['file']:.1f}%" if "none" in sizes else "")
        print(f"{quantize:<12}" + "".join(f"{c:>16}" for c in cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--run", nargs="*", help="existing run directories (default: train tiny ones)"
    )
    parser.add_argument("--decoders", nargs="+", default=["gru", "transformer"])
    parser.add_argument("--train-images", type=int, default=600, help="shapes images (tiny runs)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs (tiny runs)")
    parser.add_argument("--hidden-dim", type=int, default=32, help="model width (tiny runs)")
    parser.add_argument("--image-size", type=int, default=32, help="image side (tiny runs)")
    parser.add_argument("--images", type=int, default=40, help="images to caption")
    parser.add_argument(
        "--split", default="test", choices=["test", "val"], help="which images (choose on val)"
    )
    parser.add_argument("--quantize", nargs="+", default=list(QUANTIZATIONS), choices=QUANTIZATIONS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp)
        runs = [pathlib.Path(r) for r in args.run] if args.run else train_tiny_runs(args, out)
        for number, run in enumerate(runs):  # runs can share a name and a decoder
            benchmark_run(run, args, out / "exports" / str(number))


if __name__ == "__main__":
    main()
