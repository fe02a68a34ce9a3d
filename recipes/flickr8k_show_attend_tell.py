"""Show, Attend and Tell on Flickr8k: a CNN + attention-GRU captioner trained with `model.fit`.

Xu et al., *Show, Attend and Tell* (ICML 2015): a GRU (the paper: LSTM) reads the caption
word by word and, at every step, attends over the grid of CNN region features (additive,
Bahdanau attention), with the doubly stochastic attention regulariser. Here the CNN is an
ImageNet-pretrained EfficientNetV2-B0, kept frozen.

Command (Flickr8k folder = `Flicker8k_Dataset/` + `Flickr8k_text/` from the original zips):

    python recipes/flickr8k_show_attend_tell.py --data /data/Flickr8k --out runs/flickr8k_sat

Every field of `RunSettings` below is a flag (`--hidden-dim 256`, `--weights none`, ...).
The run directory gets `config.json` (these settings), `vocab.txt`, `model.keras`,
`history.csv`, `backup/` (rerun the same command to resume a killed run) and
`metrics/test_beam3/{metrics.json,captions.jsonl}`.

Expected time: not measured here (this project's machines have no internet, so no
Flickr8k). 6,000 train images x 5 captions = 30,000 pairs an epoch.
Expected metric: not measured here. For reference, the paper reports test BLEU-4 0.195
and METEOR 0.189 (soft attention, VGG features); expect the same range.
"""

import argparse
import dataclasses
import json
import math
import pathlib
import time

import keras

from xmodal_keras.data import CaptionTokenizer, make_caption_dataset, read_flickr8k
from xmodal_keras.decoding import CaptionGenerator
from xmodal_keras.decoding.caption_images import caption_paths
from xmodal_keras.evaluation import compute_caption_metrics, write_caption_results
from xmodal_keras.models import build_gru_captioner
from xmodal_keras.training import get_strategy
from xmodal_keras.training.compile_captioner import compile_captioner


@dataclasses.dataclass
class RunSettings:
    data: str = "Flickr8k"  # the Flickr8k folder
    out: str = "runs/flickr8k_show_attend_tell"
    encoder: str = "efficientnet_v2_b0"
    weights: str | None = "imagenet"  # "none" on the command line: random weights
    trainable_blocks: int | None = 0  # frozen; N fine-tunes the last N blocks
    encoder_hidden_dim: int | None = None  # only for encoder="small_cnn"
    image_size: int = 224
    sequence_length: int = 20  # 95% of Flickr8k captions have <= 19 words
    min_count: int = 5  # words seen fewer times become <unk>
    embedding_dim: int = 256
    hidden_dim: int = 512
    attention_dim: int = 256
    dropout: float = 0.3
    attention_regularization: float = 1.0
    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 1e-3
    label_smoothing: float = 0.1
    early_stopping_patience: int = 3
    beam_width: int = 3
    max_eval_images: int | None = None  # None: the whole test split (1,000 images)
    seed: int = 42


def parse_settings(argv=None) -> RunSettings:
    """One flag per `RunSettings` field; "none" clears an optional one."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for field in dataclasses.fields(RunSettings):
        default = field.default
        kind = type(default) if default is not None else (int if "int" in str(field.type) else str)

        def convert(text, kind=kind):
            return None if text.lower() == "none" else kind(text)

        parser.add_argument("--" + field.name.replace("_", "-"), type=convert, default=default)
    return RunSettings(**vars(parser.parse_args(argv)))


def main(argv=None) -> dict:
    settings = parse_settings(argv)
    out = pathlib.Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(dataclasses.asdict(settings), indent=2))
    keras.utils.set_random_seed(settings.seed)

    # ----------------------------------------------------------------- data
    # One row per caption: image_id, image_path, caption, split (train / val / test).
    captions = read_flickr8k(settings.data)
    train, val, test = (captions[captions.split == s] for s in ("train", "val", "test"))
    print(f"captions: {len(train)} train, {len(val)} val, {len(test)} test")

    # The vocabulary comes from the train captions only; it is saved with the model.
    tokenizer = CaptionTokenizer.from_captions(
        train.caption, sequence_length=settings.sequence_length, min_count=settings.min_count
    )
    tokenizer.save_vocabulary(out / "vocab.txt")

    # ({"images": uint8 [B, H, W, 3], "token_ids": int32 [B, T]}, caption_out [B, T]).
    # Each image is decoded once for its 5 captions; decoded images are cached in memory
    # (6,000 x 224 x 224 x 3 bytes ~ 0.9 GB). repeat() + steps_per_epoch avoids a stall
    # at epoch ends on TF 2.21.
    image_size = (settings.image_size, settings.image_size)
    batch_size = settings.batch_size
    train_data = make_caption_dataset(
        train, tokenizer, image_size=image_size, batch_size=batch_size, cache=True, repeat=True
    )
    val_data = make_caption_dataset(
        val, tokenizer, image_size=image_size, batch_size=batch_size, shuffle=False,
        cache=True, repeat=True,
    )  # fmt: skip
    steps_per_epoch = math.ceil(len(train) / batch_size)
    validation_steps = math.ceil(len(val) / batch_size)

    # ----------------------------------------------------------------- model
    # Built inside the strategy's scope: MirroredStrategy when several GPUs are visible.
    strategy = get_strategy("auto")
    print(f"{strategy.num_replicas_in_sync} replica(s), global batch {batch_size}")
    with strategy.scope():
        model = build_gru_captioner(
            vocabulary_size=tokenizer.vocabulary_size,
            sequence_length=settings.sequence_length,
            image_shape=(*image_size, 3),
            encoder=settings.encoder,
            encoder_weights=settings.weights,
            trainable_blocks=settings.trainable_blocks,
            encoder_kwargs=(
                {"hidden_dim": settings.encoder_hidden_dim} if settings.encoder_hidden_dim else None
            ),
            embedding_dim=settings.embedding_dim,
            hidden_dim=settings.hidden_dim,
            attention_dim=settings.attention_dim,
            dropout=settings.dropout,
            attention_regularization=settings.attention_regularization,
        )
        # Masked cross-entropy (padding ignored), masked token accuracy, AdamW with
        # linear warm-up + cosine decay over the whole run.
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
            keras.callbacks.EarlyStopping(
                patience=settings.early_stopping_patience, restore_best_weights=True
            ),
        ],
    )
    model.save(out / "model.keras")
    print(f"trained in {time.perf_counter() - start:.0f} s")

    # ----------------------------------------------------------------- evaluate
    # Beam search in-graph on the test images; COCO metrics (BLEU, METEOR, ROUGE-L, CIDEr).
    references = test.groupby("image_id")["caption"].apply(list).to_dict()
    image_ids = sorted(references)[: settings.max_eval_images]
    paths = test.groupby("image_id")["image_path"].first()[image_ids].tolist()
    generated = caption_paths(
        CaptionGenerator(model, tokenizer), paths, beam_width=settings.beam_width
    )["text"]
    candidates = dict(zip(image_ids, generated, strict=True))
    references = {i: references[i] for i in image_ids}
    metrics = compute_caption_metrics(references, candidates)
    rows = [
        {"image_id": i, "generated": candidates[i], "references": references[i]} for i in image_ids
    ]
    write_caption_results(out / "metrics" / f"test_beam{settings.beam_width}", metrics, rows)
    print("test:", ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
    return metrics


if __name__ == "__main__":
    main()
