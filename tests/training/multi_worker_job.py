"""One worker of the two-worker tests in test_multi_worker.py (run with TF_CONFIG set).

python multi_worker_job.py KINDS DATA OUT WEIGHTS_DIR INDEX

Trains each of the comma-separated KINDS (captioner, retrieval, fusion) in turn into
OUT/KIND, under the process's one MultiWorkerMirroredStrategy, and writes this worker's
trained weights to WEIGHTS_DIR/KIND_INDEX.npz. Before each it prints `== KIND`.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from captioner_runs import tiny_config  # noqa: E402

from xmodal_keras.tasks.captioning.train import train_captioner
from xmodal_keras.tasks.fusion.settings import FusionTrainConfig
from xmodal_keras.tasks.fusion.train import train_fusion
from xmodal_keras.tasks.retrieval.settings import RetrievalTrainConfig
from xmodal_keras.tasks.retrieval.train import train_retrieval

TOWERS = {
    "image_size": 32,
    "encoder_hidden_dim": 8,
    "encoder_num_layers": 2,
    "embedding_dim": 8,
    "hidden_dim": 8,
    "projection_dim": 8,
    "epochs": 2,
    "batch_size": 16,
    "strategy": "multi_worker",
}


class SaveWeights(keras.callbacks.Callback):
    """Writes the worker's trained weights, to compare the workers afterwards."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def on_train_end(self, logs=None):
        np.savez(self.path, *[np.asarray(w) for w in self.model.get_weights()])


def train(kind: str, data: str, out: str, weights: str) -> None:
    save = [SaveWeights(weights)]
    if kind == "captioner":
        config = tiny_config(data, strategy="multi_worker", epochs=2, batch_size=40)
        train_captioner(config, out, callbacks=save, verbose=2)
    elif kind == "retrieval":
        train_retrieval(RetrievalTrainConfig(data=data, **TOWERS), out, callbacks=save, verbose=2)
    else:
        config = FusionTrainConfig(data=data, baselines=False, **TOWERS)
        train_fusion(config, out, callbacks=save, verbose=2)


if __name__ == "__main__":
    kinds, data, out, weights_dir, index = sys.argv[1:6]
    for kind in kinds.split(","):
        print(f"== {kind}", flush=True)
        train(kind, data, os.path.join(out, kind), os.path.join(weights_dir, f"{kind}_{index}.npz"))
