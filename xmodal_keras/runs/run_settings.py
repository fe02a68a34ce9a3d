"""`RunSettings`: the `config.json` round trip shared by the trainers' settings dataclasses."""

import dataclasses
from typing import Any, ClassVar

# `config.json` records the version of its settings' meaning (`to_config`); a file without
# one is version 1. Version 2: `sequence_length` is the length of the `token_ids` a model
# reads, for every task (retrieval and fusion wrote one less, the tokenizer's length).
SETTINGS_VERSION_KEY = "settings_version"
SETTINGS_VERSION = 2


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
    >>> Settings().to_config()["settings_version"]
    2
    """

    settings_kind: ClassVar[str] = "run"
    # Settings that may change when a run is resumed or extended; every other one must match.
    resumable_fields: ClassVar[frozenset[str]] = frozenset({"epochs"})
    # Settings a new run picks for itself when left at their defaults (None, "auto"): a
    # resumed run takes them from its config.json instead (`resumed_from`).
    picked_fields: ClassVar[frozenset[str]] = frozenset()
    # What a setting added later was before it existed, where that is not its default:
    # `from_dict` gives these to a `config.json` written without them.
    legacy_values: ClassVar[dict[str, Any]] = {}
    # Settings whose `sequence_length` was the tokenizer's length (one less than the
    # `token_ids` the model reads) before settings version 2 (`upgraded`).
    sequence_length_was_tokenizer_length: ClassVar[bool] = False

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        return {key: list(v) if isinstance(v, tuple) else v for key, v in values.items()}

    def to_config(self) -> dict[str, Any]:
        """`to_dict` with the `SETTINGS_VERSION`: what a run's `config.json` holds."""
        return {**self.to_dict(), SETTINGS_VERSION_KEY: SETTINGS_VERSION}

    @classmethod
    def upgraded(cls, values: dict[str, Any], version: int) -> dict[str, Any]:
        """`values` written at settings `version`, in today's meaning.

        Example:

        >>> @dataclasses.dataclass(frozen=True)
        ... class Settings(RunSettings):
        ...     sequence_length_was_tokenizer_length = True
        ...     sequence_length: int = 8
        >>> Settings.from_dict({"sequence_length": 16})  # version 1: the tokenizer's 16
        Settings(sequence_length=17)
        >>> Settings.from_dict(Settings(sequence_length=16).to_config())
        Settings(sequence_length=16)
        """
        length = values.get("sequence_length")
        if version < 2 and cls.sequence_length_was_tokenizer_length and isinstance(length, int):
            values = {**values, "sequence_length": length + 1}
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]):
        """Inverse of `to_dict` / `to_config` (e.g. a `config.json`); unknown keys are an
        error, missing ones take their `legacy_values` (else their defaults), and values
        of an older settings version are `upgraded`."""
        values = dict(values)
        version = values.pop(SETTINGS_VERSION_KEY, 1)
        if not isinstance(version, int) or not 1 <= version <= SETTINGS_VERSION:
            raise ValueError(
                f"{SETTINGS_VERSION_KEY} must be an int from 1 to {SETTINGS_VERSION} (a "
                f"newer xmodal_keras wrote this run?). Received: {SETTINGS_VERSION_KEY}={version!r}"
            )
        values = cls.upgraded(values, version)
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"Unknown {cls.settings_kind} settings {unknown}; expected some of {sorted(known)}."
            )
        values = {**cls.legacy_values, **values}
        return cls(**{key: tuple(v) if isinstance(v, list) else v for key, v in values.items()})

    def resumed_from(self, run):
        """These settings, with each of `picked_fields` left at its default taken from
        `run`'s `config.json` (what the run picked when it started).

        Example:

        >>> import tempfile
        >>> from xmodal_keras.runs.run_directory import RunDirectory
        >>> @dataclasses.dataclass(frozen=True)
        ... class Settings(RunSettings):
        ...     picked_fields = frozenset({"precision"})
        ...     legacy_values = {"precision": "float32"}
        ...     precision: str = "auto"
        ...     epochs: int = 1
        >>> run = RunDirectory(tempfile.mkdtemp()).create()
        >>> run.write_config({"epochs": 1})  # written before `precision` existed
        >>> Settings(epochs=2).resumed_from(run)
        Settings(precision='float32', epochs=2)
        """
        stored = type(self).from_dict(run.read_config())
        defaults = {field.name: field.default for field in dataclasses.fields(self)}
        picked = {
            name: getattr(stored, name)
            for name in self.picked_fields
            if getattr(self, name) == defaults[name]
        }
        return dataclasses.replace(self, **picked)

    def resolved(self):
        """These settings with what they leave to be picked filled in (a settings class
        with such fields overrides this)."""
        return self

    def for_run(self, run):
        """These settings for `run` (a `RunDirectory`): when it holds a `config.json`, the
        picked fields it started with (`resumed_from`), after checking that the resolved
        settings are the ones it was started with (`check_resumable`); else themselves.

        Example:

        >>> import tempfile
        >>> from xmodal_keras.runs.run_directory import RunDirectory
        >>> @dataclasses.dataclass(frozen=True)
        ... class Settings(RunSettings):
        ...     picked_fields = frozenset({"precision"})
        ...     precision: str = "auto"
        ...     epochs: int = 1
        >>> run = RunDirectory(tempfile.mkdtemp()).create()
        >>> Settings().for_run(run)
        Settings(precision='auto', epochs=1)
        >>> run.write_config({"precision": "mixed_bfloat16", "epochs": 1})
        >>> Settings(epochs=4).for_run(run)
        Settings(precision='mixed_bfloat16', epochs=4)
        """
        if not run.has_config():
            return self
        settings = self.resumed_from(run)
        settings.resolved().check_resumable(run)
        return settings

    def check_resumable(self, run) -> None:
        """Raise `ValueError` when `run` (a `RunDirectory` with a `config.json`) holds other
        settings than these, apart from `resumable_fields`. Settings added since the file
        was written read as their defaults, so older runs resume.

        Example:

        >>> import tempfile
        >>> from xmodal_keras.runs.run_directory import RunDirectory
        >>> @dataclasses.dataclass(frozen=True)
        ... class Settings(RunSettings):
        ...     epochs: int = 1
        ...     width: int = 8
        >>> run = RunDirectory(tempfile.mkdtemp()).create()
        >>> run.write_config({"epochs": 1})  # written before `width` existed
        >>> Settings(epochs=3).check_resumable(run)
        >>> try:
        ...     Settings(width=4).check_resumable(run)
        ... except ValueError as error:
        ...     print(str(error).split("Received: ")[1])
        width: 8 -> 4
        """
        previous = type(self).from_dict(run.read_config()).to_dict()
        current = self.to_dict()
        changed = sorted(
            key
            for key in set(previous) | set(current)
            if key not in self.resumable_fields and previous.get(key) != current.get(key)
        )
        if changed:
            details = ", ".join(f"{k}: {previous.get(k)!r} -> {current.get(k)!r}" for k in changed)
            raise ValueError(
                f"{run.path} holds a run with other settings; resume it with the same settings "
                f"(only {sorted(self.resumable_fields)} may change) or pick another --out. "
                f"Received: {details}"
            )
