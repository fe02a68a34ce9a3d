"""Fusion layers by name, for builders and the command line.

Example:

>>> layer = get_fusion_layer("gated", output_dim=4)
>>> type(layer).__name__, layer.output_dim
('GatedFusion', 4)
"""

import keras

from xmodal_keras.layers.bilinear_fusion import BilinearFusion
from xmodal_keras.layers.concat_fusion import ConcatFusion
from xmodal_keras.layers.cross_attention_fusion import CrossAttentionFusion
from xmodal_keras.layers.gated_fusion import GatedFusion
from xmodal_keras.layers.product_fusion import ProductFusion
from xmodal_keras.layers.weighted_sum_fusion import WeightedSumFusion

FUSION_LAYERS: dict[str, type[keras.layers.Layer]] = {
    "concat": ConcatFusion,
    "weighted_sum": WeightedSumFusion,
    "product": ProductFusion,
    "gated": GatedFusion,
    "cross_attention": CrossAttentionFusion,
    "bilinear": BilinearFusion,
}
"""Fusion layer classes by name. `"cross_attention"` takes two sequences
(`first`, `second` and their masks); the others take a list or dict of vectors."""

FUSION_NAMES: tuple[str, ...] = tuple(FUSION_LAYERS)


def get_fusion_layer(name: str, /, **kwargs) -> keras.layers.Layer:
    """A new fusion layer by name (`FUSION_NAMES`), built with `**kwargs`.

    Args:
        name: (positional) `"concat"`, `"weighted_sum"`, `"product"`, `"gated"`,
            `"cross_attention"` or `"bilinear"` (`BilinearFusion` needs `rank=`).
        **kwargs: the layer's constructor arguments, `name=` (the layer's name)
            included.

    Returns:
        The layer.
    """
    if name not in FUSION_LAYERS:
        raise ValueError(f"Unknown fusion. Expected one of {FUSION_NAMES}. Received: name={name!r}")
    return FUSION_LAYERS[name](**kwargs)
