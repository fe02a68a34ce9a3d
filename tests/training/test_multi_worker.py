"""Two real worker processes on 127.0.0.1 train a captioner, a dual encoder and a fusion
classifier in turn with MultiWorkerMirroredStrategy (CPU), one strategy per process as
`get_strategy` keeps it: both finish, their weights agree, only the chief's run directories
hold the models."""

import json
import os
import pathlib
import re
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


@pytest.fixture(scope="module")
def cluster_runs(tiny_shapes_dir, tmp_path_factory) -> tuple[pathlib.Path, dict[str, list[str]]]:
    """(folder, {kind: [chief's log, worker 1's log]}) of one two-worker cluster that
    trained every kind in turn: `folder/run/KIND` (one path for both workers, as on a
    shared file system) and `folder/KIND_INDEX.npz` (each worker's weights). About 60 s
    on 2 quiet CPU cores, 100 s when the cores are shared."""
    folder = tmp_path_factory.mktemp("multi_worker")
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    logs, procs = [], []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "TF_CPP_MIN_LOG_LEVEL": "2"}
        log = open(folder / f"worker{index}.log", "w")
        logs.append(log)
        command = [sys.executable, str(JOB), ",".join(FIRST_LINES), str(tiny_shapes_dir)]
        procs.append(
            subprocess.Popen(
                [*command, str(folder / "run"), str(folder), str(index)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    try:
        codes = [proc.wait(timeout=600) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        for log in logs:
            log.close()
    texts = [(folder / f"worker{i}.log").read_text() for i in range(2)]
    assert codes == [0, 0], "\n\n".join(t[-3000:] for t in texts)
    by_kind = {kind: [] for kind in FIRST_LINES}
    for text in texts:
        parts = re.split(r"^== (\w+)$", text, flags=re.MULTILINE)  # [before, kind, log, ...]
        for kind, log in zip(parts[1::2], parts[2::2], strict=True):
            by_kind[kind].append(log)
    return folder, by_kind


@pytest.mark.parametrize("kind", list(FIRST_LINES))
def test_two_workers_train_one_model(cluster_runs, kind):
    folder, logs = cluster_runs
    assert len(logs[kind]) == 2, f"{kind} did not start on both workers"
    first_line = next(line for line in logs[kind][0].splitlines() if line.startswith("data: "))
    assert FIRST_LINES[kind] in first_line

    chief = np.load(folder / f"{kind}_0.npz")
    other = np.load(folder / f"{kind}_1.npz")
    assert len(chief.files) == len(other.files) > 0
    for key in chief.files:
        # Each worker trained on its own half of every batch: equal only if gradients were
        # all-reduced.
        np.testing.assert_array_equal(chief[key], other[key])
    out = folder / "run" / kind
    saved = keras.saving.load_model(out / "model.keras", safe_mode=True).get_weights()
    for index, weights in enumerate(saved):
        np.testing.assert_array_equal(weights, chief[f"arr_{index}"])

    # Only the chief writes the run directory; worker 1 keeps just its backup state.
    assert (out / "model.keras").is_file() and (out / "config.json").is_file()
    assert pd.read_csv(out / "history.csv").epoch.tolist() == [0, 1]
    assert (out / "backup" / "worker_1" / "training_metadata.json").is_file()
    assert list((out / "logs").rglob("events.out.tfevents.*"))  # TensorBoard, chief only
    models = sorted(p.relative_to(folder) for p in folder.rglob("*.keras"))
    assert models == [pathlib.Path(f"run/{name}/model.keras") for name in sorted(FIRST_LINES)]
    assert not list(pathlib.Path(tempfile.gettempdir()).glob("xmodal_worker1_*"))
