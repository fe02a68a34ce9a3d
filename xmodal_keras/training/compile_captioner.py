"""`compile_captioner`: loss, metric, optimizer and schedule for `model.fit` on captions."""

import keras

from xmodal_keras.losses.masked_caption_loss import MaskedCaptionLoss
from xmodal_keras.metrics.masked_token_accuracy import MaskedTokenAccuracy
from xmodal_keras.training.schedules import make_adamw_optimizer
from xmodal_keras.training.tower_fine_tuning import TowerFineTuning


def compile_captioner(
    model: keras.Model,
    *,
    total_steps: int,
    learning_rate: float = 1e-3,
    warmup_steps: int | None = None,
    label_smoothing: float = 0.0,
    weight_decay: float = 1e-4,
    clipnorm: float | None = 1.0,
    jit_compile: bool | str = False,
    towers: TowerFineTuning | None = None,
) -> keras.Model:
    """Compile a captioner for `model.fit`: masked cross-entropy (padding ignored, optional
    label smoothing), masked token accuracy, AdamW with linear warm-up + cosine decay.

    Call it inside the strategy scope the model was built in.

    Args:
        model: a captioner (`{"images", "token_ids"}` -> logits).
        total_steps: optimizer steps of the whole run (epochs x steps per epoch).
        learning_rate: peak learning rate. Defaults to 1e-3.
        warmup_steps: linear warm-up steps. Defaults to 5% of `total_steps`.
        label_smoothing: float in [0, 1). Defaults to 0.
        weight_decay: AdamW decoupled weight decay. Defaults to 1e-4.
        clipnorm: gradient norm clip per variable, or None. Defaults to 1.0.
        jit_compile: XLA for the train step (faster on GPU; slower on CPU here).
            Defaults to False.
        towers: the pretrained towers' own learning rate and frozen steps
            (`DiscriminativeAdamW`), or None: one rate for all. Defaults to None.

    Returns:
        The same model, compiled.

    Example:

    >>> from xmodal_keras.models import build_gru_captioner
    >>> model = build_gru_captioner(vocabulary_size=12, sequence_length=6,
    ...     image_shape=(32, 32, 3), encoder_kwargs={"hidden_dim": 8},
    ...     embedding_dim=8, hidden_dim=8)
    >>> compile_captioner(model, total_steps=100).loss.name
    'masked_caption_loss'
    """
    optimizer = make_adamw_optimizer(
        learning_rate=learning_rate,
        total_steps=total_steps,
        warmup_steps=warmup_steps,
        weight_decay=weight_decay,
        clipnorm=clipnorm,
        towers=towers.optimizer_arguments(model) if towers else None,
    )
    model.compile(
        optimizer=optimizer,
        loss=MaskedCaptionLoss(label_smoothing=label_smoothing),
        metrics=[MaskedTokenAccuracy()],
        jit_compile=jit_compile,
    )
    return model
