"""Modified backpropagation: guided backprop (Springenberg 2015) and DeconvNet (Zeiler 2014).

Both are the gradient with one rule changed in ReLU's backward (see minixai.rules)."""
from ..rules import DeconvNet, GuidedBackprop
from ._common import input_gradient, prepare, returns_like_input


@returns_like_input
def guided_backprop(model, x, target):
    """The gradient with ReLU passing only positive signals where its input was positive."""
    x, targets = prepare(model, x, target)
    return input_gradient(model, x, targets, rule=GuidedBackprop())[0]


@returns_like_input
def deconvnet(model, x, target):
    """The gradient with ReLU replaced by ReLU of the backward signal."""
    x, targets = prepare(model, x, target)
    return input_gradient(model, x, targets, rule=DeconvNet())[0]
