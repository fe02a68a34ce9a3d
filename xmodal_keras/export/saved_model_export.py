"""Export a captioner model as a SavedModel that TF Serving runs end to end.

```
saved_models/NAME/N/              TF Serving's layout: one folder per version number
  saved_model.pb, variables/      graph + weights (core TF ops only, checked)
  assets.extra/tf_serving_warmup_requests   PredictionLog records TF Serving replays
  xmodal_export.json              what was exported (signatures, image size, limits)
```

Signatures (all batched; decoding is `CaptionGenerator.search`, the step function the
model trained through, inside a `tf.while_loop`):

- `serving_default`: `image_bytes` (string `[batch]`, JPEG/PNG/GIF/BMP) -> `caption`
  (string `[batch]`), `tokens` (int32 `[batch, T]`), `scores` (float32 `[batch]`), greedy;
- `caption_beam`: the same with beam search of the width fixed at export;
- `caption_pixels`: `images` (uint8 `[batch, H, W, 3]`, any size) -> the same, greedy;
- `embed_image`: `image_bytes` -> `embedding` (float32 `[batch, D]`, the pooled features).

Image bytes are checked from their header before decoding (`image_bytes.py`): a bad or
oversized image fails its request with `InvalidArgument`, and the server stays up.

With `jit_compile=True` the decoding loop of the three caption signatures is compiled by
XLA (image decoding and detokenizing stay outside it): about 2x faster on CPU
(`benchmarks/decoding.py`), but TF Serving then needs `--xla_cpu_compilation_enabled=true`.
"""

import os
import pathlib
from collections.abc import Mapping

import keras
import tensorflow as tf

from xmodal_keras.argument_checks import check_positive_int
from xmodal_keras.data.image_preprocessing import resize_image
from xmodal_keras.data.text_tokenizer import CaptionTokenizer
from xmodal_keras.decoding.caption_generator import CaptionGenerator, DecodingOptions
from xmodal_keras.export.float32_model import float32_copy
from xmodal_keras.export.image_bytes import (
    DEFAULT_MAX_PIXELS,
    decode_image_batch,
    nonempty_batch,
)
from xmodal_keras.export.saved_model_base import (
    drawn_jpeg,
    serving_model_dir,
    write_serving_version,
)
from xmodal_keras.export.warmup_requests import warmup_request

SIGNATURES = ("serving_default", "caption_beam", "caption_pixels", "embed_image")


def build_serving_archive(
    model: keras.Model,
    tokenizer: CaptionTokenizer,
    *,
    beam_width: int = 3,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    jit_compile: bool = False,
) -> keras.export.ExportArchive:
    """A `keras.export.ExportArchive` with the four serving signatures of a captioner.

    Args:
        model: a captioner from `build_gru_captioner`, `build_lstm_captioner` or
            `build_transformer_captioner`.
        tokenizer: its `CaptionTokenizer` (the vocabulary becomes a graph constant).
        beam_width: beam width of `caption_beam`. Defaults to 3.
        max_pixels: largest width x height an `image_bytes` input may declare.
            Defaults to 40 megapixels.
        jit_compile: compile the decoding loops with XLA. Defaults to False.
    """
    check_positive_int("beam_width", beam_width)
    check_positive_int("max_pixels", max_pixels)
    generator = CaptionGenerator(float32_copy(model), tokenizer)
    image_size = generator.image_shape[:2]
    greedy = DecodingOptions(method="greedy")
    beam = DecodingOptions(method="beam", beam_width=beam_width)

    searches = {
        options: tf.function(
            lambda images, options=options: generator.search(images, options),
            jit_compile=jit_compile,
        )
        for options in (greedy, beam)
    }

    def caption(images, options):
        images, batch_size = nonempty_batch(images)
        result = searches[options](images)
        return {
            "caption": tokenizer.detokenize(result["tokens"])[:batch_size],
            "tokens": result["tokens"][:batch_size],
            "scores": result["scores"][:batch_size],
        }

    def decode(image_bytes):
        return decode_image_batch(image_bytes, image_size, max_pixels=max_pixels)

    def serving_default(image_bytes):
        return caption(decode(image_bytes), greedy)

    def caption_beam(image_bytes):
        return caption(decode(image_bytes), beam)

    def caption_pixels(images):
        return caption(resize_image(images, image_size), greedy)

    def embed_image(image_bytes):
        images, batch_size = nonempty_batch(decode(image_bytes))
        return {"embedding": generator.encode(images)["pooled"][:batch_size]}

    bytes_spec = [tf.TensorSpec([None], tf.string, name="image_bytes")]
    pixels_spec = [tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")]
    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, function, spec in [
        ("serving_default", serving_default, bytes_spec),
        ("caption_beam", caption_beam, bytes_spec),
        ("caption_pixels", caption_pixels, pixels_spec),
        ("embed_image", embed_image, bytes_spec),
    ]:
        archive.add_endpoint(name, tf.function(function), input_signature=spec)
    return archive


def export_captioner_saved_model(
    model: keras.Model,
    tokenizer: CaptionTokenizer,
    *,
    base_dir: str | os.PathLike = "saved_models",
    name: str,
    version: int | None = None,
    beam_width: int = 3,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    warmup_image: bytes | None = None,
    extra_info: Mapping[str, object] | None = None,
    jit_compile: bool = False,
) -> pathlib.Path:
    """Export a captioner to `base_dir/name/version/` for TF Serving.

    The version folder is built in a staging folder beside it and renamed into place, so
    a polling server never sees half a version and a crash leaves none; its modes follow
    the umask (a server running as another user can read it). The graph is checked for
    non-core ops before the rename. A trained run directory is exported by
    `xmodal_keras.tasks.captioning.export.export_saved_model`.

    Args:
        model: a captioner (`build_*_captioner`; a mixed-precision one is exported in
            float32).
        tokenizer: its `CaptionTokenizer`.
        base_dir: the TF Serving model base folder. Defaults to `"saved_models"`.
        name: model name (letters, digits, `_`, `-`).
        version: version number; must not exist yet. Defaults to the next free number
            when the export finishes (a concurrent export of the same name gets another).
        beam_width: beam width of the `caption_beam` signature. Defaults to 3.
        max_pixels: pixel limit checked from each image header. Defaults to 40 megapixels.
        warmup_image: encoded image for the warm-up requests. Defaults to a drawn JPEG.
        extra_info: more entries for `xmodal_export.json` (a run adds its `decoder`).
        jit_compile: compile the decoding loops with XLA (TF Serving then needs
            `--xla_cpu_compilation_enabled=true`). Defaults to False.

    Returns:
        The written version folder.

    Example:

    >>> import tempfile
    >>> from xmodal_keras.models import build_gru_captioner
    >>> tokenizer = CaptionTokenizer.from_captions(["a red circle"], sequence_length=4)
    >>> model = build_gru_captioner(vocabulary_size=tokenizer.vocabulary_size,
    ...     sequence_length=4, image_shape=(16, 16, 3), encoder_kwargs={"hidden_dim": 8},
    ...     embedding_dim=8, hidden_dim=8)
    >>> export_captioner_saved_model(model, tokenizer, base_dir=tempfile.mkdtemp(),
    ...     name="tiny").name
    '1'
    """
    model_dir = serving_model_dir(base_dir, name, version)
    archive = build_serving_archive(
        model, tokenizer, beam_width=beam_width, max_pixels=max_pixels, jit_compile=jit_compile
    )
    info = {
        "signatures": list(SIGNATURES),
        "image_shape": list(model.input["images"].shape[1:]),
        "max_length": int(model.input["token_ids"].shape[1]),
        "beam_width": beam_width,
        "max_pixels": max_pixels,
        "jit_compile": jit_compile,
        "vocabulary_size": tokenizer.vocabulary_size,
        **(extra_info or {}),
    }
    image = warmup_image or drawn_jpeg()
    warmup = [warmup_request(model_dir.name, s, image) for s in SIGNATURES]
    return write_serving_version(archive, model_dir, version=version, warmup_logs=warmup, info=info)
