"""`fit_run`: the one `model.fit` of every task's trainer, under any `tf.distribute` strategy.

Each trainer (captioning, retrieval, fusion) creates its strategy first, builds and
compiles its model in `strategy.scope()`, then calls `fit_run`, so every task gets the
same:

- the run directory's callbacks (`HistoryLogger`, `BackupAndRestore`, checkpoints) and
  TensorBoard logs in `RUN/logs/` (`tensorboard --logdir RUN/logs`);
- multi-worker training through `fit_under` (keras#20585) with chief-only writes: the
  other workers write to a temporary run directory, removed afterwards, and keep their
  `BackupAndRestore` state in `backup/worker_<id>/`, so a restarted cluster resumes
  together;
- `model.keras` written atomically at the end, and the CSV log closed when `fit` raises.

Example:

>>> import tempfile
>>> import numpy as np
>>> from xmodal_keras.training.distribute import get_strategy
>>> strategy = get_strategy("default")
>>> with strategy.scope():
...     model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
...     model.compile("sgd", "mse")
>>> run = RunDirectory(tempfile.mkdtemp()).create()
>>> data = tf.data.Dataset.from_tensors((np.ones((4, 2)), np.zeros((4, 1)))).repeat()
>>> history = fit_run(model, run, data, strategy=strategy, epochs=2, steps_per_epoch=1,
...     monitor="loss", verbose=0)
>>> history.epoch, run.model_path.is_file(), any(run.logs_dir.rglob("events.out.*"))
([0, 1], True, True)
"""

import shutil
import tempfile
from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

from xmodal_keras.evaluation.plots import plot_training_curves
from xmodal_keras.runs.run_directory import RunDirectory
from xmodal_keras.training.distribute import fit_under, worker_info


def fit_run(
    model: keras.Model,
    run: RunDirectory,
    train_data: tf.data.Dataset,
    *,
    strategy: tf.distribute.Strategy,
    epochs: int,
    steps_per_epoch: int,
    monitor: str = "val_loss",
    fit_kwargs: dict[str, Any] | None = None,
    metrics_callbacks: Sequence[keras.callbacks.Callback] = (),
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: str | int = "auto",
) -> keras.callbacks.History:
    """Fit `model` (built and compiled in `strategy.scope()`) into `run`, and save it.

    Args:
        model: the compiled model.
        run: the run directory (the chief writes it; the other workers only their backup).
        train_data: the repeated training dataset.
        strategy: the strategy the model was built under.
        epochs: the last epoch to reach (a resumed run starts where its backup is).
        steps_per_epoch: batches per epoch.
        monitor: the log the best-weights checkpoint watches. Defaults to `"val_loss"`.
        fit_kwargs: more `model.fit` arguments (`validation_data`, `validation_steps`,
            `class_weight`). Defaults to None.
        metrics_callbacks: callbacks that add to the epoch logs, run before the logger on
            the chief only. Defaults to `()`.
        callbacks: more callbacks, run after the run directory's own. Defaults to `()`.
        verbose: `model.fit` verbosity on the chief (the others are silent). Defaults to
            `"auto"`.

    Returns:
        `fit`'s `History` (its `epoch` lists the epochs this call ran).
    """
    worker = worker_info(strategy)
    backup_dir = run.backup_dir
    if worker.is_chief:
        work = run.create()
    else:
        # The standard Keras multi-worker pattern: the others write to a temporary folder.
        prefix = f"xmodal_{worker.task_type}{worker.task_id}_"
        work = RunDirectory(tempfile.mkdtemp(prefix=prefix)).create()
        # Kept (not in the temporary folder) so that a restarted cluster resumes together.
        backup_dir = run.backup_dir / f"worker_{worker.task_id}"
    own_callbacks = work.training_callbacks(
        monitor=monitor,
        metrics_callbacks=metrics_callbacks if worker.is_chief else (),
        backup_dir=backup_dir,
    )
    own_callbacks.append(
        keras.callbacks.TensorBoard(str(work.logs_dir), write_graph=False, profile_batch=0)
    )
    # Made here, race-free: BackupAndRestore's own exists-then-makedirs of the chief's
    # `backup/` fails when another worker makes `backup/worker_<id>/` at the same moment.
    backup_dir.mkdir(parents=True, exist_ok=True)
    all_callbacks = [*own_callbacks, *callbacks]
    try:
        with fit_under(model, strategy):
            history = model.fit(
                train_data,
                epochs=epochs,
                steps_per_epoch=steps_per_epoch,
                callbacks=all_callbacks,
                verbose=verbose if worker.is_chief else 0,
                shuffle=False,  # the datasets shuffle themselves
                **(fit_kwargs or {}),
            )
        work.save_model(model)
    finally:
        close_loggers(all_callbacks)
        if not worker.is_chief:
            shutil.rmtree(work.path, ignore_errors=True)
    if worker.is_chief:
        plot_run_curves(run)
    return history


def close_loggers(callbacks: Sequence[keras.callbacks.Callback]) -> None:
    """Close `CSVLogger` files: `on_train_end` does it, but not when `fit` raised."""
    for callback in callbacks:
        file = getattr(callback, "csv_file", None)
        if isinstance(callback, keras.callbacks.CSVLogger) and file is not None:
            file.close()


def plot_run_curves(run: RunDirectory) -> None:
    """Draw `pictures/training_curves.png` from the run's `history.csv` (when it has rows)."""
    if run.history_path.is_file() and run.history_path.stat().st_size:
        plot_training_curves(run.history_path, run.pictures_dir / "training_curves.png")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True where this process writes the run directory (always, outside a cluster)."""
    return worker_info(strategy).is_chief
