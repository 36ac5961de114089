"""The named layer tree under a model: names, lookups, cutting, and the arrays it holds.

Layer names are torchvision's ``named_modules()`` names ("features.28", "layer4.2.conv3", "fc"). Running
the tree, forward and backward, is ``minixai.model.Model``'s part.
"""
from . import state
from .layers import AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Conv2d, Flatten, Linear, MaxPool2d, Sequential
from .validate import check_layer_name


class LayerTree:
    """root: a Sequential whose children are the top-level modules (their names are the top-level names).
    spec: the input spec (mean, std, size, class names), or None for a tree cut inside a network.
    path: the main path of a cut tree (see submodel); None for a whole one."""

    def __init__(self, root, spec=None, arch="", path=None):
        self.root, self.spec, self.arch = root, spec, arch
        self._layers = dict(_named_tree(root))
        self._path = path if path is not None else _main_path(root)

    # ---- structure -------------------------------------------------------------------------------
    def layer_names(self):
        """Every named layer, in forward order (a container comes before its children)."""
        return list(self._layers)

    def path_names(self):
        """The names `submodel` accepts: top-level modules and their direct children."""
        tops = list(self.root.children())
        return tops + [n for n, _ in self._path if n not in tops]

    def __getitem__(self, name):
        check_layer_name(name, self.layer_names())
        return self._layers[name]

    def named_layers(self):
        return list(self._layers.items())

    @property
    def num_outputs(self):
        last = [layer for layer in self._layers.values() if isinstance(layer, (Linear, Conv2d))][-1]
        return last.out_features if isinstance(last, Linear) else last.out_channels

    @property
    def in_channels(self):
        """Channels the first layer expects (None for a model that starts with a dense layer or has neither)."""
        first = next((layer for layer in self._layers.values() if isinstance(layer, (Conv2d, Linear))), None)
        return first.in_channels if isinstance(first, Conv2d) else None

    def _input_ndim(self):
        """4 for image-like input, 2 for (N, features), None when the layers accept either (ReLU only)."""
        for layer in self._layers.values():
            if isinstance(layer, Linear):
                return 2
            if isinstance(layer, (Conv2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, BatchNorm2d, Flatten)):
                return 4
        return None

    # ---- cutting ---------------------------------------------------------------------------------
    def submodel(self, start=None, end=None):
        """The part of the network that maps `start`'s output to `end`'s output (None: input / logits).
        start/end: names from path_names(); the sub-model shares this model's layers and weights."""
        first = 0 if start is None else self._path_index(start, end=False)
        last = len(self._path) - 1 if end is None else self._path_index(end, end=True)
        if first > last:
            raise ValueError(f"submodel: start {start!r} does not come before end {end!r}")
        steps = self._path[first:last + 1]
        root = Sequential(*[layer for _, layer in steps], names=[n for n, _ in steps])
        return type(self)(root, self.spec if start is None else None,
                          f"{self.arch}[{start or 'input'}:{end or 'logits'}]", path=steps)

    def _path_index(self, name, end):
        """Index into the main path just after (end=False: start) or at the last step of `name`."""
        check_layer_name(name, self.path_names())
        hits = [i for i, (n, _) in enumerate(self._path) if n == name or n.startswith(name + ".")]
        return hits[-1] + (0 if end else 1)

    # ---- parameters (minixai.state) --------------------------------------------------------------
    def parameters(self):
        """[(key, layer, attribute)] of every trainable array, key as in a torchvision state dict."""
        return [(f"{name}.{attr}", layer, attr) for name, layer in self._layers.items()
                for attr in layer.parameters() if getattr(layer, attr) is not None]

    def state_dict(self):
        return state.state_dict(self)

    def load_state_dict(self, weights, strict=True):
        """Copy arrays (torchvision names) into the layers, checking every key and shape."""
        return state.load_state_dict(self, weights, strict)

    def astype(self, dtype):
        """Cast every parameter and buffer (float64 for gradient checks)."""
        return state.astype(self, dtype)

    def to(self, device):
        """Move every parameter and buffer to "cuda" / "cuda:N" (CuPy arrays on that GPU) or "cpu" (NumPy);
        returns the model. Its passes then run where its weights are: a NumPy input to a GPU model is copied
        there, and the methods give their results back as the kind of array they were given."""
        return state.to_device(self, device)

    @property
    def device(self):
        """"cpu" or "cuda": where the weights are."""
        return state.device_of(self)

    def train(self, mode=True):
        for layer in [self.root, *self._layers.values()]:
            layer.training = mode
        return self

    def eval(self):
        return self.train(False)

    def __repr__(self):
        return f"{type(self).__name__}({self.arch!r}, {len(self.parameters())} parameter arrays)\n{self.root!r}"


def _named_tree(layer, prefix=""):
    """(dotted name, layer) of every descendant, in forward order; each layer learns its name (once:
    a sub-model's layers keep their full names)."""
    for local, child in layer.children().items():
        name = f"{prefix}.{local}" if prefix else local
        if not child.name:
            child.name = name
        yield child.name, child
        yield from _named_tree(child, child.name)


def _main_path(root):
    """Top-level children, with Sequential ones opened one level (features.0, features.1, ...)."""
    path = []
    for name, layer in root.children().items():
        if isinstance(layer, Sequential):
            path += [(f"{name}.{k}", child) for k, child in layer.children().items()]
        else:
            path.append((name, layer))
    return path
