"""The tower fine-tuning settings of every task (`tower_learning_rate_scale`,
`tower_frozen_epochs`): which towers they act on and their checks. (A run whose towers stay
frozen through its first epoch and then train: tests/export/test_clip_preset_run.py.)"""

import keras
import pytest

from xmodal_keras.models.captioner_transfer import build_fusion_classifier_from_captioner
from xmodal_keras.tasks.captioning.settings import CaptionerTrainConfig
from xmodal_keras.tasks.captioning.train import build_captioner_from_config
from xmodal_keras.tasks.fusion.settings import FusionTrainConfig
from xmodal_keras.tasks.retrieval.settings import RetrievalTrainConfig
from xmodal_keras.training.tower_fine_tuning import (
    TowerFineTuning,
    check_tower_fine_tuning,
    tower_variable_paths,
)


def test_each_task_names_its_pretrained_towers():
    assert CaptionerTrainConfig().pretrained_towers == ()
    assert CaptionerTrainConfig(encoder="resnet50", weights="imagenet").pretrained_towers == (
        "image_encoder",
    )
    assert CaptionerTrainConfig(encoder="keras_hub:resnet_18_imagenet").pretrained_towers == (
        "image_encoder",
    )
    retrieval = RetrievalTrainConfig(encoder="resnet50", text_encoder="keras_hub:bert_tiny_en")
    assert retrieval.pretrained_towers == ("text_encoder",)
    fusion = FusionTrainConfig(encoder="resnet50", weights="imagenet", text_encoder="bigru")
    assert fusion.pretrained_towers == ("image_encoder",)
    started = FusionTrainConfig(init_from="runs/demo", fusion="cross_attention")
    assert started.pretrained_towers == ("image_encoder", "text_encoder", "captioner_text_reader")


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"learning_rate_scale": 0}, "must be > 0"),
        ({"learning_rate_scale": "0.1"}, "must be a number > 0"),
        ({"frozen_epochs": -1}, "must be an int >= 0"),
        ({"frozen_epochs": 3}, "less than `epochs`"),
        ({"learning_rate_scale": 0.1, "pretrained_towers": ()}, "this run has none"),
        ({"frozen_epochs": 1, "pretrained_towers": ()}, "this run has none"),
    ],
)
def test_bad_tower_settings_are_refused(arguments, message):
    values = {
        "learning_rate_scale": 1.0,
        "frozen_epochs": 0,
        "epochs": 3,
        "pretrained_towers": ("image_encoder",),
        **arguments,
    }
    with pytest.raises(ValueError, match=message):
        check_tower_fine_tuning(
            values["learning_rate_scale"],
            values["frozen_epochs"],
            epochs=values["epochs"],
            pretrained_towers=values["pretrained_towers"],
        )


def test_every_task_checks_its_tower_settings():
    for settings in (CaptionerTrainConfig, RetrievalTrainConfig, FusionTrainConfig):
        with pytest.raises(ValueError, match="this run has none"):
            settings(tower_learning_rate_scale=0.1)
    assert (
        CaptionerTrainConfig(
            encoder="resnet50", weights="imagenet", tower_frozen_epochs=2
        ).tower_frozen_epochs
        == 2
    )


def test_a_fusion_baseline_without_a_pretrained_tower_trains_at_one_rate():
    config = FusionTrainConfig(
        encoder="resnet50", weights="imagenet", tower_learning_rate_scale=0.1, tower_frozen_epochs=1
    )
    text_only = config.unimodal(("text",))
    assert (text_only.tower_learning_rate_scale, text_only.tower_frozen_epochs) == (1.0, 0)
    image_only = config.unimodal(("image",))
    assert (image_only.tower_learning_rate_scale, image_only.tower_frozen_epochs) == (0.1, 1)


def test_tower_paths_must_not_be_shared_with_other_layers():
    def tower(name):
        inputs = keras.Input((2,))
        return keras.Model(inputs, keras.layers.Dense(2, name="dense")(inputs), name=name)

    inputs = keras.Input((2,))
    model = keras.Model(inputs, [tower("a")(inputs), tower("b")(inputs)])
    with pytest.raises(ValueError, match="'dense/(bias|kernel)' is both in the towers"):
        tower_variable_paths(model, ["a"])
    with pytest.raises(ValueError, match="no layer named 'c'"):
        tower_variable_paths(model, ["c"])


def test_frozen_towers_must_have_something_to_train():
    inputs = keras.Input((2,))
    frozen = keras.layers.Dense(2, name="tower", trainable=False)
    model = keras.Model(inputs, keras.layers.Dense(1)(frozen(inputs)))
    with pytest.raises(ValueError, match="have no trainable variables"):
        TowerFineTuning(("tower",), learning_rate_scale=0.1).optimizer_arguments(model)
    assert TowerFineTuning(("tower",)).optimizer_arguments(model) == {}


def test_a_fusion_model_started_from_a_captioner_fine_tunes_its_text_reader():
    captioner = build_captioner_from_config(CaptionerTrainConfig(image_size=32), 20)
    model = build_fusion_classifier_from_captioner(
        captioner, num_classes=2, modalities=("image", "text")
    )
    config = FusionTrainConfig(
        init_from="runs/captioner", fusion="cross_attention", tower_learning_rate_scale=0.1
    )
    towers = TowerFineTuning.from_settings(config, steps_per_epoch=10, model=model)
    assert towers.layer_names == ("image_encoder", "captioner_text_reader")
    paths = towers.optimizer_arguments(model)["tower_variable_paths"]
    head = {v.path for v in model.get_layer("logits").trainable_variables}
    assert len(paths) == len(model.trainable_variables) - 4 and not head & set(paths)
