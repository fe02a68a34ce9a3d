"""Every trainer checks its images the same way (`preflight_images`) before anything else:
a bad image is one error naming it, before the run directory is made or a model built."""

import pytest
from captioner_runs import TINY_SETTINGS
from tiny_images import TINY_PNG, write_png

from xmodal_keras.data.validation import DataValidationError
from xmodal_keras.tasks.captioning.settings import CaptionerTrainConfig
from xmodal_keras.tasks.captioning.train import train_captioner
from xmodal_keras.tasks.fusion.settings import FusionTrainConfig
from xmodal_keras.tasks.fusion.train import train_fusion
from xmodal_keras.tasks.retrieval.settings import RetrievalTrainConfig
from xmodal_keras.tasks.retrieval.train import train_retrieval

TINY = {"image_size": 32, "encoder_hidden_dim": 8, "embedding_dim": 8, "hidden_dim": 8}
TINY_TOWERS = {**TINY, "projection_dim": 8, "epochs": 1, "batch_size": 2, "strategy": "default"}


def captioner(data):
    return train_captioner, CaptionerTrainConfig(data=str(data), **TINY_SETTINGS)


def retrieval(data):
    return train_retrieval, RetrievalTrainConfig(data=str(data), **TINY_TOWERS)


def fusion(data):
    return train_fusion, FusionTrainConfig(data=str(data), **TINY_TOWERS)


@pytest.mark.parametrize("trainer", [captioner, retrieval, fusion])
def test_a_corrupt_image_stops_every_trainer_before_it_starts(tmp_path, trainer):
    for name in ("a.png", "b.png"):
        write_png(tmp_path / name)
    # A PNG signature (the readers' check passes) and a header PIL cannot read.
    (tmp_path / "bad.png").write_bytes(TINY_PNG[:8] + b"\x00" * 40)
    rows = [("a.png", "a red dog", 0), ("b.png", "a blue cat", 1), ("bad.png", "a cow", 0)]
    if trainer is fusion:
        data = tmp_path / "pairs.csv"
        data.write_text("image_path,text,label\n" + "".join(f"{i},{t},{y}\n" for i, t, y in rows))
    else:
        data = tmp_path / "captions.csv"
        data.write_text("image_path,caption\n" + "".join(f"{i},{t}\n" for i, t, _ in rows))
    train, config = trainer(data)
    out = tmp_path / "run"
    with pytest.raises(DataValidationError) as excinfo:
        train(config, out, verbose=0)
    message = str(excinfo.value).split("\n")
    assert message[0] == f"1 problem in the images of {data}:"
    assert message[1].startswith(
        f"  {tmp_path / 'bad.png'}: expected a JPEG, PNG, GIF, BMP or WEBP image, got "
    )
    assert not out.exists()
