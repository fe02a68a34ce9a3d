"""Pick the `tf.distribute` strategy a script builds and fits its model under.

One name takes a training from a laptop to several GPUs, several machines or a TPU:

- `get_strategy(name)`: `"auto"`, `"default"`, `"mirrored"`, `"multi_worker"` or `"tpu"`.
- `worker_info(strategy)`: `(task_type, task_id, is_chief)` of this process.
- `fit_under(model, strategy)`: a context manager around `model.fit` that works around
  two Keras 3.15 bugs with `MultiWorkerMirroredStrategy` (keras-team/keras#20585; see
  its docstring); a no-op for every other strategy.

Example:

>>> strategy = get_strategy("default")
>>> worker_info(strategy)
WorkerInfo(task_type=None, task_id=0, is_chief=True)
"""

import contextlib
import functools
import glob
import json
import os
from collections.abc import Iterator
from typing import NamedTuple

import keras
import tensorflow as tf

STRATEGY_NAMES: tuple[str, ...] = ("auto", "default", "mirrored", "multi_worker", "tpu")
STRATEGY_HELP = (
    "auto (a TF_CONFIG cluster: multi_worker; several GPUs: mirrored; a TPU: tpu; else "
    "default), default, mirrored, multi_worker or tpu"
)


class WorkerInfo(NamedTuple):
    """Where this process sits in a cluster.

    Attributes:
        task_type: `"worker"`, `"chief"`, ... or None outside a cluster.
        task_id: index of the task within its type (0 outside a cluster).
        is_chief: True for the one process that writes checkpoints, logs and the model:
            the `"chief"` task, else worker 0 of a cluster without a chief, else the
            only process.
    """

    task_type: str | None
    task_id: int
    is_chief: bool


def _tf_config() -> dict:
    text = os.environ.get("TF_CONFIG", "")
    if not text.strip():
        return {}
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON ({error}). Received: {text!r}") from None
    if not isinstance(config, dict):
        raise ValueError(f"TF_CONFIG must be a JSON object. Received: {text!r}")
    return config


def num_cluster_workers() -> int:
    """Worker + chief tasks named in the `TF_CONFIG` environment variable (0 without one)."""
    cluster = _tf_config().get("cluster", {})
    return sum(len(cluster.get(kind, [])) for kind in ("chief", "worker"))


def _tpu_address() -> str | None:
    """`TPU_NAME`, or `"local"` on a TPU VM (`/dev/accel*` devices or the
    `TPU_ACCELERATOR_TYPE` variable TPU VMs set), else None.

    Checked without `TPUClusterResolver()`, which on other machines asks the GCE metadata
    server and may wait on the network."""
    if os.environ.get("TPU_NAME"):
        return os.environ["TPU_NAME"]
    if glob.glob("/dev/accel*") or os.environ.get("TPU_ACCELERATOR_TYPE"):
        return "local"
    return None


def _tpu_strategy(address: str) -> tf.distribute.Strategy:
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=address)
    if address != "local":
        tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


@functools.cache
def _multi_worker_strategy() -> tf.distribute.MultiWorkerMirroredStrategy:
    """The process's one `MultiWorkerMirroredStrategy`: its collective ops are configured
    once per process, and a second instance breaks the first's (the next all-reduce
    aborts), so every training in the process (several runs, a fusion run's baselines)
    shares this one."""
    return tf.distribute.MultiWorkerMirroredStrategy()


def get_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """Returns a `tf.distribute.Strategy` by name.

    Build and compile the model inside `with strategy.scope():`; `model.fit` then runs
    unchanged on one CPU, one GPU, several GPUs, several machines or a TPU (wrap `fit` in
    `fit_under(model, strategy)` for several machines). Create the strategy at the start
    of the program: `MultiWorkerMirroredStrategy` must exist before other TF ops run, and
    every `"multi_worker"` call in a process returns that one instance.

    Args:
        name: `"auto"` (a `TF_CONFIG` with several workers: `MultiWorkerMirroredStrategy`;
            else several GPUs: `MirroredStrategy`; else a TPU (`TPU_NAME`, or a TPU VM):
            `TPUStrategy`; else the default strategy), `"default"` (the strategy in
            scope; outside any scope the no-op one-device strategy), `"mirrored"`
            (`MirroredStrategy` over all visible GPUs, or the CPU when there is none),
            `"multi_worker"` (`MultiWorkerMirroredStrategy` over the cluster in
            `TF_CONFIG`, or this machine alone without one) or `"tpu"` (`TPUStrategy`
            on `TPU_NAME` or the local TPU). Defaults to `"auto"`.

    Returns:
        The strategy.

    Raises:
        ValueError: an unknown name, a `TF_CONFIG` that is not JSON, or `"tpu"` on a
            machine with no TPU.

    Example:

    >>> strategy = get_strategy("default")
    >>> strategy.num_replicas_in_sync
    1
    """
    if name not in STRATEGY_NAMES:
        raise ValueError(
            f"Unknown distribution strategy. Expected one of {STRATEGY_NAMES}. "
            f"Received: name={name!r}"
        )
    if name == "auto":
        if num_cluster_workers() > 1:
            name = "multi_worker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            name = "mirrored"
        elif _tpu_address() is not None:
            name = "tpu"
        else:
            name = "default"
    if name == "multi_worker":
        return _multi_worker_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "tpu":
        address = _tpu_address()
        if address is None:
            raise ValueError(
                "No TPU found: set TPU_NAME to the TPU's name or grpc:// address, or run on "
                "a TPU VM. Received: name='tpu'"
            )
        return _tpu_strategy(address)
    return tf.distribute.get_strategy()


def worker_info(strategy: tf.distribute.Strategy | None = None) -> WorkerInfo:
    """`(task_type, task_id, is_chief)` of this process, from the strategy's cluster
    resolver (multi-worker) or `TF_CONFIG`; `(None, 0, True)` outside a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    task_id = getattr(resolver, "task_id", None)
    if resolver is None or isinstance(resolver, tf.distribute.cluster_resolver.TPUClusterResolver):
        task = _tf_config().get("task", {})
        task_type, task_id = task.get("type"), task.get("index")
    task_id = int(task_id or 0)
    if task_type is None:
        return WorkerInfo(None, 0, True)
    cluster = _tf_config().get("cluster", {})
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        cluster = strategy.cluster_resolver.cluster_spec().as_dict() or cluster
    is_chief = task_type == "chief" or (
        task_type == "worker" and task_id == 0 and "chief" not in cluster
    )
    return WorkerInfo(task_type, task_id, is_chief)


def strategy_name(strategy: tf.distribute.Strategy) -> str:
    """The strategy's public class name (`MultiWorkerMirroredStrategy`, not the
    `CollectiveAllReduceStrategy` it is an alias of; `DefaultStrategy` for the no-op one).

    Example:

    >>> strategy_name(get_strategy("default"))
    'DefaultStrategy'
    """
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "MultiWorkerMirroredStrategy"
    name = type(strategy).__name__
    return "DefaultStrategy" if name == "_DefaultDistributionStrategy" else name


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    """True for a `MultiWorkerMirroredStrategy` over more than one worker."""
    return (
        isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        and strategy.extended._in_multi_worker_mode()
    )


def _reduce_scalars_across_workers(original):
    """`reduce_per_replica` that means scalar logs over all replicas with `axis=None`."""

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and is_multi_worker(strategy):
            return tf.nest.map_structure(
                lambda value: (
                    strategy.reduce("MEAN", value, axis=None)
                    if value.shape.rank == 0
                    else strategy.reduce("MEAN", value, axis=0)
                ),
                values,
            )
        return original(values, strategy, reduction)

    return reduce_per_replica


@contextlib.contextmanager
def fit_under(model: keras.Model, strategy: tf.distribute.Strategy) -> Iterator[None]:
    """Run `model.fit` / `evaluate` in this block so they also work multi-worker.

    With `MultiWorkerMirroredStrategy` over several workers, Keras 3.15's `model.fit`
    (keras-team/keras#20585) fails twice on the TensorFlow backend:

    1. `Trainer._maybe_symbolic_build` calls `strategy.reduce("MEAN", batch, axis=None)`
       on the whole first `(inputs, targets)` batch; `CollectiveAllReduceExtended.
       _reduce_to` (unlike `MirroredExtended`'s) does not map over nested structures:
       `ValueError: Attempt to convert a value ({'image': PerReplica:{...}}) with an
       unsupported type (<class 'dict'>) to a Tensor`. The batch only gives shapes for a
       symbolic build, which a functional model built and compiled in the scope does not
       need: the block clears `model._distribute_strategy` and enters `strategy.scope()`,
       so `model.distribute_strategy` is still the strategy and that build is skipped.
    2. `reduce_per_replica` reduces every per-replica log with
       `strategy.reduce("MEAN", v, axis=0)`, but the logs (loss, metrics) are scalars:
       `ValueError: Invalid reduction dimension 0 for input with 0 dimensions`. The
       block swaps in a version that reduces scalars with `axis=None` (the mean over all
       replicas of all workers).

    Both are undone when the block ends. For any other strategy the block does nothing.

    Example:

    >>> strategy = get_strategy("default")
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> with fit_under(model, strategy):
    ...     history = model.fit(tf.ones((4, 2)), tf.ones((4, 1)), epochs=1, verbose=0)
    """
    if not is_multi_worker(strategy):
        yield
        return
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original = tf_trainer.reduce_per_replica
    saved_strategy = model._distribute_strategy
    tf_trainer.reduce_per_replica = _reduce_scalars_across_workers(original)
    model._distribute_strategy = None
    try:
        with strategy.scope():
            yield
    finally:
        tf_trainer.reduce_per_replica = original
        model._distribute_strategy = saved_strategy
