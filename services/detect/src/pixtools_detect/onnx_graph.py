"""Convert a YOLOX ONNX graph into a torch.fx module whose batch dimension is free."""

import operator
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import helper, numpy_helper
from torch import fx, nn

from pixtools_detect.errors import ModelConversionError

# The exporter fixed the batch at 1 (SOURCES.md); Reshape targets that start with it get the runtime batch instead.
_EXPORTED_BATCH = 1
_UNBOUNDED = 2**62

Emit = Callable[["_Converter", onnx.NodeProto, dict[str, Any]], fx.Node]


class _Converter:
    """Walks the ONNX nodes in order (ONNX stores them topologically sorted) and emits one fx node per op."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.graph = fx.Graph()
        self.root = nn.Module()
        self.constants: dict[str, np.ndarray] = {
            init.name: numpy_helper.to_array(init) for init in model.graph.initializer
        }
        self.values: dict[str, fx.Node] = {}
        self.producers: dict[str, onnx.NodeProto] = {out: node for node in model.graph.node for out in node.output}
        self.consumers: dict[str, int] = {}
        for node in model.graph.node:
            for name in node.input:
                self.consumers[name] = self.consumers.get(name, 0) + 1
        self.conv_count = 0

    def value(self, name: str) -> fx.Node:
        if name not in self.values:
            raise ModelConversionError(f"tensor {name!r} is used as data but is a constant or undefined")
        return self.values[name]

    def constant(self, name: str) -> list[Any]:
        if name not in self.constants:
            raise ModelConversionError(f"tensor {name!r} must be a constant for this converter")
        return [item for item in self.constants[name].reshape(-1).tolist()]

    def convert(self, model: onnx.ModelProto) -> fx.GraphModule:
        inputs = [item for item in model.graph.input if item.name not in self.constants]
        if len(inputs) != 1 or len(model.graph.output) != 1:
            raise ModelConversionError("expected one image input and one output")
        self.values[inputs[0].name] = self.graph.placeholder("images")
        for node in model.graph.node:
            if node.op_type == "Constant":
                self.constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
                continue
            emit = _EMITTERS.get(node.op_type)
            if emit is None:
                raise ModelConversionError(f"ONNX op {node.op_type} (node {node.name!r}) is not supported")
            attrs = {attr.name: helper.get_attribute_value(attr) for attr in node.attribute}
            self.values[node.output[0]] = emit(self, node, attrs)
        self.graph.output(self.value(model.graph.output[0].name))
        module = fx.GraphModule(self.root, self.graph)
        # Sigmoids fused into SiLU have no users left.
        module.graph.eliminate_dead_code()
        module.recompile()
        return module.eval().requires_grad_(False)


def _symmetric_pads(attrs: dict[str, Any]) -> tuple[int, int]:
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    if pads[:2] != pads[2:]:
        raise ModelConversionError(f"asymmetric padding {pads} is not supported")
    return pads[0], pads[1]


def _conv(c: _Converter, node: onnx.NodeProto, attrs: dict[str, Any]) -> fx.Node:
    weight = c.constants[node.input[1]]
    bias = c.constants[node.input[2]] if len(node.input) > 2 else None
    groups = int(attrs.get("group", 1))
    # Channels, kernel and grouping come from the weight shapes and attributes, never from a model name.
    conv = nn.Conv2d(
        weight.shape[1] * groups,
        weight.shape[0],
        kernel_size=tuple(weight.shape[2:]),
        stride=tuple(attrs.get("strides", [1, 1])),
        padding=_symmetric_pads(attrs),
        dilation=tuple(attrs.get("dilations", [1, 1])),
        groups=groups,
        bias=bias is not None,
    )
    conv.weight.data = torch.from_numpy(weight.copy())
    if bias is not None and conv.bias is not None:
        conv.bias.data = torch.from_numpy(bias.copy())
    name = f"conv{c.conv_count}"
    c.conv_count += 1
    c.root.add_module(name, conv)
    return c.graph.call_module(name, (c.value(node.input[0]),))


def _mul(c: _Converter, node: onnx.NodeProto, attrs: dict[str, Any]) -> fx.Node:
    left, right = node.input
    for data, gate in ((left, right), (right, left)):
        producer = c.producers.get(gate)
        fusable = producer is not None and producer.op_type == "Sigmoid" and producer.input[0] == data
        if fusable and c.consumers.get(gate) == 1:
            # x * sigmoid(x) is SiLU; the fused kernel reads the activation once instead of three times.
            return c.graph.call_function(F.silu, (c.value(data),))
    return c.graph.call_function(operator.mul, (c.value(left), c.value(right)))


def _slice(c: _Converter, node: onnx.NodeProto, attrs: dict[str, Any]) -> fx.Node:
    starts, ends = c.constant(node.input[1]), c.constant(node.input[2])
    axes = c.constant(node.input[3]) if len(node.input) > 3 else list(range(len(starts)))
    steps = c.constant(node.input[4]) if len(node.input) > 4 else [1] * len(starts)
    if any(axis <= 0 for axis in axes):
        raise ModelConversionError("Slice along the batch axis (or a negative axis) is not supported")
    index: list[slice] = [slice(None)] * (max(axes) + 1)
    for axis, start, end, step in zip(axes, starts, ends, steps, strict=True):
        index[axis] = slice(start, None if end >= _UNBOUNDED else end, step)
    return c.graph.call_function(operator.getitem, (c.value(node.input[0]), tuple(index)))


def _reshape(c: _Converter, node: onnx.NodeProto, attrs: dict[str, Any]) -> fx.Node:
    shape = c.constant(node.input[1])
    if shape[0] != _EXPORTED_BATCH or 0 in shape:
        raise ModelConversionError(f"Reshape to {shape} is not supported; expected [1, ...] from a batch-1 export")
    data = c.value(node.input[0])
    batch = c.graph.call_method("size", (data, 0))
    return c.graph.call_method("reshape", (data, (batch, *shape[1:])))


def _resize(c: _Converter, node: onnx.NodeProto, attrs: dict[str, Any]) -> fx.Node:
    scales = c.constant(node.input[2]) if len(node.input) > 2 and node.input[2] else []
    mode = attrs.get("mode", b"nearest")
    if mode != b"nearest" or len(scales) != 4 or scales[:2] != [1.0, 1.0] or any(s % 1 for s in scales[2:]):
        raise ModelConversionError(f"Resize {mode!r} with scales {scales} is not supported")
    # With whole-number scales, ONNX nearest/asymmetric/floor picks exactly the pixels torch's nearest picks.
    factor = (float(scales[2]), float(scales[3]))
    return c.graph.call_function(F.interpolate, (c.value(node.input[0]),), {"scale_factor": factor, "mode": "nearest"})


def _max_pool(c: _Converter, node: onnx.NodeProto, attrs: dict[str, Any]) -> fx.Node:
    kwargs: dict[str, Any] = {
        "kernel_size": tuple(attrs["kernel_shape"]),
        "stride": tuple(attrs.get("strides", [1, 1])),
        "padding": _symmetric_pads(attrs),
        "ceil_mode": bool(attrs.get("ceil_mode", 0)),
    }
    return c.graph.call_function(F.max_pool2d, (c.value(node.input[0]),), kwargs)


def _concat(c: _Converter, node: onnx.NodeProto, attrs: dict[str, Any]) -> fx.Node:
    if attrs["axis"] == 0:
        raise ModelConversionError("Concat along the batch axis is not supported")
    return c.graph.call_function(torch.cat, ([c.value(name) for name in node.input],), {"dim": attrs["axis"]})


def _transpose(c: _Converter, node: onnx.NodeProto, attrs: dict[str, Any]) -> fx.Node:
    perm = list(attrs["perm"])
    if perm[0] != 0:
        raise ModelConversionError("Transpose that moves the batch axis is not supported")
    return c.graph.call_method("permute", (c.value(node.input[0]), *perm))


def _unary(function: Callable[..., torch.Tensor]) -> Emit:
    def emit(c: _Converter, node: onnx.NodeProto, attrs: dict[str, Any]) -> fx.Node:
        return c.graph.call_function(function, (c.value(node.input[0]),))

    return emit


def _binary(function: Callable[..., torch.Tensor]) -> Emit:
    def emit(c: _Converter, node: onnx.NodeProto, attrs: dict[str, Any]) -> fx.Node:
        return c.graph.call_function(function, (c.value(node.input[0]), c.value(node.input[1])))

    return emit


_EMITTERS: dict[str, Emit] = {
    "Conv": _conv,
    "Mul": _mul,
    "Slice": _slice,
    "Reshape": _reshape,
    "Resize": _resize,
    "MaxPool": _max_pool,
    "Concat": _concat,
    "Transpose": _transpose,
    "Sigmoid": _unary(torch.sigmoid),
    "Relu": _unary(F.relu),
    "Identity": _unary(torch.clone),
    "Add": _binary(operator.add),
}


def convert_onnx(model: onnx.ModelProto) -> fx.GraphModule:
    """Build an inference-mode torch module that computes what the ONNX graph computes, for any batch size."""
    return _Converter(model).convert(model)
