"""The `xmodal` command. Thin: it parses arguments and calls the library.

Example:

    xmodal data shapes --out /tmp/shapes --num-images 200 --size 64
    xmodal data digits --out /tmp/digits --num-images 200 --size 64
    xmodal tune captioner --data /tmp/digits --steps 200
    xmodal data inspect /tmp/shapes
    xmodal train captioner --data shapes --decoder transformer --epochs 6 --out runs/t
    xmodal evaluate runs/t --split test --beam 3
    xmodal caption runs/t photo.jpg --attention-map photo_attention.png
    xmodal export runs/t --format saved_model --name captioner
    xmodal train retrieval --data shapes --epochs 8 --out runs/clip
    xmodal retrieve runs/clip --query "a small red circle"
    xmodal train fusion --data pairs.csv --numeric-columns age,income --out runs/fusion
    xmodal serve-config saved_models
    xmodal predict --server localhost:8501 --model captioner photo.jpg
    xmodal demo
"""

import argparse
import os
import sys
import time
from collections.abc import Sequence

from xmodal_keras.data.digits import generate_digits_scenes
from xmodal_keras.data.inspection import format_report, inspect_dataset
from xmodal_keras.data.readers import read_captions
from xmodal_keras.data.readers.common import ALLOW_OUTSIDE_ROOT_HELP
from xmodal_keras.data.shapes import generate_shapes
from xmodal_keras.data.tfrecords import write_caption_tfrecords
from xmodal_keras.export.client import run_predict
from xmodal_keras.export.serving_config import model_folders, server_flags, write_serving_config
from xmodal_keras.export.tflite_captioner import caption_tflite_files, is_tflite_export
from xmodal_keras.runs.run_directory import RunDirectory, run_kind
from xmodal_keras.runs.settings_flags import add_settings_flags, settings_from_flags
from xmodal_keras.tasks import captioning, fusion, retrieval
from xmodal_keras.tasks.captioning.demo import run_demo
from xmodal_keras.tasks.captioning.settings import CaptionerTrainConfig
from xmodal_keras.tasks.fusion.settings import FusionTrainConfig
from xmodal_keras.tasks.retrieval.retrieve import format_matches
from xmodal_keras.tasks.retrieval.settings import RetrievalTrainConfig

# Quiet TensorFlow's C++ start-up chatter for command-line use; library users keep control.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _add_allow_outside_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allow-outside-root", action="store_true", help=ALLOW_OUTSIDE_ROOT_HELP)


def _cmd_data_generate(args: argparse.Namespace) -> int:
    generate = {"shapes": generate_shapes, "digits": generate_digits_scenes}[args.data_command]
    start = time.perf_counter()
    root = generate(args.out, num_images=args.num_images, image_size=args.size, seed=args.seed)
    seconds = time.perf_counter() - start
    print(
        f"wrote {args.num_images} {args.data_command} images ({args.size}x{args.size}) to "
        f"{root} in {seconds:.1f} s"
    )
    return 0


def _cmd_data_to_tfrecord(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    frame = read_captions(args.path, args.format, allow_outside_root=args.allow_outside_root)
    manifest = write_caption_tfrecords(frame, args.out, num_shards=args.shards)
    for split, info in manifest["splits"].items():
        print(
            f"{split}: {info['num_images']} images, {info['num_captions']} captions in "
            f"{len(info['files'])} shard(s)"
        )
    print(f"wrote {args.out} in {time.perf_counter() - start:.1f} s")
    return 0


def _cmd_data_inspect(args: argparse.Namespace) -> int:
    report = inspect_dataset(
        args.path,
        format=args.format,
        decode_images=args.decode,
        allow_outside_root=args.allow_outside_root,
    )
    print(format_report(report))
    return 1 if args.strict and report.problem_count else 0


def _add_captioner_settings(parser: argparse.ArgumentParser) -> None:
    """A flag per `CaptionerTrainConfig` setting (train and tune captioner)."""
    add_settings_flags(parser, CaptionerTrainConfig, required=("data",))


def _captioner_config(args: argparse.Namespace):
    return settings_from_flags(args, CaptionerTrainConfig)


def _cmd_train_captioner(args: argparse.Namespace) -> int:
    captioning.train_captioner(_captioner_config(args), args.out)
    return 0


def _cmd_tune_captioner(args: argparse.Namespace) -> int:
    result = captioning.tune_captioner(
        _captioner_config(args),
        min_learning_rate=args.min_learning_rate,
        max_learning_rate=args.max_learning_rate,
        num_steps=args.steps,
    )
    print(result.table())
    stopped = " (stopped: the loss diverged)" if result.stopped_early else ""
    lowest = result.learning_rates[int(result.smoothed_losses.argmin())]
    print(
        f"learning-rate range test: {len(result.losses)} steps{stopped}; lowest smoothed loss "
        f"at {lowest:.2g}; suggested --learning-rate {result.suggested_learning_rate:.2g} "
        "(a tenth of it; for runs of a few epochs up to about two thirds of it can do better)"
    )
    return 0


def _retrieval_config(args: argparse.Namespace) -> "RetrievalTrainConfig":
    """The `RetrievalTrainConfig` of parsed `xmodal train retrieval` arguments."""
    return settings_from_flags(args, RetrievalTrainConfig)


def _cmd_train_retrieval(args: argparse.Namespace) -> int:
    retrieval.train_retrieval(_retrieval_config(args), args.out)
    return 0


def _fusion_modalities(args: argparse.Namespace) -> tuple[str, ...]:
    """`--modalities`, or image and text plus the side inputs that columns were given for."""
    if args.modalities is not None:
        return args.modalities
    modalities = ("image", "text")
    if args.numeric_columns or args.categorical_columns:
        modalities += ("tabular",)
    if args.audio_column is not None:
        modalities += ("audio",)
    return modalities


def _fusion_config(args: argparse.Namespace) -> "FusionTrainConfig":
    """The `FusionTrainConfig` of parsed `xmodal train fusion` arguments."""
    return settings_from_flags(args, FusionTrainConfig, modalities=_fusion_modalities(args))


def _cmd_train_fusion(args: argparse.Namespace) -> int:
    fusion.train_fusion(_fusion_config(args), args.out)
    return 0


def _cmd_retrieve(args: argparse.Namespace) -> int:
    matches = retrieval.retrieve(
        args.run_dir, query_text=args.query, image_path=args.image, k=args.k
    )
    print(format_matches(matches))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    kind = run_kind(args.run_dir)
    data = None if args.data is None else args.data[0] if len(args.data) == 1 else args.data
    if kind != "captioner" and (args.beam or args.max_images):
        raise ValueError(
            f"--beam and --max-images are for captioner runs; {args.run_dir} is a {kind} run."
        )
    if kind == "fusion":
        return _evaluate_fusion(args, data)
    if kind == "retrieval":
        return _evaluate_retrieval(args, data)
    metrics = captioning.evaluate_captioner(
        args.run_dir,
        split=args.split,
        beam_width=args.beam,
        max_images=args.max_images,
        data=data,
        data_format=args.format,
    )
    decoding = "greedy" if args.beam is None else f"beam {args.beam}"
    print(f"{args.split} split, {decoding} decoding")
    print(captioning.format_metrics_table(metrics))
    run = RunDirectory(args.run_dir)
    print(f"written to {run.metrics_dir_for(args.split, args.beam, data=data)}")
    return 0


def _evaluate_fusion(args: argparse.Namespace, data) -> int:
    if isinstance(data, list):
        raise ValueError(f"A fusion run reads one pair file or folder. Received: --data {data}")
    results = fusion.evaluate_fusion(
        args.run_dir, splits=(args.split,), data=data, data_format=args.format
    )
    if not results:
        raise ValueError(f"The data has no labelled {args.split!r} pairs; pick another --split.")
    for split, metrics in results.items():
        print(
            f"{split}: accuracy {metrics['accuracy']:.3f}, macro F1 {metrics['macro_f1']:.3f}, "
            f"AUROC {metrics['auroc']:.3f} ({metrics['num_examples']} pairs)"
        )
    return 0


def _evaluate_retrieval(args: argparse.Namespace, data) -> int:
    results = retrieval.evaluate_retrieval(
        args.run_dir, splits=(args.split,), data=data, data_format=args.format
    )
    if not results:
        raise ValueError(f"The data has no {args.split!r} captions; pick another --split.")
    for split, metrics in results.items():
        recalls = ", ".join(
            f"R@{k} i->t {metrics[f'image_to_text_recall@{k}']:.3f} "
            f"t->i {metrics[f'text_to_image_recall@{k}']:.3f}"
            for k in (1, 5, 10)
        )
        print(f"{split}: {recalls} ({metrics['num_images']} images)")
    return 0


def _cmd_caption(args: argparse.Namespace) -> int:
    if is_tflite_export(args.run_dir):
        if args.beam or args.attention_map:
            raise ValueError(
                "A TFLite export decodes greedily and has no attention maps: drop --beam and "
                f"--attention-map. Received: {args.run_dir}"
            )
        results = caption_tflite_files(args.run_dir, args.images)
    else:
        results = captioning.caption_image_files(
            args.run_dir, args.images, beam_width=args.beam, attention_map=args.attention_map
        )
    failed = 0
    for result in results:
        if result["error"] is not None:
            failed += 1
            print(f"{result['path']}: cannot caption: {result['error']}", file=sys.stderr)
            continue
        line = f"{result['path']}: {result['caption']}"
        if result["attention_map"]:
            line += f"  [attention map: {result['attention_map']}]"
        print(line)
    if failed:
        print(f"{failed} of {len(results)} image(s) could not be captioned", file=sys.stderr)
    return 1 if failed else 0


def _cmd_export(args: argparse.Namespace) -> int:
    kind = run_kind(args.run_dir)
    if kind == "retrieval":
        signatures = _export_retrieval(args)
    elif kind == "fusion":
        signatures = _export_fusion(args)
    else:
        signatures = _export_captioner(args)
    print(f"exported {signatures}")
    if args.format == "saved_model":
        print(f"next: xmodal serve-config {args.out}")
    return 0


def _export_captioner(args: argparse.Namespace) -> str:
    if args.format == "tflite":
        path = captioning.export_tflite(
            args.run_dir, args.out, name=args.name, quantize=args.quantize
        )
        return f"{path} (model.tflite, vocab.txt, metadata.json; xmodal caption {path} IMAGE)"
    path = captioning.export_saved_model(
        args.run_dir,
        base_dir=args.out,
        name=args.name,
        version=args.version,
        beam_width=args.beam_width,
        max_pixels=args.max_pixels,
    )
    return f"{path} (signatures: serving_default, caption_beam, caption_pixels, embed_image)"


def _export_retrieval(args: argparse.Namespace) -> str:
    if args.format == "tflite":
        raise ValueError(
            f"Retrieval runs export as SavedModels only. Received: --format tflite, {args.run_dir}"
        )
    path = retrieval.export_saved_model(
        args.run_dir,
        base_dir=args.out,
        name=args.name,
        version=args.version,
        max_pixels=args.max_pixels,
    )
    return f"{path} (signatures: embed_image, embed_text)"


def _export_fusion(args: argparse.Namespace) -> str:
    if args.format == "tflite":
        path = fusion.export_tflite(args.run_dir, args.out, name=args.name, quantize=args.quantize)
        return f"{path} (model.tflite, vocab.txt, metadata.json; signature classify)"
    path = fusion.export_saved_model(
        args.run_dir,
        base_dir=args.out,
        name=args.name,
        version=args.version,
        max_pixels=args.max_pixels,
    )
    return f"{path} (signatures: classify, serving_default)"


def _per_model_options(values: list[str], flag: str) -> dict:
    """`--version-policy [MODEL=]POLICY` / `--label [MODEL:]LABEL=VERSION` values as
    write_serving_config's {model: value} ("" = every model)."""
    options: dict = {}
    for value in values:
        if flag == "--label":
            target, _, version = value.rpartition("=")
            model, _, label = target.rpartition(":")
            if not label or not version.isdigit():
                raise ValueError(f"{flag} is [MODEL:]LABEL=VERSION. Received: {flag} {value}")
            options.setdefault(model, {})[label] = int(version)
        else:
            model, _, policy = value.rpartition("=")
            options[model] = policy
    return options


def _cmd_serve_config(args: argparse.Namespace) -> int:
    names = [folder.name for folder in model_folders(args.base_dir)]
    policies = _per_model_options(args.version_policy, "--version-policy")
    labels = _per_model_options(args.label, "--label")
    written = write_serving_config(
        args.base_dir,
        version_policy={name: policies.get(name, policies.get("", "latest")) for name in names},
        version_labels={name: {**labels.get("", {}), **labels.get(name, {})} for name in names},
        batching=args.batching,
        monitoring=args.monitoring,
        max_batch_size=args.max_batch_size,
        base_path_prefix=args.base_path_prefix,
    )
    for path in written:
        print(f"wrote {path}")
    flags = " ".join(server_flags(written, args.base_path_prefix))
    print(f"serve: tensorflow_model_server --port=8500 --rest_api_port=8501 {flags}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    return run_predict(
        args.server,
        args.model,
        args.images,
        grpc=args.grpc,
        signature=args.signature,
        timeout=args.timeout,
        version=args.version,
    )


def _cmd_demo(args: argparse.Namespace) -> int:
    run_demo(args.out, quick=args.quick, num_captions=args.num_captions)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `xmodal` command."""
    parser = argparse.ArgumentParser(
        prog="xmodal", description="Cross-modal learning with Keras 3 on TensorFlow."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser(
        "demo",
        help="the main job on built-in data: generate shapes, train a Transformer captioner, "
        "evaluate, caption with attention maps",
    )
    demo.add_argument("--out", default=os.path.join("runs", "demo"), help="run directory")
    demo.add_argument(
        "--quick", action="store_true", help="a tiny version (seconds of training; for tests)"
    )
    demo.add_argument(
        "--num-captions", type=_positive_int, default=4, help="test images to caption at the end"
    )
    demo.set_defaults(run=_cmd_demo)

    train = commands.add_parser("train", help="train a model into a run directory")
    train_commands = train.add_subparsers(dest="train_command", required=True)
    captioner = train_commands.add_parser(
        "captioner",
        help="image captioner (model.fit with a progress bar; a killed run resumes when rerun)",
    )
    _add_captioner_settings(captioner)
    captioner.add_argument("--out", required=True, help="run directory to write (or resume)")
    captioner.set_defaults(run=_cmd_train_captioner)

    retrieval_parser = train_commands.add_parser(
        "retrieval", help="CLIP-style dual encoder (symmetric InfoNCE, learned temperature)"
    )
    add_settings_flags(retrieval_parser, RetrievalTrainConfig)
    retrieval_parser.add_argument("--out", required=True, help="run directory to write (or resume)")
    retrieval_parser.set_defaults(run=_cmd_train_retrieval)

    fusion_parser = train_commands.add_parser(
        "fusion",
        help="image+text (+tabular, audio) classifier with a fusion strategy (and unimodal "
        "baselines)",
    )
    add_settings_flags(fusion_parser, FusionTrainConfig)
    fusion_parser.add_argument("--out", required=True, help="run directory to write (or resume)")
    fusion_parser.set_defaults(run=_cmd_train_fusion)

    retrieve = commands.add_parser(
        "retrieve",
        help="top matches of a text or image query in a retrieval run's test index",
    )
    retrieve.add_argument("run_dir", metavar="RUN", help="run from `xmodal train retrieval`")
    query = retrieve.add_mutually_exclusive_group(required=True)
    query.add_argument("--query", metavar="TEXT", help="find images for this text")
    query.add_argument("--image", metavar="PATH", help="find captions for this image")
    retrieve.add_argument("-k", type=_positive_int, default=5, help="matches (default: 5)")
    retrieve.set_defaults(run=_cmd_retrieve)

    evaluate = commands.add_parser(
        "evaluate",
        help="score a trained run on a split: captions (BLEU/METEOR/ROUGE/CIDEr), retrieval "
        "(recall@K) or fusion (accuracy/F1/AUROC)",
    )
    evaluate.add_argument(
        "run_dir",
        metavar="RUN",
        help="run directory from `xmodal train captioner|retrieval|fusion`",
    )
    evaluate.add_argument("--split", default="test", choices=("train", "val", "test"))
    evaluate.add_argument(
        "--data",
        nargs="+",
        metavar="PATH",
        help="score this data (as --data of training; pair data for fusion) instead of the "
        "run's own; results go to RUN/metrics/data_<name>/",
    )
    evaluate.add_argument(
        "--format", default="auto", help="reader for --data (default: detect from the path)"
    )
    evaluate.add_argument(
        "--beam", type=_positive_int, help="captioner: beam width (default: greedy)"
    )
    evaluate.add_argument("--max-images", type=_positive_int, help="captioner: score only N images")
    evaluate.set_defaults(run=_cmd_evaluate)

    caption = commands.add_parser("caption", help="caption image files with a trained run")
    caption.add_argument(
        "run_dir",
        metavar="RUN",
        help="run directory from `xmodal train captioner`, or a saved_models/NAME_tflite export",
    )
    caption.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    caption.add_argument("--beam", type=_positive_int, help="beam width (default: greedy)")
    caption.add_argument(
        "--attention-map",
        metavar="OUT.png",
        help="write the attention heat-map (greedy only); with several images one file each: "
        "OUT_<image name>.png",
    )
    caption.set_defaults(run=_cmd_caption)

    export = commands.add_parser(
        "export", help="export a trained run for TF Serving (saved_model) or phones (tflite)"
    )
    export.add_argument("run_dir", metavar="RUN", help="run directory from `xmodal train`")
    export.add_argument("--format", default="saved_model", choices=("saved_model", "tflite"))
    export.add_argument("--out", default="saved_models", help="base folder (default: saved_models)")
    export.add_argument("--name", help="model name (default: the run folder's name)")
    export.add_argument(
        "--version", type=_positive_int, help="saved_model version (default: next free number)"
    )
    export.add_argument(
        "--quantize",
        default="none",
        choices=("none", "float16", "dynamic", "int8"),
        help="tflite weights/activations (default: none = float32)",
    )
    export.add_argument(
        "--beam-width", type=_positive_int, default=3, help="caption_beam width (default: 3)"
    )
    export.add_argument(
        "--max-pixels",
        type=_positive_int,
        default=40_000_000,
        help="largest image (width x height, read from its header) a request may send",
    )
    export.set_defaults(run=_cmd_export)

    serve_config = commands.add_parser(
        "serve-config", help="write models.config for tensorflow_model_server over a folder"
    )
    serve_config.add_argument("base_dir", metavar="DIR", help="folder of NAME/VERSION exports")
    serve_config.add_argument(
        "--version-policy",
        action="append",
        default=[],
        metavar="[MODEL=]POLICY",
        help="versions to serve: latest (default), latest:N, all or specific:V1,V2; "
        "for one model with MODEL=, repeatable",
    )
    serve_config.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="[MODEL:]LABEL=VERSION",
        help="a version label, e.g. stable=1 canary=2 (repeatable)",
    )
    serve_config.add_argument(
        "--batching", action="store_true", help="also write batching_parameters.txt"
    )
    serve_config.add_argument(
        "--max-batch-size",
        type=_positive_int,
        default=32,
        help="batching: the most rows a batch (and a request) may have (default: 32)",
    )
    serve_config.add_argument(
        "--monitoring",
        action="store_true",
        help="also write monitoring.config (Prometheus metrics on the REST port)",
    )
    serve_config.add_argument(
        "--base-path-prefix",
        metavar="PREFIX",
        help="the folder as the server sees it, e.g. /models inside docker",
    )
    serve_config.set_defaults(run=_cmd_serve_config)

    predict = commands.add_parser(
        "predict", help="caption image files with a model served by TF Serving"
    )
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="image files (sent as-is)")
    predict.add_argument(
        "--server",
        required=True,
        metavar="HOST:PORT",
        help="TF Serving's REST port (8501), or its gRPC port (8500) with --grpc",
    )
    predict.add_argument("--model", required=True, help="model name in models.config")
    predict.add_argument("--grpc", action="store_true", help="use gRPC instead of REST")
    predict.add_argument(
        "--signature", default="serving_default", choices=("serving_default", "caption_beam")
    )
    predict.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    predict.add_argument("--version", type=_positive_int, help="model version (default: latest)")
    predict.set_defaults(run=_cmd_predict)

    tune = commands.add_parser("tune", help="learning-rate range test for a task's settings")
    tune_commands = tune.add_subparsers(dest="tune_command", required=True)
    tune_captioner = tune_commands.add_parser(
        "captioner",
        help="exponential learning-rate ramp on the train split; prints a suggested rate",
    )
    _add_captioner_settings(tune_captioner)
    tune_captioner.add_argument("--steps", type=_positive_int, default=200, help="ramp steps")
    tune_captioner.add_argument("--min-learning-rate", type=float, default=1e-5)
    tune_captioner.add_argument("--max-learning-rate", type=float, default=1e-1)
    tune_captioner.set_defaults(run=_cmd_tune_captioner)

    data = commands.add_parser("data", help="datasets: generate, inspect")
    data_commands = data.add_subparsers(dest="data_command", required=True)

    for name, num_images, what in (
        ("shapes", 5000, "the built-in shapes dataset"),
        ("digits", 4000, "the built-in digits dataset (real scanned digits on photos)"),
    ):
        generator = data_commands.add_parser(
            name, help=f"generate {what} (Flickr8k + Hateful-Memes layout)"
        )
        generator.add_argument("--out", required=True, help="folder to write the dataset into")
        generator.add_argument("--num-images", type=_positive_int, default=num_images)
        generator.add_argument("--size", type=_positive_int, default=64, help="image side (px)")
        generator.add_argument("--seed", type=int, default=0)
        generator.set_defaults(run=_cmd_data_generate)

    inspect = data_commands.add_parser(
        "inspect", help="counts, vocabulary, lengths, label balance and problems of a dataset"
    )
    inspect.add_argument(
        "path", help="Flickr8k folder, Karpathy/COCO JSON, CSV, JSONL or Hateful-Memes folder"
    )
    inspect.add_argument("--format", default="auto", help="reader to use (default: detect)")
    inspect.add_argument(
        "--strict", action="store_true", help="exit with status 1 when problems are found"
    )
    inspect.add_argument(
        "--decode",
        action="store_true",
        help="decode every image in full, as training does (finds truncated or corrupt files)",
    )
    _add_allow_outside_root(inspect)
    inspect.set_defaults(run=_cmd_data_inspect)

    to_tfrecord = data_commands.add_parser(
        "to-tfrecord",
        help="caption dataset -> sharded TFRecords of (encoded image, captions) that "
        "`xmodal train captioner --data DIR` reads",
    )
    to_tfrecord.add_argument(
        "path", help="Flickr8k folder, Karpathy/COCO JSON or CSV (any caption dataset)"
    )
    to_tfrecord.add_argument("--out", required=True, help="folder to write the shards into")
    to_tfrecord.add_argument(
        "--shards", type=_positive_int, default=8, help="shards per split (default: 8)"
    )
    to_tfrecord.add_argument("--format", default="auto", help="reader to use (default: detect)")
    _add_allow_outside_root(to_tfrecord)
    to_tfrecord.set_defaults(run=_cmd_data_to_tfrecord)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `xmodal` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, OSError) as error:  # bad input or a file system refusal: one line
        print(f"xmodal: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
