"""Layer-wise relevance propagation (Bach 2015, Montavon 2019) and DeepLIFT (Shrikumar 2017)."""
from .. import composites
from ..backend import array_module
from ..baselines import make_baseline
from ..canonizers import merge_batchnorm
from ..rules import DeepLiftRescale
from ._common import output_seed, prepare, returns_like_input


@returns_like_input
def lrp(model, x, target, composite="epsilon_plus_flat"):
    """Relevance R (N, C, H, W) of every input for the target logit: R_out = f_c(x) at the target,
    propagated back with the rules of `composite` (a name from minixai.composites or a Composite).
    Batch norms are folded into their convolutions first (canonizers.merge_batchnorm)."""
    x, targets = prepare(model, x, target)
    rules = composites.get(composite)
    net = merge_batchnorm(model)
    tape = net.record(x, keep_inputs=True)
    return net.backward(output_seed(tape.output, targets) * tape.output, rules, tape)


@returns_like_input
def deeplift(model, x, target, baseline="black", return_delta=False):
    """DeepLIFT-Rescale attributions (x - x') * m, where m are the multipliers of minixai.rules.DeepLiftRescale.
    Summation to delta: sum(A) = F(x) - F(x') exactly on ReLU/max-pool nets; with return_delta the
    difference (N,) is returned too."""
    x, targets = prepare(model, x, target)
    reference = make_baseline(baseline, x, model.spec)
    n = x.shape[0]
    xp = array_module(x)
    tape = model.record(xp.concatenate([x, reference]), keep_inputs=True)
    logits = tape.output
    seed = output_seed(logits[:n], targets)
    multipliers = model.backward(seed, DeepLiftRescale(), tape)   # the rule carries the first half only
    attributions = (x - reference) * multipliers
    if not return_delta:
        return attributions
    scores = (logits * xp.concatenate([seed, seed])).sum(axis=1)
    return attributions, attributions.sum(axis=(1, 2, 3)) - (scores[:n] - scores[n:])
