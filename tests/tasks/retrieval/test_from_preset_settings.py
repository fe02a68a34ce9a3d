"""`RetrievalTrainConfig(from_preset=...)`: what it replaces, what it allows (0 epochs), the
defaults it computes, and what it refuses."""

import pytest

from xmodal_keras.tasks.retrieval.settings import RetrievalTrainConfig

CLIP = "keras_hub:clip_vit_base_patch16"


def test_from_preset_defaults_and_zero_epochs():
    config = RetrievalTrainConfig(from_preset=CLIP, epochs=0)
    resolved = config.resolved()
    assert (resolved.sequence_length, resolved.image_size) == (77, None)
    assert config.pretrained_towers == ("image_tower", "text_tower")
    plain = RetrievalTrainConfig().resolved()
    assert (plain.sequence_length, plain.image_size) == (23, 64)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"from_preset": "clip_vit_base_patch16"}, "must be `keras_hub:PRESET_OR_DIR`"),
        ({"from_preset": CLIP, "encoder": "resnet50"}, r"leave \['encoder'\] at their defaults"),
        (
            {"from_preset": CLIP, "text_encoder": "transformer", "weights": "imagenet"},
            r"leave \['weights', 'text_encoder'\]",
        ),
        ({"epochs": 0}, "`epochs` must be a positive int"),
        ({"image_size": 0}, "`image_size` must be a positive int"),
    ],
)
def test_bad_from_preset_settings_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        RetrievalTrainConfig(**values)
