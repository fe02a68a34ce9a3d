"""Learning-rate schedules: linear warm-up, then cosine decay.

Keras already has this schedule: `keras.optimizers.schedules.CosineDecay` with
`warmup_target` and `warmup_steps` rises linearly from `initial_learning_rate`
to `warmup_target` over `warmup_steps`, then decays along a cosine to
`alpha * warmup_target` over `decay_steps` more steps and stays there. It is a
built-in, so a compiled model's optimizer saves and reloads it with
`safe_mode=True`. This module only gives it peak/total-step arguments.
"""

import keras

from xmodal_keras.argument_checks import check_positive_int
from xmodal_keras.training.discriminative_adamw import DiscriminativeAdamW


def make_learning_rate_schedule(
    *,
    peak_learning_rate: float,
    total_steps: int,
    warmup_steps: int = 0,
    alpha: float = 0.0,
    initial_learning_rate: float = 0.0,
) -> keras.optimizers.schedules.CosineDecay:
    """Linear warm-up to `peak_learning_rate`, then cosine decay to `alpha * peak`.

    With `w = warmup_steps`, `T = total_steps`, `p = peak_learning_rate` and
    `l0 = initial_learning_rate`, step `s` gets:

    - `l0 + (p - l0) * s / w` for `s < w`;
    - `p * ((1 - alpha) * 0.5 * (1 + cos(pi * (min(s, T) - w) / (T - w))) + alpha)`
      for `s >= w`.

    Args:
        peak_learning_rate: the rate reached at the end of the warm-up (> 0).
        total_steps: optimizer steps of the whole run, warm-up included
            (> `warmup_steps`), e.g. `epochs * steps_per_epoch`.
        warmup_steps: steps of linear warm-up (>= 0). Defaults to `0`.
        alpha: final rate as a fraction of the peak, in [0, 1]. Defaults to `0.0`.
        initial_learning_rate: rate at step 0 (>= 0). Defaults to `0.0`.

    Returns:
        A `keras.optimizers.schedules.CosineDecay` for `keras.optimizers.*`.

    Example:

    >>> schedule = make_learning_rate_schedule(
    ...     peak_learning_rate=1e-3, total_steps=100, warmup_steps=10, alpha=0.1
    ... )
    >>> [round(float(schedule(s)), 6) for s in (0, 5, 10, 55, 100, 500)]
    [0.0, 0.0005, 0.001, 0.00055, 0.0001, 0.0001]
    """
    if not peak_learning_rate > 0:
        raise ValueError(
            f"`peak_learning_rate` must be > 0. Received: peak_learning_rate={peak_learning_rate!r}"
        )
    for arg, value in (("total_steps", total_steps), ("warmup_steps", warmup_steps)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"`{arg}` must be an int >= 0. Received: {arg}={value!r}")
    if total_steps <= warmup_steps:
        raise ValueError(
            "`total_steps` must be greater than `warmup_steps`. "
            f"Received: total_steps={total_steps}, warmup_steps={warmup_steps}"
        )
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"`alpha` must be in [0, 1]. Received: alpha={alpha!r}")
    if not initial_learning_rate >= 0:
        raise ValueError(
            "`initial_learning_rate` must be >= 0. "
            f"Received: initial_learning_rate={initial_learning_rate!r}"
        )
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=float(initial_learning_rate),
        decay_steps=total_steps - warmup_steps,
        alpha=float(alpha),
        warmup_target=float(peak_learning_rate),
        warmup_steps=warmup_steps,
        name="warmup_cosine_decay",
    )


def make_adamw_optimizer(
    *,
    learning_rate: float,
    total_steps: int,
    warmup_steps: int | None,
    weight_decay: float,
    clipnorm: float | None,
    no_weight_decay: tuple[str, ...] = (),
    towers: dict | None = None,
) -> keras.optimizers.AdamW:
    """AdamW on `make_learning_rate_schedule`, as every `compile_*` helper uses it.

    `warmup_steps=None` warms up over the first 5 % of `total_steps` (at least one
    step; none for a one-step run). Variables whose names contain any of
    `no_weight_decay` (e.g. `"bias"`, `"gamma"`) get no weight decay. `total_steps`
    must be a positive int (a `ValueError` names it otherwise). `towers`
    (`TowerFineTuning.optimizer_arguments`) makes it a `DiscriminativeAdamW`, whose
    pretrained towers learn at their own rate.

    Example:

    >>> optimizer = make_adamw_optimizer(learning_rate=1e-3, total_steps=100,
    ...     warmup_steps=None, weight_decay=1e-4, clipnorm=1.0)
    >>> round(float(optimizer.learning_rate), 6)
    0.0
    """
    check_positive_int("total_steps", total_steps)
    if warmup_steps is None:
        warmup_steps = max(1, total_steps // 20) if total_steps > 1 else 0
    schedule = make_learning_rate_schedule(
        peak_learning_rate=learning_rate, total_steps=total_steps, warmup_steps=warmup_steps
    )
    optimizer_class = DiscriminativeAdamW if towers else keras.optimizers.AdamW
    optimizer = optimizer_class(
        learning_rate=schedule, weight_decay=weight_decay, clipnorm=clipnorm, **(towers or {})
    )
    if no_weight_decay:
        optimizer.exclude_from_weight_decay(var_names=list(no_weight_decay))
    return optimizer
