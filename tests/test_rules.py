"""LRP rules against a slow matrix-form re-implementation.

Each rule is written here from its textbook formula on a dense layer z_j = sum_i x_i w_ij + b_j, with
explicit loops over inputs i and outputs j (z_ij = x_i w_ij). A Conv2d is unrolled into such a dense
matrix (built by hand from the index arithmetic of the convolution, and checked against the layer applied
to unit vectors), and average pooling likewise. Every rule of minixai.rules must match on random inputs.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minixai.layers import Add, AdaptiveAvgPool2d, AvgPool2d, Conv2d, Linear
from minixai.rules import AlphaBeta, Epsilon, Flat, Gamma, Norm, WSquare, ZBox, ZPlus
from minixai.tape import Tape


def forward(layer, *inputs):
    """(output, the layer's context) of one forward pass that keeps what LRP needs."""
    tape = Tape(keep_inputs=True)
    return tape.forward(layer, *inputs), tape.contexts[layer]


RULES = settings(max_examples=8, deadline=None)


pytestmark = pytest.mark.usefixtures("numpy_backend")      # tiny nets: the numpy kernels (conftest.py)


# ---- the rules, slowly: dense layer z_j = sum_i x_i W[j, i] + b_j -----------------------------------
def stab(z, eps):
    """z + eps sign(z), sign(0) = +1."""
    return z + eps if z >= 0 else z - eps


def slow_epsilon(x, W, b, R, eps):
    """R_i = sum_j z_ij / stab(z_j) R_j; with eps = 0 an output with z_j = 0 shares nothing (not 0/0)."""
    O, I = W.shape
    out = np.zeros(I)
    for j in range(O):
        z_j = sum(x[i] * W[j, i] for i in range(I)) + b[j]
        if stab(z_j, eps) == 0:
            continue
        for i in range(I):
            out[i] += x[i] * W[j, i] / stab(z_j, eps) * R[j]
    return out


def slow_alpha_beta(x, W, b, R, alpha, beta, eps):
    """R_i = sum_j (alpha z+_ij / stab(z+_j) - beta z-_ij / stab(z-_j)) R_j, z+-_ij = max/min(x_i w_ij, 0),
    z+-_j = sum_i z+-_ij + max/min(b_j, 0). alpha=1, beta=0 is z+."""
    O, I = W.shape
    out = np.zeros(I)
    for j in range(O):
        zp = sum(max(x[i] * W[j, i], 0) for i in range(I)) + max(b[j], 0)
        zn = sum(min(x[i] * W[j, i], 0) for i in range(I)) + min(b[j], 0)
        for i in range(I):
            z_ij = x[i] * W[j, i]
            out[i] += (alpha * max(z_ij, 0) / stab(zp, eps) - beta * min(z_ij, 0) / stab(zn, eps)) * R[j]
    return out


def slow_gamma(x, W, b, R, gamma, eps):
    """Generalised gamma (Zennit >= 0.5): an output with z_j > 0 shares R_j in proportion to
    z_ij + gamma max(z_ij, 0) (bias b_j + gamma max(b_j, 0)); one with z_j < 0 in proportion to
    z_ij + gamma min(z_ij, 0); z_j = 0 passes nothing. For x >= 0 this is Montavon's w + gamma w+."""
    O, I = W.shape
    out = np.zeros(I)
    for j in range(O):
        z_j = sum(x[i] * W[j, i] for i in range(I)) + b[j]
        if z_j == 0:
            continue
        lift = (lambda v: max(v, 0)) if z_j > 0 else (lambda v: min(v, 0))
        denominator = sum(x[i] * W[j, i] + gamma * lift(x[i] * W[j, i]) for i in range(I)) + b[j] + gamma * lift(b[j])
        for i in range(I):
            out[i] += (x[i] * W[j, i] + gamma * lift(x[i] * W[j, i])) / stab(denominator, eps) * R[j]
    return out


def slow_zbox(x, W, b, R, low, high, eps):
    """z_ij = x_i w_ij - l_i max(w_ij, 0) - h_i min(w_ij, 0); the biases b - b+ - b- cancel."""
    O, I = W.shape
    out = np.zeros(I)
    for j in range(O):
        z = [x[i] * W[j, i] - low[i] * max(W[j, i], 0) - high[i] * min(W[j, i], 0) for i in range(I)]
        z_j = sum(z) + b[j] - max(b[j], 0) - min(b[j], 0)
        for i in range(I):
            out[i] += z[i] / stab(z_j, eps) * R[j]
    return out


def slow_wsquare(W, b, R, eps):
    """R_i = sum_j w_ij^2 / stab(sum_i w_ij^2 + b_j^2) R_j (independent of x)."""
    O, I = W.shape
    out = np.zeros(I)
    for j in range(O):
        z_j = sum(W[j, i] ** 2 for i in range(I)) + b[j] ** 2
        for i in range(I):
            out[i] += W[j, i] ** 2 / stab(z_j, eps) * R[j]
    return out


def slow_flat(connected, R, eps):
    """R_i = sum_j [i feeds j] / stab(#inputs of j) R_j."""
    O, I = connected.shape
    out = np.zeros(I)
    for j in range(O):
        count = sum(connected[j, i] for i in range(I))
        for i in range(I):
            out[i] += connected[j, i] / stab(count, eps) * R[j]
    return out


def slow_rule(rule, x, W, b, R, connected=None):
    """The slow form of `rule` on one sample (x: (I,), W: (O, I), b: (O,), R: (O,))."""
    if isinstance(rule, Epsilon):
        return slow_epsilon(x, W, b, R, rule.epsilon)
    if isinstance(rule, ZPlus):
        return slow_alpha_beta(x, W, b, R, 1.0, 0.0, rule.stabilizer)
    if isinstance(rule, AlphaBeta):
        return slow_alpha_beta(x, W, b, R, rule.alpha, rule.beta, rule.stabilizer)
    if isinstance(rule, Gamma):
        return slow_gamma(x, W, b, R, rule.gamma, rule.stabilizer)
    if isinstance(rule, ZBox):
        return slow_zbox(x, W, b, R, np.full(x.shape, rule.low), np.full(x.shape, rule.high), rule.stabilizer)
    if isinstance(rule, WSquare):
        return slow_wsquare(W, b, R, rule.stabilizer)
    if isinstance(rule, Flat):
        return slow_flat(connected, R, rule.stabilizer)
    raise TypeError(rule)


KINDS = ["epsilon", "zplus", "alphabeta", "gamma", "zbox", "wsquare", "flat"]


@st.composite
def lrp_rules(draw, kind):
    """A rule of that kind with drawn parameters; stabilizers large enough that their sign convention matters."""
    eps = draw(st.sampled_from([1e-6, 0.05, 0.5]))
    if kind == "epsilon":
        return Epsilon(draw(st.sampled_from([0.0, 1e-6, 0.1, 1.0])))
    if kind == "zplus":
        return ZPlus(eps)
    if kind == "alphabeta":
        alpha = draw(st.sampled_from([1.0, 2.0, 3.0]))
        return AlphaBeta(alpha, alpha - 1, eps)
    if kind == "gamma":
        return Gamma(draw(st.sampled_from([0.0, 0.25, 1.0, 10.0])), eps)
    if kind == "zbox":
        low = -draw(st.floats(0.5, 3.0))
        return ZBox(low, low + draw(st.floats(0.5, 4.0)), eps)
    return WSquare(eps) if kind == "wsquare" else Flat(eps)


def random_x(rng, shape, rule):
    """Standard normal; for ZBox inside the box, away from its walls (at a wall z_ij = 0 in exact arithmetic
    and the rule divides rounding noise by a tiny z_j, which no tolerance can compare)."""
    if isinstance(rule, ZBox):
        return rule.low + (rule.high - rule.low) * rng.uniform(0.1, 0.9, shape)
    return rng.standard_normal(shape)


# ---- Linear ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
@RULES
@given(st.data(), st.integers(1, 6), st.integers(1, 6), st.booleans(), st.integers(0, 2**32 - 1))
def test_rule_on_linear_matches_slow_form(kind, data, n_in, n_out, bias, seed):
    rule = data.draw(lrp_rules(kind))
    rng = np.random.default_rng(seed)
    layer = Linear(n_in, n_out, bias=bias)
    layer.weight = rng.standard_normal((n_out, n_in))
    layer.bias = rng.standard_normal(n_out) if bias else None
    x = random_x(rng, (2, n_in), rule)
    _, ctx = forward(layer, x)
    R = rng.standard_normal((2, n_out))
    got = rule.backward(layer, ctx, R)
    b = layer.bias if bias else np.zeros(n_out)
    connected = np.ones((n_out, n_in))
    expected = np.stack([slow_rule(rule, x[n], layer.weight, b, R[n], connected) for n in range(2)])
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


# ---- Conv2d, unrolled ------------------------------------------------------------------------------
def dense_conv(layer, weight, in_shape):
    """The matrix M (K*H'*W', C*H*W) with conv(x) = M x.ravel(): entry ((k,i,j), (c,y,x)) is
    weight[k,c,r,s] where y = i*S - P + r*D, x = j*S - P + s*D (zero padding: no entry)."""
    C, H, W = in_shape
    K, _, R, S = weight.shape
    (sh, sw), (ph, pw), (dh, dw) = layer.stride, layer.padding, layer.dilation
    OH, OW = (H + 2 * ph - dh * (R - 1) - 1) // sh + 1, (W + 2 * pw - dw * (S - 1) - 1) // sw + 1
    M = np.zeros((K, OH, OW, C, H, W))
    for k in range(K):
        for i in range(OH):
            for j in range(OW):
                for c in range(C):
                    for r in range(R):
                        for s in range(S):
                            y, x = i * sh - ph + r * dh, j * sw - pw + s * dw
                            if 0 <= y < H and 0 <= x < W:
                                M[k, i, j, c, y, x] += weight[k, c, r, s]
    return M.reshape(K * OH * OW, C * H * W), (K, OH, OW)


@st.composite
def convs(draw):
    C, K = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    R, S = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride, dilation = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    padding = draw(st.integers(0, 1))
    H = draw(st.integers(max(1, dilation * (R - 1) + 1 - 2 * padding), 5))
    W = draw(st.integers(max(1, dilation * (S - 1) + 1 - 2 * padding), 5))
    layer = Conv2d(C, K, (R, S), stride=stride, padding=padding, dilation=dilation, bias=draw(st.booleans()))
    return layer, (C, H, W)


@settings(max_examples=15, deadline=None)
@given(convs(), st.integers(0, 2**32 - 1))
def test_dense_conv_matches_the_layer_on_unit_vectors(conv, seed):
    layer, shape = conv
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal(layer.weight.shape)
    M, _ = dense_conv(layer, weight, shape)
    I = int(np.prod(shape))
    units = np.eye(I).reshape(I, *shape)
    np.testing.assert_allclose(layer.apply(units, weight).reshape(I, -1).T, M, atol=1e-14)


@pytest.mark.parametrize("kind", KINDS)
@RULES
@given(st.data(), convs(), st.integers(0, 2**32 - 1))
def test_rule_on_conv2d_matches_slow_form(kind, data, conv, seed):
    rule = data.draw(lrp_rules(kind))
    layer, shape = conv
    rng = np.random.default_rng(seed)
    layer.weight = rng.standard_normal(layer.weight.shape)
    layer.bias = rng.standard_normal(layer.out_channels) if layer.bias is not None else None
    x = random_x(rng, (2, *shape), rule)
    out, ctx = forward(layer, x)
    R = rng.standard_normal(out.shape)
    got = rule.backward(layer, ctx, R)
    W, (K, OH, OW) = dense_conv(layer, layer.weight, shape)
    connected, _ = dense_conv(layer, np.ones_like(layer.weight), shape)
    b = np.repeat(layer.bias if layer.bias is not None else np.zeros(K), OH * OW)
    expected = np.stack([slow_rule(rule, x[n].ravel(), W, b, R[n].ravel(), connected) for n in range(2)])
    np.testing.assert_allclose(got.reshape(2, -1), expected, rtol=1e-9, atol=1e-12)


# ---- Norm: residual sum and average pooling ---------------------------------------------------------
@RULES
@given(st.sampled_from([1e-6, 0.1, 1.0]), st.integers(0, 2**32 - 1))
def test_norm_on_add_matches_slow_form(eps, seed):
    rng = np.random.default_rng(seed)
    a, b, R = (rng.standard_normal((2, 3, 4, 4)) for _ in range(3))
    layer = Add()
    _, ctx = forward(layer, a, b)
    Ra, Rb = Norm(eps).backward(layer, ctx, R)
    expected_a, expected_b = np.zeros_like(a), np.zeros_like(b)
    for i in np.ndindex(a.shape):
        expected_a[i] = a[i] / stab(a[i] + b[i], eps) * R[i]
        expected_b[i] = b[i] / stab(a[i] + b[i], eps) * R[i]
    np.testing.assert_allclose(Ra, expected_a, rtol=1e-12)
    np.testing.assert_allclose(Rb, expected_b, rtol=1e-12)


def dense_avgpool(kernel, stride, padding, in_shape):
    """AvgPool2d as a matrix, zero padding counted (1 / (R*S) for every tap inside the image)."""
    C, H, W = in_shape
    (R, S), (sh, sw), (ph, pw) = kernel, stride, padding
    OH, OW = (H + 2 * ph - R) // sh + 1, (W + 2 * pw - S) // sw + 1
    M = np.zeros((C, OH, OW, C, H, W))
    for c, i, j, r, s in np.ndindex(C, OH, OW, R, S):
        y, x = i * sh - ph + r, j * sw - pw + s
        if 0 <= y < H and 0 <= x < W:
            M[c, i, j, c, y, x] += 1 / (R * S)
    return M.reshape(C * OH * OW, C * H * W)


def dense_adaptive_avgpool(size, in_shape):
    """AdaptiveAvgPool2d as a matrix: window [floor(iH/h), ceil((i+1)H/h)) x [...], weights 1/area."""
    C, H, W = in_shape
    h, w = size
    M = np.zeros((C, h, w, C, H, W))
    for c, i, j in np.ndindex(C, h, w):
        rows = range(int(np.floor(i * H / h)), int(np.ceil((i + 1) * H / h)))
        cols = range(int(np.floor(j * W / w)), int(np.ceil((j + 1) * W / w)))
        for y in rows:
            for x in cols:
                M[c, i, j, c, y, x] = 1 / (len(rows) * len(cols))
    return M.reshape(C * h * w, C * H * W)


@st.composite
def avg_pools(draw):
    C, H, W = draw(st.integers(1, 2)), draw(st.integers(2, 6)), draw(st.integers(2, 6))
    if draw(st.booleans()):
        size = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        return AdaptiveAvgPool2d(size), dense_adaptive_avgpool(size, (C, H, W)), (C, H, W)
    k = draw(st.integers(1, 3))
    k = min(k, H, W)
    stride, padding = draw(st.integers(1, 2)), draw(st.integers(0, k // 2))
    return AvgPool2d(k, stride, padding), dense_avgpool((k, k), (stride, stride), (padding, padding), (C, H, W)), (C, H, W)


@RULES
@given(avg_pools(), st.sampled_from([1e-6, 0.1]), st.booleans(), st.integers(0, 2**32 - 1))
def test_norm_on_average_pooling_matches_slow_form(pool, eps, positive, seed):
    layer, M, shape = pool
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, *shape))
    x = np.abs(x) if positive else x
    out, ctx = forward(layer, x)
    np.testing.assert_allclose(out.reshape(2, -1), x.reshape(2, -1) @ M.T, atol=1e-14)   # the matrix is the pool
    R = rng.standard_normal(out.shape)
    got = Norm(eps).backward(layer, ctx, R)
    zero_bias = np.zeros(M.shape[0])
    expected = np.stack([slow_epsilon(x[n].ravel(), M, zero_bias, R[n].ravel(), eps) for n in range(2)])
    np.testing.assert_allclose(got.reshape(2, -1), expected, rtol=1e-9, atol=1e-12)


def test_stabilizer_sign_of_zero_is_plus_and_gamma_passes_nothing_at_zero():
    """An output with z = 0 exactly (x = (1, 1), w = (1, -1)): epsilon divides by +eps (sign(0) = +1, as in
    Zennit), so R = (R_j / eps, -R_j / eps); gamma explains only outputs with z > 0 or z < 0."""
    layer = Linear(2, 1, bias=False)
    layer.weight = np.array([[1.0, -1.0]])
    _, ctx = forward(layer, np.ones((1, 2)))
    R = np.array([[2.0]])
    np.testing.assert_allclose(Epsilon(0.5).backward(layer, ctx, R), [[4.0, -4.0]])
    np.testing.assert_array_equal(Gamma(0.25).backward(layer, ctx, R), [[0.0, 0.0]])
    np.testing.assert_array_equal(Epsilon(0.0).backward(layer, ctx, np.zeros((1, 1))), [[0.0, 0.0]])   # 0/0 -> 0


def test_alpha_beta_refuses_alpha_minus_beta_not_one():
    with pytest.raises(ValueError, match="alpha - beta = 1"):
        AlphaBeta(2.0, 2.0)
