"""Caption image files in batches with a `CaptionGenerator`: `caption_paths`.

Images are read with the training decode (`load_image`: EXIF orientation, RGB, bilinear
resize with antialiasing to the model's input size), in batches, and captioned in-graph
(greedy, or beam search with `beam_width`). Captioning with a trained run directory is
`xmodal_keras.tasks.captioning.predict`.
"""

import os
from collections.abc import Iterable, Sequence

import numpy as np
import tensorflow as tf

from xmodal_keras.data.image_preprocessing import load_image
from xmodal_keras.decoding.caption_generator import CaptionGenerator, DecodingOptions

DEFAULT_BATCH_SIZE = 64


def _image_batches(paths: Sequence[str], image_size: tuple[int, int], batch_size: int):
    dataset = tf.data.Dataset.from_tensor_slices([os.fspath(p) for p in paths])
    dataset = dataset.map(
        lambda path: load_image(path, image_size), num_parallel_calls=tf.data.AUTOTUNE
    )
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def decoding_options(beam_width: int | None) -> dict:
    options = {"method": "greedy"}
    if beam_width is not None:
        options = {"method": "beam", "beam_width": beam_width}
    DecodingOptions(**options)  # validates before any image is read
    return options


def caption_batches(
    generator: CaptionGenerator, batches: Iterable, options: dict, return_attention: bool
) -> dict[str, list]:
    result: dict[str, list] = {"text": [], "scores": [], "tokens": []}
    if return_attention:
        result.update(attention=[], images=[])
    for images in batches:
        out = generator.generate(images, return_attention=return_attention, **options)
        result["text"].extend(t.decode("utf-8") for t in out["text"].numpy())
        result["scores"].extend(float(s) for s in out["scores"].numpy())
        result["tokens"].extend(out["tokens"].numpy())
        if return_attention:
            result["attention"].extend(out["attention"].numpy())
            result["images"].extend(np.asarray(images))
    return result


def caption_paths(
    generator: CaptionGenerator,
    paths: Sequence[str | os.PathLike],
    *,
    beam_width: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    return_attention: bool = False,
) -> dict[str, list]:
    """Caption image files in batches.

    Args:
        generator: a `CaptionGenerator` of the trained model.
        paths: image files (JPEG/PNG/GIF/BMP).
        beam_width: beam search of this width; None decodes greedily. Defaults to None.
        batch_size: images per decoding batch. Defaults to 64.
        return_attention: also return per-image attention (greedy only).

    Returns:
        `{"text": [str], "scores": [float], "tokens": [np.ndarray]}` in `paths` order, plus
        `"attention"` (`[max_length, regions]` arrays) and `"images"` (uint8 arrays) with
        `return_attention`.
    """
    options = decoding_options(beam_width)
    height, width = generator.image_shape[:2]
    batches = _image_batches(paths, (height, width), batch_size)
    return caption_batches(generator, batches, options, return_attention)
