"""Waveform -> log-mel spectrogram with `tf.signal`, as a layer."""

import keras
import tensorflow as tf

from xmodal_keras.api_export import xmodal_export
from xmodal_keras.argument_checks import check_positive_int


@xmodal_export
class LogMelSpectrogram(keras.layers.Layer):
    """Turns mono waveforms into log-mel spectrograms, in-graph.

    `|STFT|` (Hann window, `tf.signal.stft`, no end padding) -> mel filter bank
    (`tf.signal.linear_to_mel_weight_matrix`) -> `log(mel + log_offset)`, the
    front end of e.g. Hershey et al., *CNN Architectures for Large-Scale Audio
    Classification* (2017). Core TensorFlow ops only, so it runs inside
    SavedModels served by stock TF Serving. Has no weights.

    Call arguments:
        waveforms: float `[batch, num_samples]` in [-1, 1].

    Returns:
        float32 `[batch, frames, num_mel_bins]` with
        `frames = 1 + (num_samples - frame_length) // frame_step`.

    Args:
        sample_rate: int, samples per second. Defaults to `16000`.
        frame_length: int, STFT window in samples. Defaults to `400` (25 ms).
        frame_step: int, hop in samples. Defaults to `160` (10 ms).
        fft_length: int, FFT size. Defaults to `None`: the next power of two
            >= `frame_length`.
        num_mel_bins: int. Defaults to `40`.
        lower_edge_hertz: float. Defaults to `20.0`.
        upper_edge_hertz: float. Defaults to `None`: `sample_rate / 2`.
        log_offset: float added before the log. Defaults to `1e-6`.
        **kwargs: forwarded to `keras.layers.Layer` (`name`, `dtype`, ...).

    Example:

    >>> import numpy as np
    >>> layer = LogMelSpectrogram(sample_rate=8000, frame_length=200, frame_step=80,
    ...                           num_mel_bins=16)
    >>> tuple(layer(np.zeros((2, 8000), "float32")).shape)
    (2, 98, 16)
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        frame_length: int = 400,
        frame_step: int = 160,
        fft_length: int | None = None,
        num_mel_bins: int = 40,
        lower_edge_hertz: float = 20.0,
        upper_edge_hertz: float | None = None,
        log_offset: float = 1e-6,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for arg, value in (
            ("sample_rate", sample_rate),
            ("frame_length", frame_length),
            ("frame_step", frame_step),
            ("num_mel_bins", num_mel_bins),
        ):
            check_positive_int(arg, value)
        if fft_length is not None:
            check_positive_int("fft_length", fft_length)
            if fft_length < frame_length:
                raise ValueError(
                    "`fft_length` must be >= `frame_length`. "
                    f"Received: fft_length={fft_length}, frame_length={frame_length}"
                )
        upper = sample_rate / 2 if upper_edge_hertz is None else upper_edge_hertz
        if not 0 <= lower_edge_hertz < upper <= sample_rate / 2:
            raise ValueError(
                "Need 0 <= lower_edge_hertz < upper_edge_hertz <= sample_rate / 2. Received: "
                f"lower_edge_hertz={lower_edge_hertz!r}, upper_edge_hertz={upper_edge_hertz!r}, "
                f"sample_rate={sample_rate}"
            )
        if not log_offset > 0:
            raise ValueError(f"`log_offset` must be > 0. Received: log_offset={log_offset!r}")
        self.sample_rate = sample_rate
        self.frame_length = frame_length
        self.frame_step = frame_step
        self.fft_length = fft_length
        self.num_mel_bins = num_mel_bins
        self.lower_edge_hertz = float(lower_edge_hertz)
        self.upper_edge_hertz = None if upper_edge_hertz is None else float(upper_edge_hertz)
        self.log_offset = float(log_offset)
        self.built = True

    def _fft_length(self) -> int:
        if self.fft_length is not None:
            return self.fft_length
        return 1 << (self.frame_length - 1).bit_length()

    def call(self, waveforms):
        waveforms = tf.cast(waveforms, "float32")
        stft = tf.signal.stft(
            waveforms,
            frame_length=self.frame_length,
            frame_step=self.frame_step,
            fft_length=self._fft_length(),
            window_fn=tf.signal.hann_window,
        )
        mel_matrix = tf.signal.linear_to_mel_weight_matrix(
            num_mel_bins=self.num_mel_bins,
            num_spectrogram_bins=self._fft_length() // 2 + 1,
            sample_rate=self.sample_rate,
            lower_edge_hertz=self.lower_edge_hertz,
            upper_edge_hertz=self.upper_edge_hertz or self.sample_rate / 2,
        )
        mel = tf.tensordot(tf.abs(stft), mel_matrix, axes=1)
        return tf.math.log(mel + self.log_offset)

    def num_frames(self, num_samples: int) -> int:
        """Frames produced from `num_samples` samples (0 when shorter than a window)."""
        return max(0, 1 + (num_samples - self.frame_length) // self.frame_step)

    def compute_output_shape(self, input_shape):
        samples = input_shape[-1]
        frames = None if samples is None else self.num_frames(samples)
        return (*input_shape[:-1], frames, self.num_mel_bins)

    def compute_output_spec(self, waveforms):
        return keras.KerasTensor(self.compute_output_shape(waveforms.shape), dtype="float32")

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "sample_rate": self.sample_rate,
                "frame_length": self.frame_length,
                "frame_step": self.frame_step,
                "fft_length": self.fft_length,
                "num_mel_bins": self.num_mel_bins,
                "lower_edge_hertz": self.lower_edge_hertz,
                "upper_edge_hertz": self.upper_edge_hertz,
                "log_offset": self.log_offset,
            }
        )
        return config
