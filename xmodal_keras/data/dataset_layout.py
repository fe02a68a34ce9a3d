"""The on-disk layout of the built-in datasets, and how they are written and cached.

The built-in datasets (`shapes`, `digits`) are written in the Flickr8k layout
(captioning) plus the Hateful-Memes JSONL layout (statement verification), so the
ordinary readers load them:

    Images/<name>_00000.png ...     Flickr8k.token.txt (`<file>#<k>\\t<caption>`)
    Flickr_8k.{train,dev,test}Images.txt     {train,dev,test}.jsonl
    <name>.json (generation parameters; written last, it marks a complete dataset)

`write_dataset_atomically` writes into a hidden folder beside the target and renames it
into place, so an interrupted run never leaves half a dataset; `data_home` is where the
cached copies live.
"""

import json
import os
import pathlib
import shutil
import tempfile
import uuid
from collections.abc import Callable

import numpy as np

IMAGES_DIR = "Images"
TOKEN_FILE = "Flickr8k.token.txt"
SPLITS = ("train", "val", "test")
FLICKR_SPLIT_FILES = {
    "train": "Flickr_8k.trainImages.txt",
    "val": "Flickr_8k.devImages.txt",
    "test": "Flickr_8k.testImages.txt",
}
FUSION_SPLIT_FILES = {"train": "train.jsonl", "val": "dev.jsonl", "test": "test.jsonl"}
PNG_COMPRESS_LEVEL = 6


def data_home() -> pathlib.Path:
    """`$XMODAL_DATA_DIR` if set, else `$XDG_CACHE_HOME/xmodal_keras` (or ~/.cache/...)."""
    configured = os.environ.get("XMODAL_DATA_DIR")
    if configured:
        return pathlib.Path(configured).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(cache) / "xmodal_keras"


def check_int(name: str, value: object, minimum: int, maximum: int | None = None) -> int:
    """`value` as an int when it is one in [minimum, maximum], else a `ValueError` naming it."""
    ok = isinstance(value, int | np.integer) and not isinstance(value, bool)
    ok = ok and value >= minimum and (maximum is None or value <= maximum)
    if not ok:
        bound = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise ValueError(f"`{name}` must be an integer {bound}. Received: {name}={value!r}")
    return int(value)


def dataset_info(
    generator: str, format_version: int, num_images: int, image_size: int, seed: int
) -> dict:
    """The generation parameters a built-in dataset writes last (and is recognised by)."""
    return {
        "format_version": format_version,
        "generator": generator,
        "image_size": image_size,
        "num_images": num_images,
        "seed": seed,
    }


def cache_dir(
    name: str, format_version: int, num_images: int, image_size: int, seed: int
) -> pathlib.Path:
    """Where the cached copy of a built-in dataset with these parameters lives."""
    return data_home() / f"{name}-v{format_version}-n{num_images}-{image_size}px-seed{seed}"


def write_lines(path: pathlib.Path, lines: list[str]) -> None:
    """Write `lines` to `path`, one per line, UTF-8 with `\\n` endings."""
    with open(path, "w", encoding="utf-8", newline="\n") as file:
        file.writelines(f"{line}\n" for line in lines)


def json_line(data: dict) -> str:
    """One deterministic JSON line (sorted keys, ASCII)."""
    return json.dumps(data, sort_keys=True, ensure_ascii=True)


def read_info(root: pathlib.Path, info_file: str, generator: str) -> dict | None:
    """The generation parameters in `root/info_file`, or None when they are not `generator`'s."""
    try:
        info = json.loads((root / info_file).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and info.get("generator") == generator else None


def info_matches(root: pathlib.Path, info_file: str, expected: dict) -> bool:
    """Whether `root` holds a complete dataset generated with the `expected` parameters."""
    info = read_info(root, info_file, expected["generator"])
    return info is not None and all(info.get(key) == value for key, value in expected.items())


def _publish(staging: pathlib.Path, root: pathlib.Path) -> None:
    """Moves the finished `staging` dir to `root`, replacing an empty or old dataset there."""
    old = None
    if root.exists():
        if any(root.iterdir()):
            old = root.with_name(f".{root.name}.old-{uuid.uuid4().hex}")
            os.rename(root, old)
        else:
            root.rmdir()
    os.rename(staging, root)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_dataset_atomically(
    out_dir: str | os.PathLike,
    write: Callable[[pathlib.Path], None],
    *,
    name: str,
    info_file: str,
    generator: str,
) -> pathlib.Path:
    """Run `write(staging_dir)` and rename the result to `out_dir`; returns its path.

    `out_dir` may be missing, empty or an earlier dataset of the same `generator` (then it
    is replaced); anything else is refused with a `ValueError` that calls it a `name`
    dataset.
    """
    root = pathlib.Path(out_dir).absolute()
    if root.exists() and not root.is_dir():
        raise ValueError(f"`out_dir` must be a directory. Received: out_dir={str(out_dir)!r}")
    if root.is_dir() and any(root.iterdir()) and read_info(root, info_file, generator) is None:
        raise ValueError(
            f"`out_dir` is a non-empty directory that is not a {name} dataset; refusing "
            f"to overwrite it. Received: out_dir={str(out_dir)!r}"
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{root.name}.partial-", dir=root.parent))
    try:
        write(staging)
        os.chmod(staging, 0o755)  # mkdtemp's 0700 would hide the dataset from other users
        _publish(staging, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return root


def load_cached(
    root: pathlib.Path, is_complete: Callable[[], bool], generate: Callable[[], pathlib.Path]
) -> pathlib.Path:
    """`root` when `is_complete()`, else `generate()` (tolerating a concurrent generator)."""
    if is_complete():
        return root
    try:
        return generate()
    except OSError:
        # Another process may have published the same dataset first.
        if is_complete():
            return root
        raise
