"""Export a fusion classifier to LiteRT (TFLite) for phones: builtin ops only.

Writes `OUT_DIR/NAME_tflite/` atomically:

```
NAME_tflite/
  model.tflite    signature `classify`
  vocab.txt       one token a line; line i (0-based) is token id i (when the model reads text)
  metadata.json   inputs (shape, dtype, how to make them), output, classes, signatures, ops
```

Signature `classify` (batch 1; names as the LiteRT `SignatureRunner` sees them), inputs
following the model's modalities: `images` uint8 `[1, H, W, 3]` (RGB 0-255, already
resized: the model rescales inside), `token_ids` int32 `[1, S]` (strings stay out of
TFLite: the app tokenises with `vocab.txt` as `metadata.json` says), `audio` float32 ->
`probabilities` float32 `[1, C]` (`C = 1` for a binary head). Tabular inputs (string
lookups) are not supported on LiteRT's builtins.

Quantization (`quantize=`): `"none"` (float32), `"float16"` (float16 weights) or
`"dynamic"` (int8 weights, float activations).
"""

import os
import pathlib
import tempfile

import keras
import tensorflow as tf

from xmodal_keras.data.text_tokenizer import SPECIAL_TOKENS, CaptionTokenizer
from xmodal_keras.export.float32_model import float32_copy
from xmodal_keras.export.saved_model_base import check_tokenizer, image_size
from xmodal_keras.export.tflite_base import (
    MODEL_FILE,
    VOCABULARY_FILE,
    signature_details,
    tflite_folder,
    write_tflite_folder,
)
from xmodal_keras.export.tflite_ops import list_tflite_ops, non_builtin_ops

QUANTIZATIONS = ("none", "float16", "dynamic")
CLASSIFY_SIGNATURE = "classify"
METADATA_FORMAT = "xmodal_keras.tflite_fusion_classifier"
METADATA_VERSION = 1
TFLITE_INPUTS = ("images", "token_ids", "audio")


class ClassifierTFLiteModule(tf.Module):
    """The `classify` function of a fusion classifier, with a fixed batch-1 signature.

    Args:
        model: a `build_fusion_classifier` model without a tabular input.
    """

    def __init__(self, model: keras.Model):
        super().__init__(name="fusion_classifier_tflite")
        if not isinstance(model, keras.Model) or not isinstance(model.input, dict):
            raise ValueError(
                "`model` must be a `build_fusion_classifier` model (dict inputs). "
                f"Received: {type(model).__name__}"
            )
        unsupported = sorted(set(model.input) - set(TFLITE_INPUTS))
        if unsupported:
            raise ValueError(
                f"LiteRT's builtin ops take only {TFLITE_INPUTS} inputs (tabular columns need "
                f"string lookups). Received: inputs={sorted(model.input)}"
            )
        if model.layers[-1].name != "probabilities":
            raise ValueError(
                "Export a model built with `output='probabilities'`. Received: a model whose "
                f"last layer is {model.layers[-1].name!r}"
            )
        model = float32_copy(model)
        self.model = model
        # Tracking the variables' values keeps them in the module's graph captures.
        self.model_variables = [v.value for v in model.variables]
        self.input_names = [key for key in TFLITE_INPUTS if key in model.input]
        self.input_specs = [
            tf.TensorSpec([1, *model.input[key].shape[1:]], model.input[key].dtype, name=key)
            for key in self.input_names
        ]

        def classify(*args):
            inputs = dict(zip(self.input_names, args, strict=True))
            probabilities = self.model(inputs, training=False)
            return {"probabilities": tf.cast(probabilities, tf.float32)}

        self.classify = tf.function(classify, input_signature=self.input_specs)


def convert_fusion_classifier(
    model: keras.Model, *, quantize: str = "none"
) -> tuple[bytes, ClassifierTFLiteModule]:
    """Convert a fusion classifier to a `.tflite` flatbuffer (builtin ops only).

    Returns:
        `(flatbuffer bytes, the module whose function was converted)`.

    Raises:
        ValueError: bad arguments, or the converted model holds a custom / Flex op.
    """
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"`quantize` must be one of {QUANTIZATIONS}. Received: {quantize=!r}")
    module = ClassifierTFLiteModule(model)
    # From one concrete function the converter names the signature "serving_default";
    # through a SavedModel it keeps ours (the converter saves one internally anyway).
    with tempfile.TemporaryDirectory(prefix="fusion_tflite_") as saved_dir:
        signatures = {CLASSIFY_SIGNATURE: module.classify.get_concrete_function()}
        tf.saved_model.save(module, saved_dir, signatures=signatures)
        converter = tf.lite.TFLiteConverter.from_saved_model(
            saved_dir, signature_keys=[CLASSIFY_SIGNATURE]
        )
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if quantize != "none":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "float16":
            converter.target_spec.supported_types = [tf.float16]
        flatbuffer = converter.convert()
    extra = non_builtin_ops(flatbuffer)
    if extra:
        raise ValueError(f"The TFLite model needs ops outside LiteRT's builtins: {extra}")
    return flatbuffer, module


def build_metadata(
    model: keras.Model,
    tokenizer: CaptionTokenizer | None,
    flatbuffer: bytes,
    *,
    quantize: str,
) -> dict:
    """The `metadata.json` dict of an export (what an app needs besides the model)."""
    inputs = {}
    if "images" in model.input:
        height, width = image_size(model)
        inputs["images"] = {
            "shape": [1, height, width, 3],
            "dtype": "uint8",
            "color": "RGB",
            "value_range": [0, 255],
            "normalization": "none: feed raw RGB bytes 0-255; the model rescales inside",
            "resize": f"bilinear with antialiasing to {height}x{width} (whole image, no crop)",
        }
    if "token_ids" in model.input:
        length = int(model.input["token_ids"].shape[1])
        inputs["token_ids"] = {
            "shape": [1, length],
            "dtype": "int32",
            "tokenization": (
                "lowercase; split punctuation and symbols off as separate tokens; split on "
                f"whitespace; keep at most {length - 2} words; ids from vocab.txt (line i is "
                "id i, unknown words -> unk_id); row = start_id, word ids, end_id, then "
                f"pad_id up to {length}"
            ),
        }
    if "audio" in model.input:
        inputs["audio"] = {"shape": [1, *model.input["audio"].shape[1:]], "dtype": "float32"}
    activation = model.get_layer("probabilities").get_config()["activation"]
    metadata = {
        "format": METADATA_FORMAT,
        "format_version": METADATA_VERSION,
        "model_file": MODEL_FILE,
        "vocabulary_file": VOCABULARY_FILE if tokenizer is not None else None,
        "quantization": quantize,
        "inputs": inputs,
        "output": {
            "name": "probabilities",
            "shape": [1, int(model.output.shape[-1])],
            "dtype": "float32",
            "activation": activation,
            "meaning": (
                "P(class 1) of a binary classifier"
                if model.output.shape[-1] == 1
                else f"per-class probabilities ({activation})"
            ),
        },
        "signatures": signature_details(flatbuffer),
        "ops": sorted(list_tflite_ops(flatbuffer)),
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }
    if tokenizer is not None:
        metadata.update(
            {
                "vocabulary_size": tokenizer.vocabulary_size,
                "special_tokens": {token: index for index, token in enumerate(SPECIAL_TOKENS)},
                "pad_id": tokenizer.pad_id,
                "unk_id": tokenizer.unk_id,
                "start_id": tokenizer.start_id,
                "end_id": tokenizer.end_id,
            }
        )
    return metadata


def export_fusion_classifier_tflite(
    model: keras.Model,
    out_dir: str | os.PathLike = "saved_models",
    *,
    name: str,
    quantize: str = "none",
    tokenizer: CaptionTokenizer | None = None,
) -> pathlib.Path:
    """Export a fusion classifier as `OUT_DIR/NAME_tflite/` (`model.tflite`, `vocab.txt`,
    `metadata.json`), written to a temporary folder and renamed into place.

    Args:
        model: a `build_fusion_classifier` model (`output="probabilities"`, no tabular).
        out_dir: parent folder. Defaults to `"saved_models"`.
        name: folder name before `_tflite`.
        quantize: `"none"`, `"float16"` or `"dynamic"`. Defaults to `"none"`.
        tokenizer: the model's `CaptionTokenizer`; required when the model reads text
            (its vocabulary becomes `vocab.txt`).

    Returns:
        The written folder.

    Raises:
        ValueError: bad arguments; FileExistsError: the folder already exists.

    Example:

    >>> import tempfile
    >>> from xmodal_keras.models.fusion_classifier import build_fusion_classifier
    >>> model = build_fusion_classifier(modalities={"image": {"image_shape": (16, 16, 3),
    ...     "hidden_dim": 8, "num_layers": 1}}, projection_dim=4, num_classes=2)
    >>> path = export_fusion_classifier_tflite(model, tempfile.mkdtemp(), name="tiny")
    >>> path.name, sorted(p.name for p in path.iterdir())
    ('tiny_tflite', ['metadata.json', 'model.tflite'])
    """
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"`quantize` must be one of {QUANTIZATIONS}. Received: {quantize=!r}")
    module = ClassifierTFLiteModule(model)  # checks the model
    vocabulary = None
    if "token_ids" in module.input_names:
        vocabulary = check_tokenizer(tokenizer, model.input["token_ids"].shape[1])
        if not isinstance(vocabulary, CaptionTokenizer):
            raise ValueError(
                "The TFLite export describes the word tokenizer of `CaptionTokenizer` for "
                "apps to reimplement; a model with a KerasHub WordPiece text tower "
                "(`WordPieceTextTokenizer`) exports as a SavedModel, which tokenises in-graph. "
                f"Received: tokenizer={type(vocabulary).__name__}"
            )
    final_dir = tflite_folder(out_dir, name)
    flatbuffer, _ = convert_fusion_classifier(model, quantize=quantize)
    metadata = build_metadata(model, vocabulary, flatbuffer, quantize=quantize)
    return write_tflite_folder(final_dir, flatbuffer, metadata, vocabulary)
