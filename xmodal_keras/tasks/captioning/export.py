"""Export a trained captioner run: a TF Serving SavedModel or a LiteRT folder.

The run brings what a bare model cannot: its tokenizer, its decoder name, a real image of
its data for the warm-up requests, and its train images to calibrate int8 with. The
writing itself is `xmodal_keras.export` (`export_captioner_saved_model`,
`export_captioner_tflite`), which takes models only.

Example (`xmodal export RUN --format saved_model` runs this):

    export_saved_model("runs/demo", base_dir="saved_models", name="captioner")
"""

import os
import pathlib
from collections.abc import Sequence

import keras
import numpy as np

from xmodal_keras.data.image_header import DEFAULT_MAX_PIXELS
from xmodal_keras.data.image_preprocessing import load_image
from xmodal_keras.data.text_tokenizer import CaptionTokenizer
from xmodal_keras.decoding.caption_generator import CaptionGenerator
from xmodal_keras.export.saved_model_base import default_model_name, drawn_jpeg
from xmodal_keras.export.saved_model_export import export_captioner_saved_model
from xmodal_keras.export.tflite_base import tflite_folder
from xmodal_keras.export.tflite_export import ACTIVATION_BITS, export_captioner_tflite
from xmodal_keras.runs.run_directory import RunDirectory
from xmodal_keras.tasks.captioning.data import read_caption_data
from xmodal_keras.tasks.captioning.predict import load_captioner
from xmodal_keras.tasks.captioning.settings import CaptionerTrainConfig

DEFAULT_REPRESENTATIVE_IMAGES = 64


def sample_image_bytes(config: CaptionerTrainConfig | None) -> bytes:
    """The first image of a run's data (its `config`), for the warm-up requests; a drawn
    JPEG when `config` is None or its data is unreadable."""
    if config is None:
        return drawn_jpeg()
    try:
        return pathlib.Path(read_caption_data(config)["image_path"].iloc[0]).read_bytes()
    except (OSError, ValueError, IndexError):
        return drawn_jpeg()


def training_images(
    config: CaptionerTrainConfig, image_size: Sequence[int], *, count: int, seed: int = 0
) -> np.ndarray:
    """`count` train-split images of a run (uint8 `[count, H, W, 3]`, read as training
    reads them), drawn at random with `seed`: the int8 calibration set."""
    frame = read_caption_data(config.resolved())
    paths = sorted(set(frame.loc[frame["split"] == "train", "image_path"]))
    if not paths:
        raise ValueError("The run's data has no train images to calibrate int8 with.")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(paths), size=min(count, len(paths)), replace=False)
    size = tuple(image_size[:2])
    return np.stack([load_image(paths[i], size).numpy() for i in sorted(chosen)])


def export_saved_model(
    run_dir: str | os.PathLike | RunDirectory,
    *,
    base_dir: str | os.PathLike = "saved_models",
    name: str | None = None,
    version: int | None = None,
    beam_width: int = 3,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    warmup_image: bytes | None = None,
    jit_compile: bool = False,
) -> pathlib.Path:
    """Export a trained captioner run to `base_dir/name/version/` for TF Serving.

    Args:
        run_dir: a finished `xmodal train captioner` run directory.
        base_dir: the TF Serving model base folder. Defaults to `"saved_models"`.
        name: model name. Defaults to the run folder's name.
        version: version number; must not exist yet. Defaults to the next free number.
        beam_width: beam width of the `caption_beam` signature. Defaults to 3.
        max_pixels: pixel limit checked from each image header. Defaults to 40 megapixels.
        warmup_image: encoded image for the warm-up requests. Defaults to the first image
            of the run's data.
        jit_compile: compile the decoding loops with XLA (TF Serving then needs
            `--xla_cpu_compilation_enabled=true`). Defaults to False.

    Returns:
        The written version folder (see `export_captioner_saved_model`).
    """
    model, tokenizer, config = load_captioner(run_dir)
    return export_captioner_saved_model(
        model,
        tokenizer,
        base_dir=base_dir,
        name=name or default_model_name(run_dir),
        version=version,
        beam_width=beam_width,
        max_pixels=max_pixels,
        warmup_image=warmup_image or sample_image_bytes(config),
        extra_info={"decoder": config.decoder},
        jit_compile=jit_compile,
    )


def export_tflite(
    source: str | os.PathLike | RunDirectory | keras.Model | CaptionGenerator,
    out_dir: str | os.PathLike = "saved_models",
    *,
    name: str | None = None,
    quantize: str = "none",
    tokenizer: CaptionTokenizer | None = None,
    max_length: int | None = None,
    representative_images: np.ndarray | Sequence[str | os.PathLike] | None = None,
    num_representative_images: int = DEFAULT_REPRESENTATIVE_IMAGES,
) -> pathlib.Path:
    """Export a captioner run (or model) as `OUT_DIR/NAME_tflite/` for LiteRT.

    Args:
        source: a run directory (path or `RunDirectory`); a captioner `keras.Model` (with
            `tokenizer`) or a `CaptionGenerator` go straight to `export_captioner_tflite`.
        out_dir: parent folder. Defaults to `"saved_models"`.
        name: folder name before `_tflite`. Defaults to the run folder's name.
        quantize: one of `QUANTIZATIONS` (`"none"`, `"float16"`, `"dynamic"`, `"int8"`,
            `"int16x8"`). Defaults to `"none"`.
        tokenizer: the model's `CaptionTokenizer` (only with a `keras.Model` source).
        max_length: most tokens per caption. Defaults to the model's `sequence_length`.
        representative_images: int8 calibration images (uint8 `[N, H, W, 3]` or image
            paths). Defaults to `num_representative_images` train images of the run.
        num_representative_images: how many train images calibrate int8. Defaults to 64.

    Returns:
        The written folder (`model.tflite`, `vocab.txt`, `metadata.json`).
    """
    if not isinstance(source, str | os.PathLike | RunDirectory):
        return export_captioner_tflite(
            source,
            out_dir,
            name=name,
            quantize=quantize,
            tokenizer=tokenizer,
            max_length=max_length,
            representative_images=representative_images,
        )
    run = source if isinstance(source, RunDirectory) else RunDirectory(source)
    name = run.path.name if name is None else name
    tflite_folder(out_dir, name)  # a bad name or an existing folder: refused before loading
    model, run_tokenizer, config = load_captioner(run)
    if quantize in ACTIVATION_BITS and representative_images is None:
        representative_images = training_images(
            config, model.input["images"].shape[1:3], count=num_representative_images
        )
    return export_captioner_tflite(
        model,
        out_dir,
        name=name,
        quantize=quantize,
        tokenizer=run_tokenizer,
        max_length=max_length,
        representative_images=representative_images,
        source_path=str(run.path),
    )
