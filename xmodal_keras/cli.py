"""The `xmodal` command. Thin: it parses arguments and calls the library.

Example:

    xmodal data shapes --out /tmp/shapes --num-images 200 --size 64
    xmodal data inspect /tmp/shapes
    xmodal demo
"""

import argparse
import os
import sys
import time
from collections.abc import Sequence

# Quiet TensorFlow's C++ start-up chatter for command-line use; library users keep control.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _cmd_data_shapes(args: argparse.Namespace) -> int:
    from xmodal_keras.data.shapes import generate_shapes

    start = time.perf_counter()
    root = generate_shapes(
        args.out, num_images=args.num_images, image_size=args.size, seed=args.seed
    )
    seconds = time.perf_counter() - start
    print(
        f"wrote {args.num_images} shapes images ({args.size}x{args.size}) to {root} "
        f"in {seconds:.1f} s"
    )
    return 0


def _cmd_data_inspect(args: argparse.Namespace) -> int:
    from xmodal_keras.data.inspection import format_report, inspect_dataset

    report = inspect_dataset(args.path, format=args.format)
    print(format_report(report))
    return 1 if args.strict and report.problem_count else 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from xmodal_keras.data.inspection import format_report, inspect_dataset
    from xmodal_keras.data.shapes import load_shapes, shapes_dir

    target = shapes_dir(num_images=args.num_images, image_size=args.size, seed=args.seed)
    print(f"shapes dataset: {target}")
    start = time.perf_counter()
    root = load_shapes(num_images=args.num_images, image_size=args.size, seed=args.seed)
    print(f"ready in {time.perf_counter() - start:.1f} s\n")
    print(format_report(inspect_dataset(root)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `xmodal` command."""
    parser = argparse.ArgumentParser(
        prog="xmodal", description="Cross-modal learning with Keras 3 on TensorFlow."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser(
        "demo", help="run the main job on the built-in shapes data (no download)"
    )
    demo.add_argument("--num-images", type=_positive_int, default=5000)
    demo.add_argument("--size", type=_positive_int, default=64, help="image side in pixels")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_cmd_demo)

    data = commands.add_parser("data", help="datasets: generate, inspect")
    data_commands = data.add_subparsers(dest="data_command", required=True)

    shapes = data_commands.add_parser(
        "shapes", help="generate the built-in shapes dataset (Flickr8k + Hateful-Memes layout)"
    )
    shapes.add_argument("--out", required=True, help="folder to write the dataset into")
    shapes.add_argument("--num-images", type=_positive_int, default=5000)
    shapes.add_argument("--size", type=_positive_int, default=64, help="image side in pixels")
    shapes.add_argument("--seed", type=int, default=0)
    shapes.set_defaults(run=_cmd_data_shapes)

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
    inspect.set_defaults(run=_cmd_data_inspect)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `xmodal` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"xmodal: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
