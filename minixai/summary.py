"""A model's architecture as a table: every named layer with its type, output shape, parameters and
multiply-adds (as Keras's ``model.summary()`` or torchinfo's ``summary``). Seed 004's first learning goal:
"know and understand the architecture of ResNet50".

    print(model.summary())                          # one forward pass of zeros at the spec's input size
    print(model.summary((1, 3, 299, 299), depth=2)) # another size; only the first two levels of the tree

Multiply-adds are counted for Conv2d (per output value: in_channels * kernel height * kernel width) and
Linear (per output value: in_features), per image, as torchvision's model cards count them ("GFLOPS":
4.09 for ResNet-50, 15.47 for VGG-16); pooling, batch norm, ReLU and the residual sums are left out.
Parameters are the trainable arrays (weights, biases, batch norm's scale and shift), not the running
statistics. A container's row (Sequential, a residual block, an Inception block) shows in parentheses the
totals over the layers inside it; the totals at the end add up the layers.
"""
from dataclasses import dataclass

import numpy as np

from .layers import Conv2d, Linear
from .tape import Tape
from .validate import check_images


@dataclass
class Row:
    """One named layer: name, type, depth in the tree (0: top level), output shape (None if it did not run
    for this input, like Inception's auxiliary head), own parameters, own multiply-adds per image, and whether
    it is a container (params and madds then are its layers' totals)."""
    name: str
    kind: str
    depth: int
    shape: tuple
    params: int
    madds: int
    container: bool


@dataclass
class Summary:
    """model.summary()'s result; str() or repr() is the table. rows: every named layer in forward order;
    depth: the deepest level the table shows (None: all)."""
    arch: str
    input_shape: tuple
    rows: list
    depth: int = None

    @property
    def total_params(self):
        return sum(row.params for row in self.rows if not row.container)

    @property
    def total_madds(self):
        """Multiply-adds per image over all layers (Conv2d and Linear)."""
        return sum(row.madds for row in self.rows if not row.container)

    def __str__(self):
        return table(self)

    __repr__ = __str__


def summarize(model, input_shape=None, depth=None):
    """The Summary of `model` for inputs of `input_shape` ((N, C, H, W) or (C, H, W); default one image at the
    spec's size). depth: the table shows layers down to this depth of the tree (0: top level only; None: all);
    the totals always count every layer."""
    shape = _input_shape(model, input_shape)
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 0):
        raise ValueError(f"depth must be None or an integer >= 0, got {depth!r}")
    outputs = _outputs(model, shape)
    leaves = {layer: _leaf(layer, level, outputs.get(layer.name), shape[0])
              for layer, level in _tree(model.root, 0) if not layer.children()}
    rows = [leaves[layer] if layer in leaves else _container(layer, level, outputs.get(layer.name), leaves)
            for layer, level in _tree(model.root, 0)]
    return Summary(model.arch, shape, rows, depth)


def _input_shape(model, input_shape):
    if input_shape is None:
        if model.spec is None or model.in_channels is None:
            raise ValueError("input_shape is needed: this model has no input spec (e.g. a sub-model cut inside a "
                             "network); pass (N, C, H, W)")
        return (1, model.in_channels, *model.spec.size)
    shape = tuple(input_shape)
    if len(shape) == 3:
        shape = (1, *shape)
    if len(shape) != 4 or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0
                                  for s in shape):
        raise ValueError(f"input_shape must be (N, C, H, W) or (C, H, W) of positive ints, got {input_shape!r}")
    return tuple(int(s) for s in shape)


def _outputs(model, shape):
    """{layer name: output} of one forward pass of zeros, every layer run one by one (no fused units)."""
    x = check_images(model.place(np.zeros(shape, np.float32)), model.in_channels)
    tape = Tape(capture=model.layer_names())
    tape.root = model.root
    tape.forward(model.root, x)
    return tape.outputs


def _tree(layer, depth):
    """(layer, depth) of every named descendant of `layer`, in forward order."""
    for child in layer.children().values():
        yield child, depth
        yield from _tree(child, depth + 1)


def _shape(out):
    return tuple(out.shape) if out is not None else None


def _leaf(layer, depth, out, n):
    """A layer without children: its own parameters and, if it ran, its multiply-adds per image (a layer
    that did not run for this input, like Inception's auxiliary head, has none)."""
    params = sum(int(getattr(layer, a).size) for a in layer.parameters() if getattr(layer, a) is not None)
    madds = 0
    if out is not None and isinstance(layer, Conv2d):        # each output value: a dot product over C x R x S
        madds = out.size // n * layer.in_channels * layer.kernel_size[0] * layer.kernel_size[1]
    if out is not None and isinstance(layer, Linear):        # each output value: a dot product over I
        madds = out.size // n * layer.in_features
    return Row(layer.name, type(layer).__name__, depth, _shape(out), params, madds, False)


def _container(layer, depth, out, leaves):
    """A container: the totals over the layers inside it."""
    inside = [leaves[child] for child, _ in _tree(layer, 0) if child in leaves]
    return Row(layer.name, type(layer).__name__, depth, _shape(out), sum(r.params for r in inside),
               sum(r.madds for r in inside), True)


def table(summary):
    """The text of a Summary: one row per shown layer, indented by depth, then the totals."""
    rows = [r for r in summary.rows if summary.depth is None or r.depth <= summary.depth]
    names = ["  " * r.depth + r.name for r in rows]
    shapes = ["not run" if r.shape is None else str(r.shape) for r in rows]
    params = [f"({r.params:,})" if r.container else f"{r.params:,}" for r in rows]
    madds = [f"({r.madds:,})" if r.container else f"{r.madds:,}" for r in rows]
    widths = [max(len(h), *(len(v) for v in col)) for h, col in
              (("layer", names), ("type", [r.kind for r in rows]), ("output shape", shapes), ("params", params),
               ("mult-adds", madds))]
    header = (f"{'layer':<{widths[0]}}  {'type':<{widths[1]}}  {'output shape':<{widths[2]}}  "
              f"{'params':>{widths[3]}}  {'mult-adds':>{widths[4]}}")
    lines = [f"{summary.arch or 'model'}: input {summary.input_shape}", header, "-" * len(header)]
    for name, r, shape, p, m in zip(names, rows, shapes, params, madds):
        lines.append(f"{name:<{widths[0]}}  {r.kind:<{widths[1]}}  {shape:<{widths[2]}}  {p:>{widths[3]}}  "
                     f"{m:>{widths[4]}}")
    lines += ["-" * len(header),
              f"parameters: {summary.total_params:,} (weights, biases, batch-norm scales and shifts; running "
              "statistics not counted)",
              f"multiply-adds per image: {summary.total_madds:,} ({_short(summary.total_madds)}; Conv2d and Linear)"]
    if any(r.container for r in rows):
        lines.append("(in parentheses: a container's totals over the layers inside it)")
    if summary.depth is not None:
        lines.append(f"(layers deeper than depth {summary.depth} are not listed; the totals count them)")
    return "\n".join(lines)


def _short(n):
    """4089184256 -> '4.09 G', 13570368 -> '13.57 M'."""
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return str(n)
