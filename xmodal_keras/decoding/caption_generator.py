"""`CaptionGenerator`: batched in-graph captioning (greedy, beam, sampling) of a captioner."""

import dataclasses

import keras
import tensorflow as tf

from xmodal_keras.data.text_tokenizer import CaptionTokenizer
from xmodal_keras.decoding.beam_search import beam_search
from xmodal_keras.decoding.greedy_search import greedy_search
from xmodal_keras.decoding.sampling import sample_search
from xmodal_keras.models.captioner_parts import CAPTION_DECODER_NAME, IMAGE_ENCODER_NAME

METHODS = ("greedy", "beam", "sample")
# From this many rows a step the Transformer attends by batched MatMuls, below it by
# broadcast products (benchmarks/decoding.py on 2 CPU cores: batch 1 is faster with the
# products, batch 32 1.2x faster with MatMuls, 1.3x with XLA).
BATCHED_MATMUL_ROWS = 8


@dataclasses.dataclass(frozen=True)
class DecodingOptions:
    """How to pick tokens. `beam_width`/`length_penalty` apply to "beam"; `top_k`,
    `top_p`, `temperature` and `seed` to "sample"."""

    method: str = "greedy"
    beam_width: int = 3
    length_penalty: float = 0.0
    top_k: int | None = None
    top_p: float | None = None
    temperature: float = 1.0
    seed: int = 0

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"`method` must be one of {METHODS}. Received: method={self.method!r}")
        if not isinstance(self.beam_width, int) or self.beam_width < 1:
            raise ValueError(
                f"`beam_width` must be an int >= 1. Received: beam_width={self.beam_width!r}"
            )


class CaptionGenerator:
    """Captions images with a trained captioner's own layers, entirely in-graph.

    The image is encoded once; then the decoder's `step` (the same function `model.fit`
    trained through) runs inside a `tf.while_loop` for the whole batch: the recurrent
    state for the GRU and LSTM decoders, key/value caches for the Transformer. `encode`,
    `initial_state` and `step` are public so exports (SavedModel, TFLite) reuse them.

    Args:
        model: a model from `build_gru_captioner`, `build_lstm_captioner` or
            `build_transformer_captioner`.
        tokenizer: the `CaptionTokenizer` it was trained with.
        max_length: most tokens per caption. Defaults to the model's `sequence_length`.
        jit_compile: compile the decoding loop with XLA. On 2 CPU cores it decodes
            1.0-2.4x faster (`benchmarks/decoding.py`, batch 1 and 32) after a slower
            first call per batch shape; exports do not use it. Defaults to False.

    Example:

    >>> import numpy as np
    >>> from xmodal_keras.data.text_tokenizer import CaptionTokenizer
    >>> from xmodal_keras.models import build_gru_captioner
    >>> tokenizer = CaptionTokenizer.from_captions(["a red circle"], sequence_length=6)
    >>> model = build_gru_captioner(vocabulary_size=tokenizer.vocabulary_size,
    ...     sequence_length=6, image_shape=(32, 32, 3), encoder_kwargs={"hidden_dim": 8},
    ...     embedding_dim=8, hidden_dim=8)
    >>> out = CaptionGenerator(model, tokenizer).generate(np.zeros((2, 32, 32, 3), "uint8"))
    >>> out["tokens"].shape, out["text"].shape
    (TensorShape([2, 6]), TensorShape([2]))
    """

    def __init__(
        self,
        model: keras.Model,
        tokenizer: CaptionTokenizer,
        *,
        max_length: int | None = None,
        jit_compile: bool = False,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.encoder = model.get_layer(IMAGE_ENCODER_NAME)
        self.decoder = model.get_layer(CAPTION_DECODER_NAME)
        sequence_length = model.input["token_ids"].shape[1]
        if max_length is None:
            max_length = sequence_length
        if not isinstance(max_length, int) or not 1 <= max_length <= sequence_length:
            raise ValueError(
                f"`max_length` must be an int in [1, {sequence_length}] (the model's "
                f"sequence_length). Received: max_length={max_length!r}"
            )
        if self.decoder.vocabulary_size != tokenizer.vocabulary_size:
            raise ValueError(
                "The tokenizer does not match the model: vocabulary sizes differ. Received: "
                f"model={self.decoder.vocabulary_size}, tokenizer={tokenizer.vocabulary_size}"
            )
        self.max_length = max_length
        self.jit_compile = jit_compile
        self.image_shape = tuple(model.input["images"].shape[1:])
        self._functions = {}

    @property
    def num_regions(self) -> int:
        return self.encoder.output["grid"].shape[1]

    @property
    def has_attention(self) -> bool:
        """False for a decoder without visual attention (Show and Tell's LSTM)."""
        return getattr(self.decoder, "attends_to_regions", True)

    @property
    def has_step_attention(self) -> bool:
        """True when `step` returns attention weights (the GRU decoder)."""
        return self.has_attention and not hasattr(self.decoder, "cross_attention_weights")

    def encode(self, images) -> dict:
        """Images `[batch, H, W, 3]` (uint8 or float in [0, 255]) -> `{"grid", "pooled"}`."""
        return self.encoder(tf.cast(images, tf.float32), training=False)

    def initial_state(self, features: dict):
        return self.decoder.initial_state(features["grid"], features["pooled"])

    def step(self, token_ids, state, index):
        return self.decoder.step(token_ids, state, index, training=False)

    def _loop_step(self, batched_matmul: bool = False):
        """`step` for the decoding loop of a decoder with `step_weights` (the
        Transformer): its weights are read once, before the loop, not in every step."""
        weights = self.decoder.step_weights()

        def step(token_ids, state, index):
            return self.decoder.step(
                token_ids,
                state,
                index,
                training=False,
                weights=weights,
                batched_matmul=batched_matmul,
            )

        return step

    def search(self, images, options: DecodingOptions, *, return_attention: bool = False) -> dict:
        """Token ids and scores for a batch (plain TF; call inside a `tf.function`)."""
        features = self.encode(images)
        batch_size = tf.shape(images)[0]
        common = {
            "batch_size": batch_size,
            "start_id": self.tokenizer.start_id,
            "end_id": self.tokenizer.end_id,
            "max_length": self.max_length,
        }

        def run(step, state):
            if options.method == "beam":
                return beam_search(
                    step,
                    state,
                    beam_width=options.beam_width,
                    length_penalty=options.length_penalty,
                    **common,
                )
            if options.method == "sample":
                return sample_search(
                    step,
                    state,
                    top_k=options.top_k,
                    top_p=options.top_p,
                    temperature=options.temperature,
                    seed=options.seed,
                    **common,
                )
            step_attention = return_attention and self.has_step_attention
            return greedy_search(
                step,
                state,
                num_regions=self.num_regions if step_attention else None,
                **common,
            )

        if hasattr(self.decoder, "step_weights"):

            def run_transformer(batched_matmul: bool):
                state = self.decoder.initial_state(
                    features["grid"], features["pooled"], batched_matmul=batched_matmul
                )
                return run(self._loop_step(batched_matmul), state)

            # The batch is unknown when a SavedModel signature is traced, so both loops go
            # in the graph and the batch picks one when it runs.
            beams = options.beam_width if options.method == "beam" else 1
            batched_matmul = (images.shape[0] or batch_size) * beams >= BATCHED_MATMUL_ROWS
            if isinstance(batched_matmul, bool):
                result = run_transformer(batched_matmul)
            else:
                result = tf.cond(
                    batched_matmul,
                    lambda: run_transformer(True),
                    lambda: run_transformer(False),
                )
        else:
            result = run(self.step, self.initial_state(features))
        if return_attention and "attention" not in result:
            result["attention"] = self._cross_attention(result["tokens"], features["grid"])
        return result

    def _cross_attention(self, tokens, grid):
        """Transformer maps: row t is the attention while predicting token t."""
        batch = tf.shape(tokens)[0]
        starts = tf.fill([batch, 1], tf.constant(self.tokenizer.start_id, tf.int32))
        inputs = tf.concat([starts, tokens[:, :-1]], axis=1)
        weights = tf.cast(self.decoder.cross_attention_weights(inputs, grid), tf.float32)
        produced = tf.cast(tf.not_equal(tokens, 0), tf.float32)
        return weights * produced[:, :, None]

    def generate(
        self, images, *, return_attention: bool = False, **options
    ) -> dict[str, tf.Tensor]:
        """Caption a batch of images.

        Args:
            images: `[batch, H, W, 3]` uint8 or float RGB in [0, 255], at `image_shape`.
            return_attention: also return `"attention"` `[batch, max_length, regions]`
                (greedy only; GRU: additive attention, Transformer: last block's
                cross-attention averaged over heads; the LSTM has none: ValueError).
            **options: fields of `DecodingOptions` (`method="greedy"|"beam"|"sample"`,
                `beam_width`, `length_penalty`, `top_k`, `top_p`, `temperature`, `seed`).

        Returns:
            `{"tokens": int32 [batch, max_length], "text": string [batch],
            "scores": float32 [batch]}` (+ `"attention"`).
        """
        options = DecodingOptions(**options)
        if return_attention and options.method != "greedy":
            raise ValueError(
                "Attention maps come with greedy decoding only. "
                f"Received: method={options.method!r}, return_attention=True"
            )
        if return_attention and not self.has_attention:
            raise ValueError(
                "This captioner's decoder does not attend to image regions, so it has no "
                "attention maps; drop --attention-map / return_attention. "
                f"Received: decoder {type(self.decoder).__name__}"
            )
        images = tf.convert_to_tensor(images)
        if tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(
                f"Images must be [batch, {', '.join(map(str, self.image_shape))}]. "
                f"Received: shape={tuple(images.shape)}"
            )
        # One trace per decoding setting and image dtype, whatever the batch size: a
        # retrace costs ~1 s on 2 CPU cores, more than decoding a batch.
        key = (options, return_attention, images.dtype)
        if key not in self._functions:
            self._functions[key] = self._decode_function(options, return_attention, images.dtype)
        return self._functions[key](images)

    def _decode_function(self, options: DecodingOptions, return_attention: bool, dtype):
        """Search and detokenize in one graph call (eager detokenizing took 2.8 ms a call,
        as long as 3 decoding steps); XLA compiles the search only (no string ops)."""

        def search(batch):
            return self.search(batch, options, return_attention=return_attention)

        if self.jit_compile:
            search = tf.function(search, jit_compile=True)

        def decode(batch):
            result = dict(search(batch))
            result["text"] = self.tokenizer.detokenize(result["tokens"])
            return result

        return tf.function(
            decode, input_signature=[tf.TensorSpec((None, *self.image_shape), dtype)]
        )
