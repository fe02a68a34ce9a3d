"""`CaptionMetricsCallback`: validation BLEU-4 / CIDEr-D in the epoch logs during `fit`."""

import math
from collections.abc import Callable, Mapping, Sequence

import keras
import numpy as np

from xmodal_keras.data.text_tokenizer import CaptionTokenizer
from xmodal_keras.decoding.caption_generator import CaptionGenerator
from xmodal_keras.evaluation.caption_metrics import compute_caption_metrics

# The log key each metric group adds (BLEU-1..3 would only crowd the logs).
LOG_KEYS = {"bleu": "bleu_4", "meteor": "meteor", "rouge_l": "rouge_l", "cider": "cider"}


class CaptionMetricsCallback(keras.callbacks.Callback):
    """Captions validation images greedily every N epochs and logs COCO caption metrics.

    At the end of every `every_n_epochs`-th epoch, and of the last epoch
    (`self.params["epochs"]`), the callback captions `images` with greedy decoding by a
    `CaptionGenerator` over the model being trained (it is built once, lazily, from
    `self.model`; it calls the model's own layers, so it always sees the current
    weights), scores them against `references` with `compute_caption_metrics` and writes
    `logs["val_bleu_4"]`, `logs["val_cider"]` (`"val_<key>"` per requested metric). On the
    other epochs it writes NaN under the same keys, so `History` lists stay aligned with
    the epochs and `CSVLogger` (which fixes its columns at the first epoch) keeps the
    columns; `plot_training_curves` draws only the computed points.

    Put it *before* `CSVLogger`, `ModelCheckpoint`, `EarlyStopping` or `TensorBoard` in
    the `callbacks` list: they read the logs in list order (`History` and the progress bar
    come last anyway). With `every_n_epochs > 1`, NaN epochs count as "no improvement"
    for `EarlyStopping(monitor="val_cider")`; use `every_n_epochs=1` with it.

    Args:
        generator: how to caption: a `CaptionTokenizer` (a `CaptionGenerator(model,
            tokenizer)` is built over `self.model`), a callable `model -> CaptionGenerator`,
            or a ready `CaptionGenerator` (it must use the trained model's layers).
        images: uint8 `[N, H, W, 3]` validation images at the model's image shape.
        references: image id -> reference captions (at least the ids in `image_ids`).
        image_ids: the id of each image, in order (unique).
        every_n_epochs: int >= 1. Defaults to 1.
        metrics: metric groups for `compute_caption_metrics`. Defaults to
            `("bleu", "cider")` (no METEOR: its Java start-up would cost every epoch).
        batch_size: images per generation batch. Defaults to 64.
        tokenizer: the metric tokenizer (`"auto"`, `"ptb"`, `"simple"`); see
            `compute_caption_metrics`. Defaults to `"auto"`.

    Attributes:
        log_keys: the keys written to the logs (e.g. `("val_bleu_4", "val_cider")`).
        last_captions: image id -> caption from the latest evaluation.
        last_metrics: the full metric dict of the latest evaluation.

    Example:

    >>> import numpy as np
    >>> from xmodal_keras.models import build_gru_captioner
    >>> tokenizer = CaptionTokenizer.from_captions(["a red circle"], sequence_length=5)
    >>> model = build_gru_captioner(vocabulary_size=tokenizer.vocabulary_size,
    ...     sequence_length=5, image_shape=(32, 32, 3), encoder_kwargs={"hidden_dim": 8},
    ...     embedding_dim=8, hidden_dim=8)
    >>> callback = CaptionMetricsCallback(tokenizer, images=np.zeros((2, 32, 32, 3), "uint8"),
    ...     references={"x": ["a red circle"], "y": ["a red circle"]}, image_ids=["x", "y"],
    ...     tokenizer="simple")
    >>> callback.set_model(model)
    >>> callback.set_params({"epochs": 1})
    >>> logs = {}
    >>> callback.on_epoch_end(0, logs)
    >>> sorted(logs)
    ['val_bleu_4', 'val_cider']
    """

    def __init__(
        self,
        generator: CaptionTokenizer | CaptionGenerator | Callable[[keras.Model], CaptionGenerator],
        images: np.ndarray,
        references: Mapping[str, Sequence[str]],
        image_ids: Sequence[str],
        *,
        every_n_epochs: int = 1,
        metrics: Sequence[str] = ("bleu", "cider"),
        batch_size: int = 64,
        tokenizer: str = "auto",
    ):
        super().__init__()
        if not isinstance(generator, CaptionTokenizer | CaptionGenerator) and not callable(
            generator
        ):
            raise ValueError(
                "`generator` must be a CaptionTokenizer, a CaptionGenerator or a callable "
                f"model -> CaptionGenerator. Received: generator of type "
                f"{type(generator).__name__}"
            )
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3 or len(images) == 0:
            raise ValueError(
                "`images` must be a non-empty array [N, H, W, 3]. "
                f"Received: images.shape={images.shape}"
            )
        if isinstance(image_ids, str) or len(image_ids) != len(images):
            raise ValueError(
                "`image_ids` must be a list with one id per image. "
                f"Received: {len(image_ids)} image_ids for {len(images)} images"
            )
        image_ids = list(image_ids)
        if len(set(image_ids)) != len(image_ids):
            raise ValueError(
                f"`image_ids` must be unique. Received: {len(set(image_ids))} distinct ids "
                f"among {len(image_ids)}"
            )
        if not isinstance(references, Mapping):
            raise ValueError(
                "`references` must be a dict image_id -> list of captions. "
                f"Received: references of type {type(references).__name__}"
            )
        missing = [image_id for image_id in image_ids if image_id not in references]
        if missing:
            raise ValueError(
                f"Every image needs references. Received: no references for {missing[:5]!r}"
                + (f" ({len(missing)} ids in all)" if len(missing) > 5 else "")
            )
        if not isinstance(every_n_epochs, int) or isinstance(every_n_epochs, bool):
            every_n_epochs = -1
        if every_n_epochs < 1:
            raise ValueError(
                f"`every_n_epochs` must be an int >= 1. Received: every_n_epochs={every_n_epochs}"
            )
        if isinstance(metrics, str):
            metrics = (metrics,)
        unknown = [m for m in metrics if m not in LOG_KEYS]
        if unknown or not metrics:
            raise ValueError(
                f"`metrics` must be a non-empty subset of {tuple(LOG_KEYS)}. "
                f"Received: metrics={metrics!r}"
            )
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(
                f"`batch_size` must be an int >= 1. Received: batch_size={batch_size!r}"
            )
        self._generator_source = generator
        self.generator: CaptionGenerator | None = (
            generator if isinstance(generator, CaptionGenerator) else None
        )
        self.images = images
        self.image_ids = image_ids
        self.references = {image_id: list(references[image_id]) for image_id in image_ids}
        self.every_n_epochs = every_n_epochs
        self.metrics = tuple(m for m in LOG_KEYS if m in metrics)
        self.batch_size = batch_size
        self.tokenizer = tokenizer
        self.log_keys = tuple(f"val_{LOG_KEYS[m]}" for m in self.metrics)
        self.last_captions: dict[str, str] = {}
        self.last_metrics: dict[str, float] = {}

    def should_evaluate(self, epoch: int) -> bool:
        """Whether the metrics are computed at the end of (0-based) `epoch`."""
        last = (self.params or {}).get("epochs")
        return (epoch + 1) % self.every_n_epochs == 0 or (last is not None and epoch + 1 == last)

    def _get_generator(self) -> CaptionGenerator:
        if self.generator is None:
            source = self._generator_source
            if isinstance(source, CaptionTokenizer):
                self.generator = CaptionGenerator(self.model, source)
            else:
                self.generator = source(self.model)
                if not isinstance(self.generator, CaptionGenerator):
                    raise ValueError(
                        "The `generator` factory must return a CaptionGenerator. "
                        f"Received: {type(self.generator).__name__}"
                    )
        return self.generator

    def caption_images(self) -> dict[str, str]:
        """Greedy captions of the validation images with the current weights."""
        generator = self._get_generator()
        captions: dict[str, str] = {}
        for start in range(0, len(self.images), self.batch_size):
            batch = self.images[start : start + self.batch_size]
            texts = generator.generate(batch, method="greedy")["text"].numpy()
            for image_id, text in zip(self.image_ids[start:], texts, strict=False):
                captions[image_id] = text.decode("utf-8")
        return captions

    def evaluate(self) -> dict[str, float]:
        """Captions the images and returns `{log_key: value}` (also kept in `last_*`)."""
        self.last_captions = self.caption_images()
        self.last_metrics = compute_caption_metrics(
            self.references, self.last_captions, tokenizer=self.tokenizer, metrics=self.metrics
        )
        return {f"val_{LOG_KEYS[m]}": float(self.last_metrics[LOG_KEYS[m]]) for m in self.metrics}

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is None:
            return
        if self.should_evaluate(epoch):
            logs.update(self.evaluate())
        else:
            logs.update({key: math.nan for key in self.log_keys})
