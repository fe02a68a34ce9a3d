"""`models.config` (with version policies and labels), batching parameters and a
Prometheus monitoring config, so `tensorflow_model_server` serves every model folder
under `saved_models/` the way a deployment wants; and the server flags they need.

Files are written atomically (a server polling `models.config` never reads half of one)
with the umask's modes (a server running as another user can read them).
"""

import json
import os
import pathlib
import re
from collections.abc import Mapping

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from xmodal_keras.argument_checks import check_positive_int
from xmodal_keras.atomic_files import atomic_write_text
from xmodal_keras.export.saved_model_base import EXPORT_INFO_FILE

MODELS_CONFIG_FILE = "models.config"
BATCHING_FILE = "batching_parameters.txt"
MONITORING_FILE = "monitoring.config"
MONITORING_PATH = "/monitoring/prometheus/metrics"
# What TF Serving needs to run a SavedModel whose functions XLA compiles.
XLA_SERVER_FLAG = "--xla_cpu_compilation_enabled=true"

# `BatchingParameters` (session_bundle_config.proto) and `MonitoringConfig`
# (monitoring_config.proto) are not in the tensorflow-serving-api wheel, so these two small
# text protos are written by hand.
BATCHING_PARAMETERS = """\
max_batch_size {{ value: {max_batch_size} }}
batch_timeout_micros {{ value: {batch_timeout_micros} }}
max_enqueued_batches {{ value: 100 }}
num_batch_threads {{ value: {num_batch_threads} }}
pad_variable_length_inputs: true
"""
MONITORING_CONFIG = f"""\
prometheus_config {{
  enable: true
  path: "{MONITORING_PATH}"
}}
"""
_POLICY = re.compile(r"latest(?::(\d+))?|all|specific:(\d+(?:,\d+)*)")
_LABEL = re.compile(r"[A-Za-z0-9_-]+")


def model_folders(base_dir: str | os.PathLike) -> list[pathlib.Path]:
    """Model folders under `base_dir`: those holding at least one numbered version."""
    base_dir = pathlib.Path(base_dir)
    return sorted(folder for folder in base_dir.iterdir() if folder.is_dir() and versions(folder))


def versions(model_dir: pathlib.Path) -> list[int]:
    """The version numbers under `model_dir` that hold a SavedModel, ascending."""
    return sorted(
        int(path.name)
        for path in model_dir.iterdir()
        if path.name.isdigit() and (path / "saved_model.pb").is_file()
    )


def parse_version_policy(spec: str) -> model_server_config_pb2.ModelConfig:
    """A `ModelConfig` holding the `model_version_policy` of `spec`: `"latest"` (TF
    Serving's default: the highest version), `"latest:N"` (the N highest), `"all"`, or
    `"specific:V1,V2"`.

    Example:

    >>> parse_version_policy("specific:1,3").model_version_policy.specific.versions
    [1, 3]
    """
    match = _POLICY.fullmatch(spec) if isinstance(spec, str) else None
    if match is None or match.group(1) == "0":
        raise ValueError(
            "A version policy is 'latest', 'latest:N', 'all' or 'specific:V1,V2,...'. "
            f"Received: {spec!r}"
        )
    entry = model_server_config_pb2.ModelConfig()
    policy = entry.model_version_policy
    if spec == "all":
        policy.all.SetInParent()
    elif match.group(2):
        policy.specific.versions.extend(int(v) for v in match.group(2).split(","))
    elif match.group(1):
        policy.latest.num_versions = int(match.group(1))
    return entry


def served_by(entry: model_server_config_pb2.ModelConfig, found: list[int]) -> list[int]:
    """Which of the versions `found` on disk TF Serving serves under `entry`'s policy."""
    policy = entry.model_version_policy
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return list(found)
    if choice == "specific":
        return [v for v in found if v in policy.specific.versions]
    count = policy.latest.num_versions if choice == "latest" else 1
    return list(found[-count:])


def _per_model(value, names: list[str], what: str, is_leaf) -> dict:
    """`value` for every model (a leaf) or {model name: leaf} for some, checked."""
    if value is None:
        return {}
    if is_leaf(value):
        return dict.fromkeys(names, value)
    unknown = sorted(set(value) - set(names))
    if unknown:
        raise ValueError(f"{what} for unknown models {unknown}; the models are {names}")
    return dict(value)


def write_serving_config(
    base_dir: str | os.PathLike,
    *,
    version_policy: str | Mapping[str, str] = "latest",
    version_labels: Mapping[str, int] | Mapping[str, Mapping[str, int]] | None = None,
    batching: bool = False,
    monitoring: bool = False,
    base_path_prefix: str | None = None,
    max_batch_size: int = 32,
    batch_timeout_micros: int = 2000,
    num_batch_threads: int = 4,
) -> list[pathlib.Path]:
    """Write `base_dir/models.config` (one entry per model folder, absolute base paths)
    and, as asked, `batching_parameters.txt` and `monitoring.config`. Returns the files.

    Args:
        base_dir: the folder of `NAME/VERSION/` exports.
        version_policy: `"latest"`, `"latest:N"`, `"all"` or `"specific:V1,V2"` for every
            model, or {model name: policy} (the others: latest). Defaults to `"latest"`.
        version_labels: {label: version} for every model, or {model name: {label:
            version}}; e.g. `{"stable": 1, "canary": 2}`. Each version must be one the
            policy serves. The server then needs
            `--allow_version_labels_for_unavailable_models=true`. Defaults to None.
        batching: also write `batching_parameters.txt` (`--enable_batching
            --batching_parameters_file=...`). Defaults to False.
        monitoring: also write `monitoring.config`, a Prometheus `MonitoringConfig`
            serving metrics at `/monitoring/prometheus/metrics` on the REST port
            (`--monitoring_config_file=...`). Defaults to False.
        base_path_prefix: replaces `base_dir` in the written paths, for a server that sees
            the folder elsewhere (docker: `-v "$PWD/saved_models:/models"`, prefix
            `/models`). Defaults to None.
        max_batch_size, batch_timeout_micros, num_batch_threads: batching parameters.
            Default to 32, 2000 and 4.

    Example:

    >>> import pathlib, tempfile
    >>> base = pathlib.Path(tempfile.mkdtemp())
    >>> for version in ("1", "2"):
    ...     (base / "captioner" / version).mkdir(parents=True)
    ...     _ = (base / "captioner" / version / "saved_model.pb").write_bytes(b"")
    >>> files = write_serving_config(base, version_policy="specific:1,2",
    ...                              version_labels={"stable": 1, "canary": 2})
    >>> [path.name for path in files]
    ['models.config']
    """
    base_dir = pathlib.Path(base_dir).resolve()
    if not base_dir.is_dir():
        raise FileNotFoundError(f"No such folder: {base_dir}")
    check_positive_int("max_batch_size", max_batch_size)
    check_positive_int("num_batch_threads", num_batch_threads)
    if not isinstance(batch_timeout_micros, int) or batch_timeout_micros < 0:
        raise ValueError(
            f"`batch_timeout_micros` must be an int >= 0. Received: {batch_timeout_micros=}"
        )
    folders = model_folders(base_dir)
    if not folders:
        raise ValueError(
            f"No model folders in {base_dir}: expected NAME/VERSION/saved_model.pb "
            "(run `xmodal export RUN --format saved_model` first)"
        )
    names = [folder.name for folder in folders]
    policies = _per_model(version_policy, names, "version policies", lambda v: isinstance(v, str))
    labels = _per_model(
        version_labels,
        names,
        "version labels",
        lambda v: all(not isinstance(x, Mapping) for x in v.values()),
    )
    config = model_server_config_pb2.ModelServerConfig()
    for folder in folders:
        entry = config.model_config_list.config.add()
        entry.CopyFrom(parse_version_policy(policies.get(folder.name, "latest")))
        entry.name = folder.name
        entry.base_path = str(folder)
        if base_path_prefix is not None:
            entry.base_path = f"{base_path_prefix.rstrip('/')}/{folder.name}"
        entry.model_platform = "tensorflow"
        _add_labels(entry, labels.get(folder.name, {}), versions(folder))
    written = [
        atomic_write_text(base_dir / MODELS_CONFIG_FILE, text_format.MessageToString(config))
    ]
    if batching:
        text = BATCHING_PARAMETERS.format(
            max_batch_size=max_batch_size,
            batch_timeout_micros=batch_timeout_micros,
            num_batch_threads=num_batch_threads,
        )
        written.append(atomic_write_text(base_dir / BATCHING_FILE, text))
    if monitoring:
        written.append(atomic_write_text(base_dir / MONITORING_FILE, MONITORING_CONFIG))
    return written


def _add_labels(
    entry: model_server_config_pb2.ModelConfig, labels: Mapping[str, int], found: list[int]
) -> None:
    served = served_by(entry, found)
    for label, version in sorted(labels.items()):
        if not isinstance(label, str) or not _LABEL.fullmatch(label):
            raise ValueError(
                f"A version label uses letters, digits, '_' and '-'. Received: {label!r}"
            )
        if version not in served:
            raise ValueError(
                f"Label {label!r} of model {entry.name!r} names version {version}, which its "
                f"version policy does not serve (served: {served}; on disk: {found})"
            )
        entry.version_labels[label] = version


def server_flags(written: list[pathlib.Path], base_path_prefix: str | None = None) -> list[str]:
    """The `tensorflow_model_server` flags that use the files `write_serving_config` wrote
    (paths as the server sees them with `base_path_prefix`), and XLA's when a version
    beside `models.config` was exported with `jit_compile` (`xmodal export --jit-compile`).

    Example:

    >>> server_flags([pathlib.Path("/srv/batching_parameters.txt")], "/models")
    ['--enable_batching', '--batching_parameters_file=/models/batching_parameters.txt']
    """

    def seen(path: pathlib.Path) -> str:
        if base_path_prefix is None:
            return str(path)
        return f"{base_path_prefix.rstrip('/')}/{path.name}"

    flags = []
    for path in written:
        if path.name == MODELS_CONFIG_FILE:
            flags.append(f"--model_config_file={seen(path)}")
            parsed = text_format.Parse(
                path.read_text(), model_server_config_pb2.ModelServerConfig()
            )
            if any(entry.version_labels for entry in parsed.model_config_list.config):
                flags.append("--allow_version_labels_for_unavailable_models=true")
            if _has_xla_export(path.parent):
                flags.append(XLA_SERVER_FLAG)
        elif path.name == BATCHING_FILE:
            flags += ["--enable_batching", f"--batching_parameters_file={seen(path)}"]
        elif path.name == MONITORING_FILE:
            flags.append(f"--monitoring_config_file={seen(path)}")
    return flags


def _has_xla_export(base_dir: pathlib.Path) -> bool:
    """True when a version under `base_dir` says `jit_compile` in its export info."""
    for folder in model_folders(base_dir):
        for version in versions(folder):
            info = folder / str(version) / EXPORT_INFO_FILE
            if not info.is_file():
                continue
            try:
                exported = json.loads(info.read_text("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as error:
                raise ValueError(f"{info} is not a JSON export info file: {error}") from None
            if isinstance(exported, dict) and exported.get("jit_compile") is True:
                return True
    return False
