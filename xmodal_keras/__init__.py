"""xmodal_keras: cross-modal learning with Keras 3 on TensorFlow.

The public API is re-exported here by hand; see README.md for a tour.
"""

import os


def _refuse_backend(name: str) -> ImportError:
    return ImportError(
        "xmodal_keras needs the Keras 'tensorflow' backend (TF Serving, TFLite and "
        f"tf.distribute work on TF graphs). Received: KERAS_BACKEND={name!r}. "
        "Set KERAS_BACKEND=tensorflow."
    )


# Checked before importing Keras, whose other backends may not even be installed.
if os.environ.setdefault("KERAS_BACKEND", "tensorflow") != "tensorflow":
    raise _refuse_backend(os.environ["KERAS_BACKEND"])

import keras  # noqa: E402

if keras.backend.backend() != "tensorflow":  # Keras was imported earlier with another backend
    raise _refuse_backend(keras.backend.backend())

__version__ = "0.1.0"

# The public API, by hand (DESIGN.md §4). Subpackages hold the rest.
from xmodal_keras.data import (  # noqa: E402
    CaptionTokenizer,
    CoreWordPieceTokenizer,
    DataValidationError,
    load_shapes,
    make_caption_dataset,
    make_pair_dataset,
    read_captions,
    read_pairs,
)
from xmodal_keras.decoding import CaptionGenerator  # noqa: E402
from xmodal_keras.evaluation import compute_caption_metrics  # noqa: E402
from xmodal_keras.models import (  # noqa: E402
    build_gru_captioner,
    build_lstm_captioner,
    build_transformer_captioner,
)
from xmodal_keras.tasks.captioning import (  # noqa: E402
    CaptionerTrainConfig,
    evaluate_captioner,
    export_saved_model,
    export_tflite,
    load_captioner,
    train_captioner,
)
from xmodal_keras.training import compile_captioner, get_strategy  # noqa: E402

__all__ = [
    "CaptionGenerator",
    "CaptionTokenizer",
    "CaptionerTrainConfig",
    "CoreWordPieceTokenizer",
    "DataValidationError",
    "build_gru_captioner",
    "build_lstm_captioner",
    "build_transformer_captioner",
    "compile_captioner",
    "compute_caption_metrics",
    "evaluate_captioner",
    "export_saved_model",
    "export_tflite",
    "get_strategy",
    "load_captioner",
    "load_shapes",
    "make_caption_dataset",
    "make_pair_dataset",
    "read_captions",
    "read_pairs",
    "train_captioner",
]
