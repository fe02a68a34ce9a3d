"""One worker of the two-worker test in test_multi_worker.py (run with TF_CONFIG set).

python multi_worker_job.py DATA OUT WEIGHTS.npz
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from captioner_runs import tiny_config  # noqa: E402

from xmodal_keras.training.train_captioner import train_captioner  # noqa: E402


class SaveWeights(keras.callbacks.Callback):
    """Writes the worker's trained weights, to compare the workers afterwards."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def on_train_end(self, logs=None):
        np.savez(self.path, *[np.asarray(w) for w in self.model.get_weights()])


if __name__ == "__main__":
    data, out, weights = sys.argv[1:4]
    config = tiny_config(data, strategy="multi_worker", epochs=2, batch_size=40)
    train_captioner(config, out, callbacks=[SaveWeights(weights)], verbose=2)
