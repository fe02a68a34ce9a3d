"""Training precision: Keras dtype policies by name, and `"auto"`.

`"auto"` is `"mixed_bfloat16"` on a CPU with AMX bfloat16 units (Intel Sapphire Rapids
and later, `amx_bf16` in `/proc/cpuinfo`) when TensorFlow sees no GPU, and `"float32"`
everywhere else. On the 2-core AMX machine the benchmarks run on, a Transformer
captioner's train step (batch 64, 64 px) is about 1.3x faster in `mixed_bfloat16`
(`benchmarks/precision_speed.py`) and learns the same per step, and at an equal 8-minute
budget it reaches a higher val CIDEr on both built-in datasets
(`benchmarks/caption_quality.py`); elsewhere it was not measured, so it is not chosen.
Variables stay float32 either way, and exports compute in float32
(`export/float32_model.py`).
"""

import contextlib
import functools
import os

import keras
import tensorflow as tf

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
PRECISION_HELP = (
    "auto (mixed_bfloat16 on a CPU with AMX bfloat16 units and no GPU, else float32), "
    "float32, mixed_float16 (GPU) or mixed_bfloat16 (TPU, recent GPUs, CPUs)"
)
JIT_COMPILE_HELP = "XLA-compile the train step (faster on GPU/TPU, slower on CPU)"
CPU_INFO = "/proc/cpuinfo"


def check_precision(precision: str) -> None:
    """Raise `ValueError` unless `precision` is one of `PRECISIONS`.

    Example:

    >>> check_precision("mixed_bfloat16")
    >>> try:
    ...     check_precision("bfloat16")
    ... except ValueError as error:
    ...     print(str(error).split(". ")[1])
    Received: precision='bfloat16'
    """
    if precision not in PRECISIONS:
        raise ValueError(f"`precision` must be one of {PRECISIONS}. Received: {precision=!r}")


def cpu_flags(cpu_info: str | os.PathLike = CPU_INFO) -> frozenset[str]:
    """The CPU feature flags the kernel lists (empty where there is no such file).

    Example:

    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "cpuinfo"
    >>> _ = path.write_text("processor : 0\\nflags : fpu avx2 amx_bf16\\n")
    >>> sorted(cpu_flags(path))
    ['amx_bf16', 'avx2', 'fpu']
    """
    try:
        with open(cpu_info, encoding="utf-8", errors="replace") as file:
            for line in file:
                key, _, value = line.partition(":")
                if key.strip() == "flags":
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def pick_precision(flags: frozenset[str], has_gpu: bool) -> str:
    """What `"auto"` is on a machine with these CPU `flags`.

    Example:

    >>> pick_precision(frozenset({"avx512f", "amx_bf16"}), has_gpu=False)
    'mixed_bfloat16'
    >>> pick_precision(frozenset({"avx512f", "avx512_bf16"}), has_gpu=False)  # not measured
    'float32'
    """
    return "mixed_bfloat16" if "amx_bf16" in flags and not has_gpu else "float32"


@functools.cache
def _auto_precision() -> str:
    return pick_precision(cpu_flags(), bool(tf.config.list_physical_devices("GPU")))


def resolve_precision(precision: str) -> str:
    """A precision name, with `"auto"` replaced by what this machine trains fastest in.

    Example:

    >>> resolve_precision("float32")
    'float32'
    >>> resolve_precision("auto") in ("float32", "mixed_bfloat16")
    True
    """
    check_precision(precision)
    return _auto_precision() if precision == "auto" else precision


@contextlib.contextmanager
def dtype_policy(name: str):
    """Set Keras' global dtype policy inside the block (layers made there keep it).

    Example:

    >>> with dtype_policy("mixed_bfloat16"):
    ...     layer = keras.layers.Dense(2)
    >>> layer.dtype_policy.name, keras.config.dtype_policy().name
    ('mixed_bfloat16', 'float32')
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
