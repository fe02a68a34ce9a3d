"""How a `tf.data` pipeline is split between workers under a multi-worker strategy.

`shard_by(dataset, policy)` sets the auto-shard policy: `"data"` for in-memory file lists,
`"file"` for TFRecord shards.
"""

import tensorflow as tf

SHARD_POLICIES: dict[str, tf.data.experimental.AutoShardPolicy] = {
    "auto": tf.data.experimental.AutoShardPolicy.AUTO,
    "data": tf.data.experimental.AutoShardPolicy.DATA,
    "file": tf.data.experimental.AutoShardPolicy.FILE,
    "off": tf.data.experimental.AutoShardPolicy.OFF,
}


def shard_by(dataset: tf.data.Dataset, policy: str) -> tf.data.Dataset:
    """Set how `dataset` is split between workers under a multi-worker strategy.

    `"data"`: every worker runs the whole (seeded, so identical) pipeline and keeps its
    share of the elements -- right for in-memory file lists. `"file"`: each worker reads
    its own share of the input files (TFRecord shards; needs at least as many files as
    workers). `"auto"` lets tf.data pick; `"off"` gives each worker everything.

    Example:

    >>> dataset = shard_by(tf.data.Dataset.range(4), "data")
    >>> dataset.options().experimental_distribute.auto_shard_policy.name
    'DATA'
    """
    if policy not in SHARD_POLICIES:
        raise ValueError(
            f"`policy` must be one of {tuple(SHARD_POLICIES)}. Received: policy={policy!r}"
        )
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = SHARD_POLICIES[policy]
    return dataset.with_options(options)
