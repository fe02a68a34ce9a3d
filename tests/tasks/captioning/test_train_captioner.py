"""train_captioner: the run directory it writes, resuming a killed run, settings checks."""

import dataclasses
import json

import keras
import numpy as np
import pandas as pd
import pytest
from captioner_runs import SHARED_RUN_SETTINGS, shared_tiny_run, tiny_config
from helpers import KillAtEpochEnd, Killed

from xmodal_keras.data import read_captions
from xmodal_keras.runs.run_directory import RunDirectory
from xmodal_keras.tasks.captioning.predict import load_captioner
from xmodal_keras.tasks.captioning.settings import DECODERS, DEMO_CONFIG, CaptionerTrainConfig
from xmodal_keras.tasks.captioning.train import build_captioner_from_config, train_captioner


def test_train_writes_the_run_directory(tiny_shapes_dir, tmp_path_factory):
    config = tiny_config(tiny_shapes_dir, **SHARED_RUN_SETTINGS)
    run, printed = shared_tiny_run(tiny_shapes_dir, tmp_path_factory)

    assert isinstance(run, RunDirectory) and run.path.name == "run"
    for path in (run.config_path, run.vocabulary_path, run.model_path, run.history_path):
        assert path.is_file(), path
    assert run.best_weights_path.is_file() and run.last_weights_path.is_file()
    assert run.has_backup()
    assert (run.pictures_dir / "training_curves.png").stat().st_size > 0

    saved = json.loads(run.config_path.read_text())
    # Measured on the train captions (a path, not the built-in shapes): the longest one,
    # 20 tokens, fits whole with its end token, where the old fixed 20 cut it.
    frame = read_captions(tiny_shapes_dir)
    captions = frame[frame.split == "train"].caption
    assert max(len(c.split()) for c in captions) == 20
    assert saved["sequence_length"] == 21
    assert saved["data"] == str(tiny_shapes_dir)
    assert CaptionerTrainConfig.from_dict(saved) == config.resolved(captions)

    history = pd.read_csv(run.history_path)
    assert history.epoch.tolist() == [0]
    assert {"loss", "val_loss", "val_bleu_4", "val_cider"} <= set(history.columns)
    assert np.isfinite(history.val_cider[0])

    assert printed.startswith("data: 160 train / 20 val captions, vocabulary ")
    assert "global batch 80" in printed.splitlines()[0]
    summary = printed.strip().splitlines()[-1]
    assert summary.startswith("trained 1 epoch in ")
    assert "val_bleu_4" in summary and str(run.path) in summary

    model, tokenizer, loaded = load_captioner(run.path)
    assert loaded == config.resolved(captions)
    assert tokenizer.get_vocabulary() == run.vocabulary_path.read_text().splitlines()
    assert model.input["token_ids"].shape[1] == tokenizer.sequence_length == 21
    assert model.get_layer("caption_decoder").__class__.__name__ == "GRUCaptionDecoder"


def test_a_killed_run_resumes_where_it_stopped(tiny_shapes_dir, tmp_path, capsys):
    config = tiny_config(tiny_shapes_dir, decoder="transformer", epochs=3)
    out = tmp_path / "run"
    with pytest.raises(Killed):
        train_captioner(config, out, callbacks=[KillAtEpochEnd(1)], verbose=0)
    run = RunDirectory(out)
    assert pd.read_csv(run.history_path).epoch.tolist() == [0, 1]
    assert not run.model_path.exists()
    with pytest.raises(FileNotFoundError, match="model.keras is missing"):
        load_captioner(out)

    capsys.readouterr()
    train_captioner(config, out, verbose=0)
    assert pd.read_csv(run.history_path).epoch.tolist() == [0, 1, 2]
    assert "trained 3 epochs (2 restored from backup)" in capsys.readouterr().out
    assert run.model_path.is_file()

    # Other settings in the same run directory are refused, naming what changed.
    with pytest.raises(ValueError, match=r"other settings.*hidden_dim: 8 -> 16"):
        train_captioner(dataclasses.replace(config, hidden_dim=16), out)


def test_settings_are_checked():
    with pytest.raises(ValueError, match="Received: self.decoder='rnn'"):
        CaptionerTrainConfig(decoder="rnn")
    with pytest.raises(ValueError, match="Received: epochs=0"):
        CaptionerTrainConfig(epochs=0)
    with pytest.raises(ValueError, match=r"Unknown captioner settings \['colour'\]"):
        CaptionerTrainConfig.from_dict({"colour": "red"})


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_lstm_decoder_is_built_from_the_settings(precision):
    config = CaptionerTrainConfig(
        decoder="lstm", image_size=32, encoder_hidden_dim=8, sequence_length=6,
        embedding_dim=8, hidden_dim=16, dropout=0.2, precision=precision,
    )  # fmt: skip
    model = build_captioner_from_config(config, vocabulary_size=12)
    decoder = model.get_layer("caption_decoder")
    assert type(decoder).__name__ == "LSTMCaptionDecoder"
    assert (decoder.embedding_dim, decoder.hidden_dim, decoder.dropout) == (8, 16, 0.2)
    assert decoder.dtype_policy.name == precision
    logits = model(
        {"images": np.zeros((2, 32, 32, 3), np.uint8), "token_ids": np.ones((2, 6), np.int32)}
    )
    assert logits.dtype == "float32" and logits.shape == (2, 6, 12)


def test_every_decoder_is_a_cli_choice():
    from xmodal_keras.cli import build_parser

    for decoder in DECODERS:
        flags = ["train", "captioner", "--data", "shapes", "--decoder", decoder, "--out", "x"]
        assert build_parser().parse_args(flags).decoder == decoder


def test_config_round_trips_through_json():
    config = CaptionerTrainConfig(data=("a.json", "b.json"), format="coco").resolved()
    assert config.sequence_length == 20
    assert all(p.startswith("/") for p in config.data)
    text = json.dumps(config.to_dict())
    assert CaptionerTrainConfig.from_dict(json.loads(text)) == config
    assert DEMO_CONFIG.resolved().sequence_length == 22  # built-in shapes


def test_mixed_bfloat16_from_tfrecords_saves_a_float32_model(tiny_shapes_dir, tmp_path, capsys):
    from xmodal_keras.data.readers import read_captions
    from xmodal_keras.data.tfrecords import write_caption_tfrecords

    records = tmp_path / "records"
    write_caption_tfrecords(read_captions(tiny_shapes_dir), records, num_shards=2)
    config = tiny_config(records, precision="mixed_bfloat16", decoder="transformer")
    run = train_captioner(config, tmp_path / "run", verbose=0)
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("data: 160 train / 20 val captions") and "mixed_bfloat16" in first
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    assert np.isfinite(pd.read_csv(run.history_path).loss[0])

    model, tokenizer, loaded = load_captioner(run.path)
    assert loaded.precision == "mixed_bfloat16"
    assert model.get_layer("caption_decoder").dtype_policy.name == "mixed_bfloat16"
    images = np.zeros((2, 32, 32, 3), np.uint8)
    tokens = np.ones((2, tokenizer.sequence_length), np.int32)
    logits = model({"images": images, "token_ids": tokens})
    assert logits.dtype == "float32" and logits.shape == (2, 21, tokenizer.vocabulary_size)


def test_the_summary_counts_restored_and_stopped_epochs(tmp_path):
    from xmodal_keras.tasks.captioning.train import format_summary

    run = RunDirectory(tmp_path).create()
    assert format_summary(run, [0, 1, 2], 3, 5.0).startswith("trained 3 epochs in 5 s")
    resumed = format_summary(run, [2, 3], 4, 5.0)
    assert resumed.startswith("trained 4 epochs (2 restored from backup) in 5 s")
    # A callback stopped the first epoch of 100: nothing was restored.
    assert format_summary(run, [0], 100, 1.0).startswith(
        "trained 1 epoch of 100 (stopped early) in 1 s"
    )


def test_new_settings_are_checked():
    with pytest.raises(ValueError, match="Received: precision='float16'"):
        CaptionerTrainConfig(precision="float16")
    with pytest.raises(ValueError, match="Received: self.strategy='horovod'"):
        CaptionerTrainConfig(strategy="horovod")


def test_runs_written_before_the_new_settings_still_resume(tmp_path):
    run = RunDirectory(tmp_path).create()
    old = CaptionerTrainConfig(data="shapes", precision="float32").resolved().to_dict()
    for key in ("precision", "jit_compile", "scale_learning_rate"):
        del old[key]
    run.write_config(old)
    # Missing settings take their defaults; a missing precision was float32, which the
    # default "auto" adopts on resuming, whatever this machine would pick.
    config = CaptionerTrainConfig(data="shapes").resumed_from(run).resolved()
    assert config.precision == "float32"
    config.check_resumable(run)
    with pytest.raises(ValueError, match="precision: 'float32' -> 'mixed_bfloat16'"):
        dataclasses.replace(config, precision="mixed_bfloat16").check_resumable(run)
