"""A CNN + Transformer-decoder captioner on COCO Captions, trained with `model.fit`.

An ImageNet-pretrained EfficientNetV2-B0 (frozen) turns each image into a grid of region
features; a KerasHub Transformer decoder (causal self-attention + cross-attention to the
grid) predicts the next word. Decoding at test time runs in-graph with a key/value cache.

Command (the official 2017 files: `annotations/captions_{train,val}2017.json`, images in
`train2017/` and `val2017/` next to `annotations/`):

    python recipes/coco_transformer_captioner.py \
        --train-captions /data/coco/annotations/captions_train2017.json \
        --val-captions /data/coco/annotations/captions_val2017.json --out runs/coco_transformer

val2017 (5,000 images) gives the validation loss and the final metrics. Every field of
`RunSettings` is a flag (`--num-layers 2`, `--weights none`, `--train-images DIR`, ...).
The run directory gets `config.json`, `vocab.txt`, `model.keras`, `history.csv`, `backup/`
(rerun the same command to resume) and `metrics/val_beam3/{metrics.json,captions.jsonl}`.

Expected time: not measured here (this project's machines have no internet, so no COCO).
118,287 train images x ~5 captions = ~591,000 pairs an epoch; images are decoded every
epoch (a 224 px cache would need ~18 GB of memory; `--cache true` turns it on).
Expected metric: not measured here. CNN + Transformer captioners trained with
cross-entropy only (no CIDEr optimisation) are reported around BLEU-4 0.30-0.35 and
CIDEr 1.0-1.1 on COCO; expect the lower end with a frozen B0 encoder.
"""

import argparse
import dataclasses
import json
import math
import pathlib
import time

import keras

from xmodal_keras.data import CaptionTokenizer, make_caption_dataset, read_coco_captions
from xmodal_keras.decoding import CaptionGenerator
from xmodal_keras.decoding.caption_images import caption_paths
from xmodal_keras.evaluation import compute_caption_metrics, write_caption_results
from xmodal_keras.models import build_transformer_captioner
from xmodal_keras.training import get_strategy
from xmodal_keras.training.compile_captioner import compile_captioner


@dataclasses.dataclass
class RunSettings:
    train_captions: str = "coco/annotations/captions_train2017.json"
    val_captions: str = "coco/annotations/captions_val2017.json"
    train_images: str | None = None  # None: train2017/ found next to the JSON
    val_images: str | None = None
    out: str = "runs/coco_transformer_captioner"
    encoder: str = "efficientnet_v2_b0"
    weights: str | None = "imagenet"  # "none" on the command line: random weights
    trainable_blocks: int | None = 0  # frozen; N fine-tunes the last N blocks
    encoder_hidden_dim: int | None = None  # only for encoder="small_cnn"
    image_size: int = 224
    sequence_length: int = 20  # 99% of COCO captions have <= 19 words
    min_count: int = 5
    hidden_dim: int = 512
    intermediate_dim: int = 2048
    num_layers: int = 3
    num_heads: int = 8
    dropout: float = 0.1
    epochs: int = 10
    batch_size: int = 128
    learning_rate: float = 5e-4
    label_smoothing: float = 0.1
    cache: bool = False
    beam_width: int = 3
    max_eval_images: int | None = None  # None: all 5,000 val images
    seed: int = 42


def parse_settings(argv=None) -> RunSettings:
    """One flag per `RunSettings` field; "none" clears an optional one."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for field in dataclasses.fields(RunSettings):
        default = field.default
        kind = type(default) if default is not None else (int if "int" in str(field.type) else str)

        def convert(text, kind=kind):
            if text.lower() == "none":
                return None
            return text.lower() in ("1", "true", "yes") if kind is bool else kind(text)

        parser.add_argument("--" + field.name.replace("_", "-"), type=convert, default=default)
    return RunSettings(**vars(parser.parse_args(argv)))


def main(argv=None) -> dict:
    settings = parse_settings(argv)
    out = pathlib.Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(dataclasses.asdict(settings), indent=2))
    keras.utils.set_random_seed(settings.seed)

    # ----------------------------------------------------------------- data
    # One row per caption: image_id, image_path, caption, split.
    train = read_coco_captions(settings.train_captions, settings.train_images, split="train")
    val = read_coco_captions(settings.val_captions, settings.val_images, split="val")
    print(f"captions: {len(train)} train, {len(val)} val")

    tokenizer = CaptionTokenizer.from_captions(
        train.caption, sequence_length=settings.sequence_length, min_count=settings.min_count
    )
    tokenizer.save_vocabulary(out / "vocab.txt")

    # ({"images": uint8 [B, H, W, 3], "token_ids": int32 [B, T]}, caption_out [B, T]);
    # each image is decoded once for its captions; repeat() + steps_per_epoch.
    image_size = (settings.image_size, settings.image_size)
    batch_size = settings.batch_size
    train_data = make_caption_dataset(
        train, tokenizer, image_size=image_size, batch_size=batch_size,
        cache=settings.cache, repeat=True,
    )  # fmt: skip
    val_data = make_caption_dataset(
        val, tokenizer, image_size=image_size, batch_size=batch_size, shuffle=False,
        cache=settings.cache, repeat=True,
    )  # fmt: skip
    steps_per_epoch = math.ceil(len(train) / batch_size)
    validation_steps = math.ceil(len(val) / batch_size)

    # ----------------------------------------------------------------- model
    strategy = get_strategy("auto")  # MirroredStrategy when several GPUs are visible
    print(f"{strategy.num_replicas_in_sync} replica(s), global batch {batch_size}")
    with strategy.scope():
        model = build_transformer_captioner(
            vocabulary_size=tokenizer.vocabulary_size,
            sequence_length=settings.sequence_length,
            image_shape=(*image_size, 3),
            encoder=settings.encoder,
            encoder_weights=settings.weights,
            trainable_blocks=settings.trainable_blocks,
            encoder_kwargs=(
                {"hidden_dim": settings.encoder_hidden_dim} if settings.encoder_hidden_dim else None
            ),
            hidden_dim=settings.hidden_dim,
            intermediate_dim=settings.intermediate_dim,
            num_layers=settings.num_layers,
            num_heads=settings.num_heads,
            dropout=settings.dropout,
        )
        compile_captioner(
            model,
            total_steps=settings.epochs * steps_per_epoch,
            learning_rate=settings.learning_rate,
            label_smoothing=settings.label_smoothing,
        )

    # ----------------------------------------------------------------- train
    start = time.perf_counter()
    model.fit(
        train_data,
        epochs=settings.epochs,
        steps_per_epoch=steps_per_epoch,
        validation_data=val_data,
        validation_steps=validation_steps,
        shuffle=False,  # the dataset shuffles itself
        callbacks=[
            keras.callbacks.BackupAndRestore(str(out / "backup")),  # a killed run resumes
            keras.callbacks.CSVLogger(str(out / "history.csv"), append=True),
            keras.callbacks.ModelCheckpoint(
                str(out / "best.weights.h5"), save_best_only=True, save_weights_only=True
            ),
        ],
    )
    model.save(out / "model.keras")
    print(f"trained in {time.perf_counter() - start:.0f} s")

    # ----------------------------------------------------------------- evaluate
    # In-graph beam search (KV cache) on the val images; COCO caption metrics.
    references = val.groupby("image_id")["caption"].apply(list).to_dict()
    image_ids = sorted(references)[: settings.max_eval_images]
    paths = val.groupby("image_id")["image_path"].first()[image_ids].tolist()
    generator = CaptionGenerator(model, tokenizer)
    generated = caption_paths(generator, paths, beam_width=settings.beam_width)["text"]
    candidates = dict(zip(image_ids, generated, strict=True))
    references = {i: references[i] for i in image_ids}
    metrics = compute_caption_metrics(references, candidates)
    rows = [
        {"image_id": i, "generated": candidates[i], "references": references[i]} for i in image_ids
    ]
    write_caption_results(out / "metrics" / f"val_beam{settings.beam_width}", metrics, rows)
    print("val:", ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
    return metrics


if __name__ == "__main__":
    main()
