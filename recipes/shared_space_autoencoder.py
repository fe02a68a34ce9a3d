"""A shared image-text space learnt by reconstruction alone: the cross-modal autoencoder.

After Ngiam et al. (2011), *Multimodal Deep Learning*. Each image and each caption is
turned into a plain feature vector: the image downsampled to `pixel_grid x pixel_grid`
RGB values, the caption a bag of words over the training vocabulary (no encoder is
trained, so the recipe shows what the autoencoder itself learns). Both are standardised
with the training split's statistics. `build_cross_modal_autoencoder` maps each modality
to a code in one space and learns to rebuild **both** modalities from each single code
(and from their mean), with mean squared error only: no contrastive loss, no negatives.
The image's code and its caption's code are thereby pulled together.

We report the test reconstruction losses and the cross-modal retrieval recall@1/5 of the
codes (caption code vs image code, cosine similarity), each beside the same model with
random initial weights (the baseline), and chance.

Command (the built-in shapes dataset; any `read_captions` format works with `--data PATH`):

    python recipes/shared_space_autoencoder.py --out runs/shared_space_autoencoder

Expected time: under a minute on 2 shared CPU cores with these defaults (1,000 shapes
images; measured 43 s wall). Expected metric, measured once with these defaults: test
(100 images, 500 captions) summed reconstruction loss 2.59 (random init 6.04); caption
code -> image code recall@1 0.072, recall@5 0.258 (random init 0.006 / 0.036, chance
0.010). Reconstruction alone aligns the codes only weakly; a contrastive dual encoder
(`clip_retrieval.py`) does far better on the same data.
"""

import argparse
import dataclasses
import json
import pathlib

import keras
import numpy as np
import tensorflow as tf

from xmodal_keras.data import CaptionTokenizer, load_shapes, read_captions
from xmodal_keras.data.image_preprocessing import load_image
from xmodal_keras.evaluation.retrieval import retrieval_recall
from xmodal_keras.models.cross_modal_autoencoder import (
    build_cross_modal_autoencoder,
    cross_modal_autoencoder_targets,
)


@dataclasses.dataclass
class RunSettings:
    data: str = "shapes"  # or a Flickr8k folder, Karpathy/COCO JSON, caption CSV
    format: str = "auto"
    shapes_num_images: int = 1000
    shapes_image_size: int = 32
    out: str = "runs/shared_space_autoencoder"
    pixel_grid: int = 8  # image features: pixel_grid x pixel_grid x 3 values
    sequence_length: int = 24
    code_dim: int = 32
    hidden_dim: int = 128
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 3e-3
    seed: int = 0


def parse_settings(argv=None) -> RunSettings:
    """One flag per `RunSettings` field."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for field in dataclasses.fields(RunSettings):
        parser.add_argument(
            "--" + field.name.replace("_", "-"), type=type(field.default), default=field.default
        )
    return RunSettings(**vars(parser.parse_args(argv)))


def image_features(paths: list[str], grid: int) -> np.ndarray:
    """Each image resized to `grid x grid`, RGB in [0, 1], flattened: `[N, grid * grid * 3]`."""
    images = tf.stack([load_image(p, (grid, grid)) for p in paths])
    return (tf.reshape(tf.cast(images, tf.float32), (len(paths), -1)) / 255.0).numpy()


def bag_of_words(tokenizer: CaptionTokenizer, captions: list[str]) -> np.ndarray:
    """Word counts per caption over the vocabulary (special tokens dropped): `[N, V]`."""
    ids = tokenizer(captions)
    counts = tf.math.bincount(
        ids, minlength=tokenizer.vocabulary_size, maxlength=tokenizer.vocabulary_size, axis=-1
    )
    counts = tf.cast(counts, tf.float32).numpy()
    counts[:, :4] = 0.0  # <pad>, <unk>, <start>, <end>
    return counts


def code_recall(autoencoder: keras.Model, features: dict, owner: np.ndarray, image_rows) -> dict:
    """Recall@1/5 of caption codes against image codes (one image code per image)."""
    codes = {
        m: keras.Model(autoencoder.input[m], autoencoder.get_layer(f"{m}_to_code").output)
        for m in ("image", "text")
    }
    image_codes = np.asarray(codes["image"](features["image"][image_rows]))
    text_codes = np.asarray(codes["text"](features["text"]))

    def unit(x):
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    return retrieval_recall(unit(image_codes), unit(text_codes), owner, ks=(1, 5))


def main(argv=None) -> dict:
    settings = parse_settings(argv)
    out = pathlib.Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(dataclasses.asdict(settings), indent=2) + "\n")
    keras.utils.set_random_seed(settings.seed)

    # ----------------------------------------------------------------- data
    if settings.data == "shapes":
        root = load_shapes(settings.shapes_num_images, settings.shapes_image_size)
        frame = read_captions(root, "flickr8k")
    else:
        frame = read_captions(settings.data, settings.format)
    tokenizer = CaptionTokenizer.from_captions(
        frame[frame.split == "train"].caption, sequence_length=settings.sequence_length
    )

    # One row per caption: {"image": its image's features, "text": its words}.
    splits = {}
    for split in ("train", "test"):
        rows = frame[frame.split == split]
        paths = rows.image_path.astype(str)
        unique = paths.unique().tolist()
        owner = np.asarray(paths.map({p: i for i, p in enumerate(unique)}), np.int64)
        pixels = image_features(unique, settings.pixel_grid)
        splits[split] = {
            "features": {
                "image": pixels[owner],
                "text": bag_of_words(tokenizer, rows.caption.astype(str).tolist()),
            },
            "owner": owner,
            # the first caption row of each image, to take its image features once
            "image_rows": np.unique(owner, return_index=True)[1],
        }
        print(f"{split}: {len(unique)} images, {len(rows)} captions")
    mean = {m: x.mean(0) for m, x in splits["train"]["features"].items()}
    std = {m: x.std(0) + 1e-3 for m, x in splits["train"]["features"].items()}
    for split in splits.values():
        split["features"] = {
            m: ((x - mean[m]) / std[m]).astype("float32") for m, x in split["features"].items()
        }
    train, test = splits["train"], splits["test"]

    # ---------------------------------------------------------------- model
    def build():
        model = build_cross_modal_autoencoder(
            feature_dims={m: x.shape[1] for m, x in train["features"].items()},
            code_dim=settings.code_dim,
            hidden_dim=settings.hidden_dim,
        )
        model.compile(optimizer=keras.optimizers.Adam(settings.learning_rate), loss="mse")
        return model

    baseline = build()  # random initial weights, never trained
    model = build()
    model.summary()

    # ---------------------------------------------------------------- train
    model.fit(
        train["features"],
        cross_modal_autoencoder_targets(train["features"]),
        batch_size=settings.batch_size,
        epochs=settings.epochs,
        callbacks=[keras.callbacks.CSVLogger(str(out / "history.csv"))],
        verbose=2,
    )
    model.save(out / "model.keras")

    # ------------------------------------------------------------- evaluate
    metrics = {}
    for name, candidate in (("trained", model), ("random_init", baseline)):
        losses = candidate.evaluate(
            test["features"],
            cross_modal_autoencoder_targets(test["features"]),
            batch_size=256,
            verbose=0,
            return_dict=True,
        )
        for key in ("loss", "image_from_text_loss", "text_from_image_loss"):
            metrics[f"{name}_test_{key}"] = float(losses[key])
        recall = code_recall(candidate, test["features"], test["owner"], test["image_rows"])
        for key in ("text_to_image_recall@1", "image_to_text_recall@1", "text_to_image_recall@5"):
            metrics[f"{name}_test_{key}"] = recall[key]
    metrics["chance_text_to_image_recall@1"] = 1.0 / len(test["image_rows"])
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    for key, value in metrics.items():
        print(f"{key}: {value:.3f}")
    return metrics


if __name__ == "__main__":
    main()
