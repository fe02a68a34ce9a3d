"""Fusion strategies on shapes statement verification, beside unimodal baselines.

Each image of the shapes data comes with one true and one false statement (the false one
changes one field: a shape, colour, size or the relation), so an image-only and a
text-only model are at chance by construction and only a model that relates the two
modalities can do better. Every row is one `train_fusion` run with the same settings,
data split and seed; only the fusion (or the modalities) differs:

- concat, weighted_sum, product, gated, cross_attention, bilinear: the fusion layers;
- late: per-modality heads, logits averaged (the late-fusion baseline);
- image-only, text-only: one modality, same encoders and head.

With `--init-from RUN` (a finished `xmodal train retrieval` run) every row starts from that
dual encoder's towers and vocabulary (`FusionTrainConfig.init_from`; rows read "(from
DE)", the encoder flags are then the run's) and its shapes test recall@1 image->text is
printed above the table. With a Transformer captioner run (`xmodal demo`) the rows are
cross_attention (its decoder reads the statement against its image encoder's grid,
`build_fusion_classifier_from_captioner`), image-only and text-only from the same layers;
they read "(from captioner)".

Columns: test accuracy and AUROC (`evaluation/classification.py`), val accuracy,
parameters, and train pairs/s of `model.fit` (epochs after the first, which also decodes
and caches the images). Quality bar (issue 6): best fusion >= 0.90 accuracy while
image-only and text-only <= 0.60.

The quality bar is reached from the demo's captioner (`xmodal demo --out runs/demo`, about
10 minutes; same shapes data, 5,000 images at 64 px, so the fusion test images are ones it
never saw). Measured on 2 CPU cores (tests running beside it), 13.5 minutes for the three
rows (the table as printed):

    .venv/bin/python benchmarks/fusion.py --init-from runs/demo --num-images 5000 \
        --epochs 6 --batch-size 64 --head-hidden-dim 128

shapes statement verification: 5000 images 64px, 6 epochs, batch 64, lr 0.001, encoders
from the captioner, seed 0
| model                            | test acc | test AUROC | val acc |   params | pairs/s | run s |
|----------------------------------|----------|------------|---------|----------|---------|-------|
| cross_attention (from captioner) |    0.904 |      0.969 |   0.891 |  595,069 |     119 |   452 |
| image-only (from captioner)      |    0.500 |      0.500 |   0.500 |   32,977 |     397 |   133 |
| text-only (from captioner)       |    0.498 |      0.505 |   0.501 |  570,541 |     259 |   227 |

Alone on the 2 cores the fused row trains at 210 pairs/s; with `--epochs 8` it gave test
accuracy 0.908 (val 0.883) in 366 s.

From the default captioner (`residual_cnn` + Transformer, the 8-minute runs of
`benchmarks/caption_quality.py --num-images 4000 --minutes 8`, 4,000 images per dataset,
so the fusion test images are ones it never saw), on both built-in datasets' statement
verification (2 CPU cores shared with the test suite, so pairs/s are low):

    .venv/bin/python benchmarks/fusion.py --init-from WORK/shapes_transformer --num-images 4000 \
        --epochs 6 --batch-size 64 --head-hidden-dim 128 --rows cross_attention
    .venv/bin/python benchmarks/fusion.py --init-from WORK/digits_transformer \
        --data DIGITS_4000_DIR --epochs 6 --batch-size 64 --head-hidden-dim 128 \
        --rows cross_attention

| data   | model                            | test acc | test AUROC | val acc |    params | run s |
|--------|----------------------------------|----------|------------|---------|-----------|-------|
| shapes | cross_attention (from captioner) |    0.934 |      0.974 |   0.915 | 2,708,493 |   526 |
| digits | cross_attention (from captioner) |    0.933 |      0.969 |   0.920 | 2,706,187 |   539 |

From scratch every strategy stays at chance (2 CPU cores, 12.5 minutes for the nine rows;
neither modality alone says anything about the label, so the encoders get no first-order
gradient):

    .venv/bin/python benchmarks/fusion.py --num-images 2000 --epochs 6 --batch-size 64
    .venv/bin/python benchmarks/fusion.py --rows cross_attention,image-only  # a subset

shapes statement verification: 2000 images 64px, 6 epochs, batch 64, lr 0.001, small_cnn 4
layers, width 64, seed 0
| model                            | test acc | test AUROC | val acc |   params | pairs/s | run s |
|----------------------------------|----------|------------|---------|----------|---------|-------|
| concat                           |    0.472 |      0.488 |   0.492 |   70,417 |     335 |    80 |
| weighted_sum                     |    0.480 |      0.485 |   0.470 |   66,323 |     368 |    79 |
| product                          |    0.485 |      0.502 |   0.500 |   66,321 |     388 |    75 |
| gated                            |    0.475 |      0.492 |   0.475 |   91,153 |     357 |    84 |
| cross_attention                  |    0.500 |      0.501 |   0.507 |  103,953 |     315 |    98 |
| bilinear                         |    0.490 |      0.498 |   0.485 |   74,641 |     334 |    87 |
| late                             |    0.497 |      0.491 |   0.482 |   70,546 |     384 |    79 |
| image-only                       |    0.500 |      0.500 |   0.500 |   37,201 |     345 |    63 |
| text-only                        |    0.468 |      0.483 |   0.468 |   33,345 |    1444 |    35 |

From a dual encoder (measured, 2 shared CPU cores, 2.5-4 min per row; the dual
encoder: `xmodal train retrieval --data shapes --shapes-num-images 2000 --epochs 8
--learning-rate 2e-3 --strategy default --out runs/clip`, about 10 minutes, test recall@1
image->text 0.865). The bar is still NOT reached: product fusion learns (from scratch it
stays at chance) but slowly; lr 2e-3 wrecks the transferred towers.

    .venv/bin/python benchmarks/fusion.py --init-from runs/clip \
        --rows product,gated,image-only,text-only --epochs 8 --learning-rate 5e-4

    | model                | test acc | test AUROC | val acc |   params | pairs/s | run s |
    |----------------------|----------|------------|---------|----------|---------|-------|
    | product (from DE)    |    0.650 |      0.731 |   0.650 |  128,929 |     209 |   156 |
    | gated (from DE)      |    0.685 |      0.730 |   0.672 |  153,761 |     173 |   228 |
    | image-only (from DE) |    0.500 |      0.500 |   0.500 |   36,257 |     188 |   147 |
    | text-only (from DE)  |    0.490 |      0.492 |   0.502 |   96,897 |     452 |   108 |

Pretrained-architecture towers with random weights (`--image-encoder resnet50`,
`--text-encoder random-bert-tiny`: a BERT shaped like `bert_tiny_en_uncased`, 30,522
tokens, saved as a local preset since presets cannot be downloaded here), to time the
wiring; with random weights the accuracy means nothing. Quality with real weights waits
for a machine that can download them. 2 CPU cores, nothing else running, precision
`auto` (mixed_bfloat16 on this AMX CPU), one `concat` row each:

    .venv/bin/python benchmarks/fusion.py --rows concat --num-images 600 --epochs 2 \
        --batch-size 32 --image-encoder resnet50 --text-encoder random-bert-tiny \
        --sequence-length 24

| image tower | text tower                | params     | pairs/s | run s |
|-------------|---------------------------|------------|---------|-------|
| small_cnn   | bigru (baseline)          | 70,417     | 731     | 27    |
| small_cnn   | BERT-tiny shape, random   | 4,439,761  | 243     | 53    |
| resnet50    | bigru                     | 23,760,577 | 31      | 153   |
| resnet50    | BERT-tiny shape, random   | 28,129,921 | 23      | 173   |

(ResNet50 at 64 px trains all its blocks here: `--weights` is None. Test accuracy 0.49-0.53
in every row: chance, as from scratch.)
"""

import argparse
import json
import pathlib
import tempfile
import time

import keras_hub

from xmodal_keras.data.text_tokenizer import normalize_caption
from xmodal_keras.tasks.fusion.data import read_pair_data
from xmodal_keras.tasks.fusion.evaluate import FIT_FILE, classification_metrics_dir
from xmodal_keras.tasks.fusion.settings import FusionTrainConfig, read_init_from_settings
from xmodal_keras.tasks.fusion.train import train_fusion

FUSIONS = ("concat", "weighted_sum", "product", "gated", "cross_attention", "bilinear", "late")
UNIMODAL = {"image-only": ("image",), "text-only": ("text",)}
ROWS = (*FUSIONS, *UNIMODAL)
# From a captioner the fusion is its decoder's cross-attention: no other fusion rows.
CAPTIONER_ROWS = ("cross_attention", *UNIMODAL)
SOURCE_LABELS = {"retrieval": "DE", "captioner": "captioner"}


def run_row(row: str, base: FusionTrainConfig, out: pathlib.Path, source: str | None) -> dict:
    label = f"{row} (from {SOURCE_LABELS[source]})" if source else row
    if row in UNIMODAL:
        config = FusionTrainConfig(**{**base.to_dict(), "modalities": UNIMODAL[row]})
    else:
        config = FusionTrainConfig(**{**base.to_dict(), "fusion": row})
    start = time.perf_counter()
    run = train_fusion(config, out / row, verbose=0)
    seconds = time.perf_counter() - start
    test = json.loads((classification_metrics_dir(run, "test") / "metrics.json").read_text())
    val = json.loads((classification_metrics_dir(run, "val") / "metrics.json").read_text())
    fit = json.loads((run.metrics_dir / FIT_FILE).read_text())
    return {
        "row": label,
        "test_accuracy": test["accuracy"],
        "test_auroc": test["auroc"],
        "val_accuracy": val["accuracy"],
        "params": fit["params"],
        "pairs_per_second": fit["train_pairs_per_second"],
        "seconds": seconds,
    }


# `bert_tiny_en_uncased`'s architecture (KerasHub preset config): 2 layers, 128 wide, 2
# heads, 30,522 WordPiece tokens.
BERT_TINY = {
    "num_layers": 2,
    "num_heads": 2,
    "hidden_dim": 128,
    "intermediate_dim": 512,
    "max_sequence_length": 512,
}
BERT_TINY_VOCABULARY_SIZE = 30522


def random_bert_tiny_preset(base: FusionTrainConfig, folder: pathlib.Path) -> str:
    """A `bert_tiny_en_uncased`-shaped BERT with random weights, saved as a local preset
    (presets cannot be downloaded here): the train texts' words, then `[unused]` tokens up to
    BERT's 30,522, so the tower times like the real one. Returns `keras_hub:FOLDER`."""
    frame = read_pair_data(FusionTrainConfig(**{**base.to_dict(), "init_from": None}))
    words = sorted({w for text in frame.text for w in normalize_caption(str(text)).split()})
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    vocabulary += [f"[unused{i}]" for i in range(BERT_TINY_VOCABULARY_SIZE - len(vocabulary))]
    keras_hub.models.BertBackbone(vocabulary_size=len(vocabulary), **BERT_TINY).save_to_preset(
        folder
    )
    keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=True).save_to_preset(folder)
    return f"keras_hub:{folder}"


def format_table(results: list[dict]) -> str:
    header = (
        f"| {'model':<32} | test acc | test AUROC | val acc | {'params':>10} | pairs/s | run s |"
    )
    lines = [header, "|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|"]
    for r in results:
        auroc = "n/a" if r["test_auroc"] is None else f"{r['test_auroc']:.3f}"
        lines.append(
            f"| {r['row']:<32} | {r['test_accuracy']:>8.3f} | {auroc:>10} | "
            f"{r['val_accuracy']:>7.3f} | {r['params']:>10,} | {r['pairs_per_second']:>7.0f} | "
            f"{r['seconds']:>5.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma list of {ROWS}")
    parser.add_argument(
        "--data",
        default="shapes-verify",
        help="shapes-verify (default) or a pair dataset, e.g. a digits folder "
        "(`xmodal data digits`: its {train,dev,test}.jsonl statement-verification view)",
    )
    parser.add_argument("--num-images", type=int, default=2000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--encoder-num-layers", type=int, default=4)
    parser.add_argument("--hidden-dim", type=int, default=64)
    parser.add_argument(
        "--head-hidden-dim", type=int, default=None, help="head hidden layer (default: hidden)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--image-encoder",
        default="small_cnn",
        help="small_cnn (default), residual_cnn, a keras.applications name (random weights) "
        "or keras_hub:PRESET_OR_DIR",
    )
    parser.add_argument(
        "--text-encoder",
        default="bigru",
        help="bigru (default), transformer, keras_hub:PRESET_OR_DIR, or random-bert-tiny (a "
        "random-weight BERT shaped like bert_tiny_en_uncased, saved as a local preset)",
    )
    parser.add_argument("--text-trainable-layers", type=int, default=None)
    parser.add_argument("--sequence-length", type=int, default=None)
    parser.add_argument(
        "--init-from",
        default=None,
        metavar="RUN",
        help="a finished `xmodal train retrieval` run (every row starts from its dual encoder's "
        "towers and vocabulary; rows read '(from DE)') or Transformer captioner run (rows "
        "cross_attention, image-only, text-only from its encoder and decoder; '(from "
        "captioner)'); the encoder flags are then the run's",
    )
    parser.add_argument("--out", default=None, help="keep the runs here (default: a temp dir)")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args()
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    source = read_init_from_settings(args.init_from)[0] if args.init_from else None
    allowed = CAPTIONER_ROWS if source == "captioner" else ROWS
    if source == "captioner" and args.rows == parser.get_default("rows"):
        rows = list(CAPTIONER_ROWS)
    unknown = [r for r in rows if r not in allowed]
    if unknown:
        parser.error(f"unknown rows {unknown}; expected some of {allowed}")
    from_scratch = args.image_encoder in ("small_cnn", "residual_cnn")
    base = FusionTrainConfig(
        data=args.data,
        encoder=args.image_encoder,
        text_encoder="bigru" if args.text_encoder == "random-bert-tiny" else args.text_encoder,
        text_trainable_layers=args.text_trainable_layers,
        sequence_length=args.sequence_length,
        shapes_num_images=args.num_images,
        shapes_image_size=args.image_size,
        image_size=args.image_size,
        encoder_num_layers=args.encoder_num_layers if from_scratch else None,
        encoder_hidden_dim=args.hidden_dim if from_scratch else None,
        embedding_dim=args.hidden_dim,
        hidden_dim=args.hidden_dim,
        projection_dim=args.hidden_dim,
        head_hidden_dim=args.head_hidden_dim,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        strategy="default",
        init_from=args.init_from,
    )
    with tempfile.TemporaryDirectory() as temp:
        out = pathlib.Path(args.out or temp)
        if args.text_encoder == "random-bert-tiny":
            preset = random_bert_tiny_preset(base, out / "random_bert_tiny")
            base = FusionTrainConfig(**{**base.to_dict(), "text_encoder": preset})
        results = []
        for row in rows:
            results.append(run_row(row, base, out, source))
            print(f"done {row}: test acc {results[-1]['test_accuracy']:.3f}", flush=True)
    encoders = (
        f"encoders from the {SOURCE_LABELS[source]}"
        if source
        else f"{args.image_encoder} {args.encoder_num_layers} layers, width {args.hidden_dim}"
        if from_scratch
        else args.image_encoder
    )
    if not source:
        encoders += f", text {args.text_encoder}"
    what = f"shapes {args.num_images} images" if args.data == "shapes-verify" else args.data
    print(
        f"\nstatement verification on {what} {args.image_size}px, "
        f"{args.epochs} epochs, batch {args.batch_size}, lr {args.learning_rate}, "
        f"{encoders}, seed {args.seed}"
    )
    if source == "captioner":
        settings = base.resolved()
        print(
            f"from Transformer captioner {args.init_from}: {settings.encoder} "
            f"{settings.encoder_num_layers or 'default'} layers, width "
            f"{settings.encoder_hidden_dim}, texts of {settings.sequence_length} words"
        )
    elif source:
        settings = base.resolved()
        recall = pathlib.Path(args.init_from, "metrics", "test_retrieval", "metrics.json")
        shown = (
            f"{json.loads(recall.read_text())['image_to_text_recall@1']:.3f}"
            if recall.is_file()
            else "n/a"
        )
        print(
            f"from dual encoder {args.init_from}: {settings.encoder} "
            f"{settings.encoder_num_layers or 'default'} layers, "
            f"width {settings.encoder_hidden_dim}, projection {settings.projection_dim}; "
            f"its shapes test recall@1 image->text {shown}"
        )
    print(format_table(results))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=2) + "\n", "utf-8")


if __name__ == "__main__":
    main()
