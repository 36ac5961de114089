"""Training with this engine alone: cross-entropy, SGD with momentum, Adam.

Gradients come from the layers' own backward in training mode (``ctx.dweight``, ``ctx.dbias`` on the
tape, gathered by ``model.parameter_gradients(tape)``).
"""
import numpy as np

from .backend import array_module


def cross_entropy(logits, labels):
    """Mean of -log softmax(z)_y over the batch, and its gradient d loss / d z = (softmax(z) - onehot(y)) / N."""
    labels = np.asarray(labels)
    if logits.ndim != 2 or labels.shape != logits.shape[:1] or labels.dtype.kind not in "iu":
        raise ValueError(f"cross_entropy expects logits (N, classes) and N integer labels, got logits of shape "
                         f"{logits.shape} and labels of shape {labels.shape} ({labels.dtype})")
    if labels.size and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ValueError(f"labels must lie in [0, {logits.shape[1]}), got {labels.min()}..{labels.max()}")
    xp = array_module(logits)
    z = logits - logits.max(axis=1, keepdims=True)                 # shift for a stable log-sum-exp
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    n = len(labels)
    rows, cols = xp.arange(n), xp.asarray(labels)                  # on the logits' device
    loss = -log_p[rows, cols].mean()
    dlogits = np.exp(log_p)
    dlogits[rows, cols] -= 1
    return float(loss), dlogits / n


class Optimizer:
    """An update rule for named arrays. ``step(grads)`` updates a model's parameters from
    {key: gradient} (``model.parameter_gradients(tape)``); ``apply(key, value, grad)`` updates any one array
    (the counterfactual search optimises an image with the same Adam). Subclasses define ``update``."""

    def __init__(self, model=None, lr=0.01, weight_decay=0.0):
        self.params = model.parameters() if model is not None else []       # [(key, layer, attribute)]
        self.lr, self.weight_decay = lr, weight_decay
        self.state = {}                                                      # key -> the rule's memory

    def step(self, grads):
        missing = [key for key, _, _ in self.params if key not in grads]
        if missing:
            raise RuntimeError(f"no gradient for {', '.join(missing[:3])}: run model.train(), a forward pass and "
                               "model.backward(...), then step(model.parameter_gradients()) (train_step does all)")
        for key, layer, attr in self.params:
            setattr(layer, attr, self.apply(key, getattr(layer, attr), grads[key]))

    def apply(self, key, value, grad):
        """value after one step along grad (weight decay added to the gradient, as PyTorch does)."""
        if self.weight_decay:
            grad = grad + self.weight_decay * value
        return (value - self.update(self.state.setdefault(key, {}), grad)).astype(value.dtype)


class SGD(Optimizer):
    """v <- momentum v + g;  w <- w - lr v  (PyTorch's form)."""

    def __init__(self, model=None, lr=0.01, momentum=0.9, weight_decay=0.0):
        super().__init__(model, lr, weight_decay)
        self.momentum = momentum

    def update(self, state, grad):
        state["v"] = grad if "v" not in state else self.momentum * state["v"] + grad
        return self.lr * state["v"]


class Adam(Optimizer):
    """m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;  w <- w - lr m_hat / (sqrt(v_hat) + eps)  (Kingma & Ba 2015),
    m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t)."""

    def __init__(self, model=None, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(model, lr, weight_decay)
        self.betas, self.eps = betas, eps

    def update(self, state, grad):
        b1, b2 = self.betas
        t = state["t"] = state.get("t", 0) + 1
        state["m"] = b1 * state.get("m", 0) + (1 - b1) * grad
        state["v"] = b2 * state.get("v", 0) + (1 - b2) * grad * grad
        m_hat, v_hat = state["m"] / (1 - b1 ** t), state["v"] / (1 - b2 ** t)
        return self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


def train_step(model, x, labels, optimizer):
    """One mini-batch: forward, cross-entropy, backward (parameter gradients), optimiser step. Returns the loss."""
    model.train()
    tape = model.record(x)
    loss, dlogits = cross_entropy(tape.output, labels)
    model.backward(dlogits, tape=tape)
    optimizer.step(model.parameter_gradients(tape))
    return loss
