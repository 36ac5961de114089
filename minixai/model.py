"""The model container: a tree of named layers with forward, backward, capture and cutting.

Layer names are torchvision's ``named_modules()`` names ("features.28", "layer4.2.conv3", "fc").

    logits = model(x)                           # forward; this thread's tape is kept for the backward
    dx = model.backward(grad_logits, rule)      # input gradient (or relevance) for that forward pass
    tape = model.record(x, capture=["layer4"])  # the same with the tape in hand (what the methods use)
    dx = model.backward(grad_logits, rule, tape)

Every pass has its own tape (``minixai.tape``): one model can be used from many threads at once. Passes run
through ``minixai.fusion`` (same numbers, fewer passes over memory) unless ``mx.unfused()`` says otherwise.
"""
import threading

import numpy as np

from . import fusion, state
from .backend import array_module, to_device
from .layers import AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Conv2d, Flatten, Linear, MaxPool2d, Sequential
from .rules import Gradient
from .tape import Tape
from .validate import check_images, check_layer_name


class Model:
    """A network: ``model(x)`` -> logits, ``model.backward(grad_logits, rule)`` -> input gradient.

    root: a Sequential whose children are the top-level modules (their names are the top-level names).
    spec: the input spec (mean, std, size, class names), or None for a model cut inside a network.
    """

    def __init__(self, root, spec=None, arch="", path=None):
        self.root, self.spec, self.arch = root, spec, arch
        self._layers = dict(_named_tree(root))
        self._path = path if path is not None else _main_path(root)
        self._last = threading.local()          # each thread's last tape, for backward() and captured()

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

    def summary(self, input_shape=None, depth=None):
        """Every named layer with its type, output shape, parameters and multiply-adds, then the totals
        (minixai.summary): print it, or read .rows, .total_params, .total_madds. input_shape: (N, C, H, W),
        default one image at the spec's size; depth: list layers down to this level of the tree only."""
        from .summary import summarize
        return summarize(self, input_shape, depth)

    # ---- forward / backward ----------------------------------------------------------------------
    def record(self, x, capture=(), keep_inputs=False):
        """One forward pass of x (N, C, H, W) on a new tape; `tape.output` holds the logits.
        capture: names whose output (and, after backward, gradient) the tape keeps in tape.outputs/grads;
        keep_inputs: keep what DeepLIFT and LRP need beyond the gradient."""
        x = check_images(self.place(x), self.in_channels, ndim=self._input_ndim())
        capture = [capture] if isinstance(capture, str) else list(capture or ())
        for name in capture:
            check_layer_name(name, self.layer_names())
        self._last.tape = None        # this thread's previous pass lets go of its arrays before this one runs
        tape = Tape(capture, keep_inputs)
        tape.root = fusion.fuse(self.root) if fusion.enabled() else self.root
        tape.output = tape.forward(tape.root, x)
        self._last.tape = tape
        return tape

    def __call__(self, x, capture=None):
        return self.forward(x, capture)

    def forward(self, x, capture=None):
        """Logits for x (N, C, H, W). `capture`: names whose output (and, after backward, gradient)
        are kept; read them with `captured(name)`."""
        return self.record(x, capture).output

    def backward(self, grad_out, rule=None, tape=None):
        """Input gradient for the output gradient `grad_out` (N, outputs) of the pass on `tape` (default:
        this thread's last forward pass); `rule` (a Rule or Composite, default the plain Gradient)
        replaces the gradient layer by layer."""
        tape = tape if tape is not None else self._last_tape()
        rule = (rule if rule is not None else Gradient()).prepare(self)
        return tape.backward(tape.root, to_device(grad_out, like=tape.output), rule)

    def _last_tape(self):
        tape = getattr(self._last, "tape", None)
        if tape is None:
            raise RuntimeError("no forward pass to go back through: call model(x) (in this thread) before "
                               "model.backward(...), or pass the tape of model.record(x)")
        return tape

    def captured(self, name):
        """(output, gradient) recorded at layer `name` by this thread's last forward(capture=...) and backward
        (the gradient is None before the backward pass)."""
        tape = self._last_tape()
        if name not in tape.outputs:
            raise ValueError(f"layer {name!r} was not captured: call model(x, capture=[{name!r}]) first")
        return tape.outputs[name], tape.grads.get(name)

    def activations(self, x, names):
        """{name: output of that layer} for one forward pass of x."""
        names = [names] if isinstance(names, str) else list(names)
        tape = self.record(x, capture=names)
        return {name: tape.outputs[name] for name in names}

    def parameter_gradients(self, tape=None):
        """{key: gradient} of every trainable array, from the backward pass on `tape` in training mode."""
        tape = tape if tape is not None else self._last_tape()
        return {key: getattr(tape.contexts[layer], "d" + attr) for key, layer, attr in self.parameters()
                if layer in tape.contexts and getattr(tape.contexts[layer], "d" + attr, None) is not None}

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
        return Model(root, self.spec if start is None else None, f"{self.arch}[{start or 'input'}:{end or 'logits'}]",
                     path=steps)

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

    def place(self, x):
        """x on the model's device: a NumPy x for a GPU model is copied there (explicitly, once); a GPU x for
        a CPU model is refused (that copy back would be silent)."""
        first = next((getattr(layer, attr) for _, layer, attr in self.parameters()), None)
        if first is None or not hasattr(x, "shape"):
            return x
        if array_module(first) is np and array_module(x) is not np:
            raise TypeError(f"x is a {type(x).__module__}.{type(x).__name__} but the model's weights are on the "
                            "CPU: call model.to('cuda') first, or pass x.get()")
        return to_device(x, like=first)

    def train(self, mode=True):
        for layer in [self.root, *self._layers.values()]:
            layer.training = mode
        return self

    def eval(self):
        return self.train(False)

    def __getstate__(self):                      # copy.deepcopy and pickle: the tapes stay behind
        return {k: v for k, v in vars(self).items() if k != "_last"}

    def __setstate__(self, saved):
        vars(self).update(saved)
        self._last = threading.local()

    def __repr__(self):
        return f"Model({self.arch!r}, {len(self.parameters())} parameter arrays)\n{self.root!r}"


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
