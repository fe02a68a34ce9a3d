"""Command-line flags generated from a settings dataclass: every field is a flag.

A field declared with `setting(default, help)` carries its help (and its choices) in its
metadata; `add_settings_flags` turns each field into `--field-name`, typed from the
annotation, with `(default: X)` appended from the dataclass default, so the defaults live
in one place. A flag left out keeps the dataclass default (`settings_from_flags` passes
only the flags that were given), which is also what a resumed run relies on.

| annotation            | flag                                                   |
| --------------------- | ------------------------------------------------------ |
| `bool`                | `--x` / `--no-x`                                        |
| `int`, `float`, `str` | `--x VALUE` (`| None` too: None is the default only)    |
| `tuple[str, ...]`     | `--x A,B` (comma-separated names)                       |
| `str | tuple[str, ...]` | `--x PATH [PATH ...]` (one path stays a string)       |

Example:

>>> import argparse, dataclasses
>>> @dataclasses.dataclass(frozen=True)
... class Settings:
...     epochs: int = setting(10, "passes over the data")
...     jit_compile: bool = setting(False, "XLA-compile the train step")
>>> parser = argparse.ArgumentParser()
>>> add_settings_flags(parser, Settings)
>>> settings_from_flags(parser.parse_args(["--epochs", "3"]), Settings)
Settings(epochs=3, jit_compile=False)
"""

import argparse
import dataclasses
import types
import typing
from collections.abc import Collection, Sequence
from typing import Any

HELP = "help"
CHOICES = "choices"
ALIASES = "aliases"


def setting(
    default: Any,
    help: str,
    *,
    choices: Sequence[str] | None = None,
    aliases: Sequence[str] = (),
) -> Any:
    """A settings dataclass field whose `help` (and `choices`) become its command-line flag;
    `aliases` are other flag names for it (`("--image-encoder",)`).

    A default of None means "computed" (from the data, or another setting): `help` must
    say how, since no `(default: ...)` is shown for it.
    """
    metadata = {
        HELP: help,
        CHOICES: tuple(choices) if choices is not None else None,
        ALIASES: tuple(aliases),
    }
    return dataclasses.field(default=default, metadata=metadata)


def _names(text: str) -> tuple[str, ...]:
    """`"age, income"` -> `("age", "income")`: a comma-separated list of names."""
    names = tuple(name.strip() for name in text.split(","))
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return names


def _without_none(annotation: Any) -> tuple[Any, ...]:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return tuple(a for a in typing.get_args(annotation) if a is not type(None))
    return (annotation,)


def _is_str_tuple(annotation: Any) -> bool:
    return typing.get_origin(annotation) is tuple and typing.get_args(annotation) == (str, ...)


def _flag_options(name: str, annotation: Any) -> dict[str, Any]:
    """argparse options of a field's annotation (see the module docstring's table)."""
    kinds = _without_none(annotation)
    if kinds == (bool,):
        return {"action": argparse.BooleanOptionalAction}
    if len(kinds) == 2 and kinds[0] is str and _is_str_tuple(kinds[1]):
        return {"nargs": "+", "metavar": "PATH"}
    if len(kinds) == 1 and _is_str_tuple(kinds[0]):
        return {"type": _names, "metavar": "A,B"}
    if len(kinds) == 1 and kinds[0] in (int, float, str):
        return {"type": kinds[0]}
    raise TypeError(f"No command-line flag for setting {name!r} of type {annotation!r}")


def _help(field: dataclasses.Field) -> str:
    text = field.metadata[HELP]
    default = field.default
    if default is None or default == ():
        return text
    if isinstance(default, bool):
        return text + (" (default: on)" if default else "")
    if isinstance(default, tuple):
        default = ",".join(default)
    return f"{text} (default: {default})"


def add_settings_flags(
    parser: argparse.ArgumentParser,
    settings_class: type,
    *,
    skip: Collection[str] = (),
    required: Collection[str] = (),
) -> None:
    """Adds a `--field-name` flag to `parser` for every field of `settings_class`.

    Args:
        parser: the (sub)command's parser.
        settings_class: a settings dataclass whose fields come from `setting(...)`.
        skip: fields the command sets itself (no flag).
        required: fields whose flag must be given.

    Raises:
        TypeError: a field without help, or of a type no flag can hold.
    """
    hints = typing.get_type_hints(settings_class)
    for field in dataclasses.fields(settings_class):
        if field.name in skip:
            continue
        if HELP not in field.metadata:
            raise TypeError(
                f"{settings_class.__name__}.{field.name} has no help: declare it with "
                "setting(default, help)"
            )
        parser.add_argument(
            "--" + field.name.replace("_", "-"),
            *field.metadata.get(ALIASES, ()),
            dest=field.name,
            default=None,
            required=field.name in required,
            choices=field.metadata[CHOICES],
            help=_help(field),
            **_flag_options(field.name, hints[field.name]),
        )


def settings_from_flags(args: argparse.Namespace, settings_class: type, **fixed: Any) -> Any:
    """The `settings_class` of parsed flags: the given ones, `fixed`, defaults for the rest.

    A path list of one path becomes that path (a string), as `data="shapes"` is.
    """
    values = {}
    for field in dataclasses.fields(settings_class):
        value = getattr(args, field.name, None)
        if value is None:
            continue
        if isinstance(value, list):
            value = value[0] if len(value) == 1 else tuple(value)
        values[field.name] = value
    values.update(fixed)
    return settings_class(**values)
