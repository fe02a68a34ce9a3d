import keras
import pytest
import tensorflow as tf

from xmodal_keras.training import STRATEGY_NAMES, get_strategy


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


@pytest.mark.parametrize("name", ["tpu", "multi_worker", "Mirrored", None])
def test_unknown_name(name):
    with pytest.raises(ValueError, match=rf"Received: name={name!r}") as info:
        get_strategy(name)
    assert all(n in str(info.value) for n in STRATEGY_NAMES)
