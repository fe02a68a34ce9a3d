"""`HistoryLogger`: `history.csv` with each epoch once, in order, across kills and resumes.

Keras's `CSVLogger(append=True)` appends a row per epoch. A run killed after its
`BackupAndRestore` state was saved but before the row was written loses that row; one
killed after the row but before the backup re-runs the epoch and logs it twice. The run
directory therefore puts this logger *before* `BackupAndRestore` (a row is never missing)
and, at the first epoch of every `fit`, drops the rows of the epochs that `fit` is about
to run again (a row is never doubled), as well as a last row cut short by the kill.
"""

import csv
import io
import pathlib

import keras

from xmodal_keras.atomic_files import atomic_write_text


class HistoryLogger(keras.callbacks.CSVLogger):
    """`CSVLogger(filename, append=True)` that keeps one row per epoch when a run resumes.

    Example:

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "history.csv"
    >>> _ = path.write_text("epoch,loss,val_loss\\n0,2.0,2.1\\n1,1.5,1.6\\n2,1.")  # cut short
    >>> logger = HistoryLogger(str(path))
    >>> logger.on_train_begin()
    >>> logger.on_epoch_begin(1)  # resumed: epoch 1 runs again
    >>> logger.on_epoch_end(1, {"loss": 1.4, "val_loss": 1.5})
    >>> logger.on_train_end()
    >>> path.read_text().split()
    ['epoch,loss,val_loss', '0,2.0,2.1', '1,1.4,1.5']
    """

    def __init__(self, filename: str, separator: str = ","):
        super().__init__(filename, separator=separator, append=True)
        self._kept_epochs_checked = False

    def on_train_begin(self, logs=None):
        self._kept_epochs_checked = False
        super().on_train_begin(logs)

    def on_epoch_begin(self, epoch, logs=None):
        if not self._kept_epochs_checked:
            self._kept_epochs_checked = True
            self._keep_epochs_before(epoch)
        super().on_epoch_begin(epoch, logs)

    def _keep_epochs_before(self, first_epoch: int) -> None:
        path = pathlib.Path(self.filename)
        if not path.is_file():
            return
        with path.open(newline="") as file:
            rows = list(csv.reader(file, delimiter=self.sep))
        if not rows:
            return
        header, body = rows[0], rows[1:]
        kept = [
            row
            for row in body
            if len(row) == len(header) and row[0].isdigit() and int(row[0]) < first_epoch
        ]
        if len(kept) == len(body) and path.read_bytes().endswith(b"\n"):
            return
        self.csv_file.close()
        with io.StringIO(newline="") as text:
            csv.writer(text, delimiter=self.sep, lineterminator="\n").writerows([header, *kept])
            atomic_write_text(path, text.getvalue())
        self.csv_file = open(path, "a")  # noqa: SIM115 - closed by on_train_end
