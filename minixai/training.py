"""Training with this engine alone: cross-entropy, SGD with momentum, Adam.

Gradients come from the layers' own backward in training mode (``layer.dweight``, ``layer.dbias``).
"""
import numpy as np


def cross_entropy(logits, labels):
    """Mean of -log softmax(z)_y over the batch, and its gradient d loss / d z = (softmax(z) - onehot(y)) / N."""
    labels = np.asarray(labels)
    if logits.ndim != 2 or labels.shape != logits.shape[:1] or labels.dtype.kind not in "iu":
        raise ValueError(f"cross_entropy expects logits (N, classes) and N integer labels, got logits of shape "
                         f"{logits.shape} and labels of shape {labels.shape} ({labels.dtype})")
    if labels.size and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ValueError(f"labels must lie in [0, {logits.shape[1]}), got {labels.min()}..{labels.max()}")
    z = logits - logits.max(axis=1, keepdims=True)                 # shift for a stable log-sum-exp
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    n = len(labels)
    loss = -log_p[np.arange(n), labels].mean()
    dlogits = np.exp(log_p)
    dlogits[np.arange(n), labels] -= 1
    return float(loss), dlogits / n


class _Optimizer:
    def __init__(self, model, lr, weight_decay):
        self.params = model.parameters()                          # [(key, layer, attribute)]
        self.lr, self.weight_decay = lr, weight_decay
        self.state = {key: {} for key, _, _ in self.params}

    def step(self):
        for key, layer, attr in self.params:
            grad = getattr(layer, "d" + attr, None)
            if grad is None:
                raise RuntimeError(f"no gradient for {key}: call model.train(), then a forward pass and "
                                   "model.backward(...) before optimizer.step() (train_step does all three)")
            value = getattr(layer, attr)
            if self.weight_decay:
                grad = grad + self.weight_decay * value
            setattr(layer, attr, (value - self.update(self.state[key], grad)).astype(value.dtype))


class SGD(_Optimizer):
    """v <- momentum v + g;  w <- w - lr v  (PyTorch's form)."""

    def __init__(self, model, lr=0.01, momentum=0.9, weight_decay=0.0):
        super().__init__(model, lr, weight_decay)
        self.momentum = momentum

    def update(self, state, grad):
        state["v"] = grad if "v" not in state else self.momentum * state["v"] + grad
        return self.lr * state["v"]


class Adam(_Optimizer):
    """m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;  w <- w - lr m_hat / (sqrt(v_hat) + eps)  (Kingma & Ba 2015)."""

    def __init__(self, model, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
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
    loss, dlogits = cross_entropy(model(x), labels)
    model.backward(dlogits)
    optimizer.step()
    return loss
