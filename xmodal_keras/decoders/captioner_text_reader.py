"""A Transformer captioner's decoder reading a given text about an image, as features."""

import keras
from keras import ops

from xmodal_keras.api_export import xmodal_export
from xmodal_keras.decoders.transformer_caption_decoder import TransformerCaptionDecoder


@xmodal_export
class CaptionerTextReader(keras.layers.Layer):
    """Reads a tokenised text with a captioner's decoder, conditioned on the image grid.

    The text `[<start>, w1, ..., wn, <end>, <pad>...]` (`sequence_length + 1` ids, as
    `CaptionTokenizer` gives them) is read teacher-forced, exactly as in captioner
    training: the decoder sees ids `[:, :-1]` and scores the next ids `[:, 1:]`. The output
    concatenates the masked mean of the last block's hidden states over the text's tokens
    (`hidden_dim` values: every token has cross-attended to the image regions) with the
    text's log-likelihood under the captioner, summed and per token (2 values). A
    captioner trained on an image's captions ranks a true statement about it above a false
    one, so these features carry the image-text match that a classifier head reads
    (`build_fusion_classifier_from_captioner`).

    Without a grid (`grid=None`) the decoder reads the text against a blank image (a grid
    of zeros of `grid_shape`): the text-only baseline with the same layers.

    Args:
        decoder_config: `TransformerCaptionDecoder.get_config()` of the decoder to mirror;
            a fresh decoder is built from it (copy trained weights in with
            `reader.decoder.set_weights(...)`).
        grid_shape: `(regions, channels)` of the image grid, needed only for `grid=None`.
            Defaults to `None`.
        **kwargs: forwarded to `keras.layers.Layer`.

    Example:

    >>> import numpy as np
    >>> decoder = TransformerCaptionDecoder(
    ...     vocabulary_size=12, sequence_length=5, hidden_dim=8, num_heads=2, num_layers=1)
    >>> reader = CaptionerTextReader(decoder.get_config())
    >>> features = reader(np.array([[2, 5, 6, 3, 0, 0]]), np.ones((1, 4, 6)))
    >>> tuple(features.shape)
    (1, 10)
    """

    def __init__(
        self,
        decoder_config: dict,
        grid_shape: tuple[int, int] | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(decoder_config, dict):
            raise ValueError(
                "`decoder_config` must be a `TransformerCaptionDecoder.get_config()` dict. "
                f"Received: decoder_config={decoder_config!r}"
            )
        if grid_shape is not None:
            grid_shape = tuple(grid_shape)
            if len(grid_shape) != 2 or not all(
                isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in grid_shape
            ):
                raise ValueError(
                    "`grid_shape` must be `(regions, channels)`, two positive ints. "
                    f"Received: grid_shape={grid_shape!r}"
                )
        self.decoder_config = dict(decoder_config)
        self.grid_shape = grid_shape
        self.decoder = TransformerCaptionDecoder.from_config(
            {**self.decoder_config, "name": "caption_decoder", "dtype": self.dtype_policy}
        )

    @property
    def output_dim(self) -> int:
        """Features per text: the decoder's `hidden_dim` + 2 log-likelihood values."""
        return self.decoder.hidden_dim + 2

    def build(self, token_ids_shape, grid_shape=None):
        if grid_shape is None:
            if self.grid_shape is None:
                raise ValueError(
                    "Reading texts without an image grid needs `grid_shape` (regions, "
                    "channels) for the blank grid. Received: grid_shape=None"
                )
            grid_shape = (token_ids_shape[0], *self.grid_shape)
        if not self.decoder.built:
            self.decoder.build((token_ids_shape[0], None), grid_shape)
        self.built = True

    def call(self, token_ids, grid=None, training=None):
        if grid is None:
            batch = ops.shape(token_ids)[0]
            grid = ops.zeros((batch, *self.grid_shape), dtype=self.compute_dtype)
        inputs, targets = token_ids[:, :-1], token_ids[:, 1:]
        memory = self.decoder.prepare_grid(grid)
        hidden = self.decoder.token_embedding(inputs)
        for layer in self.decoder.decoder_layers:
            hidden = layer(hidden, memory, training=training)
        hidden = ops.cast(hidden, "float32")
        read = ops.expand_dims(ops.cast(ops.not_equal(inputs, 0), "float32"), -1)
        pooled = ops.sum(hidden * read, axis=1) / ops.maximum(ops.sum(read, axis=1), 1.0)
        logits = ops.cast(self.decoder.logits_dense(hidden), "float32")
        target_log_probs = ops.take_along_axis(
            ops.log_softmax(logits, axis=-1), ops.expand_dims(targets, -1), axis=-1
        )
        scored = ops.expand_dims(ops.cast(ops.not_equal(targets, 0), "float32"), -1)
        log_likelihood = ops.sum(target_log_probs * scored, axis=1)
        per_token = log_likelihood / ops.maximum(ops.sum(scored, axis=1), 1.0)
        return ops.concatenate([pooled, log_likelihood, per_token], axis=-1)

    def compute_output_spec(self, token_ids, grid=None, training=None):
        return keras.KerasTensor((token_ids.shape[0], self.output_dim), dtype="float32")

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "decoder_config": self.decoder_config,
                "grid_shape": None if self.grid_shape is None else list(self.grid_shape),
            }
        )
        return config
