"""Flickr8k captions: `Flickr8k.token.txt` + `Flickr_8k.{train,dev,test}Images.txt`."""

import os
import pathlib

import pandas as pd

from xmodal_keras.data.readers.common import (
    CAPTION_FORMATS_HELP,
    FileIndex,
    PathLike,
    ReadResult,
    existing_path,
    make_result,
    read_text,
    split_lines,
    text_problem,
)
from xmodal_keras.data.validation import ProblemCollector

FLICKR8K_TOKEN_FILE = "Flickr8k.token.txt"
FLICKR8K_TEXT_DIR = "Flickr8k_text"
FLICKR8K_SPLIT_FILES = {
    "train": "Flickr_8k.trainImages.txt",
    "val": "Flickr_8k.devImages.txt",
    "test": "Flickr_8k.testImages.txt",
}
# "Flicker8k_Dataset" is the spelling inside the original Flickr8k_Dataset.zip.
FLICKR8K_IMAGE_DIRS = ("Flicker8k_Dataset", "Flickr8k_Dataset", "Images")


def _flickr8k_text_dir(path: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """(token file, folder of the text files) for a root folder, Flickr8k_text/ or the file."""
    if path.is_file():
        return path, path.parent
    for folder in (path, path / FLICKR8K_TEXT_DIR):
        if (folder / FLICKR8K_TOKEN_FILE).is_file():
            return folder / FLICKR8K_TOKEN_FILE, folder
    return path / FLICKR8K_TOKEN_FILE, path


def _flickr8k_image_dir(text_dir: pathlib.Path) -> pathlib.Path | None:
    roots = [text_dir.parent, text_dir] if text_dir.name == FLICKR8K_TEXT_DIR else [text_dir]
    for root in roots:
        for name in FLICKR8K_IMAGE_DIRS:
            if (root / name).is_dir():
                return root / name
    return None


def read_flickr8k_result(
    path: PathLike,
    images_dir: PathLike | None = None,
    *,
    check_images: bool = True,
    allow_outside_root: bool = False,
) -> ReadResult:
    """`read_flickr8k` without raising: the valid rows, every problem and notes."""
    path = existing_path(path, CAPTION_FORMATS_HELP)
    token_file, text_dir = _flickr8k_text_dir(path)
    problems = ProblemCollector()
    if not token_file.is_file():
        problems.add(token_file, None, None, "the Flickr8k caption file", "no such file")
        return make_result("captions", "flickr8k", path, problems, [])

    if images_dir is None:
        found = _flickr8k_image_dir(text_dir)
        if found is None and check_images:
            problems.add(
                text_dir,
                None,
                None,
                f"an image folder named {', '.join(FLICKR8K_IMAGE_DIRS)} (or pass images_dir=)",
                "none",
            )
        images_dir = found if found is not None else text_dir / FLICKR8K_IMAGE_DIRS[-1]
    images_dir = os.path.abspath(images_dir)

    # Caption lines: "<image file>#<n>\t<caption>".
    entries: list[tuple[int, str, str]] = []
    first_seen: dict[str, int] = {}
    text, bad_lines = read_text(token_file, problems)
    for number, line in enumerate(split_lines(text or ""), start=1):
        if number in bad_lines or not line.strip():
            continue
        key, tab, caption = line.partition("\t")
        key = key.strip()
        image, hash_sign, _ = key.rpartition("#")
        if not tab or not hash_sign or not image:
            problems.add(
                token_file, number, None, "'<image file>#<n><TAB><caption>'", repr(line[:80])
            )
            continue
        if key in first_seen:
            problems.add(
                token_file,
                number,
                "id",
                "a unique '<image file>#<n>' id",
                f"{key!r} (first on line {first_seen[key]})",
            )
            continue
        first_seen[key] = number
        caption = caption.strip()
        bad_text = text_problem(caption)
        if bad_text:
            problems.add(token_file, number, "caption", *bad_text)
            continue
        entries.append((number, image, caption))
    captioned = {image for _, image, _ in entries}

    # Split files: one image file name a line.
    split_of: dict[str, str] = {}
    listed_at: dict[str, str] = {}
    split_files_found = 0
    index = FileIndex(check_files=check_images, allow_outside_root=allow_outside_root)
    missing_images: set[str] = set()
    for split, name in FLICKR8K_SPLIT_FILES.items():
        split_file = text_dir / name
        if not split_file.is_file():
            continue
        split_files_found += 1
        text, bad_lines = read_text(split_file, problems)
        for number, line in enumerate(split_lines(text or ""), start=1):
            image = line.strip()
            if number in bad_lines or not image:
                continue
            if image in listed_at:
                problems.add(
                    split_file,
                    number,
                    "image",
                    "an image listed once, in one split file",
                    f"{image!r} (already listed at {listed_at[image]})",
                )
                continue
            listed_at[image] = f"{split_file.name}:{number}"
            split_of[image] = split
            if image not in captioned:
                problems.add(
                    split_file,
                    number,
                    "image",
                    f"an image with captions in {token_file.name}",
                    repr(image),
                )
            elif bad_file := index.problem(
                index.resolve(images_dir, image),
                root=images_dir,
                written=image,
                expected=f"an existing image file in {images_dir}",
                got=repr(image),
            ):
                missing_images.add(image)
                problems.add(split_file, number, "image", *bad_file)
    if split_files_found == 0:
        problems.add(
            text_dir,
            None,
            None,
            f"at least one split file ({', '.join(FLICKR8K_SPLIT_FILES.values())})",
            "none",
        )

    rows = []
    unsplit: dict[str, None] = {}
    for _, image, caption in entries:
        split = split_of.get(image)
        if split is None:
            unsplit[image] = None
        elif image not in missing_images:
            rows.append((image, os.path.join(images_dir, image), caption, split))
    notes = []
    if unsplit and split_files_found:
        examples = ", ".join(repr(image) for image in list(unsplit)[:3])
        notes.append(
            f"{len(unsplit)} image(s) in {token_file.name} are in no split file and were "
            f"dropped: {examples}{' ...' if len(unsplit) > 3 else ''}"
        )
    return make_result("captions", "flickr8k", path, problems, rows, notes)


def read_flickr8k(
    path: PathLike,
    images_dir: PathLike | None = None,
    *,
    check_images: bool = True,
    allow_outside_root: bool = False,
) -> pd.DataFrame:
    """Read Flickr8k captions: `Flickr8k.token.txt` + `Flickr_8k.{train,dev,test}Images.txt`.

    `path` is the dataset folder (text files in it or in its `Flickr8k_text/` subfolder) or the
    token file itself. Images are looked up in `Flicker8k_Dataset/` (the original zip's
    spelling), `Flickr8k_Dataset/` or `Images/` next to the text files (or their parent for the
    `Flickr8k_text/` layout) unless `images_dir` is given. Images in the token file but in no
    split file are dropped, not reported (the original release has one such entry); an image
    listed in a split file without captions, listed twice, or missing on disk is a problem.
    Split files that do not exist are skipped; at least one must exist. Image names may not
    leave the image folder (`../x.jpg`, an absolute path) unless `allow_outside_root`.

    Args:
        path: dataset folder or caption file.
        images_dir: folder with the image files. Defaults to the folder found as above.
        check_images: check every image is a JPEG/PNG/GIF/BMP/WEBP file (a regular file, by
            its first bytes). Defaults to `True`.
        allow_outside_root: accept image names that leave the image folder. Defaults to
            `False`.

    Returns:
        A DataFrame with `image_id` (the file name), `image_path`, `caption`, `split`, in the
        token file's order.

    Raises:
        DataValidationError: listing every problem found.
    """
    return read_flickr8k_result(
        path, images_dir, check_images=check_images, allow_outside_root=allow_outside_root
    ).raise_if_problems()
