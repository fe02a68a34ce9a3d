"""Tests for the tf.data auto-shard policies (xmodal_keras/data/sharding.py)."""

import pytest
import tensorflow as tf

from xmodal_keras.data.sharding import shard_by


def test_shard_by_sets_the_auto_shard_policy():
    dataset = tf.data.Dataset.range(3)
    for policy, expected in (("data", "DATA"), ("file", "FILE"), ("off", "OFF")):
        options = shard_by(dataset, policy).options()
        assert options.experimental_distribute.auto_shard_policy.name == expected
    with pytest.raises(ValueError, match="Received: policy='rows'"):
        shard_by(dataset, "rows")
