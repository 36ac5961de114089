"""Attribution axioms as hypothesis properties on small random ReLU CNNs (float64, numpy backend).

The networks are drawn by hypothesis (sizes, strides, pooling, seed of the weights). Expected values never
come from the code under test: scores F(x) come from `reference_forward`, a NumPy forward written in
random_nets.py from the layer definitions; the rest from hand formulas (CAM, the gradient of a linear model,
the rules' definitions of guided backprop and DeconvNet). Integrated Gradients completeness: test_axioms_ig.py.
"""
import copy

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import minixai as mx
from minixai.layers import AdaptiveAvgPool2d, AvgPool2d, Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential
from minixai.methods.integrated import METHODS as IG_METHODS
from minixai.rules import DeconvNet, GuidedBackprop, Pass, ZPlus
from random_nets import (FEW, SOME, inputs, randomize, reference_forward, relu_cnns, residual_cnns, score,
                         sequential_model)

pytestmark = pytest.mark.usefixtures("numpy_backend")      # tiny nets: the numpy kernels (conftest.py)


# ---- DeepLIFT: summation to delta ------------------------------------------------------------------
def check_summation_to_delta(model, x, baseline, target):
    a, delta = mx.deeplift(model, x, target, baseline=baseline, return_delta=True)
    dF = score(model, x, target) - score(model, baseline, target)
    np.testing.assert_allclose(a.sum(axis=(1, 2, 3)), dF, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(delta, 0, atol=1e-9 * (1 + np.abs(dF).max()))


@SOME
@given(relu_cnns(), st.booleans())
def test_deeplift_sums_to_delta(net, zero_baseline):
    model, rng, shape = net
    x = inputs(rng, shape)
    baseline = np.zeros_like(x) if zero_baseline else inputs(rng, shape)
    check_summation_to_delta(model, x, baseline, rng.integers(0, model.num_outputs, size=2))


@FEW
@given(residual_cnns(bias=True), st.booleans())
def test_deeplift_sums_to_delta_with_residual_blocks(net, zero_baseline):
    model, rng, shape = net
    x = inputs(rng, shape)
    baseline = np.zeros_like(x) if zero_baseline else inputs(rng, shape)
    check_summation_to_delta(model, x, baseline, int(rng.integers(0, 3)))


def test_deeplift_sums_to_delta_through_average_pooling():
    """Average pooling is linear: its gradient carries the multipliers (for the inputs' half of the batch)."""
    rng = np.random.default_rng(5)
    model = randomize(sequential_model([("conv1", Conv2d(2, 3, 3, padding=1)), ("relu1", ReLU()),
                                        ("avg", AvgPool2d(2)), ("conv2", Conv2d(3, 2, 1)), ("relu2", ReLU()),
                                        ("flatten", Flatten()), ("fc", Linear(2 * 3 * 3, 2))]), rng)
    x, baseline = inputs(rng, (2, 6, 6)), inputs(rng, (2, 6, 6))
    check_summation_to_delta(model, x, baseline, np.array([0, 1]))


def test_deeplift_max_pool_gives_the_window_difference_to_both_winners():
    """One 2x2 window, F = its maximum. x wins at (0, 0) with y = 1, x' at (0, 1) with y' = 3: the x-winner
    gets max(y, y') - y' = 0, the x'-winner y - max(y, y') = -2 (Shrikumar 2017 as Captum implements it)."""
    model = sequential_model([("pool", MaxPool2d(2)), ("flatten", Flatten()), ("fc", Linear(1, 1))])
    model["fc"].weight, model["fc"].bias = np.ones((1, 1)), np.zeros(1)
    x = np.array([[[[1.0, 0.0], [0.0, 0.0]]]])
    baseline = np.array([[[[0.0, 3.0], [0.0, 0.0]]]])
    np.testing.assert_allclose(mx.deeplift(model, x, 0, baseline=baseline), [[[[0.0, -2.0], [0.0, 0.0]]]])
    # and the other way round: y = 3 > y' = 1, each winner gets its share of the rise
    np.testing.assert_allclose(mx.deeplift(model, baseline, 0, baseline=x), [[[[0.0, 2.0], [0.0, 0.0]]]])


# ---- LRP: conservation ------------------------------------------------------------------------------
def logit(model, x, target):
    return reference_forward(model, x)[np.arange(len(x)), target]


def lrp0():
    """LRP-0 with nothing stabilised: composites.epsilon(0.0) still divides by z + 1e-12 sign(z) in the
    average pools, an error of 1e-12 / z that reaches 1e-6 when a pooled window holds only tiny values."""
    return mx.composites.Composite([(ReLU, Pass()), (AdaptiveAvgPool2d, mx.rules.Norm(1e-300)),
                                    ((Conv2d, Linear), mx.rules.Epsilon(0.0))])


@SOME
@given(relu_cnns(bias=False), st.sampled_from([0.0, 1e-12]))
def test_lrp_epsilon_conserves_relevance_without_bias(net, epsilon):
    model, rng, shape = net
    x = inputs(rng, shape)
    target = rng.integers(0, model.num_outputs, size=2)
    expected = logit(model, x, target)
    R = mx.lrp(model, x, target, composite=mx.composites.epsilon(epsilon))
    np.testing.assert_allclose(R.sum(axis=(1, 2, 3)), expected, rtol=1e-6, atol=1e-12)
    R = mx.lrp(model, x, target, composite=lrp0())
    np.testing.assert_allclose(R.sum(axis=(1, 2, 3)), expected, rtol=1e-9, atol=1e-12)


@SOME
@given(relu_cnns(bias=False))
def test_lrp0_equals_gradient_times_input_without_bias(net):
    """On a bias-free ReLU net, R_i = x_i sum_j w_ij R_j / z_j telescopes to x_i dF/dx_i."""
    model, rng, shape = net
    x = inputs(rng, shape)
    target = rng.integers(0, model.num_outputs, size=2)
    R = mx.lrp(model, x, target, composite=lrp0())
    np.testing.assert_allclose(R, x * mx.saliency(model, x, target), rtol=1e-8, atol=1e-12)


@SOME
@given(relu_cnns(bias=False))
def test_zplus_conserves_relevance_on_positive_inputs(net):
    """z+ everywhere, positive inputs, no bias: every neuron that carries relevance has a positive
    contribution except possibly the explained logit itself, which the test requires."""
    model, rng, shape = net
    x = inputs(rng, shape, positive=True)
    target = rng.integers(0, model.num_outputs, size=2)
    head = Sequential(*list(model.root.layers.values())[:-1])
    fc = model["fc"]
    positive_part = (reference_forward(head, x) * np.maximum(fc.weight[target], 0)).sum(axis=1)
    assume((positive_part > 1e-6).all())
    rule = mx.composites.Composite([(ReLU, Pass()), (AdaptiveAvgPool2d, mx.rules.Norm(1e-15)),
                                    ((Conv2d, Linear), ZPlus(stabilizer=1e-15))])
    R = mx.lrp(model, x, target, composite=rule)
    np.testing.assert_allclose(R.sum(axis=(1, 2, 3)), logit(model, x, target), rtol=1e-8, atol=1e-12)
    assert (R >= 0).all() or (logit(model, x, target) < 0).any()


# ---- degenerate cases that must line up (STYLE.md, point 6) --------------------------------------------
@st.composite
def linear_models(draw):
    """Flatten + Linear: F(x) = W x + b, gradient W[target] (reshaped), by hand."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    n_out = draw(st.integers(1, 4))
    model = sequential_model([("flatten", Flatten()), ("fc", Linear(int(np.prod(shape)), n_out))])
    return randomize(model, rng), rng, shape


@SOME
@given(linear_models(), st.sampled_from(IG_METHODS), st.integers(2, 30))
def test_ig_of_linear_model_is_gradient_times_difference(net, method, steps):
    model, rng, shape = net
    x, baseline = inputs(rng, shape), inputs(rng, shape)
    target = rng.integers(0, model.num_outputs, size=2)
    gradient = model["fc"].weight[target].reshape(x.shape)
    np.testing.assert_allclose(mx.saliency(model, x, target), gradient, rtol=1e-12, atol=1e-15)
    a, delta = mx.integrated_gradients(model, x, target, baseline=baseline, steps=steps, method=method,
                                       return_delta=True, progress=False)
    np.testing.assert_allclose(a, gradient * (x - baseline), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(delta, 0, atol=1e-10)


@FEW
@given(relu_cnns(), st.integers(1, 5))
def test_smoothgrad_with_zero_sigma_is_saliency(net, n):
    model, rng, shape = net
    x = inputs(rng, shape)
    target = rng.integers(0, model.num_outputs, size=2)
    smooth = mx.smoothgrad(model, x, target, n=n, sigma=0.0, seed=3, progress=False)
    np.testing.assert_allclose(smooth, mx.saliency(model, x, target), rtol=1e-12, atol=1e-15)


def equivalent_copies(model, rng):
    """Two nets computing the same function with other parameters: conv1's filters permuted (and conv2's
    input channels with them), or rescaled by c_k > 0 with conv2's inputs divided by c_k (ReLU and max-pool
    commute with both)."""
    c1 = model["conv1"].out_channels
    perm, scale = rng.permutation(c1), rng.uniform(0.2, 5.0, c1)
    permuted, rescaled = copy.deepcopy(model), copy.deepcopy(model)
    for net, conv1_map, conv2_map in ((permuted, lambda a: a[perm], lambda w: w[:, perm]),
                                      (rescaled, lambda a: (a.T * scale).T, lambda w: w / scale[:, None, None])):
        net["conv1"].weight = conv1_map(model["conv1"].weight)
        net["conv1"].bias = conv1_map(model["conv1"].bias)
        net["conv2"].weight = conv2_map(model["conv2"].weight)
    return permuted, rescaled


@FEW
@given(relu_cnns())
def test_implementation_invariance(net):
    model, rng, shape = net
    x, baseline = inputs(rng, shape), inputs(rng, shape)
    target = rng.integers(0, model.num_outputs, size=2)
    ig = dict(baseline=baseline, steps=20, progress=False)
    expected_ig, expected_grad = mx.integrated_gradients(model, x, target, **ig), mx.saliency(model, x, target)
    for other in equivalent_copies(model, rng):
        np.testing.assert_allclose(reference_forward(other, x), reference_forward(model, x), rtol=1e-10)
        np.testing.assert_allclose(mx.integrated_gradients(other, x, target, **ig), expected_ig,
                                   rtol=1e-7, atol=1e-11)
        np.testing.assert_allclose(mx.saliency(other, x, target), expected_grad, rtol=1e-7, atol=1e-11)


@FEW
@given(relu_cnns(outputs=2), st.sampled_from(IG_METHODS))
def test_ig_is_linear_in_the_output(net, method):
    """IG of F_0 + F_1 (target=None on a 2-output net) = IG of F_0 + IG of F_1."""
    model, rng, shape = net
    x, baseline = inputs(rng, shape), inputs(rng, shape)
    ig = dict(baseline=baseline, steps=12, method=method, progress=False)
    both, delta = mx.integrated_gradients(model, x, None, return_delta=True, **ig)
    parts = mx.integrated_gradients(model, x, 0, **ig) + mx.integrated_gradients(model, x, 1, **ig)
    np.testing.assert_allclose(both, parts, rtol=1e-9, atol=1e-12)
    dF = score(model, x, None) - score(model, baseline, None)
    np.testing.assert_allclose(delta, both.sum(axis=(1, 2, 3)) - dF, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(mx.saliency(model, x, None),
                               mx.saliency(model, x, 0) + mx.saliency(model, x, 1), rtol=1e-9, atol=1e-12)


@SOME
@given(relu_cnns(), st.data())
def test_sensitivity(net, data):
    """x and x' differ in one feature and F(x) != F(x'): that feature gets non-zero attribution (IG, and
    exactly F(x) - F(x') for DeepLIFT), the other features none."""
    model, rng, shape = net
    baseline = inputs(rng, shape, n=1)
    i = tuple(data.draw(st.integers(0, d - 1)) for d in shape)
    x = baseline.copy()
    x[(0, *i)] += data.draw(st.sampled_from([-3.0, -1.0, 1.0, 3.0]))
    dF = (score(model, x, 0) - score(model, baseline, 0))[0]
    assume(abs(dF) > 1e-6)
    others = np.ones(x.shape, bool)
    others[(0, *i)] = False
    ig = mx.integrated_gradients(model, x, 0, baseline=baseline, steps=64, progress=False)
    deeplift = mx.deeplift(model, x, 0, baseline=baseline)
    for a in (ig, deeplift):
        assert a[(0, *i)] != 0
        assert (a[others] == 0).all()
    assert np.isclose(deeplift[(0, *i)], dF, rtol=1e-9, atol=1e-12)


# ---- guided backprop and DeconvNet: what each ReLU sends down --------------------------------------
def recording(rule_class):
    class Recording(rule_class):
        """Records (mask, signal arriving, signal returned) at every ReLU."""

        def __init__(self):
            self.seen = []

        def backward(self, layer, ctx, dout):
            out = super().backward(layer, ctx, dout)
            if isinstance(layer, ReLU):
                self.seen.append((layer.name, ctx.out > 0, dout.copy(), out.copy()))
            return out
    return Recording()


def run_rule(model, x, target, rule):
    logits = model(x)
    seed = np.zeros_like(logits)
    seed[np.arange(len(x)), target] = 1
    return model.backward(seed, rule)


@SOME
@given(relu_cnns())
def test_guided_backprop_relus_pass_only_positive_signals_where_active(net):
    model, rng, shape = net
    x = inputs(rng, shape)
    target = rng.integers(0, model.num_outputs, size=2)
    rule = recording(GuidedBackprop)
    result = run_rule(model, x, target, rule)
    np.testing.assert_array_equal(result, mx.guided_backprop(model, x, target))
    relus = [name for name, layer in model.named_layers() if isinstance(layer, ReLU)]
    assert [name for name, *_ in rule.seen] == relus[::-1]
    for name, mask, dout, out in rule.seen:
        assert (out >= 0).all(), name
        np.testing.assert_array_equal(out, np.where(mask & (dout > 0), dout, 0))


@SOME
@given(relu_cnns())
def test_deconvnet_relus_rectify_the_signal_and_ignore_the_mask(net):
    model, rng, shape = net
    x = inputs(rng, shape)
    target = rng.integers(0, model.num_outputs, size=2)
    rule = recording(DeconvNet)
    np.testing.assert_array_equal(run_rule(model, x, target, rule), mx.deconvnet(model, x, target))
    for name, mask, dout, out in rule.seen:
        assert (out >= 0).all(), name
        np.testing.assert_array_equal(out, np.maximum(dout, 0))       # whatever the mask was


def test_deconvnet_passes_through_a_dead_relu_where_gradient_and_guided_stop():
    rng = np.random.default_rng(0)
    model = randomize(sequential_model([("conv1", Conv2d(2, 3, 3, padding=1)), ("relu1", ReLU()),
                                        ("conv2", Conv2d(3, 2, 3, padding=1)), ("relu2", ReLU()),
                                        ("gap", AdaptiveAvgPool2d(1)), ("flatten", Flatten()),
                                        ("fc", Linear(2, 2))]), rng)
    model["conv1"].bias = np.full(3, -100.0)                              # relu1 is dead for these inputs
    x = inputs(rng, (2, 5, 5))
    assert not model.activations(x, ["relu1"])["relu1"].any()
    assert not mx.saliency(model, x, 0).any() and not mx.guided_backprop(model, x, 0).any()
    assert np.abs(mx.deconvnet(model, x, 0)).sum() > 0


# ---- Grad-CAM on a GAP + linear head is CAM (Zhou 2016) ----------------------------------------------
@SOME
@given(relu_cnns(gap=1, hidden=0), st.booleans())
def test_gradcam_on_last_conv_relu_equals_cam(net, relu):
    """y_c = sum_k w_ck mean_ij A_kij + b_c, so alpha_k = w_ck / (h w) and Grad-CAM = sum_k w_ck A_k / (h w)."""
    model, rng, shape = net
    x = inputs(rng, shape)
    target = rng.integers(0, model.num_outputs, size=2)
    names = model.layer_names()
    A = reference_forward(Sequential(*[model[n] for n in names[:names.index("relu2") + 1]]), x)
    h, w = A.shape[2:]
    cam = np.einsum("nk,nkij->nij", model["fc"].weight[target], A) / (h * w)
    got = mx.gradcam(model, x, target, layer="relu2", upsample=False, relu=relu)
    np.testing.assert_allclose(got, np.maximum(cam, 0) if relu else cam, rtol=1e-10, atol=1e-13)
    # relu2 is also the default layer: the last one before the pooling and flattening
    np.testing.assert_array_equal(mx.gradcam(model, x, target, upsample=False, relu=relu), got)
