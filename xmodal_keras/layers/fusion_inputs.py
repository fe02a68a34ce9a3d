"""Input handling shared by the fusion layers (not public API).

Every vector fusion layer takes a list (or tuple) of per-modality tensors, or a
dict of them; a dict is read in sorted key order, the order Keras itself
flattens dicts in, so a layer's weights always line up with the same modality.
"""

from collections.abc import Mapping


def modality_list(inputs, layer_name: str) -> list:
    """The per-modality tensors (or shapes) of `inputs` as a list."""
    if isinstance(inputs, Mapping):
        items = [inputs[key] for key in sorted(inputs)]
    elif isinstance(inputs, list | tuple) and not _is_shape(inputs):
        items = list(inputs)
    else:
        raise ValueError(
            f"{layer_name} expects a list or dict of per-modality tensors. "
            f"Received: inputs={inputs!r}"
        )
    if not items:
        raise ValueError(f"{layer_name} needs at least one modality. Received: inputs={inputs!r}")
    return items


def check_same_last_dim(shapes: list, layer_name: str) -> int:
    """The common last dimension of `shapes`; `ValueError` when they differ."""
    dims = [shape[-1] for shape in shapes]
    if len(set(dims)) != 1 or dims[0] is None:
        raise ValueError(
            f"{layer_name} needs every modality projected to the same known size. "
            f"Received: last dimensions {dims}"
        )
    return dims[0]


def _is_shape(value) -> bool:
    """A bare shape tuple such as `(2, 8)`, as opposed to a list of shapes."""
    return all(dim is None or isinstance(dim, int) for dim in value)
