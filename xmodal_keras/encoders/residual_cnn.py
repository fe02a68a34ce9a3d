"""`build_residual_cnn`: a small ResNet for training from scratch on small images.

`num_layers` stages that each halve the resolution with a strided 3x3 conv (the first
one is the stem) and refine with one basic residual block (He et al. 2016:
conv-BN-ReLU-conv-BN plus the identity), every conv followed by batch normalisation. The
widths double from stage to stage up to `hidden_dim`. On 64x64 images the default 3
stages give an 8x8 grid of 128 channels (32, 64, 128 channels at 32x32, 16x16, 8x8).
`build_image_encoder("residual_cnn")` wraps it with the input scaling, the grid, a
learned grid-position embedding and the pooled vector.

Batch normalisation uses momentum 0.9, not Keras's 0.99: the moving statistics then
follow the weights within ~10 steps. With 0.99 they lag ~100 steps behind and still hold
0.99**steps of their initial values, so after a short run (a few hundred steps, what a
CPU trains in minutes) inference-mode features differ from training-mode ones and the
val loss is several times the train loss.
"""

import keras

from xmodal_keras.argument_checks import check_positive_int

MIN_WIDTH = 16
BATCH_NORM_MOMENTUM = 0.9


def stage_widths(hidden_dim: int, num_layers: int) -> list[int]:
    """Channels of each stage: doubling up to `hidden_dim` (at least 16, at most hidden).

    Example:

    >>> stage_widths(128, 3)
    [32, 64, 128]
    """
    widths = [max(MIN_WIDTH, hidden_dim // 2 ** (num_layers - 1 - i)) for i in range(num_layers)]
    return [min(hidden_dim, w) for w in widths]


def _conv_bn(x, width: int, stride: int, name: str, activation: bool = True):
    x = keras.layers.Conv2D(
        width, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv"
    )(x)
    x = keras.layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x) if activation else x


def build_residual_cnn(
    image_shape: tuple[int, int, int], *, hidden_dim: int = 128, num_layers: int = 3
) -> keras.Model:
    """The residual backbone: scaled images `[B, H, W, 3]` -> `[B, H/2**n, W/2**n, hidden_dim]`.

    Layers are named `stage<i>_*`: a stage is one block for
    `build_image_encoder(..., trainable_blocks=N)`.

    Args:
        image_shape: `(height, width, 3)`; both sides at least `2**num_layers`.
        hidden_dim: channels of the last stage. Defaults to 128.
        num_layers: stages, each halving the resolution. Defaults to 3.

    Example:

    >>> import numpy as np
    >>> backbone = build_residual_cnn((32, 32, 3), hidden_dim=16, num_layers=2)
    >>> tuple(backbone(np.zeros((2, 32, 32, 3))).shape)
    (2, 8, 8, 16)
    """
    check_positive_int("hidden_dim", hidden_dim)
    check_positive_int("num_layers", num_layers)
    if min(image_shape[:2]) < 2**num_layers:
        raise ValueError(
            f"`image_shape` is too small for {num_layers} stride-2 stages. "
            f"Received: image_shape={image_shape!r}, num_layers={num_layers}"
        )
    widths = stage_widths(hidden_dim, num_layers)
    inputs = keras.Input(shape=image_shape, name="scaled_images")
    x = inputs
    for index, width in enumerate(widths, start=1):
        x = _conv_bn(x, width, 2, f"stage{index}_down")
        residual = _conv_bn(x, width, 1, f"stage{index}_block_a")
        residual = _conv_bn(residual, width, 1, f"stage{index}_block_b", activation=False)
        x = keras.layers.Add(name=f"stage{index}_add")([x, residual])
        x = keras.layers.ReLU(name=f"stage{index}_out")(x)
    return keras.Model(inputs, x, name="backbone")
