"""`history.csv` holds each epoch once, in order, wherever a run is killed between the
run directory's epoch-end callbacks, and when the kill cut its last row short."""

import keras
import numpy as np
import pandas as pd
import pytest
from helpers import KillAtEpochEnd, Killed

from xmodal_keras.runs.history_logger import HistoryLogger
from xmodal_keras.runs.run_directory import RunDirectory

EPOCHS = 3


def _fit(run: RunDirectory, epochs: int, kill_at=None) -> None:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x, y = np.ones((8, 2), "float32"), np.zeros((8, 1), "float32")
    callbacks = run.training_callbacks(monitor="loss")
    if kill_at is not None:
        position, epoch = kill_at
        callbacks.insert(position, KillAtEpochEnd(epoch))
    try:
        model.fit(x, y, epochs=epochs, batch_size=4, callbacks=callbacks, verbose=0)
    finally:
        for callback in callbacks:  # what the process's death does to open files
            if isinstance(callback, HistoryLogger) and callback.csv_file is not None:
                callback.csv_file.close()


@pytest.mark.parametrize("position", range(len(RunDirectory(".").training_callbacks()) + 1))
def test_a_kill_between_any_two_epoch_end_callbacks_loses_and_doubles_no_row(tmp_path, position):
    run = RunDirectory(tmp_path / "run").create()
    with pytest.raises(Killed):
        _fit(run, EPOCHS, kill_at=(position, 1))
    _fit(run, EPOCHS)
    history = pd.read_csv(run.history_path)
    assert history.epoch.tolist() == list(range(EPOCHS))
    assert history.loss.notna().all()


def test_a_row_cut_short_by_the_kill_is_dropped_and_rewritten(tmp_path):
    run = RunDirectory(tmp_path / "run").create()
    _fit(run, 2)
    header = pd.read_csv(run.history_path).columns.tolist()
    with run.history_path.open("a") as file:
        file.write("2,0.12")  # epoch 2's row, half written, no backup of epoch 2
    _fit(run, EPOCHS)
    history = pd.read_csv(run.history_path)
    assert history.epoch.tolist() == list(range(EPOCHS))
    assert history.columns.tolist() == header
    assert history.loss.iloc[-1] != 0.12
