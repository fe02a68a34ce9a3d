"""A tiny pair CSV with side-input columns (numbers, a category, WAV paths), written by the
side-input trainer tests and the CLI test."""

import wave

import numpy as np
from PIL import Image

SIZE = 16
RATE = 8000
SAMPLES = 800
SPLITS = ["train"] * 12 + ["test"] * 6  # no val split: one pipeline less to trace
COLORS = ["red", "blue", "green"]
HEADER = "image_path,text,label,split,age,height,color,audio_path"


def write_wav(path, samples: np.ndarray, rate: int = RATE) -> None:
    """int16 samples `[frames]` (mono) or `[frames, channels]`."""
    samples = samples.reshape(len(samples), -1)
    with wave.open(str(path), "wb") as file:
        file.setnchannels(samples.shape[1])
        file.setsampwidth(2)
        file.setframerate(rate)
        file.writeframes(samples.astype("<i2").tobytes())


def expected_waveform(samples: np.ndarray) -> np.ndarray:
    mono = samples.reshape(len(samples), -1).astype(np.float32).mean(axis=1) / 32768.0
    return np.pad(mono[:SAMPLES], (0, max(0, SAMPLES - len(mono))))


def make_pair_csv(root, rows=None):
    """A pair CSV in `root` with tiny PNGs and WAVs; returns `(csv path, {wav: samples})`."""
    rng = np.random.default_rng(0)
    (root / "img").mkdir(exist_ok=True)
    (root / "wav").mkdir(exist_ok=True)
    lines, clips = [HEADER], {}
    for i, split in enumerate(SPLITS):
        label = i % 2
        pixels = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "img" / f"{i}.png")
        # Clips shorter, equal and longer than SAMPLES; one stereo.
        frames = (500, SAMPLES, 1000)[i % 3]
        shape = (frames, 2) if i == 1 else (frames,)
        samples = rng.integers(-20000, 20000, shape).astype(np.int16)
        write_wav(root / "wav" / f"{i}.wav", samples)
        clips[f"wav/{i}.wav"] = samples
        # A colour only the test split has: it must not enter the vocabulary.
        color = "purple" if split == "test" and i % 2 else COLORS[i % 3]
        text = ["a red circle", "a blue square", "a small green star"][i % 3]
        lines.append(
            f"img/{i}.png,{text},{label},{split},{20 + 3 * i + 10 * label},"
            f"{1.5 + 0.1 * i},{color},wav/{i}.wav"
        )
    for row, column, value in rows or ():
        cells = lines[row].split(",")
        cells[HEADER.split(",").index(column)] = value
        lines[row] = ",".join(cells)
    path = root / "pairs.csv"
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path, clips
