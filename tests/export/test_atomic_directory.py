"""`atomic_directory` / `write_version`: modes a server running as another user can read,
leftovers of killed writers removed, concurrent writers never clobbering each other."""

import concurrent.futures
import contextlib
import os
import pathlib
import queue
import stat
import subprocess
import tempfile
import threading

import pytest
from export_checks import assert_readable_by_others

from xmodal_keras.atomic_files import atomic_write_text
from xmodal_keras.export.atomic_directory import atomic_directory, write_version


@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def fill(folder: pathlib.Path) -> None:
    (folder / "variables").mkdir()
    (folder / "variables" / "variables.index").write_bytes(b"index")
    (folder / "saved_model.pb").write_bytes(b"graph")


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_folders_follow_the_umask_not_mkdtemps_0700(tmp_path, mask):
    with umask(mask):
        with atomic_directory(tmp_path / "tiny_tflite") as tmp:
            fill(tmp)
        version = write_version(tmp_path / "captioner", fill)
        atomic_write_text(tmp_path / "models.config", "model_config_list {}\n")
    assert version == tmp_path / "captioner" / "1"
    assert_readable_by_others(tmp_path / "tiny_tflite", mask)
    assert_readable_by_others(version, mask)
    assert stat.S_IMODE((tmp_path / "models.config").stat().st_mode) == 0o666 & ~mask


# System tools, not the venv's Python (its interpreter may sit under root's 0700 home).
READ_EVERYTHING = 'find "$1" -type d -exec ls {} + > /dev/null && find "$1" -type f -exec cat {} +'
NOBODY = 65534


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root")
@pytest.mark.parametrize("mask, readable", [(0o022, True), (0o077, False)])
def test_another_user_reads_every_file_of_an_export(mask, readable):
    # Outside pytest's 0700 tmp tree: a volume TF Serving's user can reach.
    base = pathlib.Path(tempfile.mkdtemp(prefix="xmodal_other_user_"))
    try:
        base.chmod(0o755)
        with umask(mask):
            version = write_version(base / "captioner", fill)
            with atomic_directory(base / "captioner_tflite") as tmp:
                fill(tmp)
        for root in (version, base / "captioner_tflite"):
            done = subprocess.run(
                ["sh", "-c", READ_EVERYTHING, "sh", str(root)],
                user=NOBODY,
                group=NOBODY,
                extra_groups=[],
                capture_output=True,
                text=True,
                timeout=60,
            )
            if readable:
                assert done.returncode == 0, done.stderr
                assert sorted(done.stdout) == sorted("indexgraph")  # every file's bytes
            else:
                assert done.returncode != 0 and "Permission denied" in done.stderr
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=True)


def test_the_next_write_removes_leftovers_of_killed_writers_only(tmp_path):
    model_dir = tmp_path / "captioner"
    model_dir.mkdir()
    dead = model_dir / ".1.tmp-abandoned"  # a killed export's leftover: nobody holds it
    dead.mkdir()
    fill(dead)
    other = model_dir / "notes.tmp-keep"  # not a hidden staging folder: left alone
    other.mkdir()
    started, finish = queue.Queue(), threading.Event()

    def running_export(staging):  # holds its staging folder until told to finish
        started.put(staging)
        finish.wait(60)
        fill(staging)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        running = pool.submit(write_version, model_dir, running_export)
        staging = started.get(timeout=60)
        assert staging.parent == model_dir and staging.name.startswith(".1.tmp-")
        assert not dead.exists()  # the running export removed the leftover
        assert write_version(model_dir, fill).name == "1"
        assert staging.is_dir()  # a running export's folder is never removed
        finish.set()
        assert running.result(60).name == "2"
    assert sorted(p.name for p in model_dir.iterdir()) == ["1", "2", "notes.tmp-keep"]


def test_a_version_taken_meanwhile_moves_to_the_next_number(tmp_path):
    model_dir = tmp_path / "captioner"

    def slow_write(tmp):  # another export finishes version 1 while this one writes
        fill(tmp)
        assert write_version(model_dir, fill).name == "1"

    assert write_version(model_dir, slow_write) == model_dir / "2"
    assert (model_dir / "2" / "saved_model.pb").read_bytes() == b"graph"

    def taken(tmp):
        fill(tmp)
        write_version(model_dir, fill, version=3)

    with pytest.raises(FileExistsError, match=r"Refusing to overwrite .*3: another export"):
        write_version(model_dir, taken, version=3)
    assert sorted(p.name for p in model_dir.iterdir()) == ["1", "2", "3"]


def test_a_folder_taken_meanwhile_is_refused_and_nothing_is_left(tmp_path):
    final = tmp_path / "tiny_tflite"
    with pytest.raises(FileExistsError, match="another export wrote it while this one ran"):
        with atomic_directory(final) as tmp:
            fill(tmp)
            with atomic_directory(final) as other:
                (other / "model.tflite").write_bytes(b"first")
    assert (final / "model.tflite").read_bytes() == b"first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny_tflite"]
    with pytest.raises(FileExistsError, match="Refusing to overwrite an existing folder"):
        with atomic_directory(final):
            pass


def test_a_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(OSError, match="disk full"):
        write_version(tmp_path / "m", lambda tmp: (_ for _ in ()).throw(OSError("disk full")))
    assert list((tmp_path / "m").iterdir()) == []
    with pytest.raises(ValueError, match="Received: version=0"):
        write_version(tmp_path / "m", fill, version=0)
