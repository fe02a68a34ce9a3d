"""train_fusion with side inputs: tabular columns and WAV audio beside image and text.

One tiny run uses all four modalities; it is checked through config.json, evaluation,
resuming and the SavedModel `classify` signature in a fresh process. Bad side-input data
fails before training with errors naming file, line and column.
"""

import dataclasses
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from pair_csvs import COLORS, RATE, SAMPLES, SIZE, expected_waveform, make_pair_csv, write_wav

from xmodal_keras.data.validation import DataValidationError
from xmodal_keras.encoders.tabular_encoder import tabular_features
from xmodal_keras.export.fusion_export import export_fusion_classifier
from xmodal_keras.runs.run_directory import RunDirectory
from xmodal_keras.tasks.fusion.data import labelled, make_fusion_dataset, read_pair_data
from xmodal_keras.tasks.fusion.evaluate import (
    classification_metrics_dir,
    evaluate_fusion,
    load_fusion_run,
)
from xmodal_keras.tasks.fusion.settings import FusionTrainConfig
from xmodal_keras.tasks.fusion.train import train_fusion

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}


def side_config(data, **overrides) -> FusionTrainConfig:
    settings = dict(
        data=str(data),
        modalities=("image", "text", "tabular", "audio"),
        numeric_columns=("age", "height"),
        categorical_columns=("color",),
        audio_column="audio_path",
        audio_samples=SAMPLES,
        audio_sample_rate=RATE,
        audio_num_mel_bins=16,
        audio_hidden_dim=8,
        tabular_embedding_dim=4,
        tabular_hidden_dim=8,
        image_size=SIZE,
        encoder_hidden_dim=8,
        encoder_num_layers=1,
        embedding_dim=8,
        hidden_dim=8,
        projection_dim=8,
        sequence_length=6,
        epochs=1,
        batch_size=4,
        strategy="default",
        precision="float32",  # "auto" (bfloat16 on AMX CPUs): tests/training/test_precision.py
    )
    settings.update(overrides)
    return FusionTrainConfig(**settings)


@pytest.fixture(scope="module")
def pair_data(tmp_path_factory):
    return make_pair_csv(tmp_path_factory.mktemp("pairs"))


@pytest.fixture(scope="module")
def side_run(pair_data, tmp_path_factory):
    config = side_config(pair_data[0])
    return config, train_fusion(config, tmp_path_factory.mktemp("fusion") / "run", verbose=0)


def test_run_config_round_trip_and_tabular_adapted_on_train_only(side_run):
    config, run = side_run
    written = FusionTrainConfig.from_dict(json.loads(run.config_path.read_text()))
    assert written == config.resolved()
    assert written.numeric_columns == ("age", "height") and written.audio_column == "audio_path"
    model, _, loaded = load_fusion_run(run.path)
    assert loaded == written
    assert set(model.input) == {"images", "token_ids", "tabular", "audio"}
    assert set(model.input["tabular"]) == {"age", "height", "color"}
    assert tuple(model.input["audio"].shape) == (None, SAMPLES)
    frame = read_pair_data(written)
    train = frame[frame.split == "train"]
    encoder = model.get_layer("tabular_encoder")
    normalization = encoder.get_layer("numeric_normalization")
    np.testing.assert_allclose(
        np.ravel(normalization.mean), train[["age", "height"]].mean().to_numpy(), rtol=1e-5
    )
    vocabulary = {str(v) for v in encoder.get_layer("color_lookup").get_vocabulary()}
    assert vocabulary == {"[UNK]", *COLORS}  # "purple" (test split only) is out


def test_dataset_feeds_tabular_and_audio_by_row(pair_data):
    path, clips = pair_data
    config = side_config(path)
    frame = read_pair_data(config.resolved())
    rows = frame.iloc[[5, 1, 0]]  # out of order: values must follow their rows
    from xmodal_keras.data.text_tokenizer import CaptionTokenizer

    tokenizer = CaptionTokenizer.from_captions(frame.text, sequence_length=6)
    dataset = make_fusion_dataset(
        rows,
        tokenizer,
        modalities=config.modalities,
        image_size=(SIZE, SIZE),
        batch_size=3,
        **config.side_inputs,
    )
    inputs, labels = next(iter(dataset))
    assert labels.numpy().tolist() == rows.label.tolist()
    assert inputs["tabular"]["age"].numpy()[:, 0].tolist() == rows.age.astype(float).tolist()
    assert inputs["tabular"]["color"].numpy()[:, 0].astype(str).tolist() == rows.color.tolist()
    expected = np.stack([expected_waveform(clips[f"wav/{i}.wav"]) for i in (5, 1, 0)])
    np.testing.assert_allclose(inputs["audio"].numpy(), expected, atol=1e-6)


def test_evaluate_reproduces_the_metrics(side_run):
    _, run = side_run
    before = json.loads((classification_metrics_dir(run, "test") / "metrics.json").read_text())
    after = evaluate_fusion(run.path, splits=("test",))["test"]
    assert after["confusion_matrix"] == before["confusion_matrix"]
    assert after["auroc"] == pytest.approx(before["auroc"], abs=1e-6)


def test_resume_rejects_other_columns(side_run):
    config, run = side_run
    with pytest.raises(ValueError, match=r"numeric_columns: \['age', 'height'\] -> \['age'\]"):
        train_fusion(dataclasses.replace(config, numeric_columns=("age",)), run.path, verbose=0)


@pytest.mark.slow
def test_resume_extends_the_run(side_run, capsys):
    config, run = side_run
    train_fusion(dataclasses.replace(config, epochs=2), run.path, verbose=0)
    assert capsys.readouterr().out.count("trained ") == 1
    assert pd.read_csv(run.history_path).epoch.tolist() == [0, 1]  # epoch 0 restored


def test_a_run_written_before_side_inputs_still_resumes(tmp_path):
    config = FusionTrainConfig(strategy="default")
    run = RunDirectory(tmp_path / "old")
    old = {k: v for k, v in config.to_config().items() if "audio" not in k and "tabular" not in k}
    old = {k: v for k, v in old.items() if not k.endswith("_columns")}
    run.create()
    run.write_config(old)
    config.check_resumable(run)  # no error: new settings read as their defaults


FRESH_PROCESS = """
import json, sys
import tensorflow as tf
request = json.loads(sys.stdin.read())
model = tf.saved_model.load(request["path"])
inputs = {
    "image_bytes": tf.constant([bytes.fromhex(h) for h in request["image_bytes"]]),
    "text": tf.constant(request["text"]),
    "age": tf.constant(request["age"], tf.float32),
    "height": tf.constant(request["height"], tf.float32),
    "color": tf.constant(request["color"]),
    "audio": tf.constant(request["audio"], tf.float32),
}
print(json.dumps({
    name: model.signatures[name](**inputs)["probabilities"].numpy().tolist()
    for name in ("classify", "serving_default")
}))
"""


def test_exported_classify_equals_keras_in_a_fresh_process(side_run, tmp_path):
    _, run = side_run
    model, tokenizer, config = load_fusion_run(run.path)
    path = export_fusion_classifier(model, tokenizer, base_dir=tmp_path, name="side")
    info = json.loads((path / "xmodal_export.json").read_text())
    assert set(info["inputs"]) == {"image_bytes", "text", "age", "height", "color", "audio"}
    rows = labelled(read_pair_data(config), "test")
    inputs, _ = next(
        iter(
            make_fusion_dataset(
                rows,
                tokenizer,
                modalities=config.modalities,
                image_size=(SIZE, SIZE),
                batch_size=len(rows),
                **config.side_inputs,
            )
        )
    )
    expected = model(inputs, training=False).numpy()
    features = tabular_features(
        rows, numeric_columns=["age", "height"], categorical_columns=["color"]
    )
    request = {
        "path": str(path),
        "image_bytes": [pathlib.Path(p).read_bytes().hex() for p in rows.image_path],
        "text": rows.text.tolist(),
        "age": features["age"][:, 0].tolist(),
        "height": features["height"][:, 0].tolist(),
        "color": features["color"][:, 0].tolist(),
        "audio": inputs["audio"].numpy().tolist(),
    }
    done = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        env=ENV,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert expected.shape == (len(rows), 1)
    for name in ("classify", "serving_default"):
        np.testing.assert_allclose(result[name], expected, rtol=1e-5, atol=1e-6)


def test_a_missing_column_is_named_before_training(pair_data, tmp_path):
    path, _ = pair_data
    config = side_config(path, numeric_columns=("age", "weight"))
    with pytest.raises(DataValidationError) as caught:
        train_fusion(config, tmp_path / "run", verbose=0)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}: field 'weight': expected a column of that name, got columns ['id', "
        "'image_path', 'text', 'label', 'split', 'age', 'height', 'color', 'audio_path']"
    ]
    assert not (tmp_path / "run").exists()


def test_text_in_a_numeric_column_names_file_line_and_column(tmp_path):
    # CSV line 4 = the third pair; line 6 has an empty cell.
    path, _ = make_pair_csv(tmp_path, rows=[(3, "age", "old"), (5, "height", "")])
    with pytest.raises(DataValidationError) as caught:
        read_pair_data(side_config(path).resolved())
    assert str(caught.value) == (
        f"2 problems in {path}:\n"
        f"  {path}:4: field 'age': expected a finite number, got 'old'\n"
        f"  {path}:6: field 'height': expected a finite number, got ''"
    )


def test_unreadable_or_other_rate_audio_is_named(tmp_path):
    path, _ = make_pair_csv(tmp_path)
    (tmp_path / "wav" / "2.wav").write_bytes(b"not a wav file")
    write_wav(tmp_path / "wav" / "4.wav", np.zeros(SAMPLES, np.int16), rate=16000)
    with pytest.raises(DataValidationError) as caught:
        read_pair_data(side_config(path).resolved())
    problems = caught.value.problems
    assert [(p.file, p.line, p.field) for p in problems] == [
        (str(path), 4, "audio_path"),
        (str(path), 6, "audio_path"),
    ]
    assert problems[0].expected == "a readable 16-bit PCM WAV file"
    assert problems[0].got.startswith(str(tmp_path / "wav" / "2.wav"))
    assert problems[1].got == (
        f"{tmp_path / 'wav' / '4.wav'} at 16000 Hz (the run reads {RATE} Hz; resample it)"
    )


def test_side_input_settings_are_checked():
    with pytest.raises(ValueError, match=r"'tabular' modality and `numeric_columns`"):
        FusionTrainConfig(modalities=("image", "tabular"))
    with pytest.raises(ValueError, match=r"'tabular' modality and `numeric_columns`"):
        FusionTrainConfig(numeric_columns=("age",))
    with pytest.raises(ValueError, match=r"'audio' modality and `audio_column` go together"):
        FusionTrainConfig(modalities=("image", "audio"))
    with pytest.raises(ValueError, match=r"distinct identifiers .*numeric_columns=\('label',\)"):
        FusionTrainConfig(modalities=("image", "tabular"), numeric_columns=("label",))
    with pytest.raises(ValueError, match="distinct identifiers"):
        FusionTrainConfig(modalities=("tabular",), categorical_columns=("a b",))
    config = FusionTrainConfig(modalities=("text", "tabular"), numeric_columns="age")
    assert config.numeric_columns == ("age",)
    baseline = config.unimodal(("text",))
    assert (baseline.modalities, baseline.numeric_columns) == (("text",), ())
