"""Export a captioner model to LiteRT (TFLite) for phones: builtin ops only.

Writes `OUT_DIR/NAME_tflite/` atomically:

```
NAME_tflite/
  model.tflite    signatures `caption` (whole greedy loop inside), `encode`, `decode_step`
  vocab.txt       one token a line; line i (0-based) is token id i
  metadata.json   input size/dtype/normalisation, special ids, max length, signatures
```

Signatures (batch 1; names as the LiteRT `SignatureRunner` sees them):

- `caption`: `image` uint8 `[1, H, W, 3]` -> `tokens` int32 `[1, T]` (ids after the start
  token, `<end>` included, 0 after it), `score` float32 `[1]` (sum of log-probabilities).
  The greedy loop (`decoding.greedy_search`) runs inside as a LiteRT `WHILE`.
- `encode`: `image` -> the decoder's initial state, flattened into named float32 tensors
  `state_<path>` (GRU: `state_grid`, `state_hidden`; LSTM: `state_cell`, `state_hidden`;
  Transformer: per-block fixed-size key and value caches `state_self_keys_0`, ...,
  `state_cross_values_0`, ...).
- `decode_step`: `token` int32 `[1]`, `index` int32 `[1]` (position, 0 for the first
  token after `<start>`) and every `state_*` -> `logits` float32 `[1, V]`, `next_token`
  int32 `[1]` (argmax) and the new `state_*` (feed them back unchanged).

All three call the captioner's own `CaptionGenerator.encode / initial_state / step`, the
functions training and the Keras generator use, so they cannot drift.

Quantization (`quantize=`): `"none"` (float32), `"float16"` (float16 weights),
`"dynamic"` (int8 weights, float activations), `"int8"` (full-integer: int8 weights and
activations calibrated on training images, float32 at every signature's inputs and
outputs) and `"int16x8"` (the same with int16 activations: LiteRT's 16x8 kernels, closer
to float). Every variant has the same three signatures. TF 2.21's converter crashes
calibrating the `WHILE` loop of `caption`, so both full-integer variants convert to
float32 and quantize that file with `ai-edge-quantizer`
(`tflite_int8.quantize_full_integer`), the loop's body taking the ranges of
`decode_step`: the in-model loop gives the tokens an app's loop over `encode` +
`decode_step` gives. In both, the word projection (the logits over the vocabulary) keeps
float16 weights and runs in float, as the argmax and log-softmax after it do (and the
Transformer attention's exp and max: ops ai-edge-quantizer leaves in float): int8
weights there changed near-tied words more than any other layer's (see `tflite_int8`).

`metadata.json` records the file's `size` (`tflite_size.size_breakdown`: weights, scales,
structure).
"""

import os
import pathlib
from collections.abc import Iterator, Sequence

import keras
import numpy as np
import tensorflow as tf

from xmodal_keras.data.image_preprocessing import load_image
from xmodal_keras.data.text_tokenizer import SPECIAL_TOKENS, CaptionTokenizer
from xmodal_keras.decoding.caption_generator import CaptionGenerator
from xmodal_keras.decoding.greedy_search import greedy_search
from xmodal_keras.export.float32_model import float32_copy
from xmodal_keras.export.tflite_base import (
    MODEL_FILE,
    VOCABULARY_FILE,
    signature_details,
    tflite_folder,
    write_tflite_folder,
)
from xmodal_keras.export.tflite_int8 import LOOP_BODY_SUFFIX, quantize_full_integer
from xmodal_keras.export.tflite_ops import list_tflite_ops, non_builtin_ops
from xmodal_keras.export.tflite_size import size_breakdown

QUANTIZATIONS = ("none", "float16", "dynamic", "int8", "int16x8")
# Full-integer variants (calibrated on images) -> their activation bits.
ACTIVATION_BITS = {"int8": 8, "int16x8": 16}
METADATA_FORMAT = "xmodal_keras.tflite_captioner"
METADATA_VERSION = 1
CAPTION_SIGNATURE = "caption"
ENCODE_SIGNATURE = "encode"
DECODE_STEP_SIGNATURE = "decode_step"
STATE_PREFIX = "state_"

SIGNATURES = (CAPTION_SIGNATURE, ENCODE_SIGNATURE, DECODE_STEP_SIGNATURE)
# Which signature's int8 ranges another one reuses (the same computation in both).
_SHARED_RANGES = (
    (ENCODE_SIGNATURE, CAPTION_SIGNATURE),
    (DECODE_STEP_SIGNATURE, CAPTION_SIGNATURE + LOOP_BODY_SUFFIX),
)


def _paths(state, prefix=()) -> list[tuple]:
    """Paths of a nest's leaves in `tf.nest.flatten` order (dict keys sorted)."""
    if isinstance(state, dict):
        return [p for key in sorted(state) for p in _paths(state[key], (*prefix, key))]
    if isinstance(state, list | tuple):
        return [p for i, item in enumerate(state) for p in _paths(item, (*prefix, i))]
    return [prefix]


def state_names(state) -> list[str]:
    """`state_<path>` for each tensor of a decoder state, in `tf.nest.flatten` order.

    Example:

    >>> state_names({"hidden": 0, "keys": [0, 0]})
    ['state_hidden', 'state_keys_0', 'state_keys_1']
    """
    names = [STATE_PREFIX + "_".join(str(part) for part in path) for path in _paths(state)]
    if len(names) != len(tf.nest.flatten(state)) or len(set(names)) != len(names):
        raise ValueError(f"Cannot name the decoder state's tensors. Received: {names}")
    return names


class CaptionerTFLiteModule(tf.Module):
    """The three LiteRT signatures of a captioner as `tf.function`s of fixed signature.

    Args:
        generator: a `CaptionGenerator` (its model, tokenizer and `max_length`).
    """

    def __init__(self, generator: CaptionGenerator):
        super().__init__(name="captioner_tflite")
        self.generator = generator
        # Tracking the variables' values keeps them in the module's graph captures.
        self.model_variables = [v.value for v in generator.model.variables]
        height, width, channels = generator.image_shape
        self.image_spec = tf.TensorSpec([1, height, width, channels], tf.uint8, name="image")
        probe = generator.initial_state(generator.encode(tf.zeros([1, height, width, channels])))
        self.state_structure = probe
        self.state_names = state_names(probe)
        self.state_specs = [
            tf.TensorSpec(tensor.shape, tensor.dtype, name=name)
            for name, tensor in zip(self.state_names, tf.nest.flatten(probe), strict=True)
        ]

        # LiteRT names each signature after its Python function: caption, encode, decode_step.
        def caption(image):
            return self._caption(image)

        def encode(image):
            return self._encode(image)

        def decode_step(token, index, *state):
            return self._decode_step(token, index, *state)

        self.caption = tf.function(caption, input_signature=[self.image_spec])
        self.encode = tf.function(encode, input_signature=[self.image_spec])
        self.decode_step = tf.function(
            decode_step,
            input_signature=[
                tf.TensorSpec([1], tf.int32, name="token"),
                tf.TensorSpec([1], tf.int32, name="index"),
                *self.state_specs,
            ],
        )

    def _initial_state(self, image):
        return self.generator.initial_state(self.generator.encode(image))

    def _flat_state(self, state) -> dict[str, tf.Tensor]:
        return dict(zip(self.state_names, tf.nest.flatten(state), strict=True))

    def _caption(self, image):
        tokenizer = self.generator.tokenizer
        result = greedy_search(
            self.generator.step,
            self._initial_state(image),
            batch_size=1,
            start_id=tokenizer.start_id,
            end_id=tokenizer.end_id,
            max_length=self.generator.max_length,
        )
        return {"tokens": result["tokens"], "score": result["scores"]}

    def _encode(self, image):
        return self._flat_state(self._initial_state(image))

    def _decode_step(self, token, index, *state):
        state = tf.nest.pack_sequence_as(self.state_structure, list(state))
        logits, state, _ = self.generator.step(token, state, index[0])
        logits = tf.cast(logits, tf.float32)
        outputs = self._flat_state(state)
        outputs["logits"] = logits
        outputs["next_token"] = tf.argmax(logits, axis=-1, output_type=tf.int32)
        return outputs

    def concrete_functions(self, signatures: Sequence[str]) -> list:
        return [getattr(self, name).get_concrete_function() for name in signatures]


def calibration_samples(
    generator: CaptionGenerator, names: list[str], images: np.ndarray
) -> dict[str, list[dict[str, np.ndarray]]]:
    """int8 calibration inputs per signature: each image for `caption` and `encode`, and
    the `decode_step` inputs along the Keras greedy path (real states, real tokens) up to
    its end token."""
    samples: dict[str, list[dict[str, np.ndarray]]] = {key: [] for key in SIGNATURES}
    for key, inputs in _step_samples(generator, names, images):
        samples[key].append(inputs)
    return samples


def _step_samples(
    generator: CaptionGenerator, names: list[str], images: np.ndarray
) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
    tokenizer = generator.tokenizer
    step = tf.function(generator.step, reduce_retracing=True)
    for image in images:
        batch = tf.constant(image[None])
        yield CAPTION_SIGNATURE, {"image": image[None]}
        yield ENCODE_SIGNATURE, {"image": image[None]}
        state = generator.initial_state(generator.encode(batch))
        token = tf.constant([tokenizer.start_id], tf.int32)
        for index in range(generator.max_length):
            inputs = {
                name: tensor.numpy()
                for name, tensor in zip(names, tf.nest.flatten(state), strict=True)
            }
            inputs["token"] = token.numpy()
            inputs["index"] = np.array([index], np.int32)
            yield DECODE_STEP_SIGNATURE, inputs
            logits, state, _ = step(token, state, tf.constant(index))
            token = tf.argmax(logits, axis=-1, output_type=tf.int32)
            if int(token[0]) == tokenizer.end_id:
                break


def _check_images(images, image_shape) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(image_shape) or not len(images):
        raise ValueError(
            f"`representative_images` must be uint8 [N, {', '.join(map(str, image_shape))}] "
            f"with N >= 1, or image paths. Received: shape={images.shape}"
        )
    return np.clip(np.round(images), 0, 255).astype(np.uint8)


def convert_captioner(
    generator: CaptionGenerator,
    *,
    quantize: str = "none",
    representative_images: np.ndarray | None = None,
) -> tuple[bytes, CaptionerTFLiteModule]:
    """Convert a captioner to a `.tflite` flatbuffer (builtin ops only).

    Args:
        generator: the `CaptionGenerator` of the trained model.
        quantize: one of `QUANTIZATIONS`. Defaults to `"none"`.
        representative_images: uint8 `[N, H, W, 3]` calibration images; required (and only
            used) for `"int8"` and `"int16x8"`.

    Returns:
        `(flatbuffer bytes, the module whose functions were converted)`.

    Raises:
        ValueError: bad arguments, or the converted model holds a custom / Flex op.
    """
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"`quantize` must be one of {QUANTIZATIONS}. Received: {quantize=!r}")
    if quantize in ACTIVATION_BITS and representative_images is None:
        raise ValueError(f"`quantize={quantize!r}` needs `representative_images`. Received: None")
    module = CaptionerTFLiteModule(generator)
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        module.concrete_functions(SIGNATURES), module
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize in ("float16", "dynamic"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    flatbuffer = converter.convert()
    if quantize in ACTIVATION_BITS:
        images = _check_images(representative_images, generator.image_shape)
        flatbuffer = quantize_full_integer(
            flatbuffer,
            calibration_samples(generator, module.state_names, images),
            shared_ranges=_SHARED_RANGES,
            activation_bits=ACTIVATION_BITS[quantize],
        )
    extra = non_builtin_ops(flatbuffer)
    if extra:
        raise ValueError(f"The TFLite model needs ops outside LiteRT's builtins: {extra}")
    return flatbuffer, module


def build_metadata(
    generator: CaptionGenerator,
    module: CaptionerTFLiteModule,
    flatbuffer: bytes,
    *,
    quantize: str,
    source: str | None = None,
) -> dict:
    """The `metadata.json` dict of an export (what an app needs besides the model)."""
    tokenizer = generator.tokenizer
    height, width, channels = generator.image_shape
    return {
        "format": METADATA_FORMAT,
        "format_version": METADATA_VERSION,
        "model_file": MODEL_FILE,
        "vocabulary_file": VOCABULARY_FILE,
        "quantization": quantize,
        "decoder": type(generator.decoder).__name__,
        "source": source,
        "image": {
            "shape": [1, height, width, channels],
            "dtype": "uint8",
            "color": "RGB",
            "value_range": [0, 255],
            "normalization": (
                "none: feed raw RGB bytes 0-255; the model rescales/normalises inside"
            ),
            "resize": f"bilinear with antialiasing to {height}x{width} (whole image, no crop)",
        },
        "vocabulary_size": tokenizer.vocabulary_size,
        "special_tokens": {token: index for index, token in enumerate(SPECIAL_TOKENS)},
        "pad_id": tokenizer.pad_id,
        "unk_id": tokenizer.unk_id,
        "start_id": tokenizer.start_id,
        "end_id": tokenizer.end_id,
        "max_length": generator.max_length,
        "state_names": list(module.state_names),
        "signatures": signature_details(flatbuffer),
        "ops": sorted(list_tflite_ops(flatbuffer)),
        "size": size_breakdown(flatbuffer),
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }


def _generator_of(source, tokenizer, max_length) -> CaptionGenerator:
    """A float32 `CaptionGenerator` of `source` (a captioner model or a generator)."""
    if isinstance(source, CaptionGenerator):
        model = float32_copy(source.model)
        if model is source.model:
            return source
        return CaptionGenerator(model, source.tokenizer, max_length=source.max_length)
    if isinstance(source, keras.Model):
        if tokenizer is None:
            raise ValueError("Exporting a keras.Model needs its `tokenizer`. Received: None")
        return CaptionGenerator(float32_copy(source), tokenizer, max_length=max_length)
    raise ValueError(
        "`source` must be a keras.Model or a CaptionGenerator (a run directory is exported "
        "by xmodal_keras.tasks.captioning.export.export_tflite). "
        f"Received: {type(source).__name__}"
    )


def load_image_files(paths: Sequence[str | os.PathLike], image_shape) -> np.ndarray:
    """Image files -> uint8 `[N, H, W, 3]` with the training decode (RGB, bilinear resize)."""
    size = tuple(image_shape[:2])
    return np.stack([load_image(os.fspath(path), size).numpy() for path in paths])


def export_captioner_tflite(
    source,
    out_dir: str | os.PathLike = "saved_models",
    *,
    name: str | None = None,
    quantize: str = "none",
    tokenizer: CaptionTokenizer | None = None,
    max_length: int | None = None,
    representative_images: np.ndarray | Sequence[str | os.PathLike] | None = None,
    source_path: str | None = None,
) -> pathlib.Path:
    """Export a captioner as `OUT_DIR/NAME_tflite/` (`model.tflite`, `vocab.txt`,
    `metadata.json`), written to a temporary folder and renamed into place.

    Args:
        source: a captioner `keras.Model` (with `tokenizer`) or a `CaptionGenerator`. A
            run directory is exported by `xmodal_keras.tasks.captioning.export`.
        out_dir: parent folder. Defaults to `"saved_models"`.
        name: folder name before `_tflite`. Defaults to the model's name.
        quantize: one of `QUANTIZATIONS`. Defaults to `"none"`.
        tokenizer: the model's `CaptionTokenizer` (only with a `keras.Model` source).
        max_length: most tokens per caption. Defaults to the model's `sequence_length`.
        representative_images: int8 calibration images (uint8 `[N, H, W, 3]` or image
            paths); required with `quantize="int8"` or `"int16x8"`.
        source_path: where the model came from (a run directory), for `metadata.json`.

    Returns:
        The written folder.

    Raises:
        ValueError: bad arguments; FileExistsError: the folder already exists.

    Example:

    >>> import tempfile
    >>> from xmodal_keras.models import build_gru_captioner
    >>> tokenizer = CaptionTokenizer.from_captions(["a red circle"], sequence_length=4)
    >>> model = build_gru_captioner(vocabulary_size=tokenizer.vocabulary_size,
    ...     sequence_length=4, image_shape=(16, 16, 3), encoder_kwargs={"hidden_dim": 8},
    ...     embedding_dim=8, hidden_dim=8)
    >>> path = export_captioner_tflite(model, tempfile.mkdtemp(), name="tiny", tokenizer=tokenizer)
    >>> path.name, sorted(p.name for p in path.iterdir())
    ('tiny_tflite', ['metadata.json', 'model.tflite', 'vocab.txt'])
    """
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"`quantize` must be one of {QUANTIZATIONS}. Received: {quantize=!r}")
    generator = _generator_of(source, tokenizer, max_length)
    final_dir = tflite_folder(out_dir, generator.model.name if name is None else name)
    images = None
    if quantize in ACTIVATION_BITS:
        if representative_images is None:
            raise ValueError(
                f"`quantize={quantize!r}` of a model (not a run directory) needs "
                "`representative_images`. Received: None"
            )
        if isinstance(representative_images, np.ndarray | tf.Tensor):
            images = np.asarray(representative_images)
        else:
            images = load_image_files(list(representative_images), generator.image_shape)
    flatbuffer, module = convert_captioner(
        generator, quantize=quantize, representative_images=images
    )
    metadata = build_metadata(generator, module, flatbuffer, quantize=quantize, source=source_path)
    return write_tflite_folder(final_dir, flatbuffer, metadata, generator.tokenizer)
