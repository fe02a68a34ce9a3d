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
