"""`models.config` (and batching parameters) so `tensorflow_model_server` serves every
model folder under `saved_models/`."""

import os
import pathlib

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

MODELS_CONFIG_FILE = "models.config"
BATCHING_FILE = "batching_parameters.txt"

# `BatchingParameters` lives in TF Serving's session_bundle_config.proto, which the
# tensorflow-serving-api wheel does not ship, so this small text proto is written by hand.
BATCHING_PARAMETERS = """\
max_batch_size {{ value: {max_batch_size} }}
batch_timeout_micros {{ value: {batch_timeout_micros} }}
max_enqueued_batches {{ value: 100 }}
num_batch_threads {{ value: {num_batch_threads} }}
pad_variable_length_inputs: true
"""


def model_folders(base_dir: str | os.PathLike) -> list[pathlib.Path]:
    """Model folders under `base_dir`: those holding at least one numbered version."""
    base_dir = pathlib.Path(base_dir)
    return sorted(
        folder
        for folder in base_dir.iterdir()
        if folder.is_dir()
        and any(
            (version / "saved_model.pb").is_file()
            for version in folder.iterdir()
            if version.is_dir() and version.name.isdigit()
        )
    )


def write_serving_config(
    base_dir: str | os.PathLike,
    *,
    batching: bool = False,
    base_path_prefix: str | None = None,
    max_batch_size: int = 32,
    batch_timeout_micros: int = 2000,
    num_batch_threads: int = 4,
) -> list[pathlib.Path]:
    """Write `base_dir/models.config` (one entry per model folder, absolute base paths)
    and, with `batching=True`, `base_dir/batching_parameters.txt`. Returns the files.

    `base_path_prefix` replaces `base_dir` in the written paths, for a server that sees the
    folder elsewhere (docker: `-v "$PWD/saved_models:/models"` with prefix `/models`).

    Example:

    >>> import pathlib, tempfile
    >>> base = pathlib.Path(tempfile.mkdtemp())
    >>> (base / "captioner" / "1").mkdir(parents=True)
    >>> _ = (base / "captioner" / "1" / "saved_model.pb").write_bytes(b"")
    >>> [path.name for path in write_serving_config(base)]
    ['models.config']
    """
    base_dir = pathlib.Path(base_dir).resolve()
    if not base_dir.is_dir():
        raise FileNotFoundError(f"No such folder: {base_dir}")
    folders = model_folders(base_dir)
    if not folders:
        raise ValueError(
            f"No model folders in {base_dir}: expected NAME/VERSION/saved_model.pb "
            "(run `xmodal export RUN --format saved_model` first)"
        )
    config = model_server_config_pb2.ModelServerConfig()
    for folder in folders:
        entry = config.model_config_list.config.add()
        entry.name = folder.name
        entry.base_path = str(folder)
        if base_path_prefix is not None:
            entry.base_path = f"{base_path_prefix.rstrip('/')}/{folder.name}"
        entry.model_platform = "tensorflow"
    written = [base_dir / MODELS_CONFIG_FILE]
    written[0].write_text(text_format.MessageToString(config))
    if batching:
        path = base_dir / BATCHING_FILE
        path.write_text(
            BATCHING_PARAMETERS.format(
                max_batch_size=max_batch_size,
                batch_timeout_micros=batch_timeout_micros,
                num_batch_threads=num_batch_threads,
            )
        )
        written.append(path)
    return written
