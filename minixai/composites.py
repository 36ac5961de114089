"""Composites: which rule each layer of a model gets (by name, by first layer, by type).

    composite = Composite(layer_map=[(Linear, Epsilon()), (Conv2d, ZPlus())], first=Flat())
    relevance = model.backward(seed, rule=composite)

The named composites have the same layer-to-rule maps as Zennit's composites of the same names.
"""
from .layers import Add, AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Conv2d, Linear, ReLU
from .rules import AlphaBeta, Epsilon, Flat, Gamma, Norm, Pass, Rule, ZBox, ZPlus


class Composite(Rule):
    """Assigns rules to layers; a layer matched by nothing keeps the plain gradient.

    layer_map: [(layer type or tuple of types, rule)], first match wins.
    name_map:  {layer name: rule}, overrides everything else.
    first:     (types, rule) for the first layer (in forward order) of one of those types.
    """

    def __init__(self, layer_map=(), name_map=None, first=None, first_name=None):
        self.layer_map, self.name_map, self.first = list(layer_map), dict(name_map or {}), first
        self.first_name = first_name         # the name `first` applies to in one model (set by prepare)

    def prepare(self, model):
        """A copy for `model`: its first layer found by name, every rule prepared for it."""
        first_name = None
        if self.first is not None:
            types, _ = self.first
            first_name = next((n for n, l in model.named_layers() if isinstance(l, types)), None)
        layer_map = [(types, rule.prepare(model)) for types, rule in self.layer_map]
        name_map = {name: rule.prepare(model) for name, rule in self.name_map.items()}
        first = (self.first[0], self.first[1].prepare(model)) if self.first is not None else None
        return Composite(layer_map, name_map, first, first_name)

    def rule_for(self, layer):
        if layer.name in self.name_map:
            return self.name_map[layer.name]
        if self.first is not None and layer.name == self.first_name:
            return self.first[1]
        for types, rule in self.layer_map:
            if isinstance(layer, types):
                return rule
        return None

    def backward(self, layer, ctx, dout):
        rule = self.rule_for(layer)
        return layer.grad(ctx, dout) if rule is None else rule.backward(layer, ctx, dout)

    def __repr__(self):
        rows = [f"  {getattr(t, '__name__', t)}: {r!r}" for t, r in self.layer_map]
        return "Composite(\n" + "\n".join(rows) + "\n)"


def _base(stabilizer):
    """Shared by all named composites: activations pass relevance, sums and average pools split it."""
    return [(ReLU, Pass()), ((Add, AvgPool2d, AdaptiveAvgPool2d), Norm(stabilizer)), (BatchNorm2d, Pass())]


def epsilon_plus_flat(epsilon=1e-6, stabilizer=1e-6):
    """z+ for convolutions, epsilon for dense layers, flat for the first layer."""
    return Composite(_base(stabilizer) + [(Conv2d, ZPlus(stabilizer)), (Linear, Epsilon(epsilon))],
                     first=((Conv2d, Linear), Flat(stabilizer)))


def epsilon_gamma_box(low=None, high=None, epsilon=1e-6, gamma=0.25, stabilizer=1e-6):
    """gamma for convolutions, epsilon for dense layers, z^B (bounds from the input spec) for the first conv."""
    return Composite(_base(stabilizer) + [(Conv2d, Gamma(gamma, stabilizer)), (Linear, Epsilon(epsilon))],
                     first=(Conv2d, ZBox(low, high, stabilizer)))


def epsilon_alpha2_beta1(epsilon=1e-6, stabilizer=1e-6):
    """alpha=2, beta=1 for convolutions, epsilon for dense layers."""
    return Composite(_base(stabilizer) + [(Conv2d, AlphaBeta(2.0, 1.0, stabilizer)), (Linear, Epsilon(epsilon))])


def epsilon(epsilon=1e-6):
    """LRP-epsilon everywhere (epsilon=0: LRP-0, which equals gradient x input on bias-free ReLU nets)."""
    return Composite(_base(1e-12) + [((Conv2d, Linear), Epsilon(epsilon))])


COMPOSITES = {"epsilon_plus_flat": epsilon_plus_flat, "epsilon_gamma_box": epsilon_gamma_box,
              "epsilon_alpha2_beta1": epsilon_alpha2_beta1, "epsilon": epsilon}


def get(composite):
    """A Composite from its name (or the Composite itself)."""
    if isinstance(composite, Rule):
        return composite
    if composite not in COMPOSITES:
        raise ValueError(f"unknown composite {composite!r}; valid: {', '.join(COMPOSITES)}")
    return COMPOSITES[composite]()
