"""LSTM caption decoder with the image as its first input (Show and Tell, im2txt)."""

import keras

from xmodal_keras.api_export import xmodal_export
from xmodal_keras.argument_checks import check_positive_int


@xmodal_export
class LSTMCaptionDecoder(keras.layers.Layer):
    """LSTM that predicts the next caption token from the pooled image vector.

    Vinyals et al. 2015, "Show and Tell" (TensorFlow's im2txt): the pooled image vector
    is projected to `embedding_dim` and fed to the LSTM as its first input (step -1,
    from a zero state); the resulting `(hidden, cell)` state starts the caption, whose
    word embeddings the LSTM then reads (teacher forcing); a dense layer maps each
    output to vocabulary logits. There is no attention: the region grid is accepted so
    every decoder takes the encoder's two outputs, and ignored.

    Training (`call`) runs a `keras.layers.LSTM` over the caption (cuDNN on a GPU);
    decoding (`initial_state` + `step`) runs that layer's own `LSTMCell`, the same
    weights and equations, one token at a time, so the generator, the SavedModel and
    the TFLite model cannot drift from training (a test checks equal logits). cuDNN
    kernels do not compile with XLA: on a GPU, `jit_compile=True` training falls back to
    graph mode (Keras warns); decoding, which runs the cell, still compiles.

    Args:
        vocabulary_size: int, number of token ids.
        embedding_dim: int, size of the word and image embeddings. Defaults to 256.
        hidden_dim: int, LSTM state size. Defaults to 512.
        dropout: float, dropout on the LSTM outputs before the logits layer. Defaults
            to 0.
        **kwargs: forwarded to `keras.layers.Layer`.

    Example:

    >>> import numpy as np
    >>> decoder = LSTMCaptionDecoder(vocabulary_size=12, embedding_dim=8, hidden_dim=8)
    >>> logits = decoder(np.ones((2, 5), "int32"), np.ones((2, 4, 6)), np.ones((2, 6)))
    >>> tuple(logits.shape)
    (2, 5, 12)
    """

    # No per-step attention over regions: no attention maps (see `CaptionGenerator`).
    attends_to_regions = False

    def __init__(
        self,
        vocabulary_size: int,
        embedding_dim: int = 256,
        hidden_dim: int = 512,
        dropout: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in [
            ("vocabulary_size", vocabulary_size),
            ("embedding_dim", embedding_dim),
            ("hidden_dim", hidden_dim),
        ]:
            check_positive_int(name, value)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout!r}")
        self.vocabulary_size = vocabulary_size
        self.embedding_dim = embedding_dim
        self.hidden_dim = hidden_dim
        self.dropout = dropout

    def build(self, token_ids_shape, grid_shape, pooled_shape):
        batch = pooled_shape[0]
        dtype = self.dtype_policy
        self.image_embedding_dense = keras.layers.Dense(
            self.embedding_dim, name="image_embedding_dense", dtype=dtype
        )
        self.image_embedding_dense.build(pooled_shape)
        self.token_embedding = keras.layers.Embedding(
            self.vocabulary_size, self.embedding_dim, name="token_embedding", dtype=dtype
        )
        self.token_embedding.build((batch,))
        self.lstm = keras.layers.LSTM(
            self.hidden_dim, return_sequences=True, name="lstm", dtype=dtype
        )
        self.lstm.build((batch, None, self.embedding_dim))
        self.output_dropout = keras.layers.Dropout(self.dropout, name="output_dropout")
        self.logits_dense = keras.layers.Dense(
            self.vocabulary_size, name="logits_dense", dtype=dtype
        )
        self.logits_dense.build((batch, self.hidden_dim))
        self.built = True

    def initial_state(self, grid, pooled) -> dict:
        """Decoding state before the first token: the LSTM's `{"hidden", "cell"}` after
        reading the image embedding from a zero state. `grid` is unused."""
        image = self.image_embedding_dense(pooled)
        zeros = keras.ops.zeros((keras.ops.shape(pooled)[0], self.hidden_dim), image.dtype)
        _, (hidden, cell) = self.lstm.cell(image, [zeros, zeros])
        return {"hidden": hidden, "cell": cell}

    def step(self, token_ids, state: dict, index=None, training=None):
        """One decoding step.

        Args:
            token_ids: int tensor `[batch]`, the previous token.
            state: dict from `initial_state` or a previous `step`.
            index: the token's position; unused (the LSTM state carries it), accepted so
                every decoder's `step` has one signature.

        Returns:
            `(logits [batch, vocabulary_size], new_state, None)`: no attention.
        """
        embedded = self.token_embedding(token_ids)
        output, (hidden, cell) = self.lstm.cell(
            embedded, [state["hidden"], state["cell"]], training=training
        )
        logits = self.logits_dense(self.output_dropout(output, training=training))
        return logits, {"hidden": hidden, "cell": cell}, None

    def call(self, token_ids, grid, pooled, training=None):
        state = self.initial_state(grid, pooled)
        outputs = self.lstm(
            self.token_embedding(token_ids),
            initial_state=[state["hidden"], state["cell"]],
            training=training,
        )
        return self.logits_dense(self.output_dropout(outputs, training=training))

    def compute_output_shape(self, token_ids_shape, grid_shape, pooled_shape):
        return (*token_ids_shape, self.vocabulary_size)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "embedding_dim": self.embedding_dim,
                "hidden_dim": self.hidden_dim,
                "dropout": self.dropout,
            }
        )
        return config
