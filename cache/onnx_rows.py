"""An int8 graph whose batches are batch-invariant: each text quantized on its own.

``quantize_dynamic`` (``cache.onnx_export.quantize``) puts a ``DynamicQuantizeLinear`` in front
of the weight MatMuls: one scale and zero point for the whole input tensor, so in a batch a
text's activations are rounded on a grid its neighbours (and their padding) chose, and its
vector moves with them (lowest cosine to the same text alone ~0.978). ``per_row`` rewrites
each of those into the same arithmetic per batch row, over that row's real tokens only:

- the row's range: ``ReduceMin``/``ReduceMax`` over its activations times the attention mask
  (padded positions count as 0, and 0 is always in the range, as in ``DynamicQuantizeLinear``);
- scale ``(max - min) / 255``, zero point ``round(clip(-min / scale, 0, 255))``, then one
  ``QuantizeLinear`` with those per row (``axis=0``): the formula ``DynamicQuantizeLinear`` is
  specified with, so a text alone gets exactly the grid it gets in the original graph;
- ``MatMulInteger`` without the activation zero point (onnxruntime takes only a scalar one),
  which is subtracted after: ``zero_point[row] * colsum(W - w_zero_point)``, exact in int32
  and float32 here (|sum| < 2**24 at these widths), then the per-row scale times the weights'.

Integer GEMMs are exact and every other op works per row (attention masks padded keys), so
a text's vector in any batch equals its vector alone in the original graph to float noise
(measured: identical alone, cosine >= 0.9999993 in batches of 4-32). Written by hand: the
quantizers in onnxruntime offer static scales (a calibration set, other vectors) or
per-tensor dynamic ones, nothing per row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

MASK_INPUT = "attention_mask"


def per_row(source: Path, target: Path) -> None:
    """Write ``target``: the graph at ``source`` with per-row dynamic quantization."""
    import onnx

    model = onnx.load(str(source))
    _rewrite(model.graph)
    onnx.save(model, str(target))


def _rewrite(graph: Any) -> None:
    from onnx import helper, numpy_helper

    weights = {init.name: init for init in graph.initializer}
    constants: dict[str, npt.NDArray[Any]] = {
        "vc_rows_zero": np.array(0.0, np.float32),
        "vc_rows_255": np.array(255.0, np.float32),
        "vc_rows_flat": np.array([-1], np.int64),
        "vc_rows_last": np.array([2], np.int64),
    }
    nodes = [
        helper.make_node("Cast", [MASK_INPUT], ["vc_rows_maskf"], to=onnx_float()),
        helper.make_node("Unsqueeze", ["vc_rows_maskf", "vc_rows_last"], ["vc_rows_mask"]),
    ]
    row_scale: dict[str, str] = {}  # the old per-tensor scale/zero point -> the per-row one
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    for node in graph.node:
        if node.op_type == "DynamicQuantizeLinear":
            prefix = f"vc_rows_{len(row_scale) // 2}_"
            nodes += _quantize_rows(node, prefix)
            row_scale[node.output[1]] = prefix + "scale"
            row_scale[node.output[2]] = prefix + "zero"
        elif node.op_type == "MatMulInteger" and node.input[2] in row_scale:
            quantized, weight, zero, weight_zero = node.input
            matrix = numpy_helper.to_array(weights[weight]).astype(np.int64)
            offset = numpy_helper.to_array(weights[weight_zero]).astype(np.int64)
            colsum = (matrix - offset).sum(axis=0).astype(np.float32)
            prefix = f"{node.output[0]}_vc_rows_"
            constants[prefix + "colsum"] = colsum
            nodes += [
                helper.make_node("MatMulInteger", [quantized, weight, "", weight_zero],
                                 [prefix + "int"]),
                helper.make_node("Cast", [prefix + "int"], [prefix + "float"], to=onnx_float()),
                helper.make_node("Mul", [row_scale[zero], prefix + "colsum"], [prefix + "shift"]),
                helper.make_node("Sub", [prefix + "float", prefix + "shift"], [prefix + "out"]),
            ]  # fmt: skip
            for cast in consumers[node.output[0]]:  # the Cast to float: now a float already
                if cast.op_type != "Cast":
                    raise ValueError(f"unexpected consumer {cast.op_type} of MatMulInteger")
                cast.op_type = "Identity"
                del cast.attribute[:]
                cast.input[0] = prefix + "out"
        else:
            if node.op_type == "Mul" and any(name in row_scale for name in node.input):
                node.input[:] = [row_scale.get(name, name) for name in node.input]
            nodes.append(node)
    if not row_scale:
        raise ValueError("no DynamicQuantizeLinear in the graph: not a dynamic int8 export")
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in constants.items())


def _quantize_rows(node: Any, prefix: str) -> list[Any]:
    """``DynamicQuantizeLinear``'s outputs, computed per batch row over real tokens."""
    from onnx import TensorProto, helper

    source = node.input[0]
    p = prefix
    step = helper.make_node
    return [
        step("Mul", [source, "vc_rows_mask"], [p + "masked"]),
        step("ReduceMin", [p + "masked"], [p + "min0"], axes=[1, 2], keepdims=1),
        step("ReduceMax", [p + "masked"], [p + "max0"], axes=[1, 2], keepdims=1),
        step("Min", [p + "min0", "vc_rows_zero"], [p + "min"]),
        step("Max", [p + "max0", "vc_rows_zero"], [p + "max"]),
        step("Sub", [p + "max", p + "min"], [p + "range"]),
        step("Div", [p + "range", "vc_rows_255"], [p + "scale"]),
        step("Div", [p + "min", p + "scale"], [p + "lowest"]),
        step("Neg", [p + "lowest"], [p + "shift"]),
        step("Clip", [p + "shift", "vc_rows_zero", "vc_rows_255"], [p + "clipped"]),
        step("Round", [p + "clipped"], [p + "zero"]),
        step("Reshape", [p + "scale", "vc_rows_flat"], [p + "scale1"]),
        step("Cast", [p + "zero"], [p + "zero8"], to=TensorProto.UINT8),
        step("Reshape", [p + "zero8", "vc_rows_flat"], [p + "zero1"]),
        step("QuantizeLinear", [source, p + "scale1", p + "zero1"], [node.output[0]], axis=0),
    ]


def onnx_float() -> int:
    from onnx import TensorProto

    return int(TensorProto.FLOAT)
