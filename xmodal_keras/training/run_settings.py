"""`RunSettings`: the `config.json` round trip shared by the trainers' settings dataclasses."""

import dataclasses
from typing import Any, ClassVar


class RunSettings:
    """Mixin for a frozen settings dataclass written to a run directory as `config.json`.

    Tuples are written as JSON lists and read back as tuples; unknown keys are an error
    that names the trainer (`settings_kind`).

    Example:

    >>> @dataclasses.dataclass(frozen=True)
    ... class Settings(RunSettings):
    ...     settings_kind = "toy"
    ...     data: tuple[str, ...] = ("a", "b")
    ...     epochs: int = 1
    >>> Settings().to_dict()
    {'data': ['a', 'b'], 'epochs': 1}
    >>> Settings.from_dict({"data": ["c"], "epochs": 2})
    Settings(data=('c',), epochs=2)
    """

    settings_kind: ClassVar[str] = "run"

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        return {key: list(v) if isinstance(v, tuple) else v for key, v in values.items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]):
        """Inverse of `to_dict` (e.g. a `config.json`); unknown keys are an error."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"Unknown {cls.settings_kind} settings {unknown}; expected some of {sorted(known)}."
            )
        return cls(**{key: tuple(v) if isinstance(v, list) else v for key, v in values.items()})
