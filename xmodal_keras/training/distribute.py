"""Pick the `tf.distribute` strategy a script builds and fits its model under."""

import tensorflow as tf

STRATEGY_NAMES: tuple[str, ...] = ("auto", "default", "mirrored")


def get_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """Returns a `tf.distribute.Strategy` by name.

    Build and compile the model inside `with strategy.scope():`; `model.fit`
    then runs unchanged on one CPU, one GPU or several GPUs.

    Args:
        name: `"auto"` (`MirroredStrategy` when more than one GPU is visible,
            else the default strategy), `"default"` (the strategy in scope;
            outside any scope the default no-op one-device strategy) or
            `"mirrored"` (`MirroredStrategy` over all visible GPUs, or the CPU
            when there is none). Defaults to `"auto"`.

    Returns:
        The strategy.

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
        name = "mirrored" if len(tf.config.list_logical_devices("GPU")) > 1 else "default"
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()
