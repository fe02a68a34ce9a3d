"""What each `xmodal` subcommand does with its parsed arguments: `cmd_*(args) -> exit status`.

Thin: each builds the settings or arguments and calls `xmodal_keras.tasks` (or `data`,
`export`); the flags themselves are `parser.py`.
"""

import argparse
import json
import os
import sys
import time

from xmodal_keras.data.digits import generate_digits_scenes
from xmodal_keras.data.inspection import format_report, inspect_dataset
from xmodal_keras.data.readers import read_captions
from xmodal_keras.data.readers.common import ALLOW_OUTSIDE_ROOT_HELP
from xmodal_keras.data.shapes import generate_shapes
from xmodal_keras.data.tfrecords import write_caption_tfrecords
from xmodal_keras.export.client import run_predict
from xmodal_keras.export.saved_model_base import EXPORT_INFO_FILE
from xmodal_keras.export.serving_config import (
    XLA_SERVER_FLAG,
    model_folders,
    server_flags,
    write_serving_config,
)
from xmodal_keras.export.tflite_base import METADATA_FILE
from xmodal_keras.export.tflite_captioner import caption_tflite_files, is_tflite_export
from xmodal_keras.export.tflite_size import format_size_breakdown
from xmodal_keras.runs.run_directory import RunDirectory, run_kind
from xmodal_keras.runs.settings_flags import settings_from_flags
from xmodal_keras.tasks import captioning, fusion, retrieval
from xmodal_keras.tasks.captioning.demo import run_demo
from xmodal_keras.tasks.captioning.settings import CaptionerTrainConfig
from xmodal_keras.tasks.fusion.settings import DEFAULT_MODALITIES, FusionTrainConfig
from xmodal_keras.tasks.retrieval.retrieve import format_matches
from xmodal_keras.tasks.retrieval.settings import RetrievalTrainConfig

# Quiet TensorFlow's C++ start-up chatter for command-line use; library users keep control.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def add_allow_outside_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allow-outside-root", action="store_true", help=ALLOW_OUTSIDE_ROOT_HELP)


def cmd_data_generate(args: argparse.Namespace) -> int:
    generate = {"shapes": generate_shapes, "digits": generate_digits_scenes}[args.data_command]
    start = time.perf_counter()
    root = generate(args.out, num_images=args.num_images, image_size=args.size, seed=args.seed)
    seconds = time.perf_counter() - start
    print(
        f"wrote {args.num_images} {args.data_command} images ({args.size}x{args.size}) to "
        f"{root} in {seconds:.1f} s"
    )
    return 0


def cmd_data_to_tfrecord(args: argparse.Namespace) -> int:
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


def cmd_data_inspect(args: argparse.Namespace) -> int:
    report = inspect_dataset(
        args.path,
        format=args.format,
        decode_images=args.decode,
        allow_outside_root=args.allow_outside_root,
    )
    print(format_report(report))
    return 1 if args.strict and report.problem_count else 0


def captioner_config(args: argparse.Namespace) -> CaptionerTrainConfig:
    """The `CaptionerTrainConfig` of parsed `xmodal train|tune captioner` arguments."""
    return settings_from_flags(args, CaptionerTrainConfig)


def cmd_train_captioner(args: argparse.Namespace) -> int:
    captioning.train_captioner(captioner_config(args), args.out)
    return 0


def cmd_tune_captioner(args: argparse.Namespace) -> int:
    result = captioning.tune_captioner(
        captioner_config(args),
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


def retrieval_config(args: argparse.Namespace) -> RetrievalTrainConfig:
    """The `RetrievalTrainConfig` of parsed `xmodal train retrieval` arguments."""
    return settings_from_flags(args, RetrievalTrainConfig)


def cmd_train_retrieval(args: argparse.Namespace) -> int:
    retrieval.train_retrieval(retrieval_config(args), args.out)
    return 0


def fusion_modalities(args: argparse.Namespace) -> tuple[str, ...]:
    """`--modalities`, or image and text plus the side inputs that columns were given for."""
    if args.modalities is not None:
        return args.modalities
    modalities = DEFAULT_MODALITIES
    if args.numeric_columns or args.categorical_columns:
        modalities += ("tabular",)
    if args.audio_column is not None:
        modalities += ("audio",)
    return modalities


def fusion_config(args: argparse.Namespace) -> FusionTrainConfig:
    """The `FusionTrainConfig` of parsed `xmodal train fusion` arguments."""
    return settings_from_flags(args, FusionTrainConfig, modalities=fusion_modalities(args))


def cmd_train_fusion(args: argparse.Namespace) -> int:
    fusion.train_fusion(fusion_config(args), args.out)
    return 0


def cmd_retrieve(args: argparse.Namespace) -> int:
    matches = retrieval.retrieve(
        args.run_dir, query_text=args.query, image_path=args.image, k=args.k
    )
    print(format_matches(matches))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    kind = run_kind(args.run_dir)
    data = None if args.data is None else args.data[0] if len(args.data) == 1 else args.data
    if kind != "captioner" and (args.beam or args.max_images):
        raise ValueError(
            f"--beam and --max-images are for captioner runs; {args.run_dir} is a {kind} run."
        )
    if kind == "fusion":
        return evaluate_fusion(args, data)
    if kind == "retrieval":
        return evaluate_retrieval(args, data)
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


def evaluate_fusion(args: argparse.Namespace, data) -> int:
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


def evaluate_retrieval(args: argparse.Namespace, data) -> int:
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


def cmd_caption(args: argparse.Namespace) -> int:
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


def cmd_export(args: argparse.Namespace) -> int:
    kind = run_kind(args.run_dir)
    if args.jit_compile and (args.format != "saved_model" or kind != "captioner"):
        raise ValueError(
            "--jit-compile compiles a captioner SavedModel's decoding loops. "
            f"Received: --format {args.format}, a {kind} run ({args.run_dir})"
        )
    if kind == "retrieval":
        signatures = export_retrieval(args)
    elif kind == "fusion":
        signatures = export_fusion(args)
    else:
        signatures = export_captioner(args)
    print(f"exported {signatures}")
    if args.format == "saved_model":
        print(f"next: xmodal serve-config {args.out}")
    return 0


def export_captioner(args: argparse.Namespace) -> str:
    if args.format == "tflite":
        path = captioning.export_tflite(
            args.run_dir, args.out, name=args.name, quantize=args.quantize
        )
        metadata = json.loads((path / METADATA_FILE).read_text("utf-8"))
        return (
            f"{path} (model.tflite, vocab.txt, metadata.json; xmodal caption {path} IMAGE)\n"
            f"model.tflite: {format_size_breakdown(metadata['size'])}"
        )
    path = captioning.export_saved_model(
        args.run_dir,
        base_dir=args.out,
        name=args.name,
        version=args.version,
        beam_width=args.beam_width,
        max_pixels=args.max_pixels,
        jit_compile=args.jit_compile,
    )
    signatures = "serving_default, caption_beam, caption_pixels, embed_image"
    if args.jit_compile:
        signatures += f"; decoding compiled by XLA: run TF Serving with {XLA_SERVER_FLAG}"
    return f"{path} (signatures: {signatures})"


def export_retrieval(args: argparse.Namespace) -> str:
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
    signatures = json.loads((path / EXPORT_INFO_FILE).read_text("utf-8"))["signatures"]
    note = "" if "embed_text" in signatures else "; clients tokenise: the run's tokenizer is Python"
    return f"{path} (signatures: {', '.join(signatures)}{note})"


def export_fusion(args: argparse.Namespace) -> str:
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


def per_model_options(values: list[str], flag: str) -> dict:
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


def cmd_serve_config(args: argparse.Namespace) -> int:
    names = [folder.name for folder in model_folders(args.base_dir)]
    policies = per_model_options(args.version_policy, "--version-policy")
    labels = per_model_options(args.label, "--label")
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


def cmd_predict(args: argparse.Namespace) -> int:
    return run_predict(
        args.server,
        args.model,
        args.images,
        grpc=args.grpc,
        signature=args.signature,
        timeout=args.timeout,
        version=args.version,
    )


def cmd_demo(args: argparse.Namespace) -> int:
    run_demo(args.out, quick=args.quick, num_captions=args.num_captions)
    return 0
