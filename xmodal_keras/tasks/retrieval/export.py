"""Export a trained retrieval run as a TF Serving SavedModel (`embed_image`, `embed_text`).

The run brings its tokenizer and a real image of its data for the warm-up requests; the
writing itself is `xmodal_keras.export.dual_encoder_export.export_dual_encoder`.

Example (`xmodal export RUN --format saved_model` on a retrieval run):

    export_saved_model("runs/clip", base_dir="saved_models", name="clip")
"""

import os
import pathlib

from xmodal_keras.data.image_header import DEFAULT_MAX_PIXELS
from xmodal_keras.export.dual_encoder_export import DEFAULT_WARMUP_TEXT, export_dual_encoder
from xmodal_keras.export.saved_model_base import default_model_name
from xmodal_keras.runs.run_directory import RunDirectory
from xmodal_keras.tasks.captioning.export import sample_image_bytes
from xmodal_keras.tasks.retrieval.retrieve import load_dual_encoder_run


def export_saved_model(
    run_dir: str | os.PathLike | RunDirectory,
    *,
    base_dir: str | os.PathLike = "saved_models",
    name: str | None = None,
    version: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    warmup_image: bytes | None = None,
    warmup_text: str = DEFAULT_WARMUP_TEXT,
) -> pathlib.Path:
    """Export a finished `xmodal train retrieval` run to `base_dir/name/version/`.

    Args:
        run_dir: the run directory (path or `RunDirectory`).
        base_dir: the TF Serving model base folder. Defaults to `"saved_models"`.
        name: model name. Defaults to the run folder's name.
        version: version number; must not exist yet. Defaults to the next free number.
        max_pixels: pixel limit checked from each image header. Defaults to 40 megapixels.
        warmup_image: encoded image of the warm-up requests. Defaults to the run's first
            image.
        warmup_text: text of the warm-up requests. Defaults to `"a red circle"`.

    Returns:
        The written version folder.
    """
    model, tokenizer, config = load_dual_encoder_run(run_dir)
    return export_dual_encoder(
        model,
        tokenizer,
        base_dir=base_dir,
        name=name or default_model_name(run_dir),
        version=version,
        max_pixels=max_pixels,
        warmup_image=warmup_image or sample_image_bytes(config.resolved()),
        warmup_text=warmup_text,
    )
