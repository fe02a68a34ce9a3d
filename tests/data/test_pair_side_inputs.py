"""`check_side_inputs`' audio paths: a FIFO is refused unopened, paths stay in the data folder."""

import os

import pandas as pd
import pytest
from pair_csvs import write_wav

from xmodal_keras.data.pair_side_inputs import check_side_inputs
from xmodal_keras.data.validation import DataValidationError


def test_audio_paths_fifo_and_outside_the_data_folder(tmp_path, fails_instead_of_hanging):
    data = tmp_path / "data"
    data.mkdir()
    write_wav(data / "ok.wav", pd.Series([0, 1, 2]).to_numpy(), rate=8000)
    write_wav(tmp_path / "outside.wav", pd.Series([0, 1, 2]).to_numpy(), rate=8000)
    os.mkfifo(data / "pipe.wav")
    frame = pd.DataFrame({"clip": ["ok.wav", "pipe.wav", "../outside.wav"]})

    def check(**kwargs):
        return check_side_inputs(
            frame, audio_column="clip", audio_sample_rate=8000, source="pairs.csv",
            base_dir=data, **kwargs,
        )  # fmt: skip

    with pytest.raises(DataValidationError) as excinfo:
        check(allow_outside_root=False)
    assert str(excinfo.value).split("\n")[1:] == [
        "  pairs.csv:2: field 'clip': expected a readable 16-bit PCM WAV file, got "
        f"{data / 'pipe.wav'} (a FIFO (named pipe), not a regular file)",
        f"  pairs.csv:3: field 'clip': expected a file inside the data folder {data} "
        "(--allow-outside-root or allow_outside_root=True reads files elsewhere), "
        "got '../outside.wav'",
    ]
    with pytest.raises(DataValidationError) as excinfo:
        check()  # outside paths allowed by default here: only the FIFO is a problem
    assert len(excinfo.value.problems) == 1
