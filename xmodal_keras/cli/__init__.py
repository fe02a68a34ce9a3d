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

import sys
from collections.abc import Sequence

from xmodal_keras.cli.parser import build_parser

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `xmodal` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, OSError) as error:  # bad input or a file system refusal: one line
        print(f"xmodal: error: {error}", file=sys.stderr)
        return 2
