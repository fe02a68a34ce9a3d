"""`TFLiteCaptioner`: caption images with an exported `NAME_tflite/` folder on the LiteRT
interpreter (`ai_edge_litert`, the Python binding of the on-device runtime).

It runs the `caption` signature (the greedy loop inside the model), which every variant
(float32, float16, dynamic, int8, int16x8) has; `caption_with_steps` drives `encode` +
`decode_step` from Python instead, the reference of the loop an app writes (see
`TFLITE.md`).
"""

import json
import os
import pathlib
from collections.abc import Sequence

import numpy as np

from xmodal_keras.data.image_header import DEFAULT_MAX_PIXELS
from xmodal_keras.data.image_preprocessing import read_image_files
from xmodal_keras.export.tflite_base import METADATA_FILE
from xmodal_keras.export.tflite_export import (
    CAPTION_SIGNATURE,
    DECODE_STEP_SIGNATURE,
    ENCODE_SIGNATURE,
    METADATA_FORMAT,
    SIGNATURES,
)


def is_tflite_export(path: str | os.PathLike) -> bool:
    """True when `path` is a folder written by `export_tflite` (has its `metadata.json`)."""
    metadata = pathlib.Path(path) / METADATA_FILE
    if not metadata.is_file():
        return False
    try:
        return json.loads(metadata.read_text("utf-8")).get("format") == METADATA_FORMAT
    except (ValueError, AttributeError):
        return False


class TFLiteCaptioner:
    """Greedy captions from a `NAME_tflite/` folder on the LiteRT interpreter.

    Args:
        path: the exported folder (`model.tflite`, `vocab.txt`, `metadata.json`).
        num_threads: interpreter threads. Defaults to None (LiteRT's default).

    Example (with `path` from `export_tflite`):

        captioner = TFLiteCaptioner("saved_models/run_tflite", num_threads=2)
        captioner.caption_files(["cat.jpg"])["text"]  # ["a cat on a mat"]
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        num_threads: int | None = None,
    ):
        from ai_edge_litert.interpreter import Interpreter

        self.path = pathlib.Path(path)
        if not is_tflite_export(self.path):
            raise FileNotFoundError(
                f"No TFLite captioner at {self.path}: {METADATA_FILE} is missing or is not "
                "an xmodal TFLite export (write one with `xmodal export RUN --format tflite`)"
            )
        self.metadata = json.loads((self.path / METADATA_FILE).read_text("utf-8"))
        vocabulary_file = self.path / self.metadata["vocabulary_file"]
        self.vocabulary = vocabulary_file.read_text("utf-8").split("\n")
        if self.vocabulary and self.vocabulary[-1] == "":
            self.vocabulary.pop()
        if len(self.vocabulary) != self.metadata["vocabulary_size"]:
            raise ValueError(
                f"{vocabulary_file} has {len(self.vocabulary)} tokens; metadata.json says "
                f"{self.metadata['vocabulary_size']}"
            )
        if num_threads is not None and (not isinstance(num_threads, int) or num_threads < 1):
            raise ValueError(f"`num_threads` must be an int >= 1. Received: {num_threads=!r}")
        self.interpreter = Interpreter(
            model_path=str(self.path / self.metadata["model_file"]), num_threads=num_threads
        )
        missing = sorted(set(SIGNATURES) - set(self.interpreter.get_signature_list()))
        if missing:
            raise ValueError(
                f"{self.path} lacks the signature(s) {missing} (an int8 file written "
                "before int8 had the `caption` loop): export the run again"
            )
        self._caption = self.interpreter.get_signature_runner(CAPTION_SIGNATURE)
        self._encode = self.interpreter.get_signature_runner(ENCODE_SIGNATURE)
        self._decode_step = self.interpreter.get_signature_runner(DECODE_STEP_SIGNATURE)
        self.image_shape = tuple(self.metadata["image"]["shape"][1:])
        self.max_length = int(self.metadata["max_length"])
        self.state_names = list(self.metadata["state_names"])
        self.start_id = int(self.metadata["start_id"])
        self.end_id = int(self.metadata["end_id"])

    def _check_image(self, image) -> np.ndarray:
        image = np.asarray(image)
        if image.shape != self.image_shape:
            raise ValueError(
                f"An image must be uint8 {list(self.image_shape)}. Received: shape={image.shape}"
            )
        return image.astype(np.uint8)[None]

    def caption_image(self, image) -> tuple[np.ndarray, float]:
        """`(tokens int32 [max_length], score)` of one uint8 `[H, W, 3]` image from the
        in-model greedy loop (the `caption` signature)."""
        out = self._caption(image=self._check_image(image))
        return np.array(out["tokens"][0]), float(out["score"][0])

    def caption_with_steps(self, image) -> tuple[np.ndarray, float]:
        """The app's loop, in Python: `encode` once, then `decode_step` per token.

        Greedy: the argmax token is fed back with the state until `<end>` or `max_length`;
        the score sums the chosen tokens' log-softmax. Returns `(tokens int32
        [max_length], score)` like the `caption` signature (0 after `<end>`).
        """
        state = self._encode(image=self._check_image(image))
        state = {name: np.array(state[name]) for name in self.state_names}
        tokens = np.zeros([self.max_length], np.int32)
        token = np.array([self.start_id], np.int32)
        score = 0.0
        for index in range(self.max_length):
            out = self._decode_step(token=token, index=np.array([index], np.int32), **state)
            logits = np.asarray(out["logits"][0], np.float64)
            next_token = int(np.argmax(logits))
            shifted = logits - logits.max()
            score += float(shifted[next_token] - np.log(np.exp(shifted).sum()))
            tokens[index] = next_token
            if next_token == self.end_id:
                break
            state = {name: np.array(out[name]) for name in self.state_names}
            token = np.array([next_token], np.int32)
        return tokens, score

    def detokenize(self, tokens: Sequence[int]) -> str:
        """Words up to the first `<end>`; `<pad>` and `<start>` dropped; unknown ids read
        as `<unk>`."""
        words = []
        unk = self.vocabulary[int(self.metadata["unk_id"])]
        for token in tokens:
            token = int(token)
            if token == self.end_id:
                break
            if token in (int(self.metadata["pad_id"]), self.start_id):
                continue
            words.append(self.vocabulary[token] if 0 <= token < len(self.vocabulary) else unk)
        return " ".join(words)

    def caption_images(self, images) -> dict[str, list]:
        """Caption uint8 `[N, H, W, 3]` images one by one (the model's batch is 1).

        Returns `{"text": [str], "scores": [float], "tokens": [np.ndarray]}`.
        """
        result: dict[str, list] = {"text": [], "scores": [], "tokens": []}
        for image in images:
            tokens, score = self.caption_image(image)
            result["text"].append(self.detokenize(tokens))
            result["scores"].append(score)
            result["tokens"].append(tokens)
        return result

    def caption_files(self, paths: Sequence[str | os.PathLike]) -> dict[str, list]:
        """Caption image files (JPEG/PNG/GIF/BMP) read as training reads them (EXIF
        orientation, RGB, bilinear antialiased resize to the model's size), each header
        checked first (`read_image_files`); same result as `caption_images`.

        Raises:
            ValueError: a file that cannot be read, named with the reason.
        """
        images, failures = read_image_files(list(paths), self.image_shape[:2])
        if failures:
            raise ValueError(
                "Cannot read image file(s): "
                + "; ".join(f"{path}: {reason}" for path, reason in failures)
            )
        if not images:
            return {"text": [], "scores": [], "tokens": []}
        return self.caption_images(np.stack(images))


def caption_tflite_files(
    model_dir: str | os.PathLike,
    paths: Sequence[str | os.PathLike],
    *,
    num_threads: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> list[dict]:
    """Caption image files with an exported `NAME_tflite/` folder (what `xmodal caption
    saved_models/NAME_tflite IMAGE...` runs). Each file's header is checked before it is
    decoded (at most `max_pixels`); a file that fails is reported, the others captioned.

    Returns:
        One dict per image, in order: `{"path", "caption", "score", "attention_map": None,
        "error"}` (the keys of `caption_image_files`; for a file that could not be read
        `caption` and `score` are None and `error` says why).

    Raises:
        FileNotFoundError: no export at `model_dir`, or a missing image file.
        ValueError: no paths.
    """
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise ValueError("Give at least one image file. Received: paths=[]")
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(f"Image file(s) not found: {', '.join(missing)}")
    captioner = TFLiteCaptioner(model_dir, num_threads=num_threads)
    images, failures = read_image_files(paths, captioner.image_shape[:2], max_pixels=max_pixels)
    errors = dict(failures)
    results = []
    for path, image in zip(paths, images, strict=True):
        result = {"path": path, "caption": None, "score": None, "attention_map": None}
        if image is None:
            result["error"] = errors[path]
        else:
            tokens, score = captioner.caption_image(image)
            result.update(caption=captioner.detokenize(tokens), score=score, error=None)
        results.append(result)
    return results
