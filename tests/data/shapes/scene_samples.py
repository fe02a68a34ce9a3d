"""Shared by the shapes tests: the caption grammar and a batch of seeded sample scenes."""

import re

import numpy as np

from xmodal_keras.data import shapes

CAPTION_PATTERN = re.compile(r"^[a-z]+( [a-z]+)*$")


def sampled_scenes(count: int, image_size: int, seed: int = 0) -> list[shapes.Scene]:
    """`count` scenes, each from its own generator seeded with `[seed, i]`."""
    return [
        shapes.sample_scene(np.random.default_rng([seed, i]), f"s{i}.png", image_size)
        for i in range(count)
    ]
