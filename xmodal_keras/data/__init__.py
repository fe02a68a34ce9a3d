"""Data: the built-in shapes and digits datasets, readers, vocabulary and tf.data pipelines."""

from xmodal_keras.data.core_wordpiece_tokenizer import CoreWordPieceTokenizer
from xmodal_keras.data.datasets import (
    DatasetPlan,
    build_caption_augmentation,
    make_caption_dataset,
    make_pair_dataset,
    plan_caption_dataset,
    plan_pair_dataset,
)
from xmodal_keras.data.digits import (
    digits_scenes_dir,
    generate_digits_scenes,
    load_digits_scenes,
    read_digit_scenes,
)
from xmodal_keras.data.image_preprocessing import decode_image, find_bad_images, load_image
from xmodal_keras.data.inspection import DatasetReport, format_report, inspect_dataset
from xmodal_keras.data.readers import (
    read_caption_csv,
    read_captions,
    read_coco_captions,
    read_flickr8k,
    read_hateful_memes,
    read_karpathy_json,
    read_pair_csv,
    read_pairs,
)
from xmodal_keras.data.retrieval_dataset import make_retrieval_dataset
from xmodal_keras.data.shapes import generate_shapes, load_shapes, read_scenes, shapes_dir
from xmodal_keras.data.sharding import shard_by
from xmodal_keras.data.text_tokenizer import (
    CaptionTokenizer,
    build_vocabulary,
    normalize_caption,
)
from xmodal_keras.data.tfrecords import (
    make_caption_tfrecord_dataset,
    read_caption_tfrecords,
    write_caption_tfrecords,
)
from xmodal_keras.data.validation import DataValidationError

__all__ = [
    "CaptionTokenizer",
    "CoreWordPieceTokenizer",
    "DataValidationError",
    "DatasetPlan",
    "DatasetReport",
    "build_caption_augmentation",
    "build_vocabulary",
    "decode_image",
    "digits_scenes_dir",
    "find_bad_images",
    "format_report",
    "generate_digits_scenes",
    "generate_shapes",
    "inspect_dataset",
    "load_digits_scenes",
    "load_image",
    "load_shapes",
    "make_caption_dataset",
    "make_caption_tfrecord_dataset",
    "make_pair_dataset",
    "make_retrieval_dataset",
    "normalize_caption",
    "plan_caption_dataset",
    "plan_pair_dataset",
    "read_caption_csv",
    "read_caption_tfrecords",
    "read_captions",
    "read_coco_captions",
    "read_digit_scenes",
    "read_flickr8k",
    "read_hateful_memes",
    "read_karpathy_json",
    "read_pair_csv",
    "read_pairs",
    "read_scenes",
    "shard_by",
    "shapes_dir",
    "write_caption_tfrecords",
]
