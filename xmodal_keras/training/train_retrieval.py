"""`train_retrieval`: caption data -> dual encoder (CLIP-style) -> `model.fit` -> run directory.

Any captioning data works (each image with its captions is a set of positive image-text
pairs): the built-in shapes dataset or any `read_captions` format. The run directory is
the captioner's layout (`RunDirectory`) plus:

```
RUN/
  metrics/<split>_retrieval/metrics.json   recall@1/5/10 both ways on val and test
  retrieval_index.npz                      embedded gallery (`index_split`) for `retrieve`
```

Running `train_retrieval` again on the same run directory resumes it (BackupAndRestore).

Example (seconds; 32x32 shapes, tiny model):

>>> import tempfile
>>> config = RetrievalTrainConfig(shapes_num_images=40, shapes_image_size=32, image_size=32,
...     encoder_hidden_dim=8, embedding_dim=8, hidden_dim=8, projection_dim=8, epochs=1,
...     batch_size=16)
>>> run = train_retrieval(config, tempfile.mkdtemp(), verbose=0)  # doctest: +SKIP
>>> retrieve(run, query_text="a red circle", k=2)[0]["rank"]  # doctest: +SKIP
1
"""

import dataclasses
import json
import math
import os
import pathlib
import time
from collections.abc import Sequence

import keras
import numpy as np
import pandas as pd

from xmodal_keras.argument_checks import check_positive_int
from xmodal_keras.data.image_files import preflight_images
from xmodal_keras.data.image_preprocessing import load_image
from xmodal_keras.data.retrieval_dataset import make_retrieval_dataset
from xmodal_keras.data.sharding import shard_by
from xmodal_keras.data.text_tokenizer import CaptionTokenizer
from xmodal_keras.encoders.cnn_image_encoder import FROM_SCRATCH_ENCODERS
from xmodal_keras.encoders.text_encoder import TEXT_ENCODER_KINDS
from xmodal_keras.evaluation.retrieval_index import RetrievalIndex, build_retrieval_index
from xmodal_keras.models.dual_encoder import IMAGE_TOWER_NAME, TEXT_TOWER_NAME, build_dual_encoder
from xmodal_keras.training.compile_dual_encoder import compile_dual_encoder
from xmodal_keras.training.distribute import (
    STRATEGY_NAMES,
    get_strategy,
    strategy_name,
)
from xmodal_keras.training.fit_driver import fit_run, is_chief
from xmodal_keras.training.precision import check_precision, dtype_policy, resolve_precision
from xmodal_keras.training.run_directory import MODEL_FILE, RunDirectory
from xmodal_keras.training.run_settings import RunSettings
from xmodal_keras.training.train_captioner import (
    SHAPES,
    data_name,
    format_summary,
    read_caption_data,
)

INDEX_FILE = "retrieval_index.npz"
SPLITS = ("train", "val", "test")
# Settings that may change when a run is resumed or extended; every other one must match.
RESUMABLE_FIELDS = frozenset(
    {"epochs", "strategy", "jit_compile", "index_split", "allow_outside_root"}
)


@dataclasses.dataclass(frozen=True)
class RetrievalTrainConfig(RunSettings):
    """Run settings of a dual-encoder training (written to the run as `config.json`).

    Attributes:
        data: `"shapes"` (built-in, see `shapes_*`), a caption dataset path (Flickr8k
            folder, Karpathy/COCO JSON, CSV) or a list of paths.
        format: reader for `data` paths (`"auto"`, `"flickr8k"`, `"karpathy"`, `"coco"`,
            `"csv"`).
        encoder, weights, trainable_blocks, encoder_hidden_dim, encoder_num_layers,
            image_size: the image tower's encoder (see `build_image_encoder`).
        sequence_length: caption words + 1 kept (the text tower reads `sequence_length + 1`
            ids: `<start> ... <end>`); None: 22 for shapes, 20 otherwise.
        min_count, max_vocabulary_size: vocabulary of the train split.
        text_encoder (`"bigru"` / `"transformer"`), embedding_dim, hidden_dim, num_layers,
            num_heads, intermediate_dim: the text tower's encoder (`build_text_encoder`).
        projection_dim: shared space size. dropout: text encoder + projection heads.
        initial_temperature: starting (learned) temperature of the logits.
        epochs, batch_size (global; the contrastive negatives are the batch),
            learning_rate (peak, warm-up + cosine), warmup_steps (None: 5%), weight_decay.
        seed, strategy, precision (`"auto"`: mixed_bfloat16 on CPUs with AMX bfloat16
            units, else float32; the logits stay float32), jit_compile: as for the
            captioner.
        index_split: the split embedded into `retrieval_index.npz` for `retrieve`
            (`"test"`, `"val"`, `"train"` or `"all"`).
        shapes_num_images, shapes_image_size, shapes_seed: the built-in dataset's size.
        allow_outside_root: accept image paths that leave the data folder (see
            `read_captions`).
    """

    settings_kind = "retrieval"
    resumable_fields = RESUMABLE_FIELDS
    picked_fields = frozenset({"precision"})
    legacy_values = {"precision": "float32"}  # before the setting, every run was float32

    data: str | tuple[str, ...] = SHAPES
    format: str = "auto"
    encoder: str = "small_cnn"
    weights: str | None = None
    trainable_blocks: int | None = None
    encoder_hidden_dim: int | None = 64
    encoder_num_layers: int | None = None
    image_size: int = 64
    sequence_length: int | None = None
    min_count: int = 1
    max_vocabulary_size: int | None = None
    text_encoder: str = "bigru"
    embedding_dim: int = 128
    hidden_dim: int = 128
    num_layers: int = 1
    num_heads: int = 2
    intermediate_dim: int | None = None
    projection_dim: int = 64
    dropout: float = 0.0
    initial_temperature: float = 0.07
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 1e-3
    warmup_steps: int | None = None
    weight_decay: float = 1e-4
    seed: int = 0
    strategy: str = "auto"
    precision: str = "auto"
    jit_compile: bool = False
    index_split: str = "test"
    shapes_num_images: int = 5000
    shapes_image_size: int = 64
    shapes_seed: int = 0
    allow_outside_root: bool = False

    def __post_init__(self):
        if not isinstance(self.data, str):
            object.__setattr__(self, "data", tuple(os.fspath(p) for p in self.data))
            if not self.data:
                raise ValueError("`data` must name at least one dataset. Received: data=()")
        if self.text_encoder not in TEXT_ENCODER_KINDS:
            raise ValueError(
                f"`text_encoder` must be one of {TEXT_ENCODER_KINDS}. "
                f"Received: text_encoder={self.text_encoder!r}"
            )
        if self.strategy not in STRATEGY_NAMES:
            raise ValueError(
                f"`strategy` must be one of {STRATEGY_NAMES}. Received: {self.strategy=!r}"
            )
        check_precision(self.precision)
        if self.index_split not in (*SPLITS, "all"):
            raise ValueError(
                f"`index_split` must be one of {(*SPLITS, 'all')}. "
                f"Received: index_split={self.index_split!r}"
            )
        for name in ("epochs", "batch_size", "image_size", "hidden_dim", "projection_dim"):
            check_positive_int(name, getattr(self, name))
        if self.batch_size < 2:
            raise ValueError(
                "`batch_size` must be >= 2 (the other pairs of a batch are the negatives). "
                f"Received: batch_size={self.batch_size}"
            )
        if self.sequence_length is not None and (
            not isinstance(self.sequence_length, int) or self.sequence_length < 2
        ):
            raise ValueError(
                "`sequence_length` must be an int >= 2 or None. "
                f"Received: sequence_length={self.sequence_length!r}"
            )
        if not 0 < self.learning_rate:
            raise ValueError(f"`learning_rate` must be > 0. Received: {self.learning_rate=!r}")

    @property
    def is_shapes(self) -> bool:
        return self.data == SHAPES

    def resolved(self) -> "RetrievalTrainConfig":
        """A copy with `sequence_length` and `precision` (`resolve_precision`) filled in
        and data paths made absolute."""
        sequence_length = self.sequence_length or (22 if self.is_shapes else 20)
        data = self.data
        if isinstance(data, str) and not self.is_shapes:
            data = os.path.abspath(data)
        elif not isinstance(data, str):
            data = tuple(os.path.abspath(p) for p in data)
        return dataclasses.replace(
            self,
            sequence_length=sequence_length,
            data=data,
            precision=resolve_precision(self.precision),
        )


def build_dual_encoder_from_config(
    config: RetrievalTrainConfig, vocabulary_size: int
) -> keras.Model:
    """The (untrained) dual encoder the settings describe, computing in its `precision`
    (mixed: 16 bits, float32 variables and logits)."""
    config = config.resolved()
    if config.precision == "float32":
        return _build_dual_encoder(config, vocabulary_size)
    with dtype_policy(config.precision):
        return _build_dual_encoder(config, vocabulary_size)


def _build_dual_encoder(config: RetrievalTrainConfig, vocabulary_size: int) -> keras.Model:
    encoder_kwargs = None
    if config.encoder in FROM_SCRATCH_ENCODERS:
        encoder_kwargs = {
            "hidden_dim": config.encoder_hidden_dim,
            "num_layers": config.encoder_num_layers,
        }
    return build_dual_encoder(
        vocabulary_size=vocabulary_size,
        sequence_length=config.sequence_length + 1,
        image_shape=(config.image_size, config.image_size, 3),
        encoder=config.encoder,
        encoder_weights=config.weights,
        trainable_blocks=config.trainable_blocks,
        encoder_kwargs=encoder_kwargs,
        text_encoder=config.text_encoder,
        embedding_dim=config.embedding_dim,
        hidden_dim=config.hidden_dim,
        num_layers=config.num_layers,
        num_heads=config.num_heads,
        intermediate_dim=config.intermediate_dim,
        projection_dim=config.projection_dim,
        dropout=config.dropout,
        initial_temperature=config.initial_temperature,
    )


def retrieval_metrics_path(run: RunDirectory, split: str, *, data=None) -> pathlib.Path:
    """`metrics/<split>_retrieval/metrics.json` of a run (under `metrics/data_<name>/` for
    other `data` than the run's)."""
    return run.evaluation_dir(data) / f"{split}_retrieval" / "metrics.json"


def train_retrieval(
    config: RetrievalTrainConfig,
    out_dir: str | os.PathLike,
    *,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: str | int = "auto",
) -> RunDirectory:
    """Train a dual encoder with `model.fit` (symmetric InfoNCE) and write a run directory.

    Checks that `out_dir` can be written, reads the captions, checks every image
    (`preflight_images`), builds the vocabulary on the train split, makes repeated, cached
    `tf.data` pipelines of `({"images", "token_ids"}, image_index)`, builds and compiles
    the model in the strategy's scope and fits it with the run directory's callbacks
    (`fit_run`: history, backup, checkpoints, TensorBoard logs). Then saves `model.keras`,
    writes recall@1/5/10 image->text and text->image for val and test
    (`evaluate_retrieval`), embeds `index_split` into `retrieval_index.npz` and prints a
    summary.

    Args:
        config: the run settings.
        out_dir: the run directory (created; an existing run there is resumed).
        callbacks: extra Keras callbacks.
        verbose: `model.fit` verbosity. Defaults to `"auto"`.

    Returns:
        The `RunDirectory`.
    """
    strategy = get_strategy(config.strategy)  # multi-worker: before any other TF op
    chief = is_chief(strategy)
    run = RunDirectory(out_dir).check_writable()
    if run.has_config():
        config = config.resumed_from(run)  # the precision it started with
    config = config.resolved()
    if run.has_config():
        config.check_resumable(run)
    start = time.perf_counter()
    keras.utils.set_random_seed(config.seed)

    frame = read_caption_data(config)
    preflight_images(frame, source=data_name(config.data))
    train = frame[frame.split == "train"]
    val = frame[frame.split == "val"]
    if train.empty:
        raise ValueError(
            f"The data has no 'train' captions. Received: data={config.data!r} with splits "
            f"{sorted(frame.split.unique())}"
        )
    if run.vocabulary_path.is_file() and run.has_config():
        tokenizer = CaptionTokenizer.from_vocabulary_file(
            run.vocabulary_path, config.sequence_length
        )
    else:
        tokenizer = CaptionTokenizer.from_captions(
            train.caption,
            sequence_length=config.sequence_length,
            min_count=config.min_count,
            max_size=config.max_vocabulary_size,
        )
    if chief:
        run.create()
        run.save_vocabulary(tokenizer)
        run.write_config(config.to_dict())

    image_shape = (config.image_size, config.image_size)
    print(
        f"data: {len(train)} train / {len(val)} val captions "
        f"({train.image_path.nunique()} / {val.image_path.nunique()} images), vocabulary "
        f"{tokenizer.vocabulary_size} | strategy {strategy_name(strategy)}, "
        f"{strategy.num_replicas_in_sync} replica(s), global batch {config.batch_size} | "
        f"precision {config.precision}" + (", XLA" if config.jit_compile else ""),
        flush=True,
    )
    # drop_remainder: a last batch of one pair has no negatives.
    train_data = make_retrieval_dataset(
        train,
        tokenizer,
        image_shape=image_shape,
        batch_size=config.batch_size,
        shuffle=True,
        seed=config.seed,
        cache=True,
        repeat=True,
        drop_remainder=True,
        check_images="none",  # checked above
    )
    train_data = shard_by(train_data, "data")
    steps_per_epoch = max(1, len(train) // config.batch_size)
    fit_val = {}
    if not val.empty:
        fit_val["validation_data"] = shard_by(
            make_retrieval_dataset(
                val,
                tokenizer,
                image_shape=image_shape,
                batch_size=config.batch_size,
                shuffle=False,
                cache=True,
                repeat=True,
                check_images="none",
            ),
            "data",
        )
        fit_val["validation_steps"] = math.ceil(len(val) / config.batch_size)

    with strategy.scope():
        model = build_dual_encoder_from_config(config, tokenizer.vocabulary_size)
        compile_dual_encoder(
            model,
            total_steps=config.epochs * steps_per_epoch,
            learning_rate=config.learning_rate,
            warmup_steps=config.warmup_steps,
            weight_decay=config.weight_decay,
            jit_compile=config.jit_compile,
        )
    history = fit_run(
        model,
        run,
        train_data,
        strategy=strategy,
        epochs=config.epochs,
        steps_per_epoch=steps_per_epoch,
        monitor="val_loss" if not val.empty else "loss",
        fit_kwargs=fit_val,
        callbacks=callbacks,
        verbose=verbose,
    )
    if not chief:
        return run

    results = evaluate_retrieval(run, model=model, tokenizer=tokenizer, config=config, frame=frame)
    shown = [format_recall(split, metrics) for split, metrics in results.items()]
    image_tower = model.get_layer(IMAGE_TOWER_NAME)
    text_tower = model.get_layer(TEXT_TOWER_NAME)
    gallery = frame if config.index_split == "all" else frame[frame.split == config.index_split]
    if gallery.empty:
        gallery = train
    build_retrieval_index(
        image_tower, text_tower, tokenizer, gallery, image_shape=image_shape
    ).save(run.path / INDEX_FILE)
    temperature = model.get_layer("logits").temperature
    print(
        format_summary(run, history.epoch, config.epochs, time.perf_counter() - start)
        + f" | temperature {temperature:.3f} | {'; '.join(shown) or 'no val/test split'}",
        flush=True,
    )
    return run


def evaluate_retrieval(
    run_dir: str | os.PathLike | RunDirectory,
    *,
    splits: Sequence[str] = ("val", "test"),
    model: keras.Model | None = None,
    tokenizer: CaptionTokenizer | None = None,
    config: RetrievalTrainConfig | None = None,
    frame: pd.DataFrame | None = None,
    data: str | Sequence[str] | None = None,
    data_format: str = "auto",
) -> dict[str, dict]:
    """Recall@1/5/10 image->text and text->image of a retrieval run on each of `splits`
    that has captions; written to `metrics/<split>_retrieval/metrics.json`.

    `train_retrieval` passes its model, tokenizer, config and frame; `xmodal evaluate RUN`
    loads them. With `data` (caption data, as `--data` of training, read with
    `data_format`) that data is scored instead of the run's, after its images are
    checked, into `metrics/data_<name>/`.

    Returns:
        `{split: {"image_to_text_recall@1", ..., "num_images", "num_captions"}}`.
    """
    run = run_dir if isinstance(run_dir, RunDirectory) else RunDirectory(run_dir)
    if model is None or tokenizer is None or config is None:
        model, tokenizer, config = load_dual_encoder_run(run)
    if data is not None:
        config = dataclasses.replace(config, data=data, format=data_format)
        frame = read_caption_data(config)
        preflight_images(frame, source=data_name(data))
    frame = read_caption_data(config) if frame is None else frame
    image_tower = model.get_layer(IMAGE_TOWER_NAME)
    text_tower = model.get_layer(TEXT_TOWER_NAME)
    shape = (config.image_size, config.image_size)
    results = {}
    for split in splits:
        if split not in SPLITS:
            raise ValueError(f"`splits` must be from {SPLITS}. Received: split={split!r}")
        rows = frame[frame.split == split]
        if rows.empty:
            continue
        index = build_retrieval_index(image_tower, text_tower, tokenizer, rows, image_shape=shape)
        metrics = {**index.recall(), "num_images": index.num_images, "num_captions": len(rows)}
        path = retrieval_metrics_path(run, split, data=data)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n", "utf-8")
        results[split] = metrics
    return results


def format_recall(split: str, metrics: dict) -> str:
    """`"test R@1 i->t 0.512 t->i 0.498"`."""
    return (
        f"{split} R@1 i->t {metrics['image_to_text_recall@1']:.3f} "
        f"t->i {metrics['text_to_image_recall@1']:.3f}"
    )


def load_dual_encoder_run(run_dir: str | os.PathLike | RunDirectory):
    """Load a trained retrieval run: `(model, tokenizer, config)`.

    `model` from `model.keras` (safe mode), `tokenizer` from `vocab.txt` with the text
    tower's input length, `config` the `RetrievalTrainConfig` of `config.json`.
    """
    run = run_dir if isinstance(run_dir, RunDirectory) else RunDirectory(run_dir)
    config = RetrievalTrainConfig.from_dict(run.read_config())
    if not run.model_path.is_file():
        raise FileNotFoundError(
            f"No trained model in {run.path}: {MODEL_FILE} is missing (training did not finish; "
            "run the same `xmodal train retrieval` command again to resume)"
        )
    model = keras.saving.load_model(run.model_path, safe_mode=True)
    ids_length = model.get_layer(TEXT_TOWER_NAME).input.shape[1]
    tokenizer = CaptionTokenizer.from_vocabulary_file(run.vocabulary_path, ids_length - 1)
    return model, tokenizer, config


def retrieve(
    run_dir: str | os.PathLike | RunDirectory,
    query_text: str | None = None,
    image_path: str | os.PathLike | None = None,
    k: int = 5,
) -> list[dict]:
    """Top `k` matches for a text query (images) or an image query (captions).

    Searches the run's `retrieval_index.npz` (the `index_split` gallery embedded after
    training). Exactly one of `query_text` and `image_path` must be given.

    Returns:
        For a text: `[{"rank", "score", "image_id", "image_path"}]`; for an image:
        `[{"rank", "score", "caption", "image_id"}]` (distinct caption texts), best first.
    """
    if (query_text is None) == (image_path is None):
        raise ValueError(
            "Give exactly one of `query_text` and `image_path`. "
            f"Received: query_text={query_text!r}, image_path={image_path!r}"
        )
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"`k` must be a positive int. Received: k={k!r}")
    run = run_dir if isinstance(run_dir, RunDirectory) else RunDirectory(run_dir)
    model, tokenizer, config = load_dual_encoder_run(run)
    index_path = run.path / INDEX_FILE
    if not index_path.is_file():
        raise FileNotFoundError(f"No retrieval index in {run.path}: {INDEX_FILE} is missing")
    index = RetrievalIndex.load(index_path)
    if query_text is not None:
        query = model.get_layer(TEXT_TOWER_NAME)(tokenizer([str(query_text)]), training=False)
        return index.search_images(np.asarray(query)[0], k=k)
    if not os.path.isfile(image_path):
        raise FileNotFoundError(f"No such image file: {os.fspath(image_path)!r}")
    image = load_image(os.fspath(image_path), (config.image_size, config.image_size))
    query = model.get_layer(IMAGE_TOWER_NAME)(image[None], training=False)
    return index.search_captions(np.asarray(query)[0], k=k)


def format_matches(matches: list[dict]) -> str:
    """One line per match, for the CLI: `rank. score  image_id  path-or-caption`."""
    lines = []
    for match in matches:
        what = match.get("caption", match.get("image_path"))
        lines.append(f"{match['rank']:>2}. {match['score']:+.3f}  {match['image_id']}  {what}")
    return "\n".join(lines)
