"""`compile_multitask_captioner`: caption loss + weighted InfoNCE for a multi-task captioner."""

import keras

from xmodal_keras.losses.info_nce_loss import InfoNCELoss
from xmodal_keras.losses.masked_caption_loss import MaskedCaptionLoss
from xmodal_keras.metrics.masked_token_accuracy import MaskedTokenAccuracy
from xmodal_keras.models.multitask_captioner import CAPTION_OUTPUT, CONTRASTIVE_OUTPUT
from xmodal_keras.training.schedules import make_adamw_optimizer


def compile_multitask_captioner(
    model: keras.Model,
    *,
    total_steps: int,
    contrastive_weight: float = 0.5,
    learning_rate: float = 1e-3,
    warmup_steps: int | None = None,
    label_smoothing: float = 0.0,
    weight_decay: float = 1e-4,
    clipnorm: float | None = 1.0,
    jit_compile: bool | str = False,
) -> keras.Model:
    """Compile a `build_multitask_captioner` model for `model.fit`.

    Loss = masked caption cross-entropy (output `"caption"`, padding ignored) +
    `contrastive_weight` x symmetric InfoNCE (output `"contrastive"`); masked token
    accuracy on the captions; AdamW with linear warm-up + cosine decay. The temperature
    (`logit_scale`), biases and normalisation gains are excluded from weight decay.
    `fit` logs `loss`, `caption_loss`, `contrastive_loss` (unweighted) and
    `caption_masked_token_accuracy`.

    Args:
        model: a multi-task captioner.
        total_steps: optimizer steps of the whole run (epochs x steps per epoch).
        contrastive_weight: weight of the contrastive loss, >= 0 (0 trains the captioner
            alone). Defaults to 0.5.
        learning_rate: peak learning rate. Defaults to 1e-3.
        warmup_steps: linear warm-up steps. Defaults to 5% of `total_steps`.
        label_smoothing: caption loss label smoothing in [0, 1). Defaults to 0.
        weight_decay: AdamW decoupled weight decay. Defaults to 1e-4.
        clipnorm: gradient norm clip per variable, or None. Defaults to 1.0.
        jit_compile: XLA for the train step. Defaults to False.

    Returns:
        The same model, compiled.

    Example:

    >>> from xmodal_keras.models.gru_captioner import build_gru_captioner
    >>> from xmodal_keras.models.multitask_captioner import build_multitask_captioner
    >>> captioner = build_gru_captioner(vocabulary_size=12, sequence_length=6,
    ...     image_shape=(32, 32, 3), encoder_kwargs={"hidden_dim": 8},
    ...     embedding_dim=8, hidden_dim=8)
    >>> model = build_multitask_captioner(captioner, embedding_dim=8, hidden_dim=8,
    ...     projection_dim=4)
    >>> model = compile_multitask_captioner(model, total_steps=10, contrastive_weight=0.2)
    >>> {name: loss.name for name, loss in model.loss.items()}
    {'caption': 'masked_caption_loss', 'contrastive': 'info_nce_loss'}
    """
    if (
        isinstance(contrastive_weight, bool)
        or not isinstance(contrastive_weight, int | float)
        or contrastive_weight < 0
    ):
        raise ValueError(
            "`contrastive_weight` must be a number >= 0. "
            f"Received: contrastive_weight={contrastive_weight!r}"
        )
    optimizer = make_adamw_optimizer(
        learning_rate=learning_rate,
        total_steps=total_steps,
        warmup_steps=warmup_steps,
        weight_decay=weight_decay,
        clipnorm=clipnorm,
        no_weight_decay=("logit_scale", "bias", "gamma", "beta"),
    )
    model.compile(
        optimizer=optimizer,
        loss={
            CAPTION_OUTPUT: MaskedCaptionLoss(label_smoothing=label_smoothing),
            CONTRASTIVE_OUTPUT: InfoNCELoss(),
        },
        loss_weights={CAPTION_OUTPUT: 1.0, CONTRASTIVE_OUTPUT: float(contrastive_weight)},
        metrics={CAPTION_OUTPUT: [MaskedTokenAccuracy()]},
        jit_compile=jit_compile,
    )
    return model
