"""Every setting of every task is a flag of its `xmodal train` command, generated from the
settings dataclass (its help and choices from the field, its default from the class)."""

import argparse
import dataclasses

import pytest

from xmodal_keras import cli
from xmodal_keras.cli import commands
from xmodal_keras.runs.settings_flags import add_settings_flags, setting, settings_from_flags
from xmodal_keras.tasks.captioning.settings import CaptionerTrainConfig
from xmodal_keras.tasks.fusion.settings import FusionTrainConfig
from xmodal_keras.tasks.retrieval.settings import RetrievalTrainConfig

COMMANDS = {
    ("train", "captioner"): CaptionerTrainConfig,
    ("tune", "captioner"): CaptionerTrainConfig,
    ("train", "retrieval"): RetrievalTrainConfig,
    ("train", "fusion"): FusionTrainConfig,
}


def _subparser(words: tuple[str, ...]) -> argparse.ArgumentParser:
    parser = cli.build_parser()
    for word in words:
        (choices,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        parser = choices.choices[word]
    return parser


def _flag_text(value) -> list[str]:
    if isinstance(value, tuple):
        return [",".join(value)]
    return [str(value)]


@pytest.mark.parametrize("words", list(COMMANDS), ids=" ".join)
def test_every_setting_is_a_flag_with_help(words):
    settings_class = COMMANDS[words]
    actions = {a.dest: a for a in _subparser(words)._actions}
    for field in dataclasses.fields(settings_class):
        action = actions.get(field.name)
        assert action is not None, f"{' '.join(words)} has no flag for {field.name}"
        assert action.option_strings[0] == "--" + field.name.replace("_", "-")
        assert action.help and len(action.help) > 10, field.name


@pytest.mark.parametrize("words", list(COMMANDS), ids=" ".join)
def test_each_flag_sets_its_own_setting(words):
    """Every flag given its default's value gives the default settings back; a flag that
    set another field, or parsed its value wrongly, would not."""
    settings_class = COMMANDS[words]
    argv = [*words, "--out", "unused"] if words[0] == "train" else list(words)
    defaults = settings_class()
    for field in dataclasses.fields(settings_class):
        value = getattr(defaults, field.name)
        flag = "--" + field.name.replace("_", "-")
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + flag[2:])
        elif value is not None and value != ():
            argv += [flag, *_flag_text(value)]
    args = cli.build_parser().parse_args(argv)
    config = settings_from_flags(args, settings_class)
    if settings_class is FusionTrainConfig:
        config = commands.fusion_config(args)
    assert config == defaults


def test_values_reach_the_settings():
    args = cli.build_parser().parse_args(
        ["train", "captioner", "--data", "a.json", "b.json", "--epochs", "3", "--jit-compile"]
        + ["--learning-rate", "5e-4", "--weights", "imagenet", "--out", "runs/x"]
    )
    config = commands.captioner_config(args)
    assert config.data == ("a.json", "b.json") and config.epochs == 3
    assert config.jit_compile is True and config.learning_rate == 5e-4
    assert config.weights == "imagenet" and config.decoder == "transformer"
    args = cli.build_parser().parse_args(
        ["train", "fusion", "--data", "pairs.csv", "--numeric-columns", "age, income"]
        + ["--audio-column", "clip", "--out", "runs/f"]
    )
    config = commands.fusion_config(args)
    assert config.numeric_columns == ("age", "income")
    assert config.modalities == ("image", "text", "tabular", "audio")


def test_help_shows_the_dataclass_default_and_choices(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "retrieval", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert (
        "--epochs EPOCHS epochs; rerun with more to extend a finished run (0 with --from: "
        "zero-shot) (default: 10)"
    ) in text
    assert "--from-preset FROM_PRESET, --from FROM_PRESET" in text
    assert "--index-split {train,val,test,all}" in text
    assert "--jit-compile, --no-jit-compile" in text


def test_a_field_without_help_or_of_an_unknown_type_is_refused():
    @dataclasses.dataclass(frozen=True)
    class NoHelp:
        epochs: int = 3

    @dataclasses.dataclass(frozen=True)
    class OddType:
        sizes: dict = setting(None, "a mapping no flag can hold")

    with pytest.raises(TypeError, match="NoHelp.epochs has no help"):
        add_settings_flags(argparse.ArgumentParser(), NoHelp)
    with pytest.raises(TypeError, match="No command-line flag for setting 'sizes'"):
        add_settings_flags(argparse.ArgumentParser(), OddType)


def test_a_bad_list_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["train", "fusion", "--numeric-columns", "age,,x"])
    assert "expected comma-separated names" in capsys.readouterr().err


@pytest.mark.parametrize("words", list(COMMANDS), ids=" ".join)
def test_image_encoder_is_another_name_for_encoder(words):
    argv = [*words, "--out", "unused"] if words[0] == "train" else list(words)
    args = cli.build_parser().parse_args([*argv, "--data", "d", "--image-encoder", "resnet50"])
    assert settings_from_flags(args, COMMANDS[words]).encoder == "resnet50"
