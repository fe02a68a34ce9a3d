import numpy as np
import pytest
from helpers import run_model_saving_test

from xmodal_keras.encoders.text_encoder import TEXT_ENCODER_KINDS, build_text_encoder

IDS = np.array([[2, 4, 5, 3, 0], [2, 6, 3, 0, 0]], "int32")
TINY = {"vocabulary_size": 12, "embedding_dim": 8, "hidden_dim": 8}


@pytest.mark.parametrize("kind", TEXT_ENCODER_KINDS)
def test_outputs_masked_mean_and_reload(kind):
    encoder = build_text_encoder(sequence_length=5, kind=kind, num_layers=2, **TINY)
    assert encoder.input.name == "token_ids" and encoder.input.dtype == "int32"
    out = encoder(IDS)
    assert set(out) == {"sequence", "pooled"}
    sequence, pooled = np.asarray(out["sequence"]), np.asarray(out["pooled"])
    assert sequence.shape == (2, 5, 8) and pooled.shape == (2, 8)
    np.testing.assert_allclose(pooled[0], sequence[0, :4].mean(0), atol=1e-6)
    np.testing.assert_allclose(pooled[1], sequence[1, :3].mean(0), atol=1e-6)
    run_model_saving_test(encoder, IDS)


@pytest.mark.parametrize("kind", TEXT_ENCODER_KINDS)
def test_padding_does_not_change_the_pooled_vector(kind):
    short = build_text_encoder(sequence_length=5, kind=kind, **TINY)
    long = build_text_encoder(sequence_length=8, kind=kind, **TINY)
    weights = []
    for w in short.get_weights():
        if w.shape[:1] == (5,):  # position embedding table of the transformer
            w = np.concatenate([w, np.zeros((3, *w.shape[1:]), w.dtype)])
        weights.append(w)
    long.set_weights(weights)
    padded = np.pad(IDS, ((0, 0), (0, 3)))
    np.testing.assert_allclose(long(padded)["pooled"], short(IDS)["pooled"], atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"kind": "lstm"}, "kind='lstm'"),
        ({"hidden_dim": 7}, "hidden_dim=7"),
        ({"kind": "transformer", "embedding_dim": 4}, "embedding_dim=4"),
        ({"kind": "transformer", "num_heads": 3}, "num_heads=3"),
        ({"dropout": 1.5}, "dropout=1.5"),
        ({"sequence_length": 0}, "sequence_length=0"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = {"sequence_length": 5, **TINY, **kwargs}
    with pytest.raises(ValueError, match=f"Received: {match}"):
        build_text_encoder(**args)
