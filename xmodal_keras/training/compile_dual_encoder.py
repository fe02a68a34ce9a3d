"""`compile_dual_encoder`: InfoNCE loss, AdamW and schedule for `model.fit` on image-text pairs."""

import keras

from xmodal_keras.losses.info_nce_loss import InfoNCELoss
from xmodal_keras.training.schedules import make_adamw_optimizer
from xmodal_keras.training.tower_fine_tuning import TowerFineTuning


def compile_dual_encoder(
    model: keras.Model,
    *,
    total_steps: int,
    learning_rate: float = 1e-3,
    warmup_steps: int | None = None,
    weight_decay: float = 1e-4,
    clipnorm: float | None = 1.0,
    jit_compile: bool | str = False,
    towers: TowerFineTuning | None = None,
) -> keras.Model:
    """Compile a dual encoder for `model.fit`: symmetric InfoNCE, AdamW, warm-up + cosine.

    The temperature (`logit_scale`), biases and normalisation gains are excluded from
    weight decay, as in CLIP. Call it inside the strategy scope the model was built in.

    Args:
        model: a dual encoder (`{"images", "token_ids"}` -> `[B, B]` logits).
        total_steps: optimizer steps of the whole run (epochs x steps per epoch).
        learning_rate: peak learning rate. Defaults to 1e-3.
        warmup_steps: linear warm-up steps. Defaults to 5% of `total_steps`.
        weight_decay: AdamW decoupled weight decay. Defaults to 1e-4.
        clipnorm: gradient norm clip per variable, or None. Defaults to 1.0.
        jit_compile: XLA for the train step. Defaults to False.
        towers: the pretrained towers' own learning rate and frozen steps
            (`DiscriminativeAdamW`), or None: one rate for all. Defaults to None.

    Returns:
        The same model, compiled.

    Example:

    >>> from xmodal_keras.models.dual_encoder import build_dual_encoder
    >>> model = build_dual_encoder(vocabulary_size=12, sequence_length=6,
    ...     image_shape=(32, 32, 3), encoder_kwargs={"hidden_dim": 8},
    ...     embedding_dim=8, hidden_dim=8, projection_dim=4)
    >>> compile_dual_encoder(model, total_steps=10).loss.name
    'info_nce_loss'
    """
    optimizer = make_adamw_optimizer(
        learning_rate=learning_rate,
        total_steps=total_steps,
        warmup_steps=warmup_steps,
        weight_decay=weight_decay,
        clipnorm=clipnorm,
        no_weight_decay=("logit_scale", "bias", "gamma", "beta"),
        towers=towers.optimizer_arguments(model) if towers else None,
    )
    model.compile(optimizer=optimizer, loss=InfoNCELoss(), jit_compile=jit_compile)
    return model
