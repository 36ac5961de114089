"""minixai.concat: branches side by side. The backward against finite differences, the rules through the join
(LRP conserves, DeepLIFT sums to delta, guided backprop passes each branch's own signal), fusion inside
the branches, and the channel bookkeeping."""
import numpy as np
import pytest

import minixai as mx
from gradcheck import check_layer, run_layer
from minixai import composites
from minixai.concat import Concat, split_channels
from minixai.layers import AvgPool2d, BatchNorm2d, Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential
from minixai.model import Model
from minixai.rules import DeepLiftRescale, GuidedBackprop
from minixai.tape import Tape


def conv(rng, c_in, c_out, k, padding=0, bias=True):
    layer = Conv2d(c_in, c_out, k, padding=padding, bias=bias)
    layer.weight = rng.normal(0, np.sqrt(2 / (c_in * np.prod(layer.kernel_size))), layer.weight.shape)
    if bias:
        layer.bias = rng.normal(0, 0.1, c_out)
    return layer


def branches(rng, bias=True):
    """Three branches of a small Inception-like block on 3 channels: 1x1 | 1x3 -> 3x1 | avg-pool -> 1x1."""
    return ([conv(rng, 3, 2, 1, bias=bias), ReLU()],
            [conv(rng, 3, 4, (1, 3), padding=(0, 1), bias=bias), ReLU(),
             conv(rng, 4, 3, (3, 1), padding=(1, 0), bias=bias), ReLU()],
            [AvgPool2d(3, stride=1, padding=1), conv(rng, 3, 2, 1, bias=bias), ReLU()])


def block_net(seed, bias=True):
    """conv -> ReLU -> Concat -> max-pool -> dense, float64."""
    rng = np.random.default_rng(seed)
    layers = dict(stem=conv(rng, 3, 3, 3, padding=1, bias=bias), relu=ReLU(), mixed=Concat(*branches(rng, bias)),
                  pool=MaxPool2d(2), flatten=Flatten(), fc=Linear(7 * 3 * 3, 4, bias=bias))
    layers["fc"].weight = rng.normal(0, 0.3, layers["fc"].weight.shape)
    layers["fc"].bias = rng.normal(0, 0.1, 4) if bias else None
    return Model(Sequential(*layers.values(), names=list(layers)), arch="block")


def test_forward_stacks_the_branches_in_order():
    rng = np.random.default_rng(0)
    parts = branches(rng)
    x = rng.normal(size=(2, 3, 5, 6))
    expected = []
    for branch in parts:
        out = x
        for layer in branch:
            out = layer(out)
        expected.append(out)
    np.testing.assert_array_equal(Concat(*parts)(x), np.concatenate(expected, axis=1))


def test_backward_matches_finite_differences():
    check_layer(Concat(*branches(np.random.default_rng(1))), np.random.default_rng(2).normal(size=(2, 3, 4, 5)))


def test_backward_is_the_sum_of_the_branch_gradients():
    """dx = sum_b J_b^T dout_b: each part of dout through its own branch, added up."""
    rng = np.random.default_rng(3)
    parts = branches(rng)
    x = rng.normal(size=(1, 3, 4, 4))
    out, dx, _ = run_layer(Concat(*parts), x, dout=(dout := rng.normal(size=(1, 7, 4, 4))))
    expected = sum(run_layer(Sequential(*branch), x, dout=d)[1]
                   for branch, d in zip(parts, split_channels(dout, [2, 3, 2])))
    np.testing.assert_allclose(dx, expected, rtol=1e-13)


def test_nested_concat_and_channel_ranges():
    """A branch that ends in its own Concat (Inception's E block): gradient and the channel bookkeeping."""
    rng = np.random.default_rng(4)
    inner = Concat([conv(rng, 2, 3, (1, 3), padding=(0, 1))], [conv(rng, 2, 1, (3, 1), padding=(1, 0))])
    block = Concat([conv(rng, 3, 2, 1), ReLU(), inner], [MaxPool2d(3, stride=1, padding=1)])
    out = check_layer(block, rng.normal(size=(2, 3, 4, 4)))
    assert out.shape[1] == 7
    assert block.branch_channels(3) == [(0, 4), (4, 7)]
    assert inner.branch_channels(2) == [(0, 3), (3, 4)]


def test_branches_of_different_sizes_are_refused():
    rng = np.random.default_rng(5)
    block = Concat([conv(rng, 3, 2, 1)], [conv(rng, 3, 2, 3)])          # 5x5 and 3x3 maps
    with pytest.raises(ValueError, match="different sizes"):
        block(rng.normal(size=(1, 3, 5, 5)))
    with pytest.raises(ValueError, match="at least one branch"):
        Concat()
    with pytest.raises(ValueError, match="at least one layer"):
        Concat([conv(rng, 3, 2, 1)], [])


@pytest.mark.parametrize("name", ["epsilon", "epsilon_plus_flat"])
def test_lrp_conserves_relevance_across_the_branches(name):
    """No biases: the relevance at the input adds up to the explained logit, and at the join the relevance
    of the block's input adds up to that of its output, whichever branch carried it."""
    model = block_net(6, bias=False)
    x = np.random.default_rng(7).normal(size=(3, 3, 6, 6))
    R = mx.lrp(model, x, [0, 1, 2], composite=name)
    logits = model(x)
    np.testing.assert_allclose(R.sum(axis=(1, 2, 3)), logits[[0, 1, 2], [0, 1, 2]], rtol=1e-4)
    tape = model.record(x, capture=["relu", "mixed"], keep_inputs=True)
    seed = np.zeros_like(tape.output)
    seed[:, 0] = tape.output[:, 0]
    model.backward(seed, composites.get(name), tape)
    np.testing.assert_allclose(tape.grads["relu"].sum(), tape.grads["mixed"].sum(), rtol=1e-4)


def test_deeplift_sums_to_delta_through_the_join():
    model = block_net(8)
    x = np.random.default_rng(9).normal(size=(2, 3, 6, 6))
    attributions, delta = mx.deeplift(model, x, [1, 3], baseline="zeros", return_delta=True)
    assert np.abs(delta).max() <= 1e-10 * np.abs(attributions).sum()


def test_rules_reach_every_branch():
    """Guided backprop and DeepLIFT through a Concat equal the rule applied branch by branch."""
    rng = np.random.default_rng(10)
    parts = branches(rng)
    x = rng.normal(size=(1, 3, 4, 4))
    dout = rng.normal(size=(1, 7, 4, 4))
    for rule, inputs in ((GuidedBackprop(), x), (DeepLiftRescale(), np.concatenate([x, 0 * x]))):
        tape = Tape(keep_inputs=True)
        tape.forward(Concat(*parts), inputs)
        joined = tape.backward(next(iter(tape.contexts)), dout, rule)
        each = 0
        for branch, d in zip(parts, split_channels(dout, [2, 3, 2])):
            t = Tape(keep_inputs=True)
            t.forward(Sequential(*branch), inputs)
            each = each + t.backward(next(iter(t.contexts)), d, rule)
        np.testing.assert_allclose(joined, each, rtol=1e-13)


def test_fusion_fuses_inside_the_branches_and_changes_nothing():
    """Conv -> BN -> ReLU inside a branch becomes a fused unit; gradients equal the layer-by-layer ones."""
    rng = np.random.default_rng(11)
    bn = BatchNorm2d(2, eps=0.001)
    bn.weight, bn.bias = rng.uniform(0.5, 1.5, 2), rng.normal(0, 0.1, 2)
    bn.running_mean, bn.running_var = rng.normal(0, 0.1, 2), rng.uniform(0.5, 1.5, 2)
    block = Concat([conv(rng, 3, 2, 3, padding=1, bias=False), bn, ReLU()], [MaxPool2d(3, stride=1, padding=1)])
    model = Model(Sequential(block, Flatten(), Linear(5 * 16, 3), names=["mixed", "flatten", "fc"]))
    model["fc"].weight = rng.normal(size=(3, 80))
    x = rng.normal(size=(2, 3, 4, 4))
    fused_tape = model.record(x)
    assert any(type(layer).__name__ == "ConvUnit" and ctx.fused for layer, ctx in fused_tape.contexts.items())
    for method in (mx.saliency, mx.guided_backprop, mx.deconvnet):
        fused = method(model, x, [0, 2])
        with mx.unfused():
            plain = method(model, x, [0, 2])
        np.testing.assert_allclose(fused, plain, rtol=1e-12, atol=1e-14)
