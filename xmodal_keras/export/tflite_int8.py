"""Full-integer (int8) quantization of a converted float `.tflite` model with
`ai-edge-quantizer`, `WHILE` loops included.

TF 2.21's converter crashes calibrating a `WHILE` loop, so the float model (every
signature, the `caption` loop too) is quantized after conversion:

1. ranges: `ai-edge-quantizer`'s profiler-based calibration runs each signature on its
   samples in the C++ runtime and records every tensor's min/max, in every iteration of a
   loop (its default mode reads tensors back after the run, which fails inside a loop),
   merged over the samples as a union (not the library's moving average);
2. a loop-carried tensor's ranges (the `WHILE` op's inputs and outputs, its condition's
   and body's arguments) are unified, since the library does not follow `WHILE` ops;
3. ranges are shared between a signature and the same computation inside another one
   (`encode` and the start of `caption`, `decode_step` and the loop body): the ops are
   aligned by opcode and weight buffer, and the target takes the source's ranges, so the
   in-model loop computes exactly what an app's loop over `decode_step` computes;
4. `static_wi8_ai8` (int8 per-channel weights, int8 activations), with float inputs and
   outputs at every subgraph boundary, which a `WHILE` op needs (body in == body out);
5. the word projection (the `FULLY_CONNECTED` whose output an `ARG_MAX` or `LOG_SOFTMAX`
   reads: logits over the vocabulary) keeps float16 weights and runs in float, as the
   argmax after it does. Its int8 weights alone changed the argmax of near-tied words:
   with float activations everywhere, int8 weights gave captions equal to float on 93 % /
   87 % of the shapes / digits val images, and 96 % / 94 % with this one layer in float.

Example (a converted float model with signatures `encode`, `decode_step`, `caption`):

    int8 = quantize_full_integer(float_flatbuffer, {"encode": [{"image": x}], ...},
                                 shared_ranges=[("encode", "caption")])
"""

import collections
import difflib
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from xmodal_keras.export.tflite_flatbuffer import read_model_t, write_model_t

LOOP_BODY_SUFFIX = "/while_body"  # "caption/while_body": the body of `caption`'s WHILE
# Built when ai-edge-quantizer checks its calibration, for every model; not actionable.
_PRESERVE_TENSORS_WARNING = r".*experimental_preserve_all_tensors"


def _code(model: "schema.ModelT", op: "schema.OperatorT") -> int:
    code = model.operatorCodes[op.opcodeIndex]
    return max(code.builtinCode, code.deprecatedBuiltinCode)


def _signature_subgraph(model: "schema.ModelT", key: str) -> int:
    """Subgraph index of a signature key, or of its `WHILE` body for `KEY/while_body`."""
    name = key.removesuffix(LOOP_BODY_SUFFIX)
    indices = {sd.signatureKey.decode(): sd.subgraphIndex for sd in model.signatureDefs or []}
    if name not in indices:
        raise ValueError(f"No signature {name!r} in the model. Received: {sorted(indices)}")
    if not key.endswith(LOOP_BODY_SUFFIX):
        return indices[name]
    for op in model.subgraphs[indices[name]].operators:
        if _code(model, op) == schema.BuiltinOperator.WHILE:
            return op.builtinOptions.bodySubgraphIndex
    raise ValueError(f"Signature {name!r} has no WHILE loop. Received: {key!r}")


def _name(model, subgraph: int, tensor: int) -> str:
    return model.subgraphs[subgraph].tensors[tensor].name.decode()


def _union(ranges: list[dict]) -> dict:
    return {
        "min": np.minimum.reduce([r["min"] for r in ranges]),
        "max": np.maximum.reduce([r["max"] for r in ranges]),
    }


def _unify_loop_ranges(model: "schema.ModelT", ranges: dict) -> None:
    """One range for each loop-carried value: the WHILE op's k-th input and output and the
    k-th arguments (and results) of its condition and body."""
    for s, subgraph in enumerate(model.subgraphs):
        for op in subgraph.operators:
            if _code(model, op) != schema.BuiltinOperator.WHILE:
                continue
            cond = op.builtinOptions.condSubgraphIndex
            body = op.builtinOptions.bodySubgraphIndex
            for k in range(len(op.inputs)):
                names = [
                    _name(model, s, op.inputs[k]),
                    _name(model, s, op.outputs[k]),
                    _name(model, cond, model.subgraphs[cond].inputs[k]),
                    _name(model, body, model.subgraphs[body].inputs[k]),
                    _name(model, body, model.subgraphs[body].outputs[k]),
                ]
                known = [ranges[n] for n in names if n in ranges]
                if known:
                    merged = _union(known)
                    ranges.update({n: merged for n in names})


def _word_projection_scopes(model: "schema.ModelT") -> list[str]:
    """Anchored scope regexes (ai-edge-quantizer's op scope: its output tensor names) of
    every `FULLY_CONNECTED` whose output an `ARG_MAX` or `LOG_SOFTMAX` reads, in every
    subgraph: the vocabulary projection of `decode_step` and of the `caption` loop, which
    share one weight buffer and so must be quantized alike."""
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils

    readers = {schema.BuiltinOperator.ARG_MAX, schema.BuiltinOperator.LOG_SOFTMAX}
    scopes = []
    for subgraph in model.subgraphs:
        read = {t for op in subgraph.operators if _code(model, op) in readers for t in op.inputs}
        for op in subgraph.operators:
            if _code(model, op) == schema.BuiltinOperator.FULLY_CONNECTED and any(
                t in read for t in op.outputs
            ):
                scope = tfl_flatbuffer_utils.get_op_scope(op, subgraph.tensors)
                scopes.append(f"^{re.escape(scope)}$")
    return scopes


def _op_keys(model: "schema.ModelT", subgraph: int) -> list[tuple]:
    """What identifies an op across subgraphs: its opcode, its weights (buffer indices:
    shared weights share buffers) and the dtype/shape of its other inputs."""
    tensors = model.subgraphs[subgraph].tensors
    keys = []
    for op in model.subgraphs[subgraph].operators:
        inputs = []
        for t in op.inputs:
            if t < 0:
                inputs.append(None)
                continue
            tensor = tensors[t]
            data = model.buffers[tensor.buffer].data
            if data is not None and len(data):
                inputs.append(("weight", tensor.buffer))
            else:
                inputs.append((tensor.type, tuple(tensor.shape)))
        keys.append((_code(model, op), tuple(inputs)))
    return keys


def _with_producers(model: "schema.ModelT", subgraph: int, keys: list[tuple]) -> list[tuple]:
    """Each op's key with the keys of the ops that make its inputs (None for a subgraph
    input or a weight): two reshapes of the same shape tell apart by what they reshape."""
    operators = model.subgraphs[subgraph].operators
    producer = {t: i for i, op in enumerate(operators) for t in op.outputs}
    return [
        (keys[i], tuple(keys[producer[t]] if t in producer else None for t in op.inputs))
        for i, op in enumerate(operators)
    ]


def _runs(source_keys: list, target_keys: list) -> list[tuple[int, int]]:
    """Index pairs of the longest matching runs of two key lists (difflib)."""
    matcher = difflib.SequenceMatcher(None, source_keys, target_keys, autojunk=False)
    return [
        (block.a + i, block.b + i)
        for block in matcher.get_matching_blocks()
        for i in range(block.size)
    ]


def _matching_ops(model: "schema.ModelT", source: int, target: int) -> list[tuple[int, int]]:
    """(source, target) op index pairs of the same computation in two subgraphs.

    1. The longest matching runs of ops keyed with their inputs' producers; 2. each op
    left over on both sides whose producer-key is unique there (the converter can
    schedule an op elsewhere: a value projection's RESHAPE came two ops later in the
    demo's loop body than in `decode_step`, and by plain keys it took the key
    projection's ranges); 3. within each gap between the runs of 1, runs of plain keys
    among the ops still left (an op whose input comes from a different op on each side:
    `decode_step`'s `index[0]` against the loop's `index`).
    """
    plain = _op_keys(model, source), _op_keys(model, target)
    rich = _with_producers(model, source, plain[0]), _with_producers(model, target, plain[1])
    runs = _runs(*rich)
    pairs = list(runs)
    paired = [{a for a, _ in pairs}, {b for _, b in pairs}]
    left = [collections.defaultdict(list), collections.defaultdict(list)]
    for side in (0, 1):
        for i, key in enumerate(rich[side]):
            if i not in paired[side]:
                left[side][key].append(i)
    for key, indices in left[0].items():
        if len(indices) == 1 and len(left[1].get(key, ())) == 1:
            pairs.append((indices[0], left[1][key][0]))
            paired[0].add(indices[0])
            paired[1].add(left[1][key][0])
    done = (0, 0)
    for a, b in [*runs, (len(plain[0]), len(plain[1]))]:
        gap = [
            [i for i in range(done[side], end) if i not in paired[side]]
            for side, end in ((0, a), (1, b))
        ]
        keys = [[plain[side][i] for i in gap[side]] for side in (0, 1)]
        pairs += [(gap[0][i], gap[1][j]) for i, j in _runs(*keys)]
        done = (a + 1, b + 1)
    return pairs


def _share_ranges(model: "schema.ModelT", ranges: dict, source: int, target: int) -> int:
    """Give the target subgraph's tensors the ranges of the same tensors in `source`;
    returns how many tensors were matched."""
    source_ops = model.subgraphs[source].operators
    target_ops = model.subgraphs[target].operators
    matched = 0
    for index_a, index_b in _matching_ops(model, source, target):
        a, b = source_ops[index_a], target_ops[index_b]
        pairs = [*zip(a.inputs, b.inputs, strict=True), *zip(a.outputs, b.outputs, strict=True)]
        for ta, tb in pairs:
            if ta < 0 or tb < 0:
                continue
            name = _name(model, source, ta)
            if name in ranges:
                ranges[_name(model, target, tb)] = ranges[name]
                matched += 1
    return matched


def _float_boundaries(model: "schema.ModelT", float_model: "schema.ModelT") -> int:
    """Dequantize every subgraph output that the quantizer left int8 where the float model
    had float32, and point each signature at its subgraph's outputs; returns how many
    outputs were dequantized. ai-edge-quantizer 0.10 leaves a few outputs int8 even
    when its recipe says not to quantize outputs, and a WHILE op then refuses its body."""
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    if schema.BuiltinOperator.DEQUANTIZE not in codes:
        code = schema.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.DEQUANTIZE
        code.version = 1
        model.operatorCodes.append(code)
        codes.append(schema.BuiltinOperator.DEQUANTIZE)
    dequantize = codes.index(schema.BuiltinOperator.DEQUANTIZE)
    fixed = 0
    for subgraph, float_subgraph in zip(model.subgraphs, float_model.subgraphs, strict=True):
        subgraph.outputs = [int(t) for t in subgraph.outputs]
        for k, (t, float_t) in enumerate(
            zip(subgraph.outputs, float_subgraph.outputs, strict=True)
        ):
            tensor, wanted = subgraph.tensors[t], float_subgraph.tensors[float_t].type
            if tensor.type == wanted or wanted != schema.TensorType.FLOAT32:
                continue
            output = schema.TensorT()
            output.shape, output.shapeSignature = tensor.shape, tensor.shapeSignature
            output.type, output.buffer, output.name = wanted, 0, tensor.name + b"_float"
            subgraph.tensors.append(output)
            op = schema.OperatorT()
            op.opcodeIndex, op.inputs, op.outputs = dequantize, [t], [len(subgraph.tensors) - 1]
            subgraph.operators.append(op)
            subgraph.outputs[k] = len(subgraph.tensors) - 1
            fixed += 1
    # A signature's k-th named output is its subgraph's k-th output, as in the float model
    # (the quantizer can leave a signature naming a tensor that nothing computes any more).
    float_signatures = {sd.signatureKey: sd for sd in float_model.signatureDefs or []}
    for signature in model.signatureDefs or []:
        float_signature = float_signatures[signature.signatureKey]
        float_outputs = list(float_model.subgraphs[float_signature.subgraphIndex].outputs)
        where = {
            item.name: float_outputs.index(item.tensorIndex) for item in float_signature.outputs
        }
        outputs = model.subgraphs[signature.subgraphIndex].outputs
        for item in signature.outputs:
            item.tensorIndex = int(outputs[where[item.name]])
    return fixed


def quantize_full_integer(
    float_flatbuffer: bytes,
    calibration: Mapping[str, Iterable[dict[str, np.ndarray]]],
    *,
    shared_ranges: Sequence[tuple[str, str]] = (),
    num_threads: int = 2,
    activation_bits: int = 8,
    float16_word_projection: bool = True,
) -> bytes:
    """int8 weights and activations for every signature of a float `.tflite` model.

    Args:
        float_flatbuffer: the converted float32 model (builtin ops).
        calibration: signature key -> input dicts (name -> array) to calibrate it on.
        shared_ranges: `(source, target)` signature keys whose computations are the same
            (`KEY/while_body` names the body of a signature's loop); the target takes the
            source's ranges. Defaults to none.
        num_threads: calibration interpreter threads. Defaults to 2.
        activation_bits: 8 (`static_wi8_ai8`) or 16 (`static_wi8_ai16`, LiteRT's 16x8
            kernels). Defaults to 8.
        float16_word_projection: keep float16 weights (float compute) in the vocabulary
            projection (step 5 above). Defaults to True.

    Returns:
        The quantized flatbuffer (float32 at every signature's inputs and outputs).
    """
    from ai_edge_quantizer import (
        algorithm_manager,
        calibrator,
        qtyping,
        quantizer,
        recipe,
        recipe_manager,
    )
    from ai_edge_quantizer.utils import qsv_utils

    recipes = {8: recipe.static_wi8_ai8, 16: recipe.static_wi8_ai16}
    if activation_bits not in recipes:
        raise ValueError(f"`activation_bits` must be 8 or 16. Received: {activation_bits!r}")
    engine = quantizer.Quantizer(bytearray(float_flatbuffer), recipes[activation_bits]())
    for boundary in (qtyping.TFLOperationName.INPUT, qtyping.TFLOperationName.OUTPUT):
        engine.update_quantization_recipe(
            regex=".*", operation_name=boundary, algorithm_key="no_quantize"
        )
    float_model = read_model_t(float_flatbuffer)
    if float16_word_projection:
        for scope in _word_projection_scopes(float_model):
            engine.add_weight_only_config(
                scope,
                qtyping.TFLOperationName.FULLY_CONNECTED,
                num_bits=16,
                algorithm_key=algorithm_manager.AlgorithmName.FLOAT_CASTING,
            )
    # `Quantizer.calibrate` merges the samples' ranges by a moving average (0.95), so a
    # range is about that of the last 20 samples and clips the others; the union of all
    # (min_max_update) does not clip any calibration sample. On the demo captioner it
    # took int8 captions equal to float from 10 % to about 64 % of the test images.
    manager = recipe_manager.RecipeManager()
    manager.load_quantization_recipe(engine.get_quantization_recipe())
    ranges_calibrator = calibrator.Calibrator(
        bytes(float_flatbuffer),
        num_threads=num_threads,
        mode=calibrator.CalibrationMode.CALIBRATION_PROFILER_BASED,
        qsv_update_func=qsv_utils.min_max_update,
    )
    ranges_calibrator.calibrate(
        {key: list(samples) for key, samples in calibration.items()}, manager
    )
    ranges = dict(ranges_calibrator.get_model_qsvs())
    _unify_loop_ranges(float_model, ranges)
    for source, target in shared_ranges:
        _share_ranges(
            float_model,
            ranges,
            _signature_subgraph(float_model, source),
            _signature_subgraph(float_model, target),
        )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_PRESERVE_TENSORS_WARNING, category=UserWarning)
        result = engine.quantize(ranges, enable_progress_bar=False, enable_progress_report=False)
    model = read_model_t(bytes(result.quantized_model))
    _float_boundaries(model, float_model)
    return write_model_t(model)
