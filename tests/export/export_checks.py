"""Checks shared by the export tests."""

import json
import os
import pathlib
import stat
import subprocess
import sys
from collections.abc import Sequence

import numpy as np


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def assert_readable_by_others(root: pathlib.Path, mask: int | None = None) -> None:
    """`root` and everything under it have the modes the umask gives (folders
    0o777 & ~mask, files 0o666 & ~mask: 0755 / 0644 under the usual 022), so a server
    running as another user can read them; not `mkdtemp`'s 0700."""
    mask = current_umask() if mask is None else mask
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        want = (0o777 if path.is_dir() else 0o666) & ~mask
        assert mode == want, (str(path), oct(mode), oct(want))


TF1_SESSION_RUN = """
import json, os, pathlib
import numpy as np
import tensorflow as tf


def _tf1_session_run(calls):
    for folder in dict.fromkeys(call["dir"] for call in calls):
        with tf.compat.v1.Session(graph=tf.Graph()) as session:
            meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], folder)
            for call in (call for call in calls if call["dir"] == folder):
                signature = meta_graph.signature_def[call["signature"]]
                feed = {signature.inputs[key].name: np.load(path, allow_pickle=True)
                        for key, path in call["inputs"].items()}
                keys = sorted(signature.outputs)
                values = session.run([signature.outputs[key].name for key in keys], feed)
                for key, value in zip(keys, values):
                    np.save(f"{call['outdir']}/{key}.npy", value)


_tf1_session_run(json.loads(pathlib.Path(os.environ["TF1_CALLS"]).read_text()))
"""


def tf1_session_run(
    calls: list[tuple],
    work_dir: pathlib.Path,
    *,
    then: str = "",
    stdin: str = "",
    args: Sequence[str] = (),
) -> tuple[list[dict], str]:
    """Runs `(saved_model_dir, signature, {input: numpy array})` calls as
    `saved_model_cli run` does (`loader.load` into a TF1 session, then `session.run` of
    the signature's tensors: the loader TF Serving uses), in one fresh process that loads
    each model once; returns each call's outputs, and what the process printed.

    `then`: a script the same process runs afterwards (with `stdin` and `args`), once
    the TF1 calls are done: a second fresh-process check without a second TensorFlow
    start-up (~10 s on 2 CPU cores)."""
    requests = []
    for index, (folder, signature, inputs) in enumerate(calls):
        call_dir = work_dir / f"call_{index}"
        call_dir.mkdir(parents=True)
        paths = {}
        for key, value in inputs.items():
            paths[key] = str(call_dir / f"{key}.npy")
            np.save(paths[key], value)
        outdir = call_dir / "outputs"
        outdir.mkdir()
        requests.append(
            {"dir": str(folder), "signature": signature, "inputs": paths, "outdir": str(outdir)}
        )
    calls_file = work_dir / "tf1_calls.json"
    calls_file.write_text(json.dumps(requests))
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "CUDA_VISIBLE_DEVICES": "",
        "TF1_CALLS": str(calls_file),
    }
    done = subprocess.run(
        [sys.executable, "-c", TF1_SESSION_RUN + then, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    outputs = [
        {
            path.stem: np.load(path, allow_pickle=True)
            for path in pathlib.Path(r["outdir"]).iterdir()
        }
        for r in requests
    ]
    return outputs, done.stdout
