"""`kill -9` a training run after its first saved epoch, rerun the same command: it resumes
from the saved epoch, finishes with the right number of epochs, the run directory intact."""

import json
import os
import subprocess
import sys
import time

import pandas as pd
from captioner_runs import TINY_SETTINGS

from xmodal_keras.runs.run_directory import RunDirectory
from xmodal_keras.tasks.captioning.predict import load_captioner

EPOCHS = 4


def _command(data, out) -> list[str]:
    # batch 8: 20 steps per epoch, so an epoch lasts long enough to be killed inside the run.
    settings = {**TINY_SETTINGS, "epochs": EPOCHS, "batch_size": 8}
    flags = [f"--{name.replace('_', '-')}={value}" for name, value in settings.items()]
    return [sys.executable, "-m", "xmodal_keras.cli", "train", "captioner", "--data", str(data),
            *flags, "--out", str(out)]  # fmt: skip


# ~45 s on 2 quiet CPU cores (two training processes): not `slow` (> 60 s).
def test_kill_9_then_rerun_resumes_from_the_saved_epoch(tiny_shapes_dir, tmp_path):
    out = tmp_path / "run"
    run = RunDirectory(out)
    metadata = run.backup_dir / "training_metadata.json"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen(
        _command(tiny_shapes_dir, out), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 300
        while not metadata.is_file() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, (
            "the run ended before it could be killed:\n" + (proc.stdout.read().decode()[-3000:])
        )
        assert metadata.is_file(), "no epoch saved within 300 s"
        proc.kill()  # SIGKILL: no callback, no `finally` runs
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
    saved_epochs = json.loads(metadata.read_text())["epoch"]
    assert 1 <= saved_epochs < EPOCHS
    assert not run.model_path.exists()

    result = subprocess.run(
        _command(tiny_shapes_dir, out), env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = result.stdout.strip().splitlines()[-1]
    restored = int(summary.split("(")[1].split(" restored")[0])
    assert summary.startswith(f"trained {EPOCHS} epochs (")
    assert restored == saved_epochs  # resumed from the saved epoch, not from zero

    # Intact: each epoch logged once, in order; the settings, backup and model readable.
    assert pd.read_csv(run.history_path).epoch.tolist() == list(range(EPOCHS))
    assert json.loads(metadata.read_text())["epoch"] == EPOCHS
    model, tokenizer, config = load_captioner(out)
    assert config.epochs == EPOCHS
    assert model.output.shape[-1] == tokenizer.vocabulary_size
