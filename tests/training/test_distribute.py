import json

import keras
import pytest
import tensorflow as tf

from xmodal_keras.training import STRATEGY_NAMES, distribute, get_strategy
from xmodal_keras.training.distribute import fit_under, strategy_name, worker_info


def test_auto_picks_mirrored_only_with_several_gpus():
    strategy = get_strategy()
    num_gpus = len(tf.config.list_logical_devices("GPU"))
    if num_gpus > 1:
        assert isinstance(strategy, tf.distribute.MirroredStrategy)
        assert strategy.num_replicas_in_sync == num_gpus
    else:
        assert strategy is tf.distribute.get_strategy()
        assert strategy.num_replicas_in_sync == 1


def test_default_strategy():
    strategy = get_strategy("default")
    assert not isinstance(strategy, tf.distribute.MirroredStrategy)
    assert strategy.num_replicas_in_sync == 1


def test_mirrored_strategy_builds_and_fits():
    strategy = get_strategy("mirrored")
    assert isinstance(strategy, tf.distribute.MirroredStrategy)
    with strategy.scope():
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
    history = model.fit(tf.ones((4, 2)), tf.ones((4, 1)), batch_size=2, epochs=1, verbose=0)
    assert len(history.history["loss"]) == 1


@pytest.mark.parametrize("name", ["horovod", "Mirrored", None])
def test_unknown_name(name):
    with pytest.raises(ValueError, match=rf"Received: name={name!r}") as info:
        get_strategy(name)
    assert all(n in str(info.value) for n in STRATEGY_NAMES)


def _cluster(monkeypatch, workers: int, index: int = 0, chief: bool = False) -> None:
    cluster = {"worker": [f"127.0.0.1:{2000 + i}" for i in range(workers)]}
    if chief:
        cluster["chief"] = ["127.0.0.1:1999"]
    task = {"type": "worker", "index": index}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))


def test_auto_picks_multi_worker_for_a_tf_config_cluster(monkeypatch):
    # The real strategy must be made before other TF ops (see test_multi_worker.py).
    monkeypatch.setattr(tf.distribute, "MultiWorkerMirroredStrategy", lambda: "multi_worker")
    _cluster(monkeypatch, workers=2)
    assert distribute.num_cluster_workers() == 2
    assert get_strategy("auto") == "multi_worker"
    _cluster(monkeypatch, workers=1)
    assert get_strategy("auto") is not "multi_worker"  # noqa: F632


def test_tpu_without_a_tpu_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("TPU_NAME", raising=False)
    monkeypatch.delenv("TPU_ACCELERATOR_TYPE", raising=False)
    monkeypatch.setattr(distribute.glob, "glob", lambda pattern: [])
    with pytest.raises(ValueError, match=r"No TPU found: set TPU_NAME.*Received: name='tpu'"):
        get_strategy("tpu")
    assert not isinstance(get_strategy("auto"), tf.distribute.TPUStrategy)


def test_worker_info(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert worker_info(get_strategy("default")) == (None, 0, True)
    _cluster(monkeypatch, workers=3, index=0)
    assert worker_info() == ("worker", 0, True)
    _cluster(monkeypatch, workers=3, index=2)
    assert worker_info() == ("worker", 2, False)
    _cluster(monkeypatch, workers=2, index=0, chief=True)
    assert worker_info() == ("worker", 0, False)  # the chief task writes, not worker 0
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        worker_info()


def test_strategy_name():
    assert strategy_name(get_strategy("mirrored")) == "MirroredStrategy"


def test_fit_under_is_a_no_op_on_one_worker():
    strategy = get_strategy("mirrored")
    with strategy.scope():
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
    with fit_under(model, strategy):
        assert model._distribute_strategy is strategy
        model.fit(tf.ones((4, 2)), tf.ones((4, 1)), batch_size=2, epochs=1, verbose=0)
