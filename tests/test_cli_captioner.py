"""`xmodal train captioner` -> `xmodal evaluate` -> `xmodal caption`, as users run them:
training through the installed console script in a fresh process, the other commands
through the same `main` in this process (each fresh process costs a TensorFlow start-up),
on a tiny dataset in a temp dir."""

from captioner_runs import TINY_SETTINGS
from test_cli import run_xmodal

from xmodal_keras.cli import main


def _flags(settings: dict) -> list[str]:
    flags = []
    for name, value in settings.items():
        flags += ["--" + name.replace("_", "-"), str(value)]
    return flags


def test_train_evaluate_caption_end_to_end(tiny_shapes_dir, tmp_path, capsys):
    run = tmp_path / "run"
    result = run_xmodal(
        "train", "captioner", "--data", str(tiny_shapes_dir), *_flags(TINY_SETTINGS),
        "--out", str(run),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith("trained 1 epoch in ") and f"run: {run} " in summary
    assert (run / "model.keras").is_file()

    capsys.readouterr()
    assert main(["evaluate", str(run), "--max-images", "3"]) == 0
    stdout = capsys.readouterr().out
    lines = stdout.splitlines()
    assert lines[0] == "test split, greedy decoding"
    assert lines[1].split() == ["metric", "value"]
    names = [line[:20].strip() for line in lines[2:-1]]
    assert names[:8] == ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr",
                         "scene faithfulness"]  # fmt: skip
    assert "images              3" in stdout
    assert lines[-1] == f"written to {run / 'metrics' / 'test_greedy'}"

    images = sorted((tiny_shapes_dir / "Images").glob("*.png"))[:2]
    out = tmp_path / "maps" / "attention.png"
    assert main(["caption", str(run), *map(str, images), "--attention-map", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    for line, image in zip(lines, images, strict=True):
        expected_map = out.with_name(f"attention_{image.stem}.png")
        assert line.startswith(f"{image}: ")
        assert line.endswith(f"[attention map: {expected_map}]")
        assert expected_map.stat().st_size > 0

    first = str(images[0])
    assert main(["caption", str(run), first, "--beam", "2", "--attention-map", "x.png"]) == 2
    error = capsys.readouterr().err
    assert error.strip().splitlines()[-1].startswith("xmodal: error: Attention maps come")


def test_evaluate_a_missing_run_is_a_one_line_error(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "nowhere")]) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .splitlines()[-1]
        .startswith(f"xmodal: error: No run at {tmp_path / 'nowhere'}: config.json is missing")
    )


def test_quick_demo_runs_every_step(tmp_path):
    """`make demo`'s main job, at toy size: in the default suite so the demo cannot rot."""
    out = tmp_path / "demo"
    env = {"XMODAL_DATA_DIR": str(tmp_path)}
    result = run_xmodal("demo", "--quick", "--out", str(out), env=env)
    assert result.returncode == 0, result.stderr
    for step in ("== 1/4 data", "== 2/4 train", "== 3/4 evaluate", "== 4/4 caption"):
        assert step in result.stdout
    assert f"Everything is in {out}:" in result.stdout
    assert (out / "metrics" / "test_greedy" / "metrics.json").is_file()
    assert (out / "metrics" / "test_beam3" / "metrics.json").is_file()
    assert len(list((out / "pictures").glob("attention_*.png"))) == 4
    assert (out / "pictures" / "training_curves.png").is_file()
