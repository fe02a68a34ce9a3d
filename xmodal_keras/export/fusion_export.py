"""Export a fusion classifier as a SavedModel that TF Serving runs end to end.

```
saved_models/NAME/N/              TF Serving's layout, written atomically
  saved_model.pb, variables/      graph + weights (core TF ops only, checked)
  assets.extra/tf_serving_warmup_requests   one request per signature
  xmodal_export.json              what was exported (inputs, image size, classes, limits)
```

Signature `classify` (also `serving_default`), batched. Its inputs follow the model's
modalities:

- `image_bytes` string `[batch]` (JPEG/PNG/GIF/BMP; header-checked, decoded, converted to
  RGB and resized in-graph exactly as in training) when the model takes `"images"`;
- `text` string `[batch]` (raw text, tokenised in-graph by the model's `CaptionTokenizer`
  or `WordPieceTextTokenizer`, core ops)
  when it takes `"token_ids"`;
- `audio` float32 `[batch, ...]` (the model's audio input as it is) when it takes `"audio"`;
- one input per tabular column, by the column's name, `[batch]` (float32 for numeric
  columns, string for categorical ones) when it takes `"tabular"`.

Output: `probabilities` float32 `[batch, C]` (`C = 1` for a binary head: P(class 1)).
A bad or oversized image fails its request with `InvalidArgument`; the server stays up.
"""

import os
import pathlib

import keras
import numpy as np
import tensorflow as tf

from xmodal_keras.argument_checks import check_positive_int
from xmodal_keras.data.wordpiece_text_tokenizer import TextTokenizer
from xmodal_keras.export.float32_model import float32_copy
from xmodal_keras.export.image_bytes import (
    DEFAULT_MAX_PIXELS,
    decode_image_batch,
    nonempty_inputs,
)
from xmodal_keras.export.saved_model_base import (
    DEFAULT_WARMUP_TEXT,
    check_tokenizer,
    drawn_jpeg,
    image_size,
    serving_model_dir,
    write_serving_version,
)
from xmodal_keras.export.warmup_requests import prediction_log

CLASSIFY_SIGNATURE = "classify"
SIGNATURES = (CLASSIFY_SIGNATURE, "serving_default")
IMAGE_BYTES_INPUT = "image_bytes"
TEXT_INPUT = "text"
AUDIO_INPUT = "audio"


def _check_classifier(model: keras.Model) -> dict:
    if not isinstance(model, keras.Model) or not isinstance(model.input, dict):
        raise ValueError(
            "`model` must be a `build_fusion_classifier` model (dict inputs). "
            f"Received: {type(model).__name__}"
        )
    if isinstance(model.output, list | dict) or model.layers[-1].name != "probabilities":
        raise ValueError(
            "The classify signature returns probabilities: export a model built with "
            "`output='probabilities'`. Received: a model whose last layer is "
            f"{model.layers[-1].name!r}"
        )
    unknown = sorted(set(model.input) - {"images", "token_ids", "audio", "tabular"})
    if unknown:
        raise ValueError(f"Unknown model inputs {unknown}. Received: inputs={sorted(model.input)}")
    return model.input


def classifier_input_specs(model: keras.Model) -> dict[str, tf.TensorSpec]:
    """Signature input name -> `tf.TensorSpec` of a fusion classifier's `classify`.

    Example:

    >>> from xmodal_keras.models.fusion_classifier import build_fusion_classifier
    >>> model = build_fusion_classifier(modalities={"image": {"image_shape": (16, 16, 3),
    ...     "hidden_dim": 8, "num_layers": 1}}, projection_dim=4, num_classes=3)
    >>> {name: spec.dtype.name for name, spec in classifier_input_specs(model).items()}
    {'image_bytes': 'string'}
    """
    inputs = _check_classifier(model)
    specs = {}
    if "images" in inputs:
        specs[IMAGE_BYTES_INPUT] = tf.TensorSpec([None], tf.string, name=IMAGE_BYTES_INPUT)
    if "token_ids" in inputs:
        specs[TEXT_INPUT] = tf.TensorSpec([None], tf.string, name=TEXT_INPUT)
    if "audio" in inputs:
        shape = [None, *inputs["audio"].shape[1:]]
        specs[AUDIO_INPUT] = tf.TensorSpec(shape, tf.float32, name=AUDIO_INPUT)
    for column, tensor in inputs.get("tabular", {}).items():
        if column in specs:
            raise ValueError(
                f"Tabular column {column!r} has the name of another signature input "
                f"({sorted(specs)}); rename the column. Received: column={column!r}"
            )
        if tuple(tensor.shape[1:]) != (1,):
            raise ValueError(
                f"Tabular inputs must be [batch, 1]. Received: {column} shape={tensor.shape}"
            )
        specs[column] = tf.TensorSpec([None], tf.as_dtype(tensor.dtype), name=column)
    return specs


def build_classifier_archive(
    model: keras.Model,
    tokenizer: TextTokenizer | None = None,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> keras.export.ExportArchive:
    """A `keras.export.ExportArchive` with `classify` and `serving_default` (the same).

    Args:
        model: a classifier from `build_fusion_classifier(..., output="probabilities")`.
        tokenizer: its `CaptionTokenizer` or `WordPieceTextTokenizer` (needed when the
            model reads `"token_ids"`).
        max_pixels: largest width x height an `image_bytes` input may declare.
            Defaults to 40 megapixels.
    """
    check_positive_int("max_pixels", max_pixels)
    model = float32_copy(model)
    specs = classifier_input_specs(model)
    names = list(specs)
    tabular = list(model.input.get("tabular", {}))
    if TEXT_INPUT in specs:
        check_tokenizer(tokenizer, model.input["token_ids"].shape[1])
    if IMAGE_BYTES_INPUT in specs:
        shape = image_size(model)

    def classify(*args):
        given = dict(zip(names, args, strict=True))
        inputs = {}
        if IMAGE_BYTES_INPUT in given:
            inputs["images"] = decode_image_batch(
                given[IMAGE_BYTES_INPUT], shape, max_pixels=max_pixels
            )
        if TEXT_INPUT in given:
            inputs["token_ids"] = tokenizer(given[TEXT_INPUT])
        if AUDIO_INPUT in given:
            inputs["audio"] = given[AUDIO_INPUT]
        if tabular:
            inputs["tabular"] = {column: given[column][:, None] for column in tabular}
        inputs, batch_size = nonempty_inputs(inputs)
        probabilities = model(inputs, training=False)[:batch_size]
        return {"probabilities": tf.cast(probabilities, tf.float32)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    if TEXT_INPUT in specs:
        archive.track(tokenizer)  # its vocabulary lookup table is a resource to save
    for name in SIGNATURES:
        archive.add_endpoint(name, tf.function(classify), input_signature=list(specs.values()))
    return archive


def warmup_inputs(
    specs: dict[str, tf.TensorSpec], *, image_bytes: bytes, text: str
) -> dict[str, np.ndarray | list]:
    """A batch-of-one request for inputs `specs`: the image, the text, zeros / empty
    strings for the other inputs (unknown sizes read as 1)."""
    inputs = {}
    for name, spec in specs.items():
        if name == IMAGE_BYTES_INPUT:
            inputs[name] = [image_bytes]
        elif name == TEXT_INPUT:
            inputs[name] = [text.encode("utf-8")]
        elif spec.dtype == tf.string:
            inputs[name] = [b""]
        else:
            shape = [1, *(d or 1 for d in spec.shape[1:])]
            inputs[name] = np.zeros(shape, spec.dtype.as_numpy_dtype)
    return inputs


def export_fusion_classifier(
    model: keras.Model,
    tokenizer: TextTokenizer | None = None,
    *,
    base_dir: str | os.PathLike = "saved_models",
    name: str,
    version: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    warmup_image: bytes | None = None,
    warmup_text: str = DEFAULT_WARMUP_TEXT,
) -> pathlib.Path:
    """Export a fusion classifier to `base_dir/name/version/` for TF Serving.

    Built in a temporary folder beside the version folder and renamed into place after
    the graph passed the core-ops check, so a polling server never sees half a version.

    Args:
        model: a `build_fusion_classifier` model with `output="probabilities"`.
        tokenizer: its `CaptionTokenizer` or `WordPieceTextTokenizer` (when the model reads text).
        base_dir: the TF Serving model base folder. Defaults to `"saved_models"`.
        name: model name (letters, digits, `_`, `-`).
        version: version number; must not exist yet. Defaults to the next free number.
        max_pixels: pixel limit checked from each image header. Defaults to 40 megapixels.
        warmup_image: encoded image of the warm-up requests. Defaults to a drawn JPEG.
        warmup_text: text of the warm-up requests. Defaults to `"a red circle"`.

    Returns:
        The written version folder.

    Example:

    >>> import tempfile
    >>> from xmodal_keras.models.fusion_classifier import build_fusion_classifier
    >>> model = build_fusion_classifier(modalities={"image": {"image_shape": (16, 16, 3),
    ...     "hidden_dim": 8, "num_layers": 1}}, projection_dim=4, num_classes=2)
    >>> path = export_fusion_classifier(model, base_dir=tempfile.mkdtemp(), name="shapes")
    >>> path.name, sorted(p.name for p in path.iterdir())[:2]
    ('1', ['assets', 'assets.extra'])
    """
    model_dir = serving_model_dir(base_dir, name, version)
    archive = build_classifier_archive(model, tokenizer, max_pixels=max_pixels)
    specs = classifier_input_specs(model)
    request = warmup_inputs(specs, image_bytes=warmup_image or drawn_jpeg(), text=warmup_text)
    info = {
        "kind": "fusion_classifier",
        "signatures": list(SIGNATURES),
        "inputs": {
            key: {"dtype": spec.dtype.name, "shape": [d for d in spec.shape]}
            for key, spec in specs.items()
        },
        "outputs": {"probabilities": {"dtype": "float32", "shape": list(model.output.shape)}},
        "image_shape": list(image_size(model)) + [3] if IMAGE_BYTES_INPUT in specs else None,
        "sequence_length": tokenizer.ids_length if TEXT_INPUT in specs else None,
        "vocabulary_size": tokenizer.vocabulary_size if TEXT_INPUT in specs else None,
        "max_pixels": max_pixels,
    }
    warmup = [prediction_log(name, signature, request) for signature in SIGNATURES]
    return write_serving_version(archive, model_dir, version=version, warmup_logs=warmup, info=info)
