"""Two real worker processes on 127.0.0.1 train one captioner, dual encoder or fusion
classifier with MultiWorkerMirroredStrategy (CPU): both finish, their weights agree, only
the chief's run directory holds the model."""

import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile

import keras
import numpy as np
import pandas as pd
import pytest

JOB = pathlib.Path(__file__).with_name("multi_worker_job.py")


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


# The first line each trainer prints, on the chief.
FIRST_LINES = {
    "captioner": "strategy MultiWorkerMirroredStrategy, 2 replica(s), global batch 80 = 40 per "
    "replica x 2",
    "retrieval": "strategy MultiWorkerMirroredStrategy, 2 replica(s), global batch 16",
    "fusion": "MultiWorkerMirroredStrategy, global batch 16",
}


# ~40 s each on 2 quiet CPU cores (130 s when the cores are shared): not `slow` (> 60 s).
@pytest.mark.parametrize("kind", list(FIRST_LINES))
def test_two_workers_train_one_model(tiny_shapes_dir, tmp_path, kind):
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    out = tmp_path / "run"  # one path for both, as on a shared file system
    logs, procs = [], []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "TF_CPP_MIN_LOG_LEVEL": "2"}
        log = open(tmp_path / f"worker{index}.log", "w")
        logs.append(log)
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    str(JOB),
                    kind,
                    str(tiny_shapes_dir),
                    str(out),
                    str(tmp_path / f"weights{index}.npz"),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        )
    try:
        codes = [proc.wait(timeout=400) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        for log in logs:
            log.close()
    texts = [(tmp_path / f"worker{i}.log").read_text() for i in range(2)]
    assert codes == [0, 0], "\n\n".join(t[-3000:] for t in texts)

    first_line = next(line for line in texts[0].splitlines() if line.startswith("data: "))
    assert FIRST_LINES[kind] in first_line

    chief = np.load(tmp_path / "weights0.npz")
    other = np.load(tmp_path / "weights1.npz")
    assert len(chief.files) == len(other.files) > 0
    for key in chief.files:
        # Each worker trained on its own half of every batch: equal only if gradients were
        # all-reduced.
        np.testing.assert_array_equal(chief[key], other[key])
    saved = keras.saving.load_model(out / "model.keras", safe_mode=True).get_weights()
    for index, weights in enumerate(saved):
        np.testing.assert_array_equal(weights, chief[f"arr_{index}"])

    # Only the chief writes the run directory; worker 1 keeps just its backup state.
    assert (out / "model.keras").is_file() and (out / "config.json").is_file()
    assert pd.read_csv(out / "history.csv").epoch.tolist() == [0, 1]
    assert (out / "backup" / "worker_1" / "training_metadata.json").is_file()
    assert list((out / "logs").rglob("events.out.tfevents.*"))  # TensorBoard, chief only
    models = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.keras"))
    assert models == [pathlib.Path("run/model.keras")]
    assert not list(pathlib.Path(tempfile.gettempdir()).glob("xmodal_worker1_*"))
