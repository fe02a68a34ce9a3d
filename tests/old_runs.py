"""Runs written by xmodal_keras 0.1, kept as they were written (`tests/fixtures/*_run_v0_1`),
shared by the tests that check today's code still loads, evaluates and exports them."""

import pathlib
import shutil

from xmodal_keras.runs.run_directory import RunDirectory

FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"


def old_run_path(kind: str) -> pathlib.Path:
    """The fixture folder of a 0.1 `kind` run ("captioner", "retrieval" or "fusion")."""
    return FIXTURES / f"{kind}_run_v0_1"


def copied_old_run(kind: str, tmp_path_factory) -> RunDirectory:
    """A copy of the 0.1 `kind` run, so that nothing a test writes lands in the repository."""
    copy = tmp_path_factory.mktemp("old") / kind
    shutil.copytree(old_run_path(kind), copy)
    return RunDirectory(copy)
