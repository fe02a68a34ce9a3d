"""`RunDirectory`: one folder per training run, so later commands take only its path.

```
RUN/
  config.json      run settings (the training dataclass as JSON)
  vocab.txt        the tokenizer's vocabulary, one token a line
  text_tokenizer.json  a WordPiece tokenizer's settings (runs with a KerasHub text tower)
  model.keras      the trained model (written at the end of training)
  checkpoints/     best.weights.h5 (lowest monitored loss), last.weights.h5
  backup/          keras.callbacks.BackupAndRestore state: a killed run resumes from here
  history.csv      one row per epoch (HistoryLogger: appended to, each epoch once, on resume)
  metrics/         <split>_<decoding>/metrics.json + captions.jsonl
  pictures/        PNG: training curves, attention maps
  logs/            TensorBoard event files: train/ and validation/ (tensorboard --logdir RUN/logs)
```

`config.json`, `vocab.txt` and `model.keras` are written atomically (`atomic_write`: a
staging file in the run directory renamed into place), so a reader never sees half a file.

Example:

>>> import tempfile
>>> run = RunDirectory(tempfile.mkdtemp()).create()
>>> run.write_config({"epochs": 2})
>>> run.read_config()
{'epochs': 2}
>>> run.metrics_dir_for("test", beam_width=3).name
'test_beam3'
"""

import dataclasses
import json
import os
import pathlib
import re
import tempfile
from collections.abc import Sequence
from typing import Any

import keras

from xmodal_keras.atomic_files import atomic_write, atomic_write_text
from xmodal_keras.runs.history_logger import HistoryLogger

CONFIG_FILE = "config.json"
VOCABULARY_FILE = "vocab.txt"
TEXT_TOKENIZER_FILE = "text_tokenizer.json"
MODEL_FILE = "model.keras"
HISTORY_FILE = "history.csv"


class RunDirectory:
    """The files of one training run (see the module docstring for the layout).

    Args:
        path: the run folder; created by `create()`, not by the constructor.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = pathlib.Path(path).absolute()

    def __repr__(self) -> str:
        return f"RunDirectory({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    # ------------------------------------------------------------------ paths
    @property
    def config_path(self) -> pathlib.Path:
        return self.path / CONFIG_FILE

    @property
    def vocabulary_path(self) -> pathlib.Path:
        return self.path / VOCABULARY_FILE

    @property
    def text_tokenizer_path(self) -> pathlib.Path:
        return self.path / TEXT_TOKENIZER_FILE

    @property
    def model_path(self) -> pathlib.Path:
        return self.path / MODEL_FILE

    @property
    def history_path(self) -> pathlib.Path:
        return self.path / HISTORY_FILE

    @property
    def checkpoints_dir(self) -> pathlib.Path:
        return self.path / "checkpoints"

    @property
    def best_weights_path(self) -> pathlib.Path:
        return self.checkpoints_dir / "best.weights.h5"

    @property
    def last_weights_path(self) -> pathlib.Path:
        return self.checkpoints_dir / "last.weights.h5"

    @property
    def backup_dir(self) -> pathlib.Path:
        return self.path / "backup"

    @property
    def metrics_dir(self) -> pathlib.Path:
        return self.path / "metrics"

    @property
    def pictures_dir(self) -> pathlib.Path:
        return self.path / "pictures"

    @property
    def logs_dir(self) -> pathlib.Path:
        """TensorBoard event files (`tensorboard --logdir RUN/logs`)."""
        return self.path / "logs"

    def metrics_dir_for(
        self, split: str, beam_width: int | None = None, *, data=None
    ) -> pathlib.Path:
        """`metrics/<split>_greedy` or `metrics/<split>_beam<K>`; for `data` other than the
        run's own, under `metrics/data_<name>/` (`evaluation_dir`)."""
        decoding = "greedy" if beam_width is None else f"beam{beam_width}"
        return self.evaluation_dir(data) / f"{split}_{decoding}"

    def evaluation_dir(self, data=None) -> pathlib.Path:
        """`metrics/` for the run's own data; `metrics/data_<name>/` for other `data` (a
        path or a list of paths), so scoring other data never overwrites the run's own
        scores.

        >>> RunDirectory("/runs/a").evaluation_dir(["/data/flickr8k/", "coco val.json"]).name
        'data_flickr8k+coco_val.json'
        """
        if data is None:
            return self.metrics_dir
        paths = [data] if isinstance(data, str | os.PathLike) else list(data)
        names = [re.sub(r"[^A-Za-z0-9_.-]+", "_", pathlib.Path(p).name) or "data" for p in paths]
        return self.metrics_dir / ("data_" + "+".join(names))

    # ------------------------------------------------------------------ state
    def create(self) -> "RunDirectory":
        """Make the folder and its sub-folders (existing ones are kept); returns self."""
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"A run directory must be a folder. Received: path={str(self.path)!r}")
        for folder in (self.path, self.checkpoints_dir, self.metrics_dir, self.pictures_dir):
            folder.mkdir(parents=True, exist_ok=True)
        return self

    def check_writable(self) -> "RunDirectory":
        """Fail now, before any data is read, if the run cannot be written; returns self.

        Walks up to the nearest folder that exists and makes (and removes) a probe folder
        in it, or in the run folder when it exists: nothing is left behind.

        Raises:
            NotADirectoryError: the path, or a folder on the way to it, is a file.
            PermissionError: the nearest existing folder is not writable (or read-only).
        """
        folder = self.path
        while not folder.is_dir():
            if os.path.lexists(folder):
                raise NotADirectoryError(
                    f"Cannot write a run to {self.path}: {folder} is a file, not a folder "
                    "(pick another --out)"
                )
            folder = folder.parent
        try:
            os.rmdir(tempfile.mkdtemp(prefix=".xmodal_write_check_", dir=folder))
        except OSError as error:
            raise PermissionError(
                f"Cannot write a run to {self.path}: {folder} is not writable "
                f"({error.strerror}; pick another --out)"
            ) from error
        return self

    def has_config(self) -> bool:
        return self.config_path.is_file()

    def has_backup(self) -> bool:
        """True when a `BackupAndRestore` state is there (an interrupted or extendable run)."""
        return (self.backup_dir / "training_metadata.json").is_file()

    def write_config(self, config: Any) -> None:
        """Write a dataclass or dict as `config.json` (sorted keys, indent 2), atomically."""
        data = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
        text = json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"
        atomic_write_text(self.config_path, text)

    def read_config(self) -> dict:
        """The `config.json` dict; `FileNotFoundError` naming the run when missing."""
        if not self.config_path.is_file():
            raise FileNotFoundError(
                f"No run at {self.path}: {CONFIG_FILE} is missing (train one with "
                "`xmodal train captioner --out RUN`)"
            )
        return json.loads(self.config_path.read_text("utf-8"))

    def save_vocabulary(self, tokenizer) -> None:
        """Write the tokenizer's vocabulary as `vocab.txt`, atomically."""
        atomic_write(self.vocabulary_path, tokenizer.save_vocabulary, suffix=".txt")

    def save_tokenizer_settings(self, tokenizer) -> None:
        """Write the tokenizer's settings (`tokenizer.save_settings`) as
        `text_tokenizer.json`, atomically."""
        atomic_write(self.text_tokenizer_path, tokenizer.save_settings, suffix=".json")

    def save_model(self, model: keras.Model) -> None:
        """Save `model` as `model.keras`, atomically."""
        atomic_write(self.model_path, model.save, suffix=".keras")

    def training_callbacks(
        self,
        *,
        monitor: str = "val_loss",
        metrics_callbacks: Sequence[keras.callbacks.Callback] = (),
        backup_dir: str | os.PathLike | None = None,
    ) -> list[keras.callbacks.Callback]:
        """`metrics_callbacks` (they add to the epoch logs, so they run before the logger),
        `HistoryLogger` appending to `history.csv`, `BackupAndRestore` in `backup_dir`
        (default `backup/`; restores weights, optimizer and epoch of an interrupted run,
        kept after the run so a larger `epochs` extends it), and `ModelCheckpoint`s for the
        best (`monitor`) and last weights. The row of an epoch is written before its backup,
        so a kill between the two re-runs the epoch, whose old row the logger drops."""
        return [
            *metrics_callbacks,
            HistoryLogger(str(self.history_path)),
            keras.callbacks.BackupAndRestore(
                str(backup_dir or self.backup_dir), delete_checkpoint=False, double_checkpoint=True
            ),
            keras.callbacks.ModelCheckpoint(
                str(self.best_weights_path),
                monitor=monitor,
                save_best_only=True,
                save_weights_only=True,
            ),
            keras.callbacks.ModelCheckpoint(str(self.last_weights_path), save_weights_only=True),
        ]


RUN_KINDS = ("captioner", "retrieval", "fusion")


def run_kind(run_dir: str | os.PathLike) -> str:
    """What a run directory trained: "captioner", "retrieval" or "fusion".

    Read from the settings only one trainer's config has (`decoder`, `index_split`,
    `fusion`), so older `config.json` files need no new field.

    Example:

    >>> import tempfile
    >>> run = RunDirectory(tempfile.mkdtemp()).create()
    >>> run.write_config({"decoder": "gru"})
    >>> run_kind(run)
    'captioner'
    """
    config = (run_dir if isinstance(run_dir, RunDirectory) else RunDirectory(run_dir)).read_config()
    for key, kind in (("decoder", "captioner"), ("index_split", "retrieval"), ("fusion", "fusion")):
        if key in config:
            return kind
    raise ValueError(
        f"{os.fspath(run_dir)}: config.json is not a captioner, retrieval or fusion run. "
        f"Received keys: {sorted(config)}"
    )
