"""Export models (never run directories): SavedModels for TF Serving (+ client), LiteRT
for phones. Trained runs are exported by `xmodal_keras.tasks.<task>.export`."""

from xmodal_keras.export.atomic_directory import (
    atomic_directory,
    next_version,
    write_version,
)
from xmodal_keras.export.client import ServingClient, ServingError
from xmodal_keras.export.dual_encoder_export import export_dual_encoder
from xmodal_keras.export.fusion_export import export_fusion_classifier
from xmodal_keras.export.fusion_tflite_export import export_fusion_classifier_tflite
from xmodal_keras.export.graph_ops import non_core_ops, saved_model_ops
from xmodal_keras.export.image_bytes import decode_image_batch
from xmodal_keras.export.saved_model_export import (
    build_serving_archive,
    export_captioner_saved_model,
)
from xmodal_keras.export.serving_config import write_serving_config
from xmodal_keras.export.tflite_captioner import TFLiteCaptioner, caption_tflite_files
from xmodal_keras.export.tflite_export import export_captioner_tflite
from xmodal_keras.export.tflite_ops import list_tflite_ops, non_builtin_ops

__all__ = [
    "ServingClient",
    "ServingError",
    "TFLiteCaptioner",
    "atomic_directory",
    "build_serving_archive",
    "caption_tflite_files",
    "decode_image_batch",
    "export_captioner_saved_model",
    "export_captioner_tflite",
    "export_dual_encoder",
    "export_fusion_classifier",
    "export_fusion_classifier_tflite",
    "list_tflite_ops",
    "next_version",
    "non_builtin_ops",
    "non_core_ops",
    "saved_model_ops",
    "write_serving_config",
    "write_version",
]
