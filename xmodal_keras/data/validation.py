"""One error type for bad input data, listing every problem with file, row and field.

Readers collect problems instead of stopping at the first, then raise once:

>>> from xmodal_keras.data.validation import ProblemCollector
>>> problems = ProblemCollector()
>>> problems.add("captions.csv", 3, "caption", "non-empty text", "''")
>>> problems.raise_if_any("captions.csv")
Traceback (most recent call last):
...
xmodal_keras.data.validation.DataValidationError: 1 problem in captions.csv:
  captions.csv:3: field 'caption': expected non-empty text, got ''
"""

import dataclasses
import os

MAX_LISTED_PROBLEMS = 20


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing wrong with one field of one row (`line` is 1-based; None for the file)."""

    file: str
    line: int | None
    field: str | None
    expected: str
    got: str | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        what = f"expected {self.expected}"
        if self.got is not None:
            what += f", got {self.got}"
        if self.field is None:
            return f"{where}: {what}"
        return f"{where}: field '{self.field}': {what}"


class DataValidationError(ValueError):
    """Raised once per read with every problem found; `.problems` holds them all."""

    def __init__(self, source: str, problems: list[Problem]):
        self.source = source
        self.problems = list(problems)
        count = len(self.problems)
        lines = [f"{count} problem{'s' if count != 1 else ''} in {source}:"]
        lines += [f"  {problem}" for problem in self.problems[:MAX_LISTED_PROBLEMS]]
        if count > MAX_LISTED_PROBLEMS:
            lines.append(f"  ... and {count - MAX_LISTED_PROBLEMS} more")
        super().__init__("\n".join(lines))


class ProblemCollector:
    """Accumulates `Problem`s while a reader walks a file."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(
        self,
        file: str | os.PathLike,
        line: int | None,
        field: str | None,
        expected: str,
        got: object = None,
    ) -> None:
        self.problems.append(
            Problem(os.fspath(file), line, field, expected, None if got is None else str(got))
        )

    def __len__(self) -> int:
        return len(self.problems)

    def raise_if_any(self, source: str | os.PathLike) -> None:
        if self.problems:
            raise DataValidationError(os.fspath(source), self.problems)
