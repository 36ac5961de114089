"""Fusion (minixai.fusion) changes how fast a pass runs, never what it computes.

- fused == unfused for every built-in rule and composite, on every architecture, in float64 (1e-12) and float32
  (rounding), and the fused kernels really ran;
- the line in rules.py is what runs: a rule replaced at run time (on the class or an instance), a subclass,
  or a rule whose code no longer matches its kernel (an edited rules.py) runs layer by layer;
- capturing an output inside a fused unit, keeping inputs, the reference backend and ``mx.unfused()`` all
  run the layers one by one.
"""
import numpy as np
import pytest

import minixai as mx
from minixai import fusion, models
from minixai.layers import BatchNorm2d, Conv2d, ReLU, Sequential
from minixai.rules import GuidedBackprop

ARCHS = ["shapes", "vgg11", "vgg16", "alexnet", "resnet18", "resnet34", "resnet50", "inception_v3"]
SIZE = {"shapes": 64, "vgg11": 32, "vgg16": 32, "alexnet": 64, "resnet18": 64, "resnet34": 64, "resnet50": 64,
        "inception_v3": 75}
COMPOSITES = ["epsilon_plus_flat", "epsilon_gamma_box", "epsilon_alpha2_beta1", "epsilon"]
METHODS = {
    "gradient": mx.saliency,
    "guided backprop": mx.guided_backprop,
    "deconvnet": mx.deconvnet,
    "deeplift": mx.deeplift,
    **{f"lrp {name}": (lambda model, x, t, name=name: mx.lrp(model, x, t, composite=name)) for name in COMPOSITES},
}


def random_model(arch, dtype):
    """The architecture with seeded random weights and random batch-norm statistics (so that folding a batch
    norm into the convolution's epilogue is not the identity)."""
    model = models.load(arch, weights=None if arch != "shapes" else "pretrained", seed=0)
    rng = np.random.default_rng(1)
    for _, layer in model.named_layers():
        if isinstance(layer, BatchNorm2d):
            n = layer.num_features
            layer.weight, layer.bias = rng.uniform(0.5, 1.5, n), rng.normal(0, 0.1, n)
            layer.running_mean, layer.running_var = rng.normal(0, 0.1, n), rng.uniform(0.5, 1.5, n)
    return model.astype(dtype)


@pytest.fixture(scope="module", params=ARCHS)
def arch(request):
    return request.param


@pytest.fixture(scope="module")
def cases(arch):
    """{dtype: (model, x, targets)} for one architecture."""
    out = {}
    for dtype in (np.float64, np.float32):
        model = random_model(arch, dtype)
        x = np.random.default_rng(2).standard_normal((2, 3, SIZE[arch], SIZE[arch])).astype(dtype)
        out[dtype] = model, x, [1, 3]
    return out


def relative_difference(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("method", list(METHODS))
def test_fused_equals_unfused(cases, method, dtype, monkeypatch):
    model, x, targets = cases[dtype]
    calls = []
    real = fusion.ConvUnit.fused_backward
    monkeypatch.setattr(fusion.ConvUnit, "fused_backward",
                        lambda self, *args: calls.append(1) or real(self, *args))
    fused = METHODS[method](model, x, targets)
    with mx.unfused():
        plain = METHODS[method](model, x, targets)
    assert fused.dtype == plain.dtype == dtype
    if method in ("gradient", "guided backprop", "deconvnet"):
        assert calls, "the fused backward kernel never ran"
    else:
        assert not calls, "DeepLIFT and LRP must run their rules layer by layer"
    if dtype == np.float64:
        np.testing.assert_allclose(fused, plain, rtol=1e-12, atol=1e-12 * np.abs(plain).max())
    else:
        assert relative_difference(fused, plain) < 1e-4


def test_fused_forward_ran_and_gave_the_same_logits(cases):
    model, x, _ = cases[np.float64]
    tape = model.record(x)
    units = [ctx for layer, ctx in tape.contexts.items() if isinstance(layer, fusion.ConvUnit)]
    assert units and all(ctx.fused for ctx in units)
    with mx.unfused():
        plain = model.record(x)
    assert not any(isinstance(layer, fusion.ConvUnit) for layer in plain.contexts)
    np.testing.assert_allclose(tape.output, plain.output, rtol=1e-12, atol=1e-12 * np.abs(plain.output).max())


# ---- the line in rules.py is what runs ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def vgg16():
    model = models.vgg16(seed=0)
    x = np.random.default_rng(3).standard_normal((1, 3, 64, 64)).astype(np.float32)
    return model, x


def passes_magnitudes(self, layer, ctx, dout):
    """Guided backprop with its ReLU line changed: |dout| instead of max(dout, 0)."""
    if isinstance(layer, ReLU):
        return layer.grad(ctx, np.abs(dout))
    return layer.grad(ctx, dout)


def test_every_table_rule_matches_its_kernel():
    """Unchanged, each rule of the table passes the check that decides whether its kernel may run."""
    for rule, step in fusion.FUSED_RULES.items():
        assert fusion.relu_step(rule()) == step


def test_a_rule_replaced_at_run_time_runs_as_written(vgg16, monkeypatch):
    model, x = vgg16
    before = mx.guided_backprop(model, x, 5)
    monkeypatch.setattr(GuidedBackprop, "backward", passes_magnitudes)
    after = mx.guided_backprop(model, x, 5)
    assert relative_difference(after, before) > 0.1, "the edit changed nothing"
    with mx.unfused():
        np.testing.assert_array_equal(mx.guided_backprop(model, x, 5), after)
    monkeypatch.undo()
    np.testing.assert_array_equal(mx.guided_backprop(model, x, 5), before)


def test_a_rule_replaced_on_the_instance_or_subclassed_runs_as_written(vgg16):
    model, x = vgg16
    rule = GuidedBackprop()
    rule.backward = passes_magnitudes.__get__(rule)

    class Magnitudes(GuidedBackprop):
        backward = passes_magnitudes

    seed = np.zeros((1, 1000), np.float32)
    seed[0, 5] = 1
    ours = model.backward(seed, rule, model.record(x))
    subclass = model.backward(seed, Magnitudes(), model.record(x))
    with mx.unfused():
        expected = model.backward(seed, rule, model.record(x))
    np.testing.assert_array_equal(ours, expected)
    np.testing.assert_array_equal(subclass, expected)
    assert fusion.relu_step(rule) is None and fusion.relu_step(Magnitudes()) is None


def test_an_edited_rule_is_noticed_and_runs_as_written(vgg16, monkeypatch):
    """As if rules.py had been edited before minixai was imported: the rule is the one fusion knows by name,
    its code is not what the kernel does. Fusion warns once and runs it layer by layer."""
    model, x = vgg16
    monkeypatch.setattr(GuidedBackprop, "backward", passes_magnitudes)
    monkeypatch.setitem(fusion._AS_DEFINED, GuidedBackprop, passes_magnitudes)
    monkeypatch.setattr(fusion, "_checked", {})
    with pytest.warns(RuntimeWarning, match="GuidedBackprop.backward no longer does what its fused kernel"):
        edited = mx.guided_backprop(model, x, 5)
    with mx.unfused():
        np.testing.assert_array_equal(mx.guided_backprop(model, x, 5), edited)
    assert fusion.relu_step(GuidedBackprop()) is None


# ---- what forces a unit to run its layers one by one -------------------------------------------------------
def small_chain(rng):
    conv, bn, relu = Conv2d(3, 4, 3, padding=1), BatchNorm2d(4), ReLU()
    conv.weight, conv.bias = rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    bn.weight, bn.bias, bn.running_mean = rng.standard_normal(4), rng.standard_normal(4), rng.standard_normal(4)
    bn.running_var = rng.uniform(0.5, 2, 4)
    model = mx.Model(Sequential(conv, bn, relu, names=["conv", "bn", "relu"]))
    return model, conv, bn, relu


def test_capturing_inside_a_unit_runs_it_unfused():
    """A captured batch norm still gets its own output; DeepLIFT's kept ReLU input is the BN output."""
    rng = np.random.default_rng(1)
    model, conv, bn, relu = small_chain(rng)
    x = rng.standard_normal((1, 3, 5, 5))
    expected_bn = bn(conv(x))
    tape = model.record(x, capture=["bn"])
    np.testing.assert_allclose(tape.outputs["bn"], expected_bn, rtol=1e-12)
    np.testing.assert_allclose(tape.output, np.maximum(expected_bn, 0), rtol=1e-12)
    kept = model.record(x, keep_inputs=True)
    np.testing.assert_allclose(kept.contexts[relu].x, expected_bn, rtol=1e-12)
    for t in (tape, kept):
        assert not any(getattr(ctx, "fused", False) for ctx in t.contexts.values())


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_a_residual_join_runs_in_the_last_convolution_and_opens_up_when_captured(arch):
    """Every block's last conv -> bn, its join and ReLU run as one ConvJoin (the shortcut added in the
    convolution's epilogue); capturing the batch norm or the join inside it runs them one by one, with the
    same outputs and gradients."""
    model = random_model(arch, np.float64)
    x = np.random.default_rng(4).standard_normal((2, 3, 64, 64))
    joins = [layer for layer in model.record(x).contexts if isinstance(layer, fusion.ConvJoin)]
    assert len(joins) == {"resnet18": 8, "resnet50": 16}[arch]
    last = "layer2.1.bn2" if arch == "resnet18" else "layer2.1.bn3"
    with mx.unfused():
        plain = model.record(x, capture=[last, "layer2.1.add", "layer2.1"])
        model.backward(np.ones_like(plain.output), tape=plain)
    for name in (last, "layer2.1.add", "layer2.1"):
        tape = model.record(x, capture=[name])
        model.backward(np.ones_like(tape.output), tape=tape)
        join = next(layer for layer in tape.contexts if isinstance(layer, fusion.ConvJoin)
                    and layer.join.add.name == "layer2.1.add")
        assert tape.contexts[join].fused == (name == "layer2.1")
        for kept in (tape.outputs, tape.grads):
            reference = plain.outputs if kept is tape.outputs else plain.grads
            np.testing.assert_allclose(kept[name], reference[name], rtol=1e-12, atol=1e-12)


def test_the_last_output_of_a_unit_can_be_captured_fused():
    rng = np.random.default_rng(2)
    model, *_ = small_chain(rng)
    x = rng.standard_normal((2, 3, 5, 5))
    tape = model.record(x, capture=["relu"])
    assert any(getattr(ctx, "fused", False) for ctx in tape.contexts.values())
    dout = rng.standard_normal(tape.output.shape)
    model.backward(dout, tape=tape)
    np.testing.assert_array_equal(tape.outputs["relu"], tape.output)
    np.testing.assert_array_equal(tape.grads["relu"], dout)


def test_reference_backend_and_training_run_unfused():
    rng = np.random.default_rng(3)
    model, *_ = small_chain(rng)
    x = rng.standard_normal((1, 3, 4, 4))
    with mx.use_backend("reference"):
        assert not any(isinstance(layer, fusion.ConvUnit) for layer in model.record(x).contexts)
    model.train()
    assert not any(getattr(ctx, "fused", False) for ctx in model.record(x).contexts.values())
    model.eval()
    assert any(getattr(ctx, "fused", False) for ctx in model.record(x).contexts.values())


def test_fuse_shares_the_layers():
    model = models.resnet18(seed=0)
    fused = fusion.fuse(model.root)
    units = []
    stack = [fused]
    while stack:
        layer = stack.pop()
        if isinstance(layer, fusion.ConvUnit):
            units.append(layer)
        stack += list(layer.children().values()) + [getattr(layer, n) for n in ("main", "shortcut", "join", "unit")
                                                     if getattr(layer, n, None) is not None]
    convs = {id(layer) for _, layer in model.named_layers() if isinstance(layer, Conv2d)}
    assert {id(unit.conv) for unit in units} == convs          # every convolution fused, none copied
