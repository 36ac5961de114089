"""The model container: a tree of named layers with forward, backward, capture and cutting.

Layer names are torchvision's ``named_modules()`` names ("features.28", "layer4.2.conv3", "fc").
"""
import contextlib

import numpy as np

from .layers import (AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Conv2d, Flatten, Linear, MaxPool2d,
                     Sequential)
from .validate import check_images, check_layer_name


class Model:
    """A network: ``model(x)`` -> logits, ``model.backward(grad_logits, rule)`` -> input gradient.

    root: a Sequential whose children are the top-level modules (their names are the top-level names).
    spec: the input spec (mean, std, size, class names), or None for a model cut inside a network.
    """

    def __init__(self, root, spec=None, arch=""):
        self.root, self.spec, self.arch = root, spec, arch
        self._layers = {}
        self._name_tree(root, "")
        self._path = self._main_path()

    # ---- structure -------------------------------------------------------------------------------
    def _name_tree(self, layer, prefix):
        for local, child in layer.children().items():
            name = f"{prefix}.{local}" if prefix else local
            if not child.name:
                child.name = name
            self._layers[name] = child
            self._name_tree(child, name)

    def _main_path(self):
        """Top-level children, with Sequential ones opened one level (features.0, features.1, ...)."""
        path = []
        for name, layer in self.root.children().items():
            if isinstance(layer, Sequential):
                path += [(f"{name}.{k}", child) for k, child in layer.children().items()]
            else:
                path.append((name, layer))
        return path

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

    # ---- forward / backward ----------------------------------------------------------------------
    def __call__(self, x, capture=None):
        return self.forward(x, capture)

    def forward(self, x, capture=None):
        """Logits for x (N, C, H, W). `capture`: names whose output (and, after backward, gradient)
        are kept; read them with `captured(name)`."""
        x = check_images(x, self.in_channels, ndim=self._input_ndim())
        for layer in self._layers.values():
            layer.capture = False
        for name in capture or ():
            self[name].capture = True
        return self.root(x)

    def backward(self, grad_out, rule=None):
        """Input gradient for the output gradient `grad_out` (N, outputs); `rule` replaces the gradient
        (a Rule or Composite from minixai.rules)."""
        if rule is not None and hasattr(rule, "prepare"):
            rule.prepare(self)
        return self.root.backward(grad_out, rule)

    @contextlib.contextmanager
    def keeping_inputs(self):
        """Layers keep the inputs that DeepLIFT and LRP need beyond the gradient (ReLU's pre-activation,
        the two summands of a residual join) for the passes run inside this block."""
        for layer in self._layers.values():
            layer.keep_input = True
        try:
            yield self
        finally:
            for layer in self._layers.values():
                layer.keep_input = False

    def captured(self, name):
        """(output, gradient) recorded at layer `name` by the last forward(capture=...) and backward."""
        layer = self[name]
        if not layer.capture:
            raise ValueError(f"layer {name!r} was not captured: call model(x, capture=[{name!r}]) first")
        return layer.captured_output, getattr(layer, "captured_grad", None)

    def activations(self, x, names):
        """{name: output of that layer} for one forward pass of x."""
        names = [names] if isinstance(names, str) else list(names)
        self.forward(x, capture=names)
        return {name: self[name].captured_output for name in names}

    # ---- cutting ---------------------------------------------------------------------------------
    def _path_index(self, name, end):
        """Index into the main path just after (end=False: start) or at the last step of `name`."""
        check_layer_name(name, self.path_names())
        hits = [i for i, (n, _) in enumerate(self._path) if n == name or n.startswith(name + ".")]
        return hits[-1] + (0 if end else 1)

    def submodel(self, start=None, end=None):
        """The part of the network that maps `start`'s output to `end`'s output (None: input / logits)."""
        first = 0 if start is None else self._path_index(start, end=False)
        last = len(self._path) - 1 if end is None else self._path_index(end, end=True)
        if first > last:
            raise ValueError(f"submodel: start {start!r} does not come before end {end!r}")
        steps = self._path[first:last + 1]
        root = Sequential(*[layer for _, layer in steps], names=[n for n, _ in steps])
        sub = Model.__new__(Model)
        sub.root, sub.arch = root, f"{self.arch}[{start or 'input'}:{end or 'logits'}]"
        sub.spec = self.spec if start is None else None
        sub._layers = {n: l for n, l in self._layers.items() if any(n == s or n.startswith(s + ".") for s, _ in steps)}
        sub._path = steps
        return sub

    # ---- parameters ------------------------------------------------------------------------------
    def parameters(self):
        """[(key, layer, attribute)] of every trainable array, key as in a torchvision state dict."""
        return [(f"{name}.{attr}", layer, attr) for name, layer in self._layers.items()
                for attr in layer.parameters() if getattr(layer, attr) is not None]

    def _state_entries(self):
        for key, layer, attr in self.parameters():
            yield key, layer, attr
        for name, layer in self._layers.items():
            for attr in getattr(layer, "buffers", lambda: ())():
                yield f"{name}.{attr}", layer, attr

    def state_dict(self):
        return {key: getattr(layer, attr) for key, layer, attr in self._state_entries()}

    def load_state_dict(self, state, strict=True):
        """Copy arrays (torchvision names) into the layers, checking every key and shape."""
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
        entries = {key: (layer, attr) for key, layer, attr in self._state_entries()}
        missing = sorted(set(entries) - set(state))
        unexpected = sorted(set(state) - set(entries))
        wrong = [f"{k}: expected {getattr(*entries[k]).shape}, got {tuple(np.shape(state[k]))}"
                 for k in entries if k in state and tuple(np.shape(state[k])) != getattr(*entries[k]).shape]
        problems = []
        if missing and strict:
            problems.append(f"missing keys: {', '.join(missing[:10])}" + (" ..." if len(missing) > 10 else ""))
        if unexpected and strict:
            problems.append(f"unexpected keys: {', '.join(unexpected[:10])}" + (" ..." if len(unexpected) > 10 else ""))
        if wrong:
            problems.append("wrong shapes: " + "; ".join(wrong[:10]))
        if problems:
            raise ValueError(f"weights do not fit {self.arch or 'the model'}: " + " | ".join(problems))
        for key, (layer, attr) in entries.items():
            if key in state:
                setattr(layer, attr, np.ascontiguousarray(state[key], dtype=getattr(layer, attr).dtype))
        return self

    def astype(self, dtype):
        """Cast every parameter and buffer (float64 for gradient checks)."""
        for _, layer, attr in self._state_entries():
            setattr(layer, attr, getattr(layer, attr).astype(dtype))
        return self

    def train(self, mode=True):
        for layer in self._layers.values():
            layer.training = mode
        self.root.training = mode
        return self

    def eval(self):
        return self.train(False)

    def __repr__(self):
        return f"Model({self.arch!r}, {len(self.parameters())} parameter arrays)\n{self.root!r}"
