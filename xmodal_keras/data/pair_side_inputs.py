"""Tabular and audio side inputs of a pair frame: checked up front, WAV clips loaded in-graph.

A pair frame (`read_pairs`) keeps every extra CSV column. The fusion trainer uses some of
them as side inputs: numeric and categorical tabular columns, and one column of WAV file
paths. `check_side_inputs` checks every row before training starts and raises one
`DataValidationError` naming the file, the line (or 1-based row) and the column of each
problem; `load_wav` turns a WAV file into the fixed-length mono waveform the audio
encoder reads.

Audio files are WAV, 16-bit PCM (`tf.audio.decode_wav`), at the run's sample rate (no
resampling); several channels are averaged to mono; clips are cropped or zero-padded to
`num_samples`.

Example:

>>> import pandas as pd
>>> frame = pd.DataFrame({"age": [31, "old"], "color": ["red", "blue"]})
>>> check_side_inputs(frame, numeric_columns=["age"], categorical_columns=["color"],
...                   source="pairs.csv", lines=[2, 3])
Traceback (most recent call last):
...
xmodal_keras.data.validation.DataValidationError: 1 problem in pairs.csv:
  pairs.csv:3: field 'age': expected a finite number, got 'old'
"""

import os
import pathlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
import tensorflow as tf

from xmodal_keras.data.image_files import file_problem
from xmodal_keras.data.readers.common import read_csv
from xmodal_keras.data.validation import ProblemCollector

WAV_EXPECTED = "a readable 16-bit PCM WAV file"


def pair_frame_lines(data: str | os.PathLike, frame: pd.DataFrame) -> list[int] | None:
    """The 1-based physical line of each row of a pair CSV's frame (the header is line 1).

    Lines are counted by the pair reader's own `read_csv`. `None` when `data` is not a CSV
    file or its records do not line up with `frame` (then problems name 1-based rows instead).
    """
    path = pathlib.Path(data)
    if path.suffix.lower() != ".csv" or not path.is_file():
        return None
    table = read_csv(path, ("image_path", "text", "label"), ProblemCollector())
    if table is None or len(table.rows) != len(frame):
        return None
    return [line for line, _ in table.rows]


def check_side_inputs(
    frame: pd.DataFrame,
    *,
    numeric_columns: Sequence[str] = (),
    categorical_columns: Sequence[str] = (),
    audio_column: str | None = None,
    audio_sample_rate: int = 16000,
    source: str = "DataFrame",
    lines: Sequence[int] | None = None,
    base_dir: str | os.PathLike | None = None,
    allow_outside_root: bool = True,
) -> pd.DataFrame:
    """Check the side-input columns of every row; return the frame with audio paths absolute.

    Args:
        frame: the pair frame.
        numeric_columns: columns whose every value must be a finite number.
        categorical_columns: columns of categories (any value; missing ones become `""`).
        audio_column: a column of WAV file paths (relative ones are taken from
            `base_dir`), or None. Every file is decoded once to check it.
        audio_sample_rate: the sample rate every WAV file must have. Defaults to 16000.
        source: the data's name in errors (a file path). Defaults to `"DataFrame"`.
        lines: the line of each row in `source` (e.g. `pair_frame_lines`). Defaults to
            `None`: 1-based row numbers.
        base_dir: folder of relative audio paths. Defaults to `None`: the working folder.
        allow_outside_root: accept audio paths that leave `base_dir` (`../x.wav`, absolute
            paths elsewhere). Defaults to `True`; the fusion trainer passes its setting.

    Returns:
        `frame` (a copy with absolute audio paths when `audio_column` is given).

    Raises:
        DataValidationError: every problem found: a missing column, a value that is not a
            finite number in a numeric column, an empty audio path, a file that is missing,
            not a 16-bit PCM WAV file or at another sample rate.
    """
    if lines is not None and len(lines) != len(frame):
        raise ValueError(
            f"`lines` must have one entry per row. Received: {len(lines)} lines, {len(frame)} rows"
        )

    def line(row: int) -> int:
        return int(lines[row]) if lines is not None else row + 1

    problems = ProblemCollector()
    columns = [*numeric_columns, *categorical_columns]
    if audio_column is not None:
        columns.append(audio_column)
    known = list(frame.columns)
    for column in columns:
        if column not in frame.columns:
            problems.add(source, None, column, "a column of that name", f"columns {known}")
    problems.raise_if_any(source)

    for column in numeric_columns:
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy("float64", na_value=np.nan)
        for row in np.flatnonzero(~np.isfinite(values)):
            value = frame[column].iloc[row]
            got = repr(value) if isinstance(value, str) else str(value)
            problems.add(source, line(int(row)), column, "a finite number", got)

    if audio_column is not None:
        frame = frame.copy()
        resolved = []
        decoded: dict[str, str | None] = {}  # path -> problem (None: fine)
        for row, value in enumerate(frame[audio_column].tolist()):
            if not isinstance(value, str) or not value.strip():
                problems.add(source, line(row), audio_column, "a WAV file path", repr(value))
                resolved.append(value)
                continue
            root = os.path.abspath(base_dir or "")
            path = os.path.abspath(os.path.join(root, value.strip()))
            resolved.append(path)
            if not allow_outside_root and os.path.commonpath([path, root]) != root:
                problems.add(
                    source,
                    line(row),
                    audio_column,
                    f"a file inside the data folder {root} (--allow-outside-root or "
                    "allow_outside_root=True reads files elsewhere)",
                    repr(value),
                )
                continue
            if path not in decoded:
                decoded[path] = _wav_problem(path, audio_sample_rate)
            if decoded[path] is not None:
                problems.add(source, line(row), audio_column, WAV_EXPECTED, decoded[path])
        frame[audio_column] = resolved
    problems.raise_if_any(source)
    return frame


def _wav_problem(path: str, sample_rate: int) -> str | None:
    reason = file_problem(path)  # before reading: a FIFO would block forever
    if reason is not None:
        return f"{path} ({reason})"
    try:
        _, rate = tf.audio.decode_wav(tf.io.read_file(path))
    except tf.errors.OpError as error:
        return f"{path} ({error.message.strip().splitlines()[0]})"
    if int(rate) != sample_rate:
        return f"{path} at {int(rate)} Hz (the run reads {sample_rate} Hz; resample it)"
    return None


def load_wav(path: tf.Tensor, num_samples: int) -> tf.Tensor:
    """A WAV file -> float32 `[num_samples]` in [-1, 1]: mono (channels averaged),
    cropped or zero-padded at the end. Graph-safe (use it in `tf.data`).

    Example:

    >>> import tempfile, wave, os
    >>> path = os.path.join(tempfile.mkdtemp(), "beep.wav")
    >>> with wave.open(path, "wb") as file:
    ...     file.setnchannels(1); file.setsampwidth(2); file.setframerate(8000)
    ...     file.writeframes(np.array([16384, -16384], "<i2").tobytes())
    >>> load_wav(tf.constant(path), 4).numpy().tolist()
    [0.5, -0.5, 0.0, 0.0]
    """
    audio, _ = tf.audio.decode_wav(tf.io.read_file(path))
    audio = tf.reduce_mean(audio, axis=-1)[:num_samples]
    audio = tf.pad(audio, [[0, num_samples - tf.shape(audio)[0]]])
    return tf.reshape(audio, [num_samples])
