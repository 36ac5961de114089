"""Rules: how the backward pass crosses one layer.

A rule's ``backward(layer, ctx, dout)`` says what flows back through `layer`, given what the layer's
forward kept in `ctx` (``minixai.tape``). ``Rule``, the base, answers with the layer's own chain rule,
``layer.grad(ctx, dout)``; every method in minixai is a rule that answers differently for a few layer types.
Compare ``Gradient``, ``GuidedBackprop`` and ``DeconvNet``: they differ in one line, ReLU's backward:

    Gradient         layer.grad(ctx, dout)                   dout where the ReLU's input was > 0
    GuidedBackprop   layer.grad(ctx, np.maximum(dout, 0))    ... and only the positive part of dout
    DeconvNet        np.maximum(dout, 0)                     the positive part of dout, wherever it arrives

That line is what runs. The methods run models through ``minixai.fusion``, whose kernels do the same ReLU
step inside the convolution's backward for exactly these three rules (its table ``FUSED_RULES``). Edit one
of the lines and fusion notices: it checks each rule against a small unfused pass before it trusts its
kernel, and a rule replaced at run time, or not in its table, runs unfused anyway. To see everything run
layer by layer, through the lines of this file, wrap the call in ``with mx.unfused(): ...`` (the
``reference`` backend is always unfused).

LRP rules (Bach 2015, Montavon 2019) for a linear layer z = W x + b all follow one skeleton:

    z  = layer(x', W', b')        inputs and parameters modified by the rule
    s  = R / stabilize(z)         share of relevance per unit of output
    c  = W'^T s                   the backward of the same modified layer
    R_in = x' * c                 relevance of each input

Epsilon, gamma, z+, alpha-beta, z^B, flat and w^2 differ only in their modifiers (x', W', b') and in how
many such terms they add up. The relevance R flows where the gradient would, so a "gradient" arriving at
the input under an LRP composite is the relevance map.
"""
import numpy as np

from .backend import array_module
from .layers import Add, AdaptiveAvgPool2d, AvgPool2d, Conv2d, Linear, MaxPool2d, ReLU


class Rule:
    """Base of all rules: every layer's own chain rule, unless a subclass says otherwise."""

    def backward(self, layer, ctx, dout):
        return layer.grad(ctx, dout)

    def prepare(self, model):
        """The rule to use for one backward pass through `model`. Rules that need something of the model
        (its input spec, its first layer) return a copy bound to it; the rule itself stays as it was."""
        return self

    def __repr__(self):
        return f"{type(self).__name__}()"


class Gradient(Rule):
    """The plain gradient (Simonyan 2014): ReLU passes dout where its input was positive."""

    def backward(self, layer, ctx, dout):
        if isinstance(layer, ReLU):
            return layer.grad(ctx, dout)                  # d max(x, 0)/dx = [x > 0]
        return layer.grad(ctx, dout)


class GuidedBackprop(Rule):
    """Springenberg et al. 2015: ReLU passes only positive gradients, and only where its input was positive."""

    def backward(self, layer, ctx, dout):
        if isinstance(layer, ReLU):
            return layer.grad(ctx, np.maximum(dout, 0))   # the gradient's mask x > 0, and dout > 0
        return layer.grad(ctx, dout)


class DeconvNet(Rule):
    """Zeiler & Fergus 2014: ReLU passes the positive part of the signal, ignoring the forward mask."""

    def backward(self, layer, ctx, dout):
        if isinstance(layer, ReLU):
            return np.maximum(dout, 0)                    # no x > 0 mask: ReLU applied to the signal
        return layer.grad(ctx, dout)


# ---- LRP ------------------------------------------------------------------------------------------------

def stabilize(z, epsilon):
    """z + epsilon * sign(z), with sign(0) = +1, so that no division is by zero (Zennit's convention)."""
    return z + epsilon * array_module(z).where(z >= 0, 1, -1).astype(z.dtype)


def _pos(a):
    return np.maximum(a, 0) if a is not None else None


def _neg(a):
    return np.minimum(a, 0) if a is not None else None


def _term(layer, x, w, b):
    """One modified forward pass z = layer(x, w, b); returns (z, backward) with backward(s) = W^T s."""
    return layer.apply(x, w, b), lambda s: layer.apply_transposed(s, w, x.shape)


class LRPRule(Rule):
    """Base of the LRP rules for Conv2d/Linear: subclasses implement ``relevance(layer, x, R)``, x being the
    layer's input in this pass."""
    kinds = (Conv2d, Linear)

    def backward(self, layer, ctx, R):
        if not isinstance(layer, self.kinds):
            raise TypeError(f"{type(self).__name__} applies to {', '.join(k.__name__ for k in self.kinds)}, "
                            f"not to {type(layer).__name__} (layer {layer.name!r})")
        return self.relevance(layer, ctx.x, R)


class Epsilon(LRPRule):
    """LRP-epsilon: R_i = sum_j x_i w_ij / (z_j + eps sign z_j) R_j. epsilon=0 gives LRP-0."""

    def __init__(self, epsilon=1e-6):
        self.epsilon = epsilon

    def relevance(self, layer, x, R):
        z, back = _term(layer, x, layer.weight, layer.bias)
        denominator = stabilize(z, self.epsilon)
        # LRP-0 (epsilon=0) on an output with z = 0 (e.g. all its inputs are 0): it holds no relevance, s = 0
        nonzero = denominator != 0
        s = array_module(R).where(nonzero, R / array_module(R).where(nonzero, denominator, 1), 0)
        return x * back(s)


class ZPlus(LRPRule):
    """LRP-z+: only positive contributions x+ w+ (and x- w-) share the relevance (alpha=1, beta=0)."""

    def __init__(self, stabilizer=1e-6):
        self.stabilizer = stabilizer

    def relevance(self, layer, x, R):
        w, b = layer.weight, layer.bias
        z1, back1 = _term(layer, _pos(x), _pos(w), _pos(b))
        z2, back2 = _term(layer, _neg(x), _neg(w), None)
        s = R / stabilize(z1 + z2, self.stabilizer)
        return _pos(x) * back1(s) + _neg(x) * back2(s)


class AlphaBeta(LRPRule):
    """LRP-alpha-beta: R_i = alpha * (positive share of R) - beta * (negative share), alpha - beta = 1."""

    def __init__(self, alpha=2.0, beta=1.0, stabilizer=1e-6):
        if alpha < 0 or beta < 0 or abs(alpha - beta - 1) > 1e-12:
            raise ValueError(f"alpha-beta needs alpha, beta >= 0 and alpha - beta = 1, got {alpha}, {beta}")
        self.alpha, self.beta, self.stabilizer = alpha, beta, stabilizer

    def relevance(self, layer, x, R):
        w, b = layer.weight, layer.bias
        zp1, bp1 = _term(layer, _pos(x), _pos(w), _pos(b))      # positive contributions
        zp2, bp2 = _term(layer, _neg(x), _neg(w), None)
        zn1, bn1 = _term(layer, _pos(x), _neg(w), _neg(b))      # negative contributions
        zn2, bn2 = _term(layer, _neg(x), _pos(w), None)
        sp = R / stabilize(zp1 + zp2, self.stabilizer)
        sn = R / stabilize(zn1 + zn2, self.stabilizer)
        positive = _pos(x) * bp1(sp) + _neg(x) * bp2(sp)
        negative = _pos(x) * bn1(sn) + _neg(x) * bn2(sn)
        return self.alpha * positive - self.beta * negative


class Gamma(LRPRule):
    """LRP-gamma (Montavon 2019), generalised to inputs of either sign as Zennit does: positive outputs are
    explained with W + gamma W+ on x+ (W + gamma W- on x-), negative outputs with the mirror image."""

    def __init__(self, gamma=0.25, stabilizer=1e-6):
        self.gamma, self.stabilizer = gamma, stabilizer

    def relevance(self, layer, x, R):
        w, b, g = layer.weight, layer.bias, self.gamma
        up_w, down_w = w + g * _pos(w), w + g * _neg(w)
        up_b, down_b = (b + g * _pos(b), b + g * _neg(b)) if b is not None else (None, None)
        z = layer.apply(x, w, b)
        z1, back1 = _term(layer, _pos(x), up_w, up_b)          # for outputs z > 0
        z2, back2 = _term(layer, _neg(x), down_w, None)
        z3, back3 = _term(layer, _pos(x), down_w, down_b)      # for outputs z < 0
        z4, back4 = _term(layer, _neg(x), up_w, None)
        s_up = (z > 0) * R / stabilize(z1 + z2, self.stabilizer)
        s_down = (z < 0) * R / stabilize(z3 + z4, self.stabilizer)
        return (_pos(x) * back1(s_up) + _neg(x) * back2(s_up)
                + _pos(x) * back3(s_down) + _neg(x) * back4(s_down))


class ZBox(LRPRule):
    """LRP-z^B for the input layer, whose values lie in a box [low, high] (Montavon 2017):
    z = W x - W+ low - W- high. Bounds default to the model's input spec (pixels 0 and 1)."""

    def __init__(self, low=None, high=None, stabilizer=1e-6):
        self.low, self.high, self.stabilizer = low, high, stabilizer

    def prepare(self, model):
        if self.low is not None and self.high is not None:
            return self
        if model.spec is None:
            raise ValueError("ZBox needs low/high bounds: the model has no input spec to take them from")
        low, high = model.spec.valid_range(np.float64)                   # cast to each input's dtype below
        return ZBox(low if self.low is None else self.low, high if self.high is None else self.high,
                    self.stabilizer)

    def relevance(self, layer, x, R):
        w, b = layer.weight, layer.bias
        xp = array_module(x)
        low = xp.broadcast_to(xp.asarray(self.low, x.dtype), x.shape)     # the bounds, copied to x's device
        high = xp.broadcast_to(xp.asarray(self.high, x.dtype), x.shape)
        z1, back1 = _term(layer, x, w, b)
        z2, back2 = _term(layer, low, _pos(w), _pos(b))
        z3, back3 = _term(layer, high, _neg(w), _neg(b))
        s = R / stabilize(z1 - z2 - z3, self.stabilizer)
        return x * back1(s) - low * back2(s) - high * back3(s)


class WSquare(LRPRule):
    """LRP-w^2: relevance spread in proportion to w_ij^2, independent of the input (Montavon 2017)."""

    def __init__(self, stabilizer=1e-6):
        self.stabilizer = stabilizer

    def relevance(self, layer, x, R):
        w2, b2 = layer.weight ** 2, (layer.bias ** 2 if layer.bias is not None else None)
        z, back = _term(layer, np.ones_like(x), w2, b2)
        return back(R / stabilize(z, self.stabilizer))


class Flat(LRPRule):
    """LRP-flat: relevance spread uniformly over each output's receptive field (Lapuschkin 2019)."""

    def __init__(self, stabilizer=1e-6):
        self.stabilizer = stabilizer

    def relevance(self, layer, x, R):
        z, back = _term(layer, np.ones_like(x), np.ones_like(layer.weight), None)
        return back(R / stabilize(z, self.stabilizer))


class Pass(Rule):
    """Relevance passes unchanged through element-wise layers (activations, folded batch norm)."""

    def backward(self, layer, ctx, R):
        return R


class Norm(Rule):
    """Proportional split for layers without weights: average pooling and the residual sum.
    R_i = x_i * d/dx_i [z . R / stabilize(z)], i.e. each input gets its share of the output it fed."""

    def __init__(self, stabilizer=1e-6):
        self.stabilizer = stabilizer

    def backward(self, layer, ctx, R):
        if isinstance(layer, Add):
            s = R / stabilize(ctx.a + ctx.b, self.stabilizer)
            return ctx.a * s, ctx.b * s
        if isinstance(layer, (AvgPool2d, AdaptiveAvgPool2d)):
            z = layer(ctx.x)
            return ctx.x * layer.grad(ctx, R / stabilize(z, self.stabilizer))
        raise TypeError(f"Norm applies to Add and average pooling, not to {type(layer).__name__}")


# ---- DeepLIFT ------------------------------------------------------------------------------------------

class DeepLiftRescale(Rule):
    """DeepLIFT with the Rescale rule (Shrikumar et al. 2017).

    The model runs forward once on the batch [x; x'] (inputs and their baselines), so every layer holds
    both activations. Linear layers keep their gradient; a nonlinearity y = f(x) passes the multiplier
    m = dout * (f(x) - f(x')) / (x - x') instead of dout * f'(x) (the gradient where x ~ x').
    Max-pool gives each window's difference max(y, y') - y' to the winner in x and y - max(y, y') to the
    winner in x' (as Captum does). The backward pass carries the multipliers of the first half of the batch
    only (the baselines' half would be zeros all the way down): dout has N rows where the layers hold 2N.
    """

    def __init__(self, eps=1e-10):
        self.eps = eps

    def backward(self, layer, ctx, dout):
        if isinstance(layer, ReLU):
            return self._relu(ctx, dout)
        if isinstance(layer, MaxPool2d):
            return self._maxpool(layer, ctx, dout)
        return layer.grad(ctx, dout)

    def _rescale(self, dx, gradient, delta_out_times_dout):
        xp = array_module(dx)
        tiny = xp.abs(dx) < self.eps
        return xp.where(tiny, gradient, delta_out_times_dout / xp.where(tiny, 1, dx))

    def _relu(self, ctx, dout):
        x, x_ref = ctx.x[:len(dout)], ctx.x[len(dout):]
        dy = np.maximum(x, 0) - np.maximum(x_ref, 0)
        return self._rescale(x - x_ref, dout * (x > 0), dout * dy)

    def _maxpool(self, layer, ctx, dout):
        half_shape = (dout.shape[0], *ctx.x_shape[1:])
        n = len(dout)
        x, x_ref, arg, arg_ref = ctx.x[:n], ctx.x[n:], ctx.argmax[:n], ctx.argmax[n:]
        y, y_ref = _gather(x, arg), _gather(x_ref, arg_ref)
        top = np.maximum(y, y_ref)
        unpool = layer.unpool
        spread = unpool(dout * (top - y_ref), arg, half_shape) + unpool(dout * (y - top), arg_ref, half_shape)
        return self._rescale(x - x_ref, unpool(dout, arg, half_shape), spread)


def _gather(x, argmax):
    """The pooled values: x at the stored argmax of each window."""
    N, C = x.shape[:2]
    flat = array_module(x).take_along_axis(x.reshape(N, C, -1), argmax.reshape(N, C, -1), axis=2)
    return flat.reshape(argmax.shape)
