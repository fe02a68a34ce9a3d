import numpy as np
import pytest
from helpers import run_layer_test

from xmodal_keras.layers.log_mel_spectrogram import LogMelSpectrogram

KWARGS = {"sample_rate": 8000, "frame_length": 200, "frame_step": 80, "num_mel_bins": 16}


def _sine(frequency, seconds=0.25, sample_rate=8000):
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return np.sin(2 * np.pi * frequency * t).astype("float32")


def test_layer_contract():
    waveforms = np.stack([_sine(440), _sine(1000)])
    run_layer_test(
        LogMelSpectrogram,
        init_kwargs={**KWARGS, "fft_length": 256, "upper_edge_hertz": 3800.0, "name": "mel"},
        input_data=waveforms,
        expected_output_shape=(2, 1 + (2000 - 200) // 80, 16),
        expected_num_trainable_weights=0,
        atol=1e-4,
    )


def _mel(hz):
    return 1127.0 * np.log1p(np.asarray(hz) / 700.0)


@pytest.mark.parametrize("frequency", [300.0, 1000.0, 2500.0])
def test_sine_peaks_in_the_mel_bin_of_its_frequency(frequency):
    spectrogram = np.asarray(LogMelSpectrogram(**KWARGS)(_sine(frequency)[None]))
    peak_bin = int(np.argmax(spectrogram[0].mean(axis=0)))
    # Bin k of a triangular mel bank is centred at edge k + 1 of num_mel_bins + 2 mel edges.
    edges = np.linspace(_mel(20.0), _mel(4000.0), 16 + 2)
    spacing = edges[1] - edges[0]
    assert abs(edges[peak_bin + 1] - _mel(frequency)) <= spacing


def test_silence_is_log_offset():
    spectrogram = LogMelSpectrogram(**KWARGS, log_offset=1e-3)(np.zeros((1, 800), "float32"))
    np.testing.assert_allclose(spectrogram, np.log(1e-3), rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"frame_step": 0}, "frame_step=0"),
        ({"frame_length": 400, "fft_length": 256}, "fft_length=256, frame_length=400"),
        ({"sample_rate": 8000, "upper_edge_hertz": 5000.0}, "upper_edge_hertz=5000.0"),
        ({"log_offset": 0.0}, "log_offset=0.0"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=f"Received: .*{message}"):
        LogMelSpectrogram(**kwargs)
