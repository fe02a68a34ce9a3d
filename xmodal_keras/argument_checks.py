"""Checks for builder and layer arguments, with errors that name the offending value.

>>> check_positive_int("hidden_dim", 0)
Traceback (most recent call last):
...
ValueError: `hidden_dim` must be a positive int. Received: hidden_dim=0
"""


def check_positive_int(name: str, value) -> None:
    """Raise `ValueError` unless `value` is an int >= 1 (booleans are refused)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"`{name}` must be a positive int. Received: {name}={value!r}")
