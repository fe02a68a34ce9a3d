"""Export a trained fusion run: a TF Serving SavedModel (`classify`) or a LiteRT folder.

The run brings its model and tokenizer; the writing itself is `xmodal_keras.export`
(`export_fusion_classifier`, `export_fusion_classifier_tflite`), which takes models only.

Example (`xmodal export RUN` on a fusion run):

    export_saved_model("runs/fusion", base_dir="saved_models", name="verify")
"""

import os
import pathlib

from xmodal_keras.data.image_header import DEFAULT_MAX_PIXELS
from xmodal_keras.export.fusion_export import export_fusion_classifier
from xmodal_keras.export.fusion_tflite_export import (
    QUANTIZATIONS,
    export_fusion_classifier_tflite,
)
from xmodal_keras.export.saved_model_base import default_model_name
from xmodal_keras.runs.run_directory import RunDirectory
from xmodal_keras.tasks.fusion.evaluate import load_fusion_run


def export_saved_model(
    run_dir: str | os.PathLike | RunDirectory,
    *,
    base_dir: str | os.PathLike = "saved_models",
    name: str | None = None,
    version: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> pathlib.Path:
    """Export a finished `xmodal train fusion` run to `base_dir/name/version/`.

    Args:
        run_dir: the run directory (path or `RunDirectory`).
        base_dir: the TF Serving model base folder. Defaults to `"saved_models"`.
        name: model name. Defaults to the run folder's name.
        version: version number; must not exist yet. Defaults to the next free number.
        max_pixels: pixel limit checked from each image header. Defaults to 40 megapixels.

    Returns:
        The written version folder.
    """
    model, tokenizer, _ = load_fusion_run(run_dir)
    return export_fusion_classifier(
        model,
        tokenizer,
        base_dir=base_dir,
        name=name or default_model_name(run_dir),
        version=version,
        max_pixels=max_pixels,
    )


def export_tflite(
    run_dir: str | os.PathLike | RunDirectory,
    out_dir: str | os.PathLike = "saved_models",
    *,
    name: str | None = None,
    quantize: str = "none",
) -> pathlib.Path:
    """Export a finished fusion run as `OUT_DIR/NAME_tflite/` for LiteRT.

    Args:
        run_dir: the run directory (path or `RunDirectory`).
        out_dir: parent folder. Defaults to `"saved_models"`.
        name: folder name before `_tflite`. Defaults to the run folder's name.
        quantize: `"none"`, `"float16"` or `"dynamic"` (no int8: a fusion classifier has
            no calibration set here). Defaults to `"none"`.

    Returns:
        The written folder.
    """
    if quantize not in QUANTIZATIONS:
        raise ValueError(
            "Fusion classifiers export float32, float16 or dynamic TFLite files. "
            f"Received: quantize={quantize!r}"
        )
    model, tokenizer, _ = load_fusion_run(run_dir)
    return export_fusion_classifier_tflite(
        model,
        out_dir,
        name=name or default_model_name(run_dir),
        quantize=quantize,
        tokenizer=tokenizer,
    )
