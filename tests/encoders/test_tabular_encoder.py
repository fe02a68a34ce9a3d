import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from helpers import run_model_saving_test

from xmodal_keras.data.validation import DataValidationError
from xmodal_keras.encoders.tabular_encoder import build_tabular_encoder, tabular_features

COLUMNS = {"numeric_columns": ["age", "score"], "categorical_columns": ["color"]}


def _frame():
    return pd.DataFrame(
        {
            "age": [10.0, 30.0, 20.0, 1000.0, -500.0],
            "score": [1, 1, 4, 7, 9],
            "color": ["red", "blue", "red", "green", None],
            "split": ["train", "train", "train", "val", "test"],
        }
    )


def test_adapts_on_the_train_split_only():
    encoder = build_tabular_encoder(_frame(), **COLUMNS, embedding_dim=3, hidden_dim=4)
    normalization = encoder.get_layer("numeric_normalization")
    # Statistics of the three train rows only (val/test rows hold 1000 and -500).
    np.testing.assert_allclose(np.ravel(normalization.mean), [20.0, 2.0], rtol=1e-6)
    np.testing.assert_allclose(
        np.ravel(normalization.variance), [np.var([10, 30, 20]), np.var([1, 1, 4])], rtol=1e-5
    )
    lookup = encoder.get_layer("color_lookup")
    assert sorted(map(str, lookup.get_vocabulary())) == ["[UNK]", "blue", "red"]
    # "green" (val only) and missing (test only) are out of vocabulary, like any unseen value.
    ids = np.ravel(lookup(np.array([["green"], [""], ["purple"], ["red"]])))
    assert ids[:3].tolist() == [0, 0, 0] and ids[3] > 0
    assert encoder.get_layer("color_embedding").input_dim == 3


def test_outputs_and_reload_in_safe_mode():
    frame = _frame()
    encoder = build_tabular_encoder(frame, **COLUMNS, embedding_dim=3, hidden_dim=4)
    assert set(encoder.input) == {"age", "score", "color"}
    features = tabular_features(frame, **COLUMNS)
    assert features["color"].dtype.kind == "U" and features["color"][4, 0] == ""
    assert tuple(encoder(features)["pooled"].shape) == (5, 4)
    run_model_saving_test(encoder, features, atol=1e-6)


def test_numeric_only_and_categorical_only():
    frame = _frame()
    numeric = build_tabular_encoder(frame, numeric_columns=["age"], hidden_dim=2)
    assert tuple(numeric(tabular_features(frame, numeric_columns=["age"]))["pooled"].shape) == (
        5,
        2,
    )
    categorical = build_tabular_encoder(frame, categorical_columns=["color"], hidden_dim=2)
    out = categorical(tabular_features(frame, categorical_columns=["color"]))
    assert tuple(out["pooled"].shape) == (5, 2)


def test_one_fit_step():
    frame = _frame()
    encoder = build_tabular_encoder(frame, **COLUMNS, embedding_dim=3, hidden_dim=4)
    head = keras.layers.Dense(1)(encoder.output["pooled"])
    model = keras.Model(encoder.input, head)
    model.compile(optimizer="sgd", loss="mse")
    before = encoder.get_layer("color_embedding").embeddings.numpy().copy()
    # Keras' NumPy adapter refuses string arrays: fit from tf.data, as the pipelines do.
    dataset = tf.data.Dataset.from_tensor_slices((tabular_features(frame, **COLUMNS), np.ones(5)))
    model.fit(dataset.batch(5), verbose=0)
    assert not np.allclose(before, encoder.get_layer("color_embedding").embeddings.numpy())
    # Adapted statistics are not trained.
    np.testing.assert_allclose(
        np.ravel(encoder.get_layer("numeric_normalization").mean), [20.0, 2.0], rtol=1e-6
    )


def test_bad_values_are_listed_with_rows():
    frame = _frame()
    frame["age"] = frame["age"].astype(object)
    frame.loc[1, "age"] = "thirty"
    frame.loc[3, "score"] = np.nan
    with pytest.raises(DataValidationError) as error:
        tabular_features(frame, **COLUMNS, source="pairs.csv")
    assert str(error.value) == (
        "2 problems in pairs.csv:\n"
        "  pairs.csv:2: field 'age': expected a finite number, got 'thirty'\n"
        "  pairs.csv:4: field 'score': expected a finite number, got nan"
    )
    with pytest.raises(DataValidationError, match=r"field 'height': expected a column"):
        tabular_features(frame, numeric_columns=["height"])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, r"at least one numeric or categorical column"),
        ({"numeric_columns": ["age"], "categorical_columns": ["age"]}, r"distinct"),
        ({"numeric_columns": ["age"], "split_column": "fold"}, r"split_column='fold'"),
        ({"numeric_columns": ["age"], "train_split": "training"}, r"train_split='training'"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_tabular_encoder(_frame(), **kwargs)
