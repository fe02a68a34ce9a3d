"""Tabular encoder: pandas columns -> normalised numbers + embedded categories -> a vector.

The preprocessing lives inside the model (`Normalization`, `StringLookup`), so a saved
model takes raw column values. It is adapted on the rows of the training split only:
statistics of validation or test rows never leak into the model.
"""

from collections.abc import Sequence

import keras
import numpy as np
import pandas as pd

from xmodal_keras.argument_checks import check_positive_int
from xmodal_keras.data.validation import ProblemCollector

MISSING_CATEGORY = ""
"""The string a missing categorical value (None / NaN) becomes."""


def tabular_features(
    frame: pd.DataFrame,
    *,
    numeric_columns: Sequence[str] = (),
    categorical_columns: Sequence[str] = (),
    source: str = "DataFrame",
) -> dict[str, np.ndarray]:
    """The tabular encoder's inputs for every row of `frame`.

    Args:
        frame: one row per example.
        numeric_columns: columns of finite numbers -> float32 `[rows, 1]`.
        categorical_columns: columns of categories -> str `[rows, 1]` (values
            turned into strings; missing ones into `MISSING_CATEGORY`).
        source: name of the data in error messages. Defaults to `"DataFrame"`.

    Returns:
        `{column: array}` for every listed column. Feed them to `fit` through
        `tf.data.Dataset.from_tensor_slices` (Keras' NumPy adapter refuses
        string arrays); direct calls and `predict` on tf.data work too.

    Raises:
        DataValidationError: a column is missing, or a numeric value is not a
            finite number (every problem listed with its 1-based row).

    Example:

    >>> import pandas as pd
    >>> frame = pd.DataFrame({"age": [31, 40], "color": ["red", None]})
    >>> features = tabular_features(frame, numeric_columns=["age"], categorical_columns=["color"])
    >>> features["age"].tolist(), features["color"].tolist()
    ([[31.0], [40.0]], [['red'], ['']])
    """
    _check_columns(numeric_columns, categorical_columns)
    problems = ProblemCollector()
    for column in (*numeric_columns, *categorical_columns):
        if column not in frame.columns:
            problems.add(source, None, column, "a column of that name", "no such column")
    problems.raise_if_any(source)
    features = {}
    for column in numeric_columns:
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy("float64", na_value=np.nan)
        for row in np.flatnonzero(~np.isfinite(values)):
            problems.add(
                source, int(row) + 1, column, "a finite number", _describe(frame[column].iloc[row])
            )
        features[column] = values.astype("float32")[:, None]
    problems.raise_if_any(source)
    for column in categorical_columns:
        values = frame[column].astype(object)
        values = values.where(values.notna(), MISSING_CATEGORY).astype(str)
        features[column] = values.to_numpy(dtype=object).astype(str)[:, None]
    return features


def build_tabular_encoder(
    frame: pd.DataFrame,
    *,
    numeric_columns: Sequence[str] = (),
    categorical_columns: Sequence[str] = (),
    split_column: str = "split",
    train_split: str = "train",
    embedding_dim: int = 8,
    hidden_dim: int = 32,
    name: str = "tabular_encoder",
) -> keras.Model:
    """Builds a tabular encoder adapted on the training rows of `frame`.

    Numeric columns are concatenated and standardised by a `Normalization`
    layer (mean and variance of the training rows); each categorical column
    goes through its own `StringLookup` (vocabulary of the training rows, one
    out-of-vocabulary index for anything else) and `Embedding`. Everything is
    concatenated and passed through `Dense(hidden_dim, relu)`.

    Args:
        frame: a DataFrame with the columns and a split column (e.g. the pair
            DataFrame of `xmodal_keras.data.readers`).
        numeric_columns: numeric column names. Defaults to `()`.
        categorical_columns: categorical column names. Defaults to `()`.
        split_column: column naming each row's split. Defaults to `"split"`.
        train_split: the split to adapt on. Defaults to `"train"`.
        embedding_dim: size of each categorical embedding. Defaults to 8.
        hidden_dim: size of the output. Defaults to 32.
        name: model name. Defaults to `"tabular_encoder"`.

    Returns:
        A `keras.Model` whose input is a dict `{column: [batch, 1]}` (float32
        for numeric, string for categorical; `tabular_features` makes it from a
        DataFrame) and whose output is `{"pooled": [batch, hidden_dim]}`.

    Example:

    >>> import pandas as pd
    >>> frame = pd.DataFrame({"age": [30.0, 50.0, 99.0], "color": ["red", "blue", "green"],
    ...                       "split": ["train", "train", "test"]})
    >>> encoder = build_tabular_encoder(frame, numeric_columns=["age"],
    ...                                 categorical_columns=["color"], hidden_dim=4)
    >>> features = tabular_features(frame, numeric_columns=["age"], categorical_columns=["color"])
    >>> tuple(encoder(features)["pooled"].shape)
    (3, 4)
    >>> sorted(str(v) for v in encoder.get_layer("color_lookup").get_vocabulary())
    ['[UNK]', 'blue', 'red']
    """
    _check_columns(numeric_columns, categorical_columns)
    check_positive_int("embedding_dim", embedding_dim)
    check_positive_int("hidden_dim", hidden_dim)
    if split_column not in frame.columns:
        raise ValueError(
            f"`frame` has no split column. Received: split_column={split_column!r}, "
            f"columns={list(frame.columns)}"
        )
    train = frame[frame[split_column] == train_split]
    if train.empty:
        raise ValueError(
            f"`frame` has no rows of the training split. Received: train_split={train_split!r}, "
            f"splits={sorted(frame[split_column].astype(str).unique())}"
        )
    train_features = tabular_features(
        train,
        numeric_columns=numeric_columns,
        categorical_columns=categorical_columns,
        source=f"{train_split} split",
    )

    inputs, parts = {}, []
    if numeric_columns:
        for column in numeric_columns:
            inputs[column] = keras.Input(shape=(1,), dtype="float32", name=column)
        numbers = [inputs[column] for column in numeric_columns]
        numbers = (
            keras.layers.Concatenate(name="numeric")(numbers) if len(numbers) > 1 else numbers[0]
        )
        normalization = keras.layers.Normalization(axis=-1, name="numeric_normalization")
        normalization.adapt(
            np.concatenate([train_features[column] for column in numeric_columns], axis=1)
        )
        parts.append(normalization(numbers))
    for column in categorical_columns:
        inputs[column] = keras.Input(shape=(1,), dtype="string", name=column)
        lookup = keras.layers.StringLookup(num_oov_indices=1, name=f"{column}_lookup")
        lookup.adapt(train_features[column])
        embedded = keras.layers.Embedding(
            lookup.vocabulary_size(), embedding_dim, name=f"{column}_embedding"
        )(lookup(inputs[column]))
        parts.append(keras.layers.Flatten(name=f"{column}_flatten")(embedded))
    features = keras.layers.Concatenate(name="features")(parts) if len(parts) > 1 else parts[0]
    pooled = keras.layers.Dense(hidden_dim, activation="relu", name="pooled")(features)
    return keras.Model(inputs, {"pooled": pooled}, name=name)


def _check_columns(numeric_columns, categorical_columns) -> None:
    columns = [*numeric_columns, *categorical_columns]
    if not columns:
        raise ValueError(
            "Give at least one numeric or categorical column. "
            f"Received: numeric_columns={numeric_columns!r}, "
            f"categorical_columns={categorical_columns!r}"
        )
    bad = [c for c in columns if not isinstance(c, str) or not c or "/" in c]
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if bad or duplicated:
        raise ValueError(
            "Column names must be distinct non-empty strings without '/'. "
            f"Received: numeric_columns={numeric_columns!r}, "
            f"categorical_columns={categorical_columns!r}"
        )


def _describe(value) -> str:
    return repr(value) if isinstance(value, str) else str(value)
