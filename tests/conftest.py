"""Shared fixtures: a tiny shapes dataset generated once per test session."""

import pathlib
import signal

import pytest

from xmodal_keras.data.shapes import generate_shapes

TINY_SHAPES = {"num_images": 40, "image_size": 32, "seed": 7}


@pytest.fixture(scope="session")
def tiny_shapes_dir(tmp_path_factory) -> pathlib.Path:
    """A 40-image, 32x32 shapes dataset in the Flickr8k + Hateful-Memes layout."""
    return generate_shapes(tmp_path_factory.mktemp("shapes"), **TINY_SHAPES)


@pytest.fixture
def fails_instead_of_hanging():
    """Turn a main-thread read that blocks (a FIFO opened for reading) into a test failure."""

    def hung(signum, frame):
        raise TimeoutError("blocked for 30 s (a FIFO opened for reading?)")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(30)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)
