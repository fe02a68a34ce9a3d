"""Readers for real caption and image-text pair datasets, returning validated DataFrames.

Caption data (one row per caption: ``image_id``, ``image_path`` (absolute), ``caption``,
``split``) comes from Flickr8k folders, Karpathy split JSON, COCO captions JSON or a CSV.
Pair data for fusion models (one row per pair: ``id``, ``image_path`` (absolute), ``text``,
``label`` (int64, -1 = unlabelled), ``split`` + extra columns) comes from Hateful-Memes JSONL
or a CSV. Split names are always ``"train"``, ``"val"``, ``"test"`` (``dev`` -> ``val``,
``restval`` -> ``train``).

Every reader checks every row and raises one `DataValidationError` (a `ValueError`) listing
all problems as ``file:line: field 'name': expected ..., got ...``. Line numbers are 1-based
physical lines (a CSV header is line 1); JSON documents have no useful line per item, so
their problems name the item instead (``field 'images[3].split'``). A UTF-8 byte-order mark
and CRLF line ends are accepted anywhere.

Every image path must name a regular JPEG/PNG/GIF/BMP/WEBP file (by its first bytes; a
FIFO, directory or device is refused without being opened: `image_files`) inside the data
folder: the image folder of Flickr8k, the image root of a JSON file (its folder by
default), the folder of a CSV or JSONL file. A path leaving it (`../../etc/passwd`, an
absolute path elsewhere, a Karpathy `filepath` climbing upwards) is a problem unless
`allow_outside_root=True` (`--allow-outside-root`). Captions and texts must have a letter
or digit and not be a missing-value marker (`NaN`); a CSV row repeated verbatim and a data
file without rows are problems too.

Example:

>>> import pathlib, tempfile
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> _ = (root / "dog.png").write_bytes(b"\\x89PNG\\r\\n\\x1a\\n")
>>> _ = (root / "captions.csv").write_text("image_path,caption\\ndog.png, A dog runs. \\n")
>>> frame = read_captions(root / "captions.csv")
>>> frame[["image_id", "caption", "split"]].values.tolist()
[['dog.png', 'A dog runs.', 'train']]
>>> read_captions(root / "missing.csv")
Traceback (most recent call last):
...
FileNotFoundError: No such file or directory: ...
"""

from xmodal_keras.data.readers.caption_csv import read_caption_csv
from xmodal_keras.data.readers.coco import read_coco_captions
from xmodal_keras.data.readers.common import (
    CAPTION_COLUMNS,
    CAPTION_FORMATS,
    MISSING_VALUE_MARKERS,
    OUTSIDE_ROOT_HINT,
    PAIR_COLUMNS,
    PAIR_FORMATS,
    SPLIT_ALIASES,
    SPLITS,
    ReadResult,
)
from xmodal_keras.data.readers.detect import (
    detect_formats,
    read_captions,
    read_pairs,
    read_with_problems,
)
from xmodal_keras.data.readers.flickr8k import (
    FLICKR8K_IMAGE_DIRS,
    FLICKR8K_SPLIT_FILES,
    FLICKR8K_TEXT_DIR,
    FLICKR8K_TOKEN_FILE,
    read_flickr8k,
)
from xmodal_keras.data.readers.hateful_memes import read_hateful_memes
from xmodal_keras.data.readers.karpathy import read_karpathy_json
from xmodal_keras.data.readers.pair_csv import read_pair_csv

__all__ = [
    "CAPTION_COLUMNS",
    "CAPTION_FORMATS",
    "FLICKR8K_IMAGE_DIRS",
    "FLICKR8K_SPLIT_FILES",
    "FLICKR8K_TEXT_DIR",
    "FLICKR8K_TOKEN_FILE",
    "MISSING_VALUE_MARKERS",
    "OUTSIDE_ROOT_HINT",
    "PAIR_COLUMNS",
    "PAIR_FORMATS",
    "SPLITS",
    "SPLIT_ALIASES",
    "ReadResult",
    "detect_formats",
    "read_caption_csv",
    "read_captions",
    "read_coco_captions",
    "read_flickr8k",
    "read_hateful_memes",
    "read_karpathy_json",
    "read_pair_csv",
    "read_pairs",
    "read_with_problems",
]
