"""The `xmodal` command, run as users run it: the installed console script, in a fresh process."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest
from tiny_images import write_png

XMODAL = shutil.which("xmodal", path=os.path.dirname(sys.executable))


def run_xmodal(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [XMODAL, *args] if XMODAL else [sys.executable, "-m", "xmodal_keras", *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})}
    )


def test_data_shapes_then_inspect(tmp_path):
    out = tmp_path / "shapes"
    result = run_xmodal("data", "shapes", "--out", str(out), "--num-images", "20", "--size", "32")
    assert result.returncode == 0, result.stderr
    assert f"wrote 20 shapes images (32x32) to {out}" in result.stdout
    assert len(list((out / "Images").glob("*.png"))) == 20
    assert json.loads((out / "shapes.json").read_text())["seed"] == 0

    result = run_xmodal("data", "inspect", str(out), "--strict")
    assert result.returncode == 0, result.stderr
    assert "Formats: flickr8k (captions), hateful_memes (pairs)" in result.stdout
    assert "problems found: 0" in result.stdout


def test_inspect_reports_problems_and_strict_fails(tmp_path):
    write_png(tmp_path / "a.png")
    csv = tmp_path / "captions.csv"
    csv.write_text("image_path,caption\na.png,a dog\nmissing.png,a cat\na.png,\n")
    result = run_xmodal("data", "inspect", str(csv))
    assert result.returncode == 0, result.stderr
    assert "problems found: 2" in result.stdout
    assert "captions.csv:3: field 'image_path'" in result.stdout
    assert "captions.csv:4: field 'caption'" in result.stdout
    assert run_xmodal("data", "inspect", str(csv), "--strict").returncode == 1


def test_bad_arguments_give_one_line_errors(tmp_path):
    missing = tmp_path / "nowhere"
    result = run_xmodal("data", "inspect", str(missing))
    assert result.returncode == 2
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("xmodal: error: No such file or directory")
    assert str(missing) in last_line
    assert "Traceback" not in result.stderr

    result = run_xmodal("data", "shapes", "--out", str(tmp_path / "s"), "--size", "8")
    assert result.returncode == 2
    assert "Received: image_size=8" in result.stderr


@pytest.mark.parametrize("args", [["--help"], ["data", "--help"]])
def test_python_dash_m_runs_the_same_command(args):
    result = subprocess.run(
        [sys.executable, "-m", "xmodal_keras", *args], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "usage: xmodal" in result.stdout
    assert pathlib.Path(sys.executable).exists()
