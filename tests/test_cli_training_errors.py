"""`xmodal train ...` refusals, through the CLI's `main()` in-process: one clear error line
and exit status 2 (never a traceback, never a hang), before any data is read or model built."""

import os
import pathlib

import pytest
from tiny_images import write_png

from xmodal_keras.cli import main

COMMANDS = ("captioner", "retrieval", "fusion")
TINY_FLAGS = {
    "captioner": ["--decoder=gru", "--hidden-dim=8", "--embedding-dim=8", "--epochs=1"],
    "retrieval": ["--hidden-dim=8", "--projection-dim=8", "--epochs=1", "--batch-size=2"],
    "fusion": ["--hidden-dim=8", "--projection-dim=8", "--epochs=1", "--batch-size=2"],
}


def train(command: str, data: pathlib.Path, out: pathlib.Path) -> int:
    argv = ["train", command, "--data", str(data), "--image-size=32", *TINY_FLAGS[command]]
    return main([*argv, "--out", str(out)])


def error_lines(capsys) -> list[str]:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()


def read_only_folder(tmp_path: pathlib.Path) -> pathlib.Path:
    """A folder this process cannot write in (root ignores file modes: /sys refuses it too)."""
    if os.geteuid() == 0:
        return pathlib.Path("/sys")
    folder = tmp_path / "read_only"
    folder.mkdir(mode=0o555)
    return folder


@pytest.mark.parametrize("command", COMMANDS)
def test_an_out_below_a_file_fails_before_the_data_is_read(command, tmp_path, capsys):
    (tmp_path / "file.txt").write_text("a file")
    out = tmp_path / "file.txt" / "run"
    assert train(command, tmp_path / "no_such_data.csv", out) == 2
    assert error_lines(capsys) == [
        f"xmodal: error: Cannot write a run to {out}: {tmp_path / 'file.txt'} is a file, not a "
        "folder (pick another --out)"
    ]


@pytest.mark.parametrize("command", COMMANDS)
def test_a_read_only_out_fails_before_the_data_is_read(command, tmp_path, capsys):
    folder = read_only_folder(tmp_path)
    out = folder / "xmodal_run"
    assert train(command, tmp_path / "no_such_data.csv", out) == 2
    [line] = error_lines(capsys)
    assert line.startswith(f"xmodal: error: Cannot write a run to {out}: {folder} is not writable")
    assert not out.exists()


def pair_or_caption_csv(command: str, root: pathlib.Path, bad_image: str) -> pathlib.Path:
    write_png(root / "a.png")
    if command == "fusion":
        path, header, rows = root / "pairs.csv", "image_path,text,label", ["a.png,hi,0"]
        rows.append(f"{bad_image},yo,1")
    else:
        path, header, rows = root / "captions.csv", "image_path,caption", ["a.png,a dog"]
        rows.append(f"{bad_image},a cat")
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_a_fifo_or_directory_as_an_image_is_one_error(
    command, kind, tmp_path, capsys, fails_instead_of_hanging
):
    image = tmp_path / "img.png"
    if kind == "fifo":
        os.mkfifo(image)
    else:
        image.mkdir()
    data = pair_or_caption_csv(command, tmp_path, "img.png")
    assert train(command, data, tmp_path / "run") == 2
    reason = "a FIFO (named pipe), not a regular file" if kind == "fifo" else "a directory"
    assert error_lines(capsys) == [
        f"xmodal: error: 1 problem in {data}:",
        f"  {data}:3: field 'image_path': expected an existing image file, got {image} ({reason})",
    ]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", COMMANDS)
def test_allow_outside_root_reaches_the_readers(command, tmp_path, capsys):
    (tmp_path / "outside.png").write_bytes(b"")  # outside the data folder, and empty
    (tmp_path / "data").mkdir()
    data = pair_or_caption_csv(command, tmp_path / "data", "../outside.png")
    assert train(command, data, tmp_path / "run") == 2
    assert error_lines(capsys)[1] == (
        f"  {data}:3: field 'image_path': expected a file inside the data folder "
        f"{tmp_path / 'data'} (--allow-outside-root or allow_outside_root=True reads files "
        "elsewhere), got '../outside.png'"
    )
    # With the flag the path is accepted and the file itself checked: still no training.
    argv = ["train", command, "--data", str(data), "--allow-outside-root"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 2
    assert error_lines(capsys)[1] == (
        f"  {data}:3: field 'image_path': expected an existing image file, got "
        f"{tmp_path / 'outside.png'} (an empty file)"
    )
    assert main(["data", "inspect", str(data), "--strict"]) == 1
    capsys.readouterr()
    assert main(["data", "inspect", str(data), "--allow-outside-root"]) == 0
    assert f"{tmp_path / 'outside.png'} (an empty file)" in capsys.readouterr().out
