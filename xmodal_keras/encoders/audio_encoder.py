"""Audio encoder: waveform (or precomputed frame features) -> small CNN -> sequence + pooled."""

import keras

from xmodal_keras.argument_checks import check_positive_int
from xmodal_keras.layers.log_mel_spectrogram import LogMelSpectrogram

AUDIO_INPUT_KINDS: tuple[str, ...] = ("waveform", "features")
"""The values `build_audio_encoder(input_kind=...)` accepts."""


def build_audio_encoder(
    *,
    input_kind: str = "waveform",
    num_samples: int = 16000,
    sample_rate: int = 16000,
    frame_length: int = 400,
    frame_step: int = 160,
    num_mel_bins: int = 40,
    feature_shape: tuple[int, int] | None = None,
    hidden_dim: int = 64,
    num_layers: int = 2,
    name: str = "audio_encoder",
) -> keras.Model:
    """Builds an audio encoder returning per-frame features and a pooled vector.

    `"waveform"` input: `LogMelSpectrogram` (`tf.signal`, in-graph) -> batch
    norm -> `num_layers` x (3x3 conv + ReLU + 2x2 max-pool) over (time, mel) ->
    each remaining time step's (mel x channels) flattened -> `Dense(hidden_dim)`.
    `"features"` input skips the spectrogram: precomputed frame features
    `[batch, frames, features]` (log-mels, VGGish or wav2vec frames ...) enter
    the same CNN. Waveforms must be padded or cropped to `num_samples` by the
    data pipeline.

    Args:
        input_kind: `"waveform"` or `"features"`. Defaults to `"waveform"`.
        num_samples: waveform length (`"waveform"` only). Defaults to 16000.
        sample_rate: samples per second (`"waveform"` only). Defaults to 16000.
        frame_length: STFT window in samples. Defaults to 400 (25 ms at 16 kHz).
        frame_step: STFT hop in samples. Defaults to 160 (10 ms at 16 kHz).
        num_mel_bins: mel bands. Defaults to 40.
        feature_shape: `(frames, features)` of precomputed features; required
            for `"features"`, refused for `"waveform"`. Defaults to `None`.
        hidden_dim: feature size of both outputs; the last conv stage has
            `hidden_dim` channels, earlier ones half as many each (at least 8).
            Defaults to 64.
        num_layers: conv + pool stages. Defaults to 2.
        name: model name. Defaults to `"audio_encoder"`.

    Returns:
        A `keras.Model` with float input `"audio"` (`[batch, num_samples]` or
        `[batch, *feature_shape]`) and outputs `{"sequence": [batch, frames',
        hidden_dim], "pooled": [batch, hidden_dim]}`, where `frames'` is the
        frame count after `num_layers` 2x poolings (rounded up).

    Example:

    >>> import numpy as np
    >>> encoder = build_audio_encoder(num_samples=4000, sample_rate=8000, frame_length=200,
    ...                               frame_step=100, num_mel_bins=16, hidden_dim=8)
    >>> out = encoder(np.zeros((2, 4000), "float32"))
    >>> tuple(out["sequence"].shape), tuple(out["pooled"].shape)
    ((2, 10, 8), (2, 8))
    """
    if input_kind not in AUDIO_INPUT_KINDS:
        raise ValueError(
            f"`input_kind` must be one of {AUDIO_INPUT_KINDS}. Received: input_kind={input_kind!r}"
        )
    check_positive_int("hidden_dim", hidden_dim)
    check_positive_int("num_layers", num_layers)
    if input_kind == "waveform":
        if feature_shape is not None:
            raise ValueError(
                "`feature_shape` only applies to input_kind='features'. "
                f"Received: feature_shape={feature_shape!r}"
            )
        check_positive_int("num_samples", num_samples)
        audio = keras.Input(shape=(num_samples,), dtype="float32", name="audio")
        spectrogram = LogMelSpectrogram(
            sample_rate=sample_rate,
            frame_length=frame_length,
            frame_step=frame_step,
            num_mel_bins=num_mel_bins,
            name="log_mel_spectrogram",
        )
        frames = spectrogram.num_frames(num_samples)
        if frames < 1:
            raise ValueError(
                "`num_samples` is shorter than one STFT window. "
                f"Received: num_samples={num_samples}, frame_length={frame_length}"
            )
        x = spectrogram(audio)
        num_features = num_mel_bins
    else:
        ok = (
            isinstance(feature_shape, tuple | list)
            and len(feature_shape) == 2
            and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in feature_shape)
        )
        if not ok:
            raise ValueError(
                "input_kind='features' needs `feature_shape=(frames, features)` positive ints. "
                f"Received: feature_shape={feature_shape!r}"
            )
        frames, num_features = feature_shape
        audio = keras.Input(shape=tuple(feature_shape), dtype="float32", name="audio")
        x = audio

    x = keras.layers.Reshape((frames, num_features, 1), name="add_channel")(x)
    x = keras.layers.BatchNormalization(name="input_norm")(x)
    for i in range(num_layers):
        width = min(hidden_dim, max(8, hidden_dim // 2 ** (num_layers - 1 - i)))
        x = keras.layers.Conv2D(
            width, 3, padding="same", activation="relu", name=f"block{i + 1}_conv"
        )(x)
        x = keras.layers.MaxPooling2D(2, padding="same", name=f"block{i + 1}_pool")(x)
    _, time_steps, bands, channels = x.shape
    x = keras.layers.Reshape((time_steps, bands * channels), name="frames")(x)
    sequence = keras.layers.Dense(hidden_dim, activation="relu", name="sequence")(x)
    pooled = keras.layers.GlobalAveragePooling1D(name="pooled")(sequence)
    return keras.Model(audio, {"sequence": sequence, "pooled": pooled}, name=name)
