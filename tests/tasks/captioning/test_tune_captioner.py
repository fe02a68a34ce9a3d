import re

from xmodal_keras import cli


def test_xmodal_tune_captioner_ramps_and_suggests_a_rate(tiny_shapes_dir, capsys):
    code = cli.main(
        [
            "tune",
            "captioner",
            "--data",
            str(tiny_shapes_dir),
            "--decoder",
            "gru",
            "--image-size",
            "32",
            "--encoder-hidden-dim",
            "8",
            "--embedding-dim",
            "8",
            "--hidden-dim",
            "8",
            "--batch-size",
            "16",
            "--steps",
            "12",
            "--max-learning-rate",
            "1.0",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    rows = re.findall(r"^\| (\d+) \| ([\d.e+-]+) \| ([\d.]+) \| ([\d.]+) \|$", printed, re.M)
    steps = [int(r[0]) for r in rows]
    rates = [float(r[1]) for r in rows]
    assert steps[0] == 0 and len(rows) >= 6 and rates == sorted(rates)
    assert abs(rates[0] - 1e-5) < 1e-7
    # The ramp starts at the untrained model's loss: about log(vocabulary size) ~ 3.
    assert 1.0 < float(rows[0][2]) < 6.0
    suggested = float(re.search(r"suggested --learning-rate ([\d.e+-]+)", printed).group(1))
    assert 1e-6 <= suggested <= 0.1
