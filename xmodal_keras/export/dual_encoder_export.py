"""Export a CLIP-style dual encoder as a SavedModel that TF Serving runs end to end.

```
saved_models/NAME/N/              TF Serving's layout, written atomically
  saved_model.pb, variables/      graph + weights (core TF ops only, checked)
  assets.extra/tf_serving_warmup_requests   one request per signature
  xmodal_export.json              what was exported (image size, sequence length, limits)
```

Signatures (batched; no `serving_default`: a request names the one it wants):

- `embed_image`: `image_bytes` string `[batch]` (JPEG/PNG/GIF/BMP, header-checked) ->
  `embedding` float32 `[batch, D]` (the image tower's L2-normalised output);
- `embed_text`: `text` string `[batch]` (raw text, tokenised in-graph) -> `embedding`
  float32 `[batch, D]` (the text tower's output). Not in a CLIP run's export: its BPE
  tokenizer (`ClipTextTokenizer`) is Python, not core TensorFlow ops, so clients tokenise
  (`ServingClient.embed_text(texts, tokenizer=...)`) and call `embed_token_ids`;
- `embed_token_ids`: `token_ids` and `padding_mask` int32 `[batch, S]` (for clients that
  tokenise themselves: the run's `vocab.txt` ids, mask 1 for a token, 0 for padding) ->
  `embedding`, the same as `embed_text` gives for the text those ids spell. Ids outside
  the vocabulary, or shapes other than `[batch, S]`, fail the request with
  `InvalidArgument`.

The dot product of the two embeddings is the model's similarity (before its temperature).
"""

import os
import pathlib

import keras
import tensorflow as tf

from xmodal_keras.argument_checks import check_positive_int
from xmodal_keras.data.clip_text_tokenizer import ClipTextTokenizer
from xmodal_keras.data.wordpiece_text_tokenizer import TextTokenizer
from xmodal_keras.export.float32_model import float32_copy
from xmodal_keras.export.fusion_export import IMAGE_BYTES_INPUT, TEXT_INPUT
from xmodal_keras.export.image_bytes import (
    DEFAULT_MAX_PIXELS,
    decode_image_batch,
    nonempty_batch,
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
from xmodal_keras.models.dual_encoder import IMAGE_TOWER_NAME, TEXT_TOWER_NAME

EMBED_IMAGE_SIGNATURE = "embed_image"
EMBED_TEXT_SIGNATURE = "embed_text"
EMBED_TOKEN_IDS_SIGNATURE = "embed_token_ids"
SIGNATURES = (EMBED_IMAGE_SIGNATURE, EMBED_TEXT_SIGNATURE, EMBED_TOKEN_IDS_SIGNATURE)
TOKEN_IDS_INPUT = "token_ids"
PADDING_MASK_INPUT = "padding_mask"


def _towers(model: keras.Model) -> tuple[keras.Model, keras.Model]:
    try:
        return model.get_layer(IMAGE_TOWER_NAME), model.get_layer(TEXT_TOWER_NAME)
    except (ValueError, AttributeError):
        raise ValueError(
            f"`model` must be a `build_dual_encoder` model (sub-models {IMAGE_TOWER_NAME!r} "
            f"and {TEXT_TOWER_NAME!r}). Received: {getattr(model, 'name', type(model).__name__)}"
        ) from None


def exported_signatures(tokenizer: TextTokenizer) -> list[str]:
    """The signatures an export with `tokenizer` has (no `embed_text` for a tokenizer
    that is not core TensorFlow ops)."""
    if tokenizer.runs_in_graph:
        return list(SIGNATURES)
    return [EMBED_IMAGE_SIGNATURE, EMBED_TOKEN_IDS_SIGNATURE]


def _padding_mask(tokenizer: TextTokenizer, text: str):
    if isinstance(tokenizer, ClipTextTokenizer):
        return tokenizer.tokenize_with_mask([text])[1]
    return (tokenizer([text]).numpy() != 0).astype("int32")


def build_dual_encoder_archive(
    model: keras.Model,
    tokenizer: TextTokenizer,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> keras.export.ExportArchive:
    """A `keras.export.ExportArchive` with `embed_image` and `embed_text`.

    Args:
        model: a `build_dual_encoder` model.
        tokenizer: its `CaptionTokenizer` or `WordPieceTextTokenizer` (ids as long as the
            text tower's input).
        max_pixels: largest width x height an `image_bytes` input may declare.
            Defaults to 40 megapixels.
    """
    check_positive_int("max_pixels", max_pixels)
    image_tower, text_tower = _towers(float32_copy(model))
    check_tokenizer(tokenizer, text_tower.input.shape[1])
    shape = image_size(image_tower)

    def embed_image(image_bytes):
        images = decode_image_batch(image_bytes, shape, max_pixels=max_pixels)
        images, batch_size = nonempty_batch(images)
        embedding = image_tower(images, training=False)[:batch_size]
        return {"embedding": tf.cast(embedding, tf.float32)}

    def embed_text(text):
        token_ids, batch_size = nonempty_inputs(tokenizer(text))
        embedding = text_tower(token_ids, training=False)[:batch_size]
        return {"embedding": tf.cast(embedding, tf.float32)}

    vocabulary_size = tokenizer.vocabulary_size

    def embed_token_ids(token_ids, padding_mask):
        checks = [
            tf.debugging.assert_equal(
                tf.shape(token_ids),
                tf.shape(padding_mask),
                message="token_ids and padding_mask must have one shape",
            ),
            tf.debugging.assert_non_negative(token_ids, message="token_ids must be >= 0"),
            tf.debugging.assert_less(
                token_ids, vocabulary_size, message=f"token_ids must be < {vocabulary_size}"
            ),
        ]
        with tf.control_dependencies(checks):
            ids = tf.where(tf.not_equal(padding_mask, 0), token_ids, tf.zeros_like(token_ids))
        ids, batch_size = nonempty_inputs(ids)
        embedding = text_tower(ids, training=False)[:batch_size]
        return {"embedding": tf.cast(embedding, tf.float32)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    if tokenizer.runs_in_graph:
        archive.track(tokenizer)  # its vocabulary lookup table is a resource to save
    archive.add_endpoint(
        EMBED_IMAGE_SIGNATURE,
        tf.function(embed_image),
        input_signature=[tf.TensorSpec([None], tf.string, name=IMAGE_BYTES_INPUT)],
    )
    if tokenizer.runs_in_graph:
        archive.add_endpoint(
            EMBED_TEXT_SIGNATURE,
            tf.function(embed_text),
            input_signature=[tf.TensorSpec([None], tf.string, name=TEXT_INPUT)],
        )
    length = text_tower.input.shape[1]
    archive.add_endpoint(
        EMBED_TOKEN_IDS_SIGNATURE,
        tf.function(embed_token_ids),
        input_signature=[
            tf.TensorSpec([None, length], tf.int32, name=TOKEN_IDS_INPUT),
            tf.TensorSpec([None, length], tf.int32, name=PADDING_MASK_INPUT),
        ],
    )
    return archive


def export_dual_encoder(
    model: keras.Model,
    tokenizer: TextTokenizer,
    *,
    base_dir: str | os.PathLike = "saved_models",
    name: str | None = None,
    version: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    warmup_image: bytes | None = None,
    warmup_text: str = DEFAULT_WARMUP_TEXT,
) -> pathlib.Path:
    """Export a dual encoder to `base_dir/name/version/` for TF Serving (atomic write).

    Args:
        model: a `build_dual_encoder` model (a trained run directory is exported by
            `xmodal_keras.tasks.retrieval.export.export_saved_model`).
        tokenizer: the model's `CaptionTokenizer` or `WordPieceTextTokenizer`.
        base_dir: the TF Serving model base folder. Defaults to `"saved_models"`.
        name: model name. Defaults to the model's name.
        version: version number; must not exist yet. Defaults to the next free number.
        max_pixels: pixel limit checked from each image header. Defaults to 40 megapixels.
        warmup_image: encoded image of the warm-up requests. Defaults to a drawn JPEG.
        warmup_text: text of the warm-up requests. Defaults to `"a red circle"`.

    Returns:
        The written version folder.

    Example:

    >>> import tempfile
    >>> from xmodal_keras.data.text_tokenizer import CaptionTokenizer
    >>> from xmodal_keras.models.dual_encoder import build_dual_encoder
    >>> tokenizer = CaptionTokenizer.from_captions(["a red circle"], sequence_length=6)
    >>> model = build_dual_encoder(vocabulary_size=tokenizer.vocabulary_size,
    ...     sequence_length=7, image_shape=(16, 16, 3), encoder_kwargs={"hidden_dim": 8},
    ...     embedding_dim=8, hidden_dim=8, projection_dim=4)
    >>> export_dual_encoder(model, tokenizer, base_dir=tempfile.mkdtemp(), name="clip").name
    '1'
    """
    if not isinstance(model, keras.Model):
        raise ValueError(
            "`model` must be a dual encoder keras.Model (a run directory is exported by "
            "xmodal_keras.tasks.retrieval.export.export_saved_model). "
            f"Received: {type(model).__name__}"
        )
    model_dir = serving_model_dir(base_dir, name or model.name, version)
    archive = build_dual_encoder_archive(model, tokenizer, max_pixels=max_pixels)
    warmup_image = warmup_image or drawn_jpeg()
    image_tower, text_tower = _towers(model)
    info = {
        "kind": "dual_encoder",
        "signatures": exported_signatures(tokenizer),
        "image_shape": list(image_tower.input.shape[1:]),
        "sequence_length": tokenizer.ids_length,
        "vocabulary_size": tokenizer.vocabulary_size,
        "embedding_dim": int(image_tower.output.shape[-1]),
        "max_pixels": max_pixels,
    }
    model_name = model_dir.name
    warmup_ids = tokenizer([warmup_text]).numpy()
    text_warmup = prediction_log(
        model_name, EMBED_TEXT_SIGNATURE, {TEXT_INPUT: [warmup_text.encode("utf-8")]}
    )
    warmup = [
        prediction_log(model_name, EMBED_IMAGE_SIGNATURE, {IMAGE_BYTES_INPUT: [warmup_image]}),
        *([text_warmup] if tokenizer.runs_in_graph else []),
        prediction_log(
            model_name,
            EMBED_TOKEN_IDS_SIGNATURE,
            {
                TOKEN_IDS_INPUT: tf.make_tensor_proto(warmup_ids),
                PADDING_MASK_INPUT: tf.make_tensor_proto(_padding_mask(tokenizer, warmup_text)),
            },
        ),
    ]
    return write_serving_version(archive, model_dir, version=version, warmup_logs=warmup, info=info)
