import numpy as np
import pytest
from helpers import run_model_saving_test

from xmodal_keras.encoders.audio_encoder import build_audio_encoder

WAVEFORM_KWARGS = {
    "num_samples": 2000,
    "sample_rate": 8000,
    "frame_length": 200,
    "frame_step": 80,
    "num_mel_bins": 16,
    "hidden_dim": 8,
}


def test_waveform_encoder_shapes_and_reload():
    encoder = build_audio_encoder(**WAVEFORM_KWARGS)
    assert encoder.input.name == "audio" and tuple(encoder.input.shape) == (None, 2000)
    waveforms = np.random.default_rng(0).uniform(-1, 1, size=(2, 2000)).astype("float32")
    out = encoder(waveforms)
    # 23 frames x 16 mel -> two 2x2 same-padded pools -> 6 time steps.
    assert tuple(out["sequence"].shape) == (2, 6, 8)
    assert tuple(out["pooled"].shape) == (2, 8)
    np.testing.assert_allclose(out["pooled"], np.mean(out["sequence"], axis=1), rtol=1e-5)
    assert encoder.get_layer("log_mel_spectrogram").num_mel_bins == 16
    run_model_saving_test(encoder, waveforms, atol=1e-5)


def test_precomputed_features_encoder():
    encoder = build_audio_encoder(
        input_kind="features", feature_shape=(10, 12), hidden_dim=8, num_layers=1
    )
    out = encoder(np.ones((3, 10, 12), "float32"))
    assert tuple(out["sequence"].shape) == (3, 5, 8)
    assert not any(layer.name == "log_mel_spectrogram" for layer in encoder.layers)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"input_kind": "mfcc"}, r"input_kind='mfcc'"),
        ({"input_kind": "features"}, r"feature_shape=None"),
        ({"input_kind": "features", "feature_shape": (10, 0)}, r"feature_shape=\(10, 0\)"),
        ({"feature_shape": (10, 12)}, r"feature_shape=\(10, 12\)"),
        ({"num_samples": 100}, r"num_samples=100, frame_length=400"),
        ({"hidden_dim": 0}, r"hidden_dim=0"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=f"Received: {message}"):
        build_audio_encoder(**kwargs)
