"""Fusion: the speed step, apart from the definitions (like a canonizer, it rewrites a model).

The layers and rules define what a network computes, one layer at a time. Run literally, a Conv2d ->
BatchNorm2d -> ReLU makes three passes over its output forward and three over the gradient backward; the
kernels can do each direction in one. `fuse` rewrites a model's layer tree into units that do so:

    ConvUnit(conv, bn, relu)   forward:  out = max(conv(x) * scale + (b * scale + shift), 0)
                                         (the batch norm and the ReLU are the convolution's epilogue)
                               backward: the ReLU's step and the batch norm's scale applied as the
                                         transposed convolution reads dout, for the rules of FUSED_RULES
    AddReLU(add, relu)         forward:  max(a + b, 0) in one pass (a residual join and its ReLU)
    ConvJoin(unit, add, relu)  forward:  max(bn(conv(h)) + shortcut, 0): a ResNet block's last ConvUnit
                                         with the join and its ReLU in the convolution's epilogue
    FusedResidual(block)       backward: the shortcut's gradient added to the main path's as its first
                                         ConvUnit's input-gradient kernel writes dx

Containers are fused inside: a Sequential's chain, a residual block's main path and shortcut, each branch of
a Concat (Inception's blocks, whose BasicConv2d conv -> bn -> relu become ConvUnits).

Units share the layer objects and their weights; they leave on the tape what each layer's own backward
needs, so any rule can still go back through them layer by layer. Model.record fuses every pass.

A unit runs its layers one by one, exactly as written in layers.py and rules.py, when
- the rule is not in FUSED_RULES (composites, DeepLIFT, a user's rule or subclass), or its backward was
  replaced at run time, or no longer does what its kernel does (checked once per rule on a small random
  unit: an edit of a rule's ReLU line in rules.py is noticed and warned about);
- an output inside the unit is captured, the pass keeps inputs for DeepLIFT/LRP, or the model is training;
- fusion is switched off: ``with mx.unfused(): ...`` (this thread), or the ``reference`` backend.
Tests (tests/test_fusion.py) check fused == unfused for every built-in rule, composite and architecture.
"""
import contextlib
import contextvars
import warnings
from typing import NamedTuple

import numpy as np

from .backend import get_backend, kernels
from .blocks import _Residual
from .concat import Concat
from .layers import BatchNorm2d, Conv2d, Layer, ReLU, Sequential
from .rules import DeconvNet, Gradient, GuidedBackprop
from .tape import Tape


class ReluStep(NamedTuple):
    """What a rule does to the gradient dout arriving at a ReLU, in the fused kernel's terms."""
    masked: bool         # keep dout only where the ReLU's output is > 0 (its forward mask)
    clipped: bool        # drop dout's negative part first


# The rules whose backward through Conv2d -> [BatchNorm2d] -> [ReLU] the fused kernels compute, with the
# ReLU step of each (its one line in minixai.rules):
FUSED_RULES = {
    Gradient: ReluStep(masked=True, clipped=False),           # layer.grad(ctx, dout)
    GuidedBackprop: ReluStep(masked=True, clipped=True),      # layer.grad(ctx, np.maximum(dout, 0))
    DeconvNet: ReluStep(masked=False, clipped=True),          # np.maximum(dout, 0)
}
_AS_DEFINED = {rule: rule.backward for rule in FUSED_RULES}  # their backward as rules.py defined it
_checked = {}                                                 # rule class -> does its kernel match it?
_enabled = contextvars.ContextVar("minixai_fusion", default=True)


@contextlib.contextmanager
def unfused():
    """Run every model layer by layer inside this block (in this thread): the code of layers.py and
    rules.py, with no fused kernel. Same numbers up to rounding, slower."""
    token = _enabled.set(False)
    try:
        yield
    finally:
        _enabled.reset(token)


def enabled():
    return _enabled.get() and get_backend() != "reference"


def relu_step(rule):
    """The ReLU step the fused kernels take for `rule`, or None when its layers must run one by one."""
    kind = type(rule)
    step = FUSED_RULES.get(kind)
    if step is None or "backward" in vars(rule) or kind.backward is not _AS_DEFINED[kind]:
        return None
    if kind not in _checked:
        _checked[kind] = _kernel_matches(rule, step)
        if not _checked[kind]:
            warnings.warn(f"{kind.__name__}.backward no longer does what its fused kernel does (was rules.py "
                          "edited?): it runs layer by layer, as written", RuntimeWarning, stacklevel=2)
    return step if _checked[kind] else None


def _kernel_matches(rule, step):
    """Does `rule`, as its code reads now, give on a small random Conv2d -> BatchNorm2d -> ReLU what the
    fused kernel gives with `step`?"""
    rng = np.random.default_rng(0)
    conv, bn, relu = Conv2d(2, 3, 3, padding=1), BatchNorm2d(3), ReLU()
    conv.weight, conv.bias = (rng.standard_normal(a.shape).astype(np.float32) for a in (conv.weight, conv.bias))
    bn.weight, bn.bias, bn.running_mean = (rng.standard_normal(3).astype(np.float32) for _ in range(3))
    bn.running_var = rng.uniform(0.5, 2.0, 3).astype(np.float32)
    unit = ConvUnit(conv, bn, relu)
    tape = Tape()
    tape.forward(unit, rng.standard_normal((2, 2, 5, 5)).astype(np.float32))
    dout = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    try:
        plain = dout
        for layer in (relu, bn, conv):
            plain = tape.backward(layer, plain, rule)
        plain = np.asarray(plain)
    except Exception:                    # the rule fails here: let the unfused pass raise it for real
        return False
    fused = unit.fused_backward(tape.contexts[unit], dout, step)
    return plain.shape == fused.shape and bool(np.allclose(plain, fused, rtol=1e-4, atol=1e-5))


class ConvUnit(Layer):
    """Conv2d -> [BatchNorm2d] -> [ReLU] (inference): one kernel call forward, and one backward for the
    rules of FUSED_RULES; otherwise the layers one by one."""

    def __init__(self, conv, bn=None, relu=None):
        super().__init__()
        self.conv, self.bn, self.relu = conv, bn, relu
        self.layers = [layer for layer in (conv, bn, relu) if layer is not None]

    def forward(self, ctx, x):
        tape, hidden = ctx.tape, self.layers[:-1]         # the outputs that never exist when fused
        ctx.fused = fusable(tape, self.layers, hidden)
        if not ctx.fused:
            for layer in self.layers:
                x = ctx.forward(layer, x)
            return x
        out = self.convolve(tape, x, relu=self.relu is not None)
        if self.relu is not None:
            tape.keep(self.relu, out=out)
        return tape.note_output(self.layers[-1], out)

    def convolve(self, tape, x, relu, residual=None):
        """max(bn(conv(x)) (+ residual), 0 if relu) in one kernel call; leaves on `tape` what the conv's
        and the batch norm's own backward passes need."""
        conv = self.conv
        weight = conv.weight.astype(x.dtype, copy=False)
        bias = conv.bias.astype(x.dtype, copy=False) if conv.bias is not None else None
        scale = None
        if self.bn is not None:
            scale, shift = self.bn.scale_shift(x.dtype)
            bias = shift if bias is None else bias * scale + shift
        out = kernels(x).conv2d_forward(x, weight, bias, conv.stride, conv.padding, conv.dilation, scale=scale,
                                       relu=relu, residual=residual)
        tape.keep(conv, x=x)
        if self.bn is not None:
            tape.keep(self.bn, scale=scale)           # for fused_backward: computed once per pass
        return out

    def backward(self, ctx, dout, rule, plus=None):
        """dx (+ plus: the gradient of a residual block's shortcut, added as dx is written when fused)."""
        step = relu_step(rule) if ctx.fused else None
        if step is None:
            for layer in reversed(self.layers):
                dout = ctx.backward(layer, dout, rule)
            return dout if plus is None else kernels(dout).add(dout, plus)
        ctx.tape.note_grad(self.layers[-1], dout)
        return self.fused_backward(ctx, dout, step, plus)

    def fused_backward(self, ctx, dout, step, plus=None):
        """dx (+ plus) of conv -> bn -> relu under `step`, in one kernel call (after a fused forward)."""
        contexts, conv = ctx.tape.contexts, self.conv
        scale = contexts[self.bn].scale.astype(dout.dtype, copy=False) if self.bn is not None else None
        gate = contexts[self.relu].out if self.relu is not None and step.masked else None
        clip = self.relu is not None and step.clipped
        x_shape = (dout.shape[0], *contexts[conv].x.shape[1:])
        return kernels(dout).conv2d_backward_input(dout, conv.weight.astype(dout.dtype, copy=False), x_shape,
                                               conv.stride, conv.padding, conv.dilation, scale=scale, gate=gate,
                                               clip=clip, residual=plus)

    def __repr__(self):
        return "ConvUnit(" + ", ".join(repr(layer) for layer in self.layers) + ")"


class AddReLU(Layer):
    """A residual join and the ReLU after it: max(a + b, 0) in one pass. The backward is the two layers'
    own (the rule's ReLU line runs as written)."""

    def __init__(self, add, relu):
        super().__init__()
        self.add, self.relu = add, relu

    def forward(self, ctx, a, b):
        tape = ctx.tape
        if not fusable(tape, [self.add, self.relu], [self.add]):
            return ctx.forward(self.relu, ctx.forward(self.add, a, b))
        out = kernels(a).add_relu(a, b)
        tape.keep(self.add)
        tape.keep(self.relu, out=out)
        return tape.note_output(self.relu, out)

    def backward(self, ctx, dout, rule):
        return ctx.backward(self.add, ctx.backward(self.relu, dout, rule), rule)


class ConvJoin(Layer):
    """The last ConvUnit of a residual block's main path (conv -> bn), the join and the ReLU after it:
    max(bn(conv(h)) + shortcut, 0) in one kernel call, the shortcut added as the convolution writes its
    output (one pass over the block's output instead of two). The backward is the layers' own."""

    def __init__(self, unit, add, relu):
        super().__init__()
        self.unit, self.join = unit, AddReLU(add, relu)

    def forward(self, ctx, h, shortcut):
        tape, unit, join = ctx.tape, self.unit, self.join
        ctx.fused = fusable(tape, unit.layers + [join.add, join.relu], unit.layers + [join.add])
        if not ctx.fused:
            return ctx.forward(join, ctx.forward(unit, h), shortcut)
        out = unit.convolve(tape, h, relu=True, residual=shortcut)
        tape.keep(unit, fused=True)
        tape.keep(join)
        tape.keep(join.add)
        tape.keep(join.relu, out=out)
        return tape.note_output(join.relu, out)

    def backward(self, ctx, dout, rule):
        d_main, d_shortcut = ctx.backward(self.join, dout, rule)
        return ctx.backward(self.unit, d_main, rule), d_shortcut


class FusedResidual(Layer):
    """A ResNet block with fused units: relu(main(x) + shortcut(x)) as in minixai.blocks; when the main
    path ends in conv -> bn, that unit and the join are one ConvJoin."""

    def __init__(self, block):
        super().__init__()
        self.name = block.name                            # captures of the block still find it
        units = fuse_chain([getattr(block, name) for name in block.main_path])
        self.shortcut = fuse(block.downsample) if block.downsample is not None else None
        if isinstance(units[-1], ConvUnit) and units[-1].relu is None:
            self.main, self.join = Sequential(*units[:-1]), ConvJoin(units[-1], block.add, block.relu)
        else:
            self.main, self.join = Sequential(*units), AddReLU(block.add, block.relu)

    def forward(self, ctx, x):
        identity = x if self.shortcut is None else ctx.forward(self.shortcut, x)
        return ctx.forward(self.join, ctx.forward(self.main, x), identity)

    def backward(self, ctx, dout, rule):
        d_main, d_identity = ctx.backward(self.join, dout, rule)
        if self.shortcut is not None:
            d_identity = ctx.backward(self.shortcut, d_identity, rule)
        return self.main_backward(ctx, d_main, rule, plus=d_identity)

    def main_backward(self, ctx, dout, rule, plus):
        """The main path's input gradient + plus (the shortcut's): ``ctx.backward(self.main, ...)`` and an add,
        but with the add in the first unit's kernel when that is a ConvUnit (one pass less over the block's
        input gradient)."""
        units = list(self.main.layers.values())
        if not units or not isinstance(units[0], ConvUnit):
            return kernels(dout).add(ctx.backward(self.main, dout, rule), plus)
        tape = ctx.tape
        tape.note_grad(self.main, dout)                   # as tape.backward(self.main, ...) would
        for unit in reversed(units[1:]):
            dout = ctx.backward(unit, dout, rule)
        tape.note_grad(units[0], dout)
        return units[0].backward(tape.contexts[units[0]], dout, rule, plus=plus)


def fusable(tape, layers, hidden):
    """May a unit of `layers` run fused on `tape`? Not when the pass keeps inputs (DeepLIFT, LRP), a layer is
    training, or one of the `hidden` layers (whose outputs the fused kernel never makes) is captured."""
    return not (tape.keep_inputs or any(layer.training for layer in layers)
                or any(layer.name in tape.capture for layer in hidden))


def fuse(layer):
    """`layer` rewritten into fused units: a new tree over the same layer objects (weights shared)."""
    if isinstance(layer, Sequential):
        fused = Sequential(*fuse_chain(list(layer.layers.values())))
        fused.name = layer.name
        return fused
    if isinstance(layer, _Residual):
        return FusedResidual(layer)
    if isinstance(layer, Concat):                         # Inception's branches, each a chain of its own
        fused = Concat(*[fuse_chain(branch) for branch in layer.branches])
        fused.name = layer.name
        return fused
    return layer


def fuse_chain(layers):
    """A list of layers run one after the other, with every Conv2d -> [BatchNorm2d] -> [ReLU] (two or
    three of them) replaced by a ConvUnit and every container fused inside."""
    out, i = [], 0
    while i < len(layers):
        conv = layers[i]
        bn = _next(layers, i + 1, BatchNorm2d) if isinstance(conv, Conv2d) else None
        relu = _next(layers, i + 1 + (bn is not None), ReLU) if isinstance(conv, Conv2d) else None
        if bn is None and relu is None:
            out.append(fuse(conv))
        else:
            out.append(ConvUnit(conv, bn, relu))
        i += 1 + (bn is not None) + (relu is not None)
    return out


def _next(layers, i, kind):
    return layers[i] if i < len(layers) and isinstance(layers[i], kind) else None
