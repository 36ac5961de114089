"""The model: a tree of named layers (``minixai.tree``) that runs forward and backward, with captures.

    logits = model(x)                           # forward; this thread's tape is kept for the backward
    dx = model.backward(grad_logits, rule)      # input gradient (or relevance) for that forward pass
    tape = model.record(x, capture=["layer4"])  # the same with the tape in hand (what the methods use)
    dx = model.backward(grad_logits, rule, tape)

Every pass has its own tape (``minixai.tape``): one model can be used from many threads at once. Passes run
through ``minixai.fusion`` (same numbers, fewer passes over memory) unless ``mx.unfused()`` says otherwise.
"""
import threading

import numpy as np

from . import fusion
from .backend import array_module, to_device
from .rules import Gradient
from .tape import Tape
from .tree import LayerTree
from .validate import check_images, check_layer_name


class Model(LayerTree):
    """A network: ``model(x)`` -> logits, ``model.backward(grad_logits, rule)`` -> input gradient.
    Built from a root Sequential, its input spec and a name (see LayerTree for the tree itself)."""

    def __init__(self, root, spec=None, arch="", path=None):
        super().__init__(root, spec, arch, path)
        self._last = threading.local()          # each thread's last tape, for backward() and captured()

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

    def __getstate__(self):                      # copy.deepcopy and pickle: the tapes stay behind
        return {k: v for k, v in vars(self).items() if k != "_last"}

    def __setstate__(self, saved):
        vars(self).update(saved)
        self._last = threading.local()
