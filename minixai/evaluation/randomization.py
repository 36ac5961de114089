"""Sanity checks: does the explanation depend on what the model learned? (Adebayo et al. 2018)

- model parameter randomisation (Sec. 4): re-initialise the layers' weights with the model's own
  initialiser (minixai.models.initialisation) and compare the explanation with the trained model's.
  "cascading" (Fig. 2) randomises from the output down, each step one more layer; "independent" one layer
  at a time, the others trained. A method that passes changes its map as the weights go.
- random logit (Sixt et al. 2020, Sec. 5): explain a random other class instead of the target.
- data randomisation (Sec. 5): the same network trained on permuted labels (python -m minixai.train_shapes
  --permute-labels), which can only have memorised.

The maps compared are `maps.signed_map` of each explanation (the channel sum; Grad-CAM's map as it is),
with `similarity` ("spearman", "ssim", "hog") on the absolute values |m| (`.similarity`) and on the signed
maps (`.signed`), as Adebayo et al. report both (Sec. 4, Fig. 3 and 4): a method that keeps its map's
magnitudes but flips signs looks similar on absolute maps only.

Compared with Quantus 0.6's MPRT: it re-initialises with torch's reset_parameters under
torch.manual_seed(seed + 1) (not the architecture's own initialiser), defaults to independent order
("top_down" is cascading) and compares |a| divided by its maximum; the order of layers is the same
(every module with parameters, batch norms included, from the output down).
"""
import copy
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from ..layers import BatchNorm2d, Conv2d, Linear
from ..methods._common import prepare
from .explainers import explainer
from .maps import signed_map
from .similarity import SIMILARITIES
from .similarity import similarity as compare

ORDERS = ("cascading", "independent")


@dataclass(frozen=True)
class Randomization:
    """layers: the randomised layers, output first; similarity, signed (N, L): how alike the map of step l
    is to the trained model's, on absolute and on signed maps; maps (L + 1, N, H, W): the signed maps, the
    trained model's first (with keep_maps=True, else None)."""
    layers: list
    similarity: np.ndarray
    signed: np.ndarray
    maps: np.ndarray = None


@dataclass(frozen=True)
class Agreement:
    """similarity, signed (N,): how alike two explanations of each image are (absolute, signed maps);
    classes (N,): the other class explained (random logit only)."""
    similarity: np.ndarray
    signed: np.ndarray
    classes: np.ndarray = None


def randomization(model, x, target, method, order="cascading", similarity="spearman", seed=0, layers=None,
                  options=None, keep_maps=False, progress=True):
    """Model parameter randomisation test of `method` (a name of mx.METHODS or f(model, x, target)) on x.

    layers: names of layers with weights to randomise (default: all, output first); seed: the one source
    of the random weights (each layer's drawn once, output first, for either order); options: the method's
    keyword arguments. The model is left as it was: the test runs on a copy."""
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}; valid: {', '.join(ORDERS)}")
    _check_similarity(similarity)
    explain, _ = explainer(method, options)
    x, targets = prepare(model, x, target)
    names = _layers_to_randomise(model, layers)
    work = copy.deepcopy(model)                       # the caller's model (and other threads') stay trained
    rng = np.random.default_rng(seed)
    trained = {name: _weights(work[name]) for name in names}
    random = {name: _reinitialised(work[name], rng, _linear_init(model)) for name in names}
    maps = [signed_map(explain(work, x, targets))]
    for step, name in enumerate(tqdm(names, desc="randomisation", disable=not progress)):
        if order == "independent" and step > 0:
            _load(work[names[step - 1]], trained[names[step - 1]])
        _load(work[name], random[name])
        maps.append(signed_map(explain(work, x, targets)))
    absolute, signed = zip(*(_agreement(maps[0], m, similarity) for m in maps[1:]))
    return Randomization(names, np.stack(absolute, axis=1), np.stack(signed, axis=1),
                         np.stack(maps) if keep_maps else None)


def random_logit(model, x, target, method, similarity="ssim", seed=0, options=None):
    """Random logit test (Sixt et al. 2020): similarity of the explanation of the target and of a class
    drawn uniformly from the others (from `seed`). Returns an Agreement with .classes."""
    _check_similarity(similarity)
    explain, _ = explainer(method, options)
    x, targets = prepare(model, x, target)
    shift = np.random.default_rng(seed).integers(1, model.num_outputs, size=len(x))
    others = (targets + shift) % model.num_outputs                   # uniform over the other classes
    absolute, signed = _agreement(signed_map(explain(model, x, targets)),
                                  signed_map(explain(model, x, others)), similarity)
    return Agreement(absolute, signed, others)


def data_randomization(model, x, target, method, random_model=None, similarity="spearman", options=None):
    """Data randomisation test (Adebayo et al. 2018, Sec. 5): similarity of the explanations of `model` and
    of `random_model`, the same architecture trained on permuted labels (None: for the shapes model, the
    shipped weights/shapes_permuted.npz)."""
    _check_similarity(similarity)
    explain, _ = explainer(method, options)
    x, targets = prepare(model, x, target)
    random_model = permuted_labels_model(model) if random_model is None else random_model
    absolute, signed = _agreement(signed_map(explain(model, x, targets)),
                                  signed_map(explain(random_model, x, targets)), similarity)
    return Agreement(absolute, signed)


def permuted_labels_model(model):
    """The shapes CNN trained on permuted labels (weights/shapes_permuted.npz)."""
    from ..models.shapes import shapes
    from ..train_shapes import PERMUTED_OUT
    if model.arch != "shapes":
        raise ValueError(f"only the shapes model ships a twin trained on permuted labels; for {model.arch!r} "
                         "pass random_model=... (the same architecture trained on shuffled labels)")
    if not PERMUTED_OUT.is_file():
        raise FileNotFoundError(f"{PERMUTED_OUT} is missing; make it with: python -m minixai.train_shapes "
                                "--permute-labels")
    return shapes(weights=PERMUTED_OUT)


def parameter_layers(model):
    """Names of the layers with weights (convolutions, dense layers, batch norms), output first."""
    return [name for name, layer in reversed(model.named_layers()) if isinstance(layer, (Conv2d, Linear, BatchNorm2d))]


def _layers_to_randomise(model, layers):
    valid = parameter_layers(model)
    if layers is None:
        return valid
    layers = [layers] if isinstance(layers, str) else list(layers)
    unknown = [name for name in layers if name not in valid]
    if unknown or not layers:
        raise ValueError(f"cannot randomise {unknown or layers!r}: layers must be names of layers with weights; "
                         f"valid: {', '.join(valid)}")
    return [name for name in valid if name in layers]              # output first, whatever order given


def _linear_init(model):
    """The dense-layer init the architecture's builder uses (models/): VGG's is normal, the others' uniform."""
    return "normal" if model.arch.startswith("vgg") else "uniform"


def _reinitialised(layer, rng, linear):
    """{attribute: array} of fresh random weights for `layer` from its architecture's initialiser."""
    from ..models.initialisation import (
        kaiming_normal,
        linear_normal,
        linear_uniform,
        reset_batchnorm,
    )
    fresh = copy.copy(layer)                          # the helpers assign new arrays: the layer keeps its own
    if isinstance(layer, Conv2d):
        kaiming_normal(fresh, rng)
    elif isinstance(layer, BatchNorm2d):
        reset_batchnorm(fresh)
    elif linear == "normal":
        linear_normal(fresh, rng)
    else:
        linear_uniform(fresh, rng)
    return {attr: getattr(fresh, attr).astype(array.dtype) for attr, array in _weights(layer).items()}


def _weights(layer):
    return {attr: getattr(layer, attr) for attr in (*layer.parameters(), *layer.buffers())
            if getattr(layer, attr) is not None}


def _load(layer, weights):
    for attr, array in weights.items():
        setattr(layer, attr, array)


def _agreement(reference, other, kind):
    """(similarity of |maps|, similarity of signed maps), each (N,)."""
    return compare(np.abs(reference), np.abs(other), kind), compare(reference, other, kind)


def _check_similarity(kind):
    if kind not in SIMILARITIES:
        raise ValueError(f"unknown similarity {kind!r}; valid: {', '.join(SIMILARITIES)}")
