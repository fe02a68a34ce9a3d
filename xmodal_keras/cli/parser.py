"""The `xmodal` argument parser: one subcommand per verb; `xmodal train` flags are generated
from the tasks' settings dataclasses (`add_settings_flags`)."""

import argparse
import os

from xmodal_keras.cli import commands
from xmodal_keras.export.tflite_export import QUANTIZATIONS
from xmodal_keras.runs.settings_flags import add_settings_flags
from xmodal_keras.tasks.captioning.settings import CaptionerTrainConfig
from xmodal_keras.tasks.fusion.settings import FusionTrainConfig
from xmodal_keras.tasks.retrieval.settings import RetrievalTrainConfig


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `xmodal` command."""
    parser = argparse.ArgumentParser(
        prog="xmodal", description="Cross-modal learning with Keras 3 on TensorFlow."
    )
    subcommands = parser.add_subparsers(dest="command", required=True)

    demo = subcommands.add_parser(
        "demo",
        help="the main job on built-in data: generate shapes, train a Transformer captioner, "
        "evaluate, caption with attention maps",
    )
    demo.add_argument("--out", default=os.path.join("runs", "demo"), help="run directory")
    demo.add_argument(
        "--quick", action="store_true", help="a tiny version (seconds of training; for tests)"
    )
    demo.add_argument(
        "--num-captions",
        type=commands.positive_int,
        default=4,
        help="test images to caption at the end",
    )
    demo.set_defaults(run=commands.cmd_demo)

    train = subcommands.add_parser("train", help="train a model into a run directory")
    train_commands = train.add_subparsers(dest="train_command", required=True)
    captioner = train_commands.add_parser(
        "captioner",
        help="image captioner (model.fit with a progress bar; a killed run resumes when rerun)",
    )
    add_settings_flags(captioner, CaptionerTrainConfig, required=("data",))
    captioner.add_argument("--out", required=True, help="run directory to write (or resume)")
    captioner.set_defaults(run=commands.cmd_train_captioner)

    retrieval_parser = train_commands.add_parser(
        "retrieval", help="CLIP-style dual encoder (symmetric InfoNCE, learned temperature)"
    )
    add_settings_flags(retrieval_parser, RetrievalTrainConfig)
    retrieval_parser.add_argument("--out", required=True, help="run directory to write (or resume)")
    retrieval_parser.set_defaults(run=commands.cmd_train_retrieval)

    fusion_parser = train_commands.add_parser(
        "fusion",
        help="image+text (+tabular, audio) classifier with a fusion strategy (and unimodal "
        "baselines)",
    )
    add_settings_flags(fusion_parser, FusionTrainConfig)
    fusion_parser.add_argument("--out", required=True, help="run directory to write (or resume)")
    fusion_parser.set_defaults(run=commands.cmd_train_fusion)

    retrieve = subcommands.add_parser(
        "retrieve",
        help="top matches of a text or image query in a retrieval run's test index",
    )
    retrieve.add_argument("run_dir", metavar="RUN", help="run from `xmodal train retrieval`")
    query = retrieve.add_mutually_exclusive_group(required=True)
    query.add_argument("--query", metavar="TEXT", help="find images for this text")
    query.add_argument("--image", metavar="PATH", help="find captions for this image")
    retrieve.add_argument("-k", type=commands.positive_int, default=5, help="matches (default: 5)")
    retrieve.set_defaults(run=commands.cmd_retrieve)

    evaluate = subcommands.add_parser(
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
        "--beam", type=commands.positive_int, help="captioner: beam width (default: greedy)"
    )
    evaluate.add_argument(
        "--max-images", type=commands.positive_int, help="captioner: score only N images"
    )
    evaluate.set_defaults(run=commands.cmd_evaluate)

    caption = subcommands.add_parser("caption", help="caption image files with a trained run")
    caption.add_argument(
        "run_dir",
        metavar="RUN",
        help="run directory from `xmodal train captioner`, or a saved_models/NAME_tflite export",
    )
    caption.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    caption.add_argument("--beam", type=commands.positive_int, help="beam width (default: greedy)")
    caption.add_argument(
        "--attention-map",
        metavar="OUT.png",
        help="write the attention heat-map (greedy only); with several images one file each: "
        "OUT_<image name>.png",
    )
    caption.set_defaults(run=commands.cmd_caption)

    export = subcommands.add_parser(
        "export", help="export a trained run for TF Serving (saved_model) or phones (tflite)"
    )
    export.add_argument("run_dir", metavar="RUN", help="run directory from `xmodal train`")
    export.add_argument("--format", default="saved_model", choices=("saved_model", "tflite"))
    export.add_argument("--out", default="saved_models", help="base folder (default: saved_models)")
    export.add_argument("--name", help="model name (default: the run folder's name)")
    export.add_argument(
        "--version",
        type=commands.positive_int,
        help="saved_model version (default: next free number)",
    )
    export.add_argument(
        "--quantize",
        default="none",
        choices=QUANTIZATIONS,
        help="tflite weights/activations (default: none = float32)",
    )
    export.add_argument(
        "--beam-width",
        type=commands.positive_int,
        default=3,
        help="caption_beam width (default: 3)",
    )
    export.add_argument(
        "--max-pixels",
        type=commands.positive_int,
        default=40_000_000,
        help="largest image (width x height, read from its header) a request may send",
    )
    export.add_argument(
        "--jit-compile",
        action="store_true",
        help="captioner saved_model: compile the decoding loops with XLA (about 2x faster "
        "on CPU; TF Serving needs --xla_cpu_compilation_enabled=true)",
    )
    export.set_defaults(run=commands.cmd_export)

    serve_config = subcommands.add_parser(
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
        type=commands.positive_int,
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
    serve_config.set_defaults(run=commands.cmd_serve_config)

    predict = subcommands.add_parser(
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
    predict.add_argument(
        "--version", type=commands.positive_int, help="model version (default: latest)"
    )
    predict.set_defaults(run=commands.cmd_predict)

    tune = subcommands.add_parser("tune", help="learning-rate range test for a task's settings")
    tune_commands = tune.add_subparsers(dest="tune_command", required=True)
    tune_captioner = tune_commands.add_parser(
        "captioner",
        help="exponential learning-rate ramp on the train split; prints a suggested rate",
    )
    add_settings_flags(tune_captioner, CaptionerTrainConfig, required=("data",))
    tune_captioner.add_argument(
        "--steps", type=commands.positive_int, default=200, help="ramp steps"
    )
    tune_captioner.add_argument("--min-learning-rate", type=float, default=1e-5)
    tune_captioner.add_argument("--max-learning-rate", type=float, default=1e-1)
    tune_captioner.set_defaults(run=commands.cmd_tune_captioner)

    data = subcommands.add_parser("data", help="datasets: generate, inspect")
    data_commands = data.add_subparsers(dest="data_command", required=True)

    for name, num_images, what in (
        ("shapes", 5000, "the built-in shapes dataset"),
        ("digits", 4000, "the built-in digits dataset (real scanned digits on photos)"),
    ):
        generator = data_commands.add_parser(
            name, help=f"generate {what} (Flickr8k + Hateful-Memes layout)"
        )
        generator.add_argument("--out", required=True, help="folder to write the dataset into")
        generator.add_argument("--num-images", type=commands.positive_int, default=num_images)
        generator.add_argument(
            "--size", type=commands.positive_int, default=64, help="image side (px)"
        )
        generator.add_argument("--seed", type=int, default=0)
        generator.set_defaults(run=commands.cmd_data_generate)

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
    commands.add_allow_outside_root(inspect)
    inspect.set_defaults(run=commands.cmd_data_inspect)

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
        "--shards", type=commands.positive_int, default=8, help="shards per split (default: 8)"
    )
    to_tfrecord.add_argument("--format", default="auto", help="reader to use (default: detect)")
    commands.add_allow_outside_root(to_tfrecord)
    to_tfrecord.set_defaults(run=commands.cmd_data_to_tfrecord)
    return parser
