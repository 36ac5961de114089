"""A trace of the backward pass: where relevance goes, layer by layer.

Every backward pass crosses each layer through ``rule.backward(layer, ctx, dout)`` (``minixai.rules``). A
trace wraps the method's rule in one that calls it and then measures, at that layer, the quantity the method
conserves, entering the layer's input and arriving at its output:

    LRP (a composite)    sum_i R_i                          the total relevance (Bach et al. 2015: LRP-0
                                                            conserves it on bias-free layers)
    DeepLIFT-Rescale     sum_i m_i (x_i - x'_i)             summation to delta (Shrikumar et al. 2017):
                                                            F(x) - F(x') at every layer
    the gradient         sum_i (dF/dx_i) x_i                gradient x activation: F(x) at every layer of
                                                            a bias-free ReLU network (Euler's theorem)

A layer that changes this sum shows where the quantity goes: LRP-epsilon's biases and stabiliser absorb a
little at each dense or conv layer, z+ keeps it, a residual join (``Add``) splits it between the main path
and the shortcut (``Trace.splits``), and DeepLIFT's sum stays F(x) - F(x') all the way down. Inside a
branch a layer's own input carries only the branch's share (``Trace.local``); ``Trace.sums`` adds what is
on its way down the other branches, the total that the method conserves from one layer to the next.

    t = mx.trace(model, x, target, rule="epsilon_plus_flat")
    print(t.table())            # one row per layer, in backward order (output first)
    t.plot(maps=["features.7", "features.0"])

The pass runs layer by layer (the wrapped rule is not one of minixai.fusion's FUSED_RULES and the trace
runs the model's own layer tree), with the same preparation as the method: for LRP the batch norms folded
into their convolutions as in ``mx.lrp``, for DeepLIFT the batch [x; x'] as in ``mx.deeplift``. Its
``attribution`` is the method's result at the input (what mx.lrp / mx.deeplift / mx.gradient_x_input
return), and ``sums[:, -1]`` is its total.
"""
from dataclasses import dataclass, field

import numpy as np

from . import composites
from .backend import array_module, to_host
from .baselines import make_baseline
from .canonizers import Identity, merge_batchnorm
from .methods._common import output_seed, prepare
from .rules import DeepLiftRescale, Gradient, Rule
from .tape import Tape

QUANTITIES = {"lrp": "relevance", "deeplift": "multiplier x delta", "gradient": "gradient x activation"}


@dataclass
class Trace:
    """The record of one traced backward pass (N images, L layers in backward order, the output first).

    layers       [L] layer names; kinds [L] their types; shapes [L] each layer's output shape per image
    sums         (N, L) the conserved quantity just below each layer: what enters its input plus what is on
                 its way down parallel branches (a ResNet shortcut, Inception's other branches); in a plain
                 chain of layers, what enters its input. Equals start + the cumulative change.
    local        (N, L) what enters this layer's own input (inside a branch: that branch's share)
    local_out    (N, L) what arrives at this layer's output
    start        (N,) the value at the logits: f_c(x) for LRP and the gradient, F(x) - F(x') for DeepLIFT
    attribution  (N, C, H, W) the per-input quantity at the input layer: the method's result
    maps         {layer: (N, h, w)} what enters the layer's input, summed over channels (every layer whose
                 input is a feature map)
    splits       {layer: (N, k)} for joins with k inputs (the residual Add: main path, shortcut), what
                 enters each input
    """
    method: str
    quantity: str
    targets: np.ndarray
    layers: list
    kinds: list
    shapes: list
    sums: np.ndarray
    local: np.ndarray
    local_out: np.ndarray
    start: np.ndarray
    attribution: np.ndarray = field(repr=False)
    maps: dict = field(repr=False)
    splits: dict = field(repr=False)

    @property
    def change(self):
        """(N, L) local - local_out: what each layer adds to the quantity (< 0: absorbed, e.g. by biases)."""
        return self.local - self.local_out

    def index(self, layer):
        """The column of `layer` in sums, local, local_out (a ValueError names the valid layers)."""
        if layer not in self.layers:
            raise ValueError(f"layer {layer!r} is not in this trace; valid: {', '.join(self.layers)}")
        return self.layers.index(layer)

    def table(self, sample=0, class_names=None):
        """The trace of image `sample` as text: one row per layer, in backward order."""
        from .trace_view import table
        return table(self, sample, class_names)

    def plot(self, sample=0, maps=None, title=None):
        """A Figure: a bar per layer (input on the left, output on the right) with the value at the logits as
        a line, and below it the channel-summed maps entering the inputs of `maps` (layer names; default a
        few spread over the network, and the input). Returns the Figure."""
        from .trace_view import plot
        return plot(self, sample, maps, title)


def trace(model, x, target, rule=None, baseline=None):
    """Trace one backward pass of `model` for images x (N, C, H, W) and `target` (an int, one per image,
    or None for the sum of the logits).

    rule:     None or "gradient" (the plain gradient, traced as gradient x activation); "deeplift"
              (DeepLIFT-Rescale, or a DeepLiftRescale object); an LRP composite by name (one of
              minixai.composites.COMPOSITES) or a Composite object.
    baseline: DeepLIFT's reference x' (default "black"; see minixai.baselines); only DeepLIFT takes one.
    Returns a Trace; x's dtype is kept (float64 stays float64)."""
    kind, backward_rule, label = _method(rule)
    if baseline is not None and kind != "deeplift":
        raise ValueError(f"baseline is DeepLIFT's reference input; the {label} trace takes none")
    x, targets = prepare(model, x, target)
    n = x.shape[0]
    net, inputs = model, x
    if kind == "lrp":
        net = merge_batchnorm(model)                     # as mx.lrp: batch norm folded into its convolution
    if kind == "deeplift":
        reference = make_baseline("black" if baseline is None else baseline, x, model.spec)
        inputs = array_module(x).concatenate([x, reference])   # as mx.deeplift: x and x' in one batch
        label = f"{label}, {_baseline_name(baseline)} baseline"
    tape = _record(net, inputs)
    logits = tape.output
    seed = output_seed(logits[:n], targets)
    if kind == "lrp":
        seed = seed * logits                             # R at the logits: f_c(x) for the target, 0 elsewhere
    steps = []
    result = net.backward(seed, _Recorder(backward_rule, tape, kind, steps), tape)
    return _record_of(kind, label, targets, x.dtype, steps, _quantity(kind, seed, logits, n),
                      _contribution(kind, result, inputs, n))


def _baseline_name(baseline):
    if baseline is None:
        return "black"
    return baseline if isinstance(baseline, str) else "array"


def _method(rule):
    """(kind, the Rule to run, its label) for the trace's `rule` argument."""
    if rule is None or (isinstance(rule, str) and rule == "gradient"):
        return "gradient", Gradient(), "gradient"
    if isinstance(rule, str) and rule == "deeplift":
        return "deeplift", DeepLiftRescale(), "DeepLIFT-Rescale"
    if isinstance(rule, str):
        if rule not in composites.COMPOSITES:
            raise ValueError(f"unknown rule {rule!r}; valid: None or 'gradient', 'deeplift', "
                             f"{', '.join(repr(c) for c in composites.COMPOSITES)}, or a Composite")
        return "lrp", composites.get(rule), f"LRP {rule}"
    if isinstance(rule, composites.Composite):
        return "lrp", rule, "LRP (composite)"
    if isinstance(rule, DeepLiftRescale):
        return "deeplift", rule, "DeepLIFT-Rescale"
    if type(rule) is Gradient:
        return "gradient", rule, "gradient"
    raise TypeError(f"rule must be None, 'gradient', 'deeplift', a composite name or a Composite, got "
                    f"{rule!r}: a trace measures what a method conserves, and only these methods conserve one")


class _SeeingTape(Tape):
    """A tape that also keeps every layer's inputs and output: the trace measures the quantity on them."""

    def __init__(self):
        super().__init__(keep_inputs=True)
        self.seen = {}                                   # layer -> (inputs, output)

    def forward(self, layer, *inputs):
        out = super().forward(layer, *inputs)
        self.seen[layer] = (inputs, out)
        return out


def _record(model, x):
    """One forward pass through the model's own layer tree (not its fused units: every layer is seen)."""
    tape = _SeeingTape()
    tape.root = model.root
    tape.output = tape.forward(tape.root, x)
    return tape


class _Recorder(Rule):
    """Runs `rule` and notes, for every layer it crosses, what enters the input and what left the output."""

    def __init__(self, rule, tape, kind, steps):
        self.rule, self.tape, self.kind, self.steps = rule, tape, kind, steps

    def prepare(self, model):
        return _Recorder(self.rule.prepare(model), self.tape, self.kind, self.steps)

    def backward(self, layer, ctx, dout):
        din = self.rule.backward(layer, ctx, dout)
        inputs, out = self.tape.seen[layer]
        self.steps.append(_step(layer, self.kind, dout, din, inputs, out))
        return din


def _step(layer, kind, dout, din, inputs, out):
    """One layer's row: its name, type, output shape, the quantity at its output, and per input the
    quantity entering it (and, for a feature map, its channel sum)."""
    n = dout.shape[0]
    din = din if isinstance(din, tuple) else (din,)
    parts = [_contribution(kind, d, x, n) for d, x in zip(din, inputs)]
    maps = [c.sum(axis=1) for c in parts if c.ndim == 4]
    kind_name = "Identity (folded BN)" if isinstance(layer, Identity) else type(layer).__name__
    return {"name": layer.name, "kind": kind_name, "shape": tuple(dout.shape[1:]),
            "out": _quantity(kind, dout, out, n), "parts": [_total(c) for c in parts],
            "map": to_host(sum(maps)) if len(maps) == len(parts) else None}


def _contribution(kind, signal, value, n):
    """The quantity per element: R (LRP), dF/dx * x (gradient), m * (x - x') (DeepLIFT, x' the second half
    of the batch that ran forward)."""
    if kind == "lrp":
        return signal
    if kind == "gradient":
        return signal * value
    return signal * (value[:n] - value[n:])


def _total(c):
    """Per-image sum (N,) of an (N, ...) array, accumulated in float64 (the record casts to x's dtype)."""
    return to_host(c.reshape(len(c), -1).sum(axis=1, dtype=np.float64))


def _quantity(kind, signal, value, n):
    return _total(_contribution(kind, signal, value, n))


def _record_of(kind, label, targets, dtype, steps, start, attribution):
    """The Trace of a finished pass from its per-layer steps (backward order), in x's dtype."""
    if not steps:
        raise RuntimeError("the backward pass crossed no layer: nothing to trace")
    local = np.stack([sum(s["parts"]) for s in steps], axis=1)
    local_out = np.stack([s["out"] for s in steps], axis=1)
    # every signal a layer leaves at its input is later read at some layer's output (or is the attribution),
    # and the quantity is linear in the signal: the total below layer k is the start plus the changes so far
    sums = start[:, None] + np.cumsum(local - local_out, axis=1)
    return Trace(method=label, quantity=QUANTITIES[kind], targets=targets, layers=[s["name"] for s in steps],
                 kinds=[s["kind"] for s in steps], shapes=[s["shape"] for s in steps], sums=sums.astype(dtype),
                 local=local.astype(dtype), local_out=local_out.astype(dtype), start=start.astype(dtype),
                 attribution=to_host(attribution),
                 maps={s["name"]: s["map"] for s in steps if s["map"] is not None},
                 splits={s["name"]: np.stack(s["parts"], axis=1).astype(dtype) for s in steps
                         if len(s["parts"]) > 1})
