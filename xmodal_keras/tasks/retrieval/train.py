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
With `from_preset` (a KerasHub CLIP preset) the model is the preset's
(`build_dual_encoder_from_clip`); `epochs=0` then writes the run without training, for
zero-shot retrieval.

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
import math
import os
import time
from collections.abc import Sequence
from typing import Any

import keras
import pandas as pd
import tensorflow as tf

from xmodal_keras.data.image_files import preflight_images
from xmodal_keras.data.retrieval_dataset import make_retrieval_dataset
from xmodal_keras.data.sharding import shard_by
from xmodal_keras.data.wordpiece_text_tokenizer import TextTokenizer
from xmodal_keras.encoders.cnn_image_encoder import FROM_SCRATCH_ENCODERS
from xmodal_keras.evaluation.retrieval_index import build_retrieval_index
from xmodal_keras.models.clip_dual_encoder import build_dual_encoder_from_clip, clip_image_size
from xmodal_keras.models.dual_encoder import IMAGE_TOWER_NAME, TEXT_TOWER_NAME, build_dual_encoder
from xmodal_keras.runs.run_directory import RunDirectory
from xmodal_keras.tasks.captioning.data import data_name, read_caption_data
from xmodal_keras.tasks.captioning.train import format_summary
from xmodal_keras.tasks.retrieval.retrieve import evaluate_retrieval, format_recall
from xmodal_keras.tasks.retrieval.run_tokenizer import run_tokenizer, save_run_tokenizer
from xmodal_keras.tasks.retrieval.settings import INDEX_FILE, RetrievalTrainConfig
from xmodal_keras.training.compile_dual_encoder import compile_dual_encoder
from xmodal_keras.training.distribute import get_strategy, strategy_name
from xmodal_keras.training.fit_driver import fit_run, is_chief
from xmodal_keras.training.precision import dtype_policy
from xmodal_keras.training.tower_fine_tuning import TowerFineTuning


def build_dual_encoder_from_config(
    config: RetrievalTrainConfig, vocabulary_size: int
) -> keras.Model:
    """The (untrained) dual encoder the settings describe, computing in its `precision`
    (mixed: 16 bits, float32 variables and logits)."""
    config = config.resolved()
    with dtype_policy(config.precision):
        return _build_dual_encoder(config, vocabulary_size)


def _build_dual_encoder(config: RetrievalTrainConfig, vocabulary_size: int) -> keras.Model:
    if config.from_preset is not None:
        return build_dual_encoder_from_clip(
            config.from_preset, sequence_length=config.sequence_length
        )
    encoder_kwargs = None
    if config.encoder in FROM_SCRATCH_ENCODERS:
        encoder_kwargs = {
            "hidden_dim": config.encoder_hidden_dim,
            "num_layers": config.encoder_num_layers,
        }
    return build_dual_encoder(
        vocabulary_size=vocabulary_size,
        sequence_length=config.sequence_length,
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
        text_trainable_layers=config.text_trainable_layers,
        projection_dim=config.projection_dim,
        dropout=config.dropout,
        initial_temperature=config.initial_temperature,
    )


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
    config = config.for_run(run).resolved()
    if config.image_size is None:  # a `from_preset` run reads the preset's images
        config = dataclasses.replace(config, image_size=clip_image_size(config.from_preset))
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
    tokenizer = run_tokenizer(run, train.caption, config)
    if chief:
        run.create()
        save_run_tokenizer(run, tokenizer)
        run.write_config(config.to_config())

    image_size = (config.image_size, config.image_size)
    print(
        f"data: {len(train)} train / {len(val)} val captions "
        f"({train.image_path.nunique()} / {val.image_path.nunique()} images), vocabulary "
        f"{tokenizer.vocabulary_size} | strategy {strategy_name(strategy)}, "
        f"{strategy.num_replicas_in_sync} replica(s), global batch {config.batch_size} | "
        f"precision {config.precision}" + (", XLA" if config.jit_compile else ""),
        flush=True,
    )
    steps_per_epoch = max(1, len(train) // config.batch_size)
    with strategy.scope():
        model = build_dual_encoder_from_config(config, tokenizer.vocabulary_size)
        if config.epochs:
            compile_dual_encoder(
                model,
                total_steps=config.epochs * steps_per_epoch,
                learning_rate=config.learning_rate,
                warmup_steps=config.warmup_steps,
                weight_decay=config.weight_decay,
                jit_compile=config.jit_compile,
                towers=TowerFineTuning.from_settings(config, steps_per_epoch),
            )
    if config.epochs:
        train_data, fit_val = _fit_data(train, val, tokenizer, config, image_size)
        epochs_run = fit_run(
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
        ).epoch
    else:  # zero-shot: the `from_preset` model as it is
        epochs_run = []
        if chief:
            run.save_model(model)
    if not chief:
        return run

    results = evaluate_retrieval(run, model=model, tokenizer=tokenizer, config=config, frame=frame)
    shown = [format_recall(split, metrics) for split, metrics in results.items()]
    image_tower = model.get_layer(IMAGE_TOWER_NAME)
    text_tower = model.get_layer(TEXT_TOWER_NAME)
    gallery = frame if config.index_split == "all" else frame[frame.split == config.index_split]
    if gallery.empty:
        gallery = train
    build_retrieval_index(image_tower, text_tower, tokenizer, gallery, image_size=image_size).save(
        run.path / INDEX_FILE
    )
    temperature = model.get_layer("logits").temperature
    print(
        format_summary(run, epochs_run, config.epochs, time.perf_counter() - start)
        + f" | temperature {temperature:.3f} | {'; '.join(shown) or 'no val/test split'}",
        flush=True,
    )
    return run


def _fit_data(
    train: pd.DataFrame,
    val: pd.DataFrame,
    tokenizer: TextTokenizer,
    config: RetrievalTrainConfig,
    image_size: tuple[int, int],
) -> tuple[tf.data.Dataset, dict[str, Any]]:
    """The repeated, cached, sharded train pipeline and `fit`'s validation arguments (a
    zero-shot run makes neither: its tokenizer may tokenise in Python, caption by caption)."""
    # drop_remainder: a last batch of one pair has no negatives.
    train_data = make_retrieval_dataset(
        train,
        tokenizer,
        image_size=image_size,
        batch_size=config.batch_size,
        shuffle=True,
        seed=config.seed,
        cache=True,
        repeat=True,
        drop_remainder=True,
        check_images="none",  # checked by preflight_images
    )
    fit_val = {}
    if not val.empty:
        fit_val["validation_data"] = shard_by(
            make_retrieval_dataset(
                val,
                tokenizer,
                image_size=image_size,
                batch_size=config.batch_size,
                shuffle=False,
                cache=True,
                repeat=True,
                check_images="none",
            ),
            "data",
        )
        fit_val["validation_steps"] = math.ceil(len(val) / config.batch_size)
    return shard_by(train_data, "data"), fit_val
