"""The tape: what one forward pass keeps for its backward pass.

A layer's ``forward(ctx, x)`` gets a fresh Context on every call and stores there what its backward will
need (its input, a ReLU's output, a max-pool's argmax); ``backward(ctx, dout, rule)`` reads it back. This
is CS231n's ``out, cache = forward(x)`` and tinygrad's ``ctx.save_for_backward``: nothing of one call is
kept on the layer, so one model can serve many threads, each pass with its own tape.

    tape = Tape()
    out = tape.forward(layer, x)                 # layer.forward(ctx, x) with a new ctx, kept on the tape
    dx = tape.backward(layer, dout, Gradient())  # layer.backward(ctx, dout, rule) with that same ctx

Containers (Sequential, the residual blocks) run their children with ``ctx.forward(child, x)`` and
``ctx.backward(child, dout, rule)``, which record on the same tape. The tape also holds the outputs and
gradients of captured layers (Grad-CAM, SUMMIT and filter visualisation read them).
"""
import weakref


class Context:
    """One layer's memory of one forward call: the attributes its forward sets (x, out, argmax, ...)."""

    def __init__(self, tape):
        self._tape = weakref.ref(tape)     # not a strong reference: the tape holds its contexts, and a cycle
                                           # would keep a finished pass's arrays alive until the next GC run

    @property
    def tape(self):
        return self._tape()

    @property
    def keep_inputs(self):
        """True when the backward rule needs more than the gradient does (DeepLIFT, LRP): ReLU's and
        pooling's inputs, the two summands of a residual join."""
        return self.tape.keep_inputs

    def forward(self, layer, *inputs):
        """Run a child layer forward on the same tape."""
        return self.tape.forward(layer, *inputs)

    def backward(self, layer, dout, rule):
        """Run a child layer backward with the context its forward left."""
        return self.tape.backward(layer, dout, rule)


class Tape:
    """The contexts of one forward pass, by layer, and the captured outputs and gradients, by layer name.

    capture:     names of layers whose output (and, after the backward pass, the gradient arriving at that
                 output) is recorded in ``outputs`` / ``grads``;
    keep_inputs: layers keep the inputs that DeepLIFT and LRP need beyond the gradient.
    """

    def __init__(self, capture=(), keep_inputs=False):
        self.capture = frozenset(capture)
        self.keep_inputs = keep_inputs
        self.contexts = {}           # layer -> Context of its call in this pass
        self.outputs = {}            # captured layer name -> output
        self.grads = {}              # captured layer name -> gradient (or relevance) at that output
        self.root = None             # what ran (set by Model.record): its backward starts the backward pass
        self.output = None

    def forward(self, layer, *inputs):
        if layer in self.contexts:
            raise RuntimeError(f"layer {layer.name or layer!r} ran twice in one forward pass: its backward would "
                               "not know which call to undo; give each call site a layer of its own")
        ctx = self.contexts[layer] = Context(self)
        return self.note_output(layer, layer.forward(ctx, *inputs))

    def backward(self, layer, dout, rule):
        self.note_grad(layer, dout)
        ctx = self.contexts.get(layer)
        if ctx is None:
            raise RuntimeError(f"layer {layer.name or layer!r} did not run forward on this tape")
        return layer.backward(ctx, dout, rule)

    def keep(self, layer, **saved):
        """A context for `layer` holding `saved`, as the layer's own forward would have left it (a fused
        unit, which computed the layer's output without calling it, leaves what its backward needs)."""
        ctx = self.contexts[layer] = Context(self)
        vars(ctx).update(saved)
        return ctx

    def note_output(self, layer, out):
        """Record `out` as the output of `layer` if it is captured; returns it."""
        if layer.name in self.capture:
            self.outputs[layer.name] = out
        return out

    def note_grad(self, layer, dout):
        """Record `dout`, the gradient arriving at the output of `layer`, if it is captured."""
        if layer.name in self.capture:
            self.grads[layer.name] = dout
