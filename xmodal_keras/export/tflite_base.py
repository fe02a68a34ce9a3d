"""What both LiteRT exporters share: the `NAME_tflite/` folder (its files, a checked name,
one atomic write) and the signatures of a `.tflite` file as the interpreter reads them.

```
NAME_tflite/
  model.tflite     the flatbuffer (builtin ops only)
  vocab.txt        the tokenizer's vocabulary (when the model reads or writes text)
  metadata.json    signatures, shapes, quantization, versions
```
"""

import json
import os
import pathlib

import numpy as np

from xmodal_keras.data.text_tokenizer import CaptionTokenizer
from xmodal_keras.export.atomic_directory import atomic_directory

TFLITE_DIR_SUFFIX = "_tflite"
MODEL_FILE = "model.tflite"
VOCABULARY_FILE = "vocab.txt"
METADATA_FILE = "metadata.json"


def tflite_folder(out_dir: str | os.PathLike, name: str) -> pathlib.Path:
    """`out_dir/NAME_tflite`, after checking that `name` is a plain folder name and that
    the folder does not exist yet.

    Example:

    >>> tflite_folder("saved_models", "demo").name
    'demo_tflite'
    """
    if not isinstance(name, str) or not name or os.sep in name or name in (".", ".."):
        raise ValueError(f"`name` must be a plain folder name. Received: name={name!r}")
    final_dir = pathlib.Path(out_dir) / f"{name}{TFLITE_DIR_SUFFIX}"
    if final_dir.exists():
        raise FileExistsError(f"Refusing to overwrite an existing folder: {final_dir}")
    return final_dir


def write_tflite_folder(
    final_dir: pathlib.Path,
    flatbuffer: bytes,
    metadata: dict,
    tokenizer: CaptionTokenizer | None = None,
) -> pathlib.Path:
    """Writes `model.tflite`, `metadata.json` and (with a `tokenizer`) `vocab.txt` into
    `final_dir` in one atomic rename; returns `final_dir`."""
    with atomic_directory(final_dir) as staging:
        (staging / MODEL_FILE).write_bytes(flatbuffer)
        if tokenizer is not None:
            tokenizer.save_vocabulary(staging / VOCABULARY_FILE)
        text = json.dumps(metadata, indent=2, sort_keys=True, allow_nan=False) + "\n"
        (staging / METADATA_FILE).write_text(text, encoding="utf-8")
    return final_dir


def signature_details(flatbuffer: bytes) -> dict:
    """Inputs and outputs (shape, dtype) of every signature, as LiteRT reads the file
    (the `"signatures"` entry of `metadata.json`)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flatbuffer)
    details = {}
    for key in sorted(interpreter.get_signature_list()):
        runner = interpreter.get_signature_runner(key)

        def describe(tensors: dict) -> dict:
            return {
                name: {
                    "shape": [int(d) for d in info["shape"]],
                    "dtype": np.dtype(info["dtype"]).name,
                }
                for name, info in sorted(tensors.items())
            }

        details[key] = {
            "inputs": describe(runner.get_input_details()),
            "outputs": describe(runner.get_output_details()),
        }
    return details
