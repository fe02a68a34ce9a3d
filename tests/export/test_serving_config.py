"""`write_serving_config` / `xmodal serve-config`: version policies, labels, batching and
monitoring files, and one clear error for each bad option (no SavedModel is loaded here:
the served side is tested in test_client.py through the TF Serving stand-in)."""

import json
import pathlib

import pytest
from export_checks import assert_readable_by_others
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from xmodal_keras.cli import main as cli_main
from xmodal_keras.export.saved_model_base import EXPORT_INFO_FILE
from xmodal_keras.export.serving_config import (
    XLA_SERVER_FLAG,
    server_flags,
    write_serving_config,
)


@pytest.fixture
def base(tmp_path) -> pathlib.Path:
    """captioner/1..3 and clip/1, each with a (fake) saved_model.pb."""
    for name, version in [("captioner", 1), ("captioner", 2), ("captioner", 3), ("clip", 1)]:
        (tmp_path / name / str(version)).mkdir(parents=True)
        (tmp_path / name / str(version) / "saved_model.pb").write_bytes(b"")
    return tmp_path


def entries(base: pathlib.Path) -> dict:
    config = text_format.Parse(
        (base / "models.config").read_text(), model_server_config_pb2.ModelServerConfig()
    )
    return {entry.name: entry for entry in config.model_config_list.config}


def test_policies_and_labels_per_model(base):
    written = write_serving_config(
        base,
        version_policy={"captioner": "specific:2,3", "clip": "all"},
        version_labels={"captioner": {"stable": 2, "canary": 3}},
        monitoring=True,
    )
    config = entries(base)
    assert list(config["captioner"].model_version_policy.specific.versions) == [2, 3]
    assert config["clip"].model_version_policy.HasField("all")
    assert dict(config["captioner"].version_labels) == {"stable": 2, "canary": 3}
    assert not config["clip"].version_labels
    assert server_flags(written) == [
        f"--model_config_file={base / 'models.config'}",
        "--allow_version_labels_for_unavailable_models=true",
        f"--monitoring_config_file={base / 'monitoring.config'}",
    ]
    for path in written:
        assert_readable_by_others(path)
    assert sorted(p.name for p in base.iterdir()) == [
        "captioner",
        "clip",
        "models.config",
        "monitoring.config",
    ]  # no staging files left

    write_serving_config(base, version_policy="latest:2")
    assert entries(base)["clip"].model_version_policy.latest.num_versions == 2
    write_serving_config(base)  # TF Serving's default: no policy written, latest 1
    assert not entries(base)["captioner"].HasField("model_version_policy")


@pytest.mark.parametrize(
    "options, message",
    [
        ({"version_policy": "newest"}, r"'latest', 'latest:N', .* Received: 'newest'"),
        ({"version_policy": "latest:0"}, r"Received: 'latest:0'"),
        ({"version_policy": {"nope": "all"}}, r"unknown models \['nope'\]"),
        (
            {"version_labels": {"captioner": {"stable": 1}}},
            r"Label 'stable' of model 'captioner' names version 1, which its version "
            r"policy does not serve \(served: \[3\]; on disk: \[1, 2, 3\]\)",
        ),
        ({"version_labels": {"canary": 9}, "version_policy": "all"}, "names version 9"),
        ({"version_labels": {"a b": 1}, "version_policy": "all"}, "Received: 'a b'"),
        ({"batching": True, "max_batch_size": 0}, "max_batch_size"),
    ],
)
def test_bad_options_are_one_clear_error(base, options, message):
    with pytest.raises(ValueError, match=message):
        write_serving_config(base, **options)
    assert not (base / "models.config").exists()


def test_cli_options(base, capsys):
    argv = ["serve-config", str(base), "--version-policy", "all", "--version-policy"]
    argv += ["clip=latest", "--label", "stable=1", "--label", "captioner:canary=3"]
    argv += ["--batching", "--max-batch-size", "8", "--base-path-prefix", "/models"]
    assert cli_main(argv) == 0
    config = entries(base)
    assert dict(config["captioner"].version_labels) == {"stable": 1, "canary": 3}
    assert dict(config["clip"].version_labels) == {"stable": 1}
    assert config["clip"].base_path == "/models/clip"
    assert "max_batch_size { value: 8 }" in (base / "batching_parameters.txt").read_text()
    assert capsys.readouterr().out.splitlines()[-1] == (
        "serve: tensorflow_model_server --port=8500 --rest_api_port=8501 "
        "--model_config_file=/models/models.config "
        "--allow_version_labels_for_unavailable_models=true "
        "--enable_batching --batching_parameters_file=/models/batching_parameters.txt"
    )
    assert cli_main(["serve-config", str(base), "--label", "stable"]) == 2
    assert "--label is [MODEL:]LABEL=VERSION. Received: --label stable" in capsys.readouterr().err


def test_server_flags_ask_for_xla_when_a_version_was_exported_with_it(base):
    """`xmodal export --jit-compile` writes `jit_compile` in the export info; TF Serving
    refuses such a model without its XLA flag, so the printed command carries it."""
    (base / "clip" / "1" / EXPORT_INFO_FILE).write_text(json.dumps({"jit_compile": False}))
    assert XLA_SERVER_FLAG not in server_flags(write_serving_config(base))
    (base / "captioner" / "2" / EXPORT_INFO_FILE).write_text(json.dumps({"jit_compile": True}))
    assert XLA_SERVER_FLAG in server_flags(write_serving_config(base))
    (base / "captioner" / "2" / EXPORT_INFO_FILE).unlink()
    (base / "clip" / "1" / EXPORT_INFO_FILE).write_text("{not json")
    with pytest.raises(ValueError, match=r"clip/1/xmodal_export.json is not a JSON export"):
        server_flags(write_serving_config(base))
