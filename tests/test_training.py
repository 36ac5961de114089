"""Cross-entropy, the optimisers and a short training run, all with this engine alone (PyTorch optional)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minixai import InputSpec, Model
from minixai.layers import Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential
from minixai.training import SGD, Adam, cross_entropy, train_step

from gradcheck import assert_gradients_close, numeric_gradient, using


def tiny_net(seed=0, dtype=np.float64):
    """conv 3x3 (1 -> 4) -> relu -> maxpool 2 -> flatten -> linear (64 -> 2), on 8x8 one-channel images."""
    root = Sequential(Conv2d(1, 4, 3, padding=1), ReLU(), MaxPool2d(2), Flatten(), Linear(4 * 4 * 4, 2))
    model = Model(root, InputSpec(mean=(0.0,), std=(1.0,), size=(8, 8), class_names=["horizontal", "vertical"]))
    rng = np.random.default_rng(seed)
    for _, layer, attr in model.parameters():          # He-normal weights, small biases
        a = getattr(layer, attr)
        fan_in = a[0].size if attr == "weight" else 1
        setattr(layer, attr, (rng.standard_normal(a.shape) * np.sqrt(2 / fan_in) * (attr == "weight" or 0.1))
                .astype(dtype))
    return model


def bars(n, seed):
    """A separable toy problem: a horizontal (class 0) or vertical (class 1) bar in noise, 8x8."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    x = rng.normal(0, 0.3, (n, 1, 8, 8))
    where = rng.integers(1, 7, n)
    for i, (label, k) in enumerate(zip(labels, where)):
        if label == 0:
            x[i, 0, k, 1:7] += 1.0
        else:
            x[i, 0, 1:7, k] += 1.0
    return x, labels


# ---- cross-entropy -----------------------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 5), classes=st.integers(2, 6), scale=st.sampled_from([0.1, 1.0, 10.0]),
       seed=st.integers(0, 2**16))
def test_cross_entropy_gradient(n, classes, scale, seed):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, classes)) * scale
    labels = rng.integers(0, classes, n)
    loss, dlogits = cross_entropy(logits, labels)
    expected = np.mean(np.log(np.exp(logits).sum(axis=1)) - logits[np.arange(n), labels])
    np.testing.assert_allclose(loss, expected, rtol=1e-10, atol=1e-12)
    assert_gradients_close(dlogits, numeric_gradient(lambda: cross_entropy(logits, labels)[0], logits, 1.0),
                           "dlogits")


def test_cross_entropy_is_stable_for_large_logits():
    loss, dlogits = cross_entropy(np.array([[1000.0, 0.0], [0.0, -1000.0]]), np.array([1, 0]))
    np.testing.assert_allclose(loss, 500.0)                    # -log p = 1000 for the first, 0 for the second
    np.testing.assert_allclose(dlogits, [[0.5, -0.5], [0.0, 0.0]])


def test_cross_entropy_checks_its_labels():
    with pytest.raises(ValueError, match="labels must lie in"):
        cross_entropy(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="N integer labels"):
        cross_entropy(np.zeros((2, 3)), np.array([0.0, 1.0]))


# ---- optimisers against a hand computation -----------------------------------------------------------
def one_parameter_model(w):
    """A model whose only trainable array is a Linear weight w (key "0.weight")."""
    model = Model(Sequential(Linear(2, 1, bias=False)))
    layer = model["0"]
    layer.weight = np.array(w, dtype=np.float64)
    return model, layer


def test_sgd_momentum_and_weight_decay_by_hand():
    model, layer = one_parameter_model([[1.0, -2.0]])
    sgd = SGD(model, lr=0.1, momentum=0.9, weight_decay=0.01)
    sgd.step({"0.weight": np.array([[0.5, 0.25]])})
    # g = dw + 0.01 w = [0.51, 0.23];  v = g;  w = w - 0.1 v = [0.949, -2.023]
    np.testing.assert_allclose(layer.weight, [[0.949, -2.023]], rtol=1e-12)
    sgd.step({"0.weight": np.array([[0.0, 0.0]])})
    # g = 0.01 w = [0.00949, -0.02023];  v = 0.9 [0.51, 0.23] + g = [0.46849, 0.18677];  w -= 0.1 v
    np.testing.assert_allclose(layer.weight, [[0.949 - 0.046849, -2.023 - 0.018677]], rtol=1e-12)


def test_adam_first_steps_by_hand():
    model, layer = one_parameter_model([[1.0, -2.0]])
    adam = Adam(model, lr=0.1, betas=(0.9, 0.999), eps=1e-8)
    adam.step({"0.weight": np.array([[0.5, -4.0]])})
    # step 1: m_hat = g, v_hat = g^2, so w -= lr g / (|g| + eps) = lr sign(g) (up to eps)
    np.testing.assert_allclose(layer.weight, [[0.9, -1.9]], rtol=1e-7)
    w1 = layer.weight[0, 0]
    adam.step({"0.weight": np.array([[1.0, 0.0]])})
    # step 2, first element: m = 0.9 * 0.05 + 0.1 * 1 = 0.145, v = 0.999 * 0.00025 + 0.001 * 1 = 0.00124975
    m_hat, v_hat = 0.145 / (1 - 0.9**2), 0.00124975 / (1 - 0.999**2)
    np.testing.assert_allclose(layer.weight[0, 0], w1 - 0.1 * m_hat / (np.sqrt(v_hat) + 1e-8), rtol=1e-12)


def test_step_without_gradients_fails_clearly():
    model = tiny_net()
    with pytest.raises(RuntimeError, match="no gradient"):
        SGD(model, lr=0.1).step(model.parameter_gradients(model.record(np.zeros((1, 1, 8, 8)))))


# ---- training ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make_optimizer", [lambda m: SGD(m, lr=0.1), lambda m: Adam(m, lr=0.02)],
                         ids=["sgd", "adam"])
def test_loss_falls_on_a_toy_problem(make_optimizer):
    x, labels = bars(256, seed=0)
    x = x.astype(np.float32)
    x_test, labels_test = bars(200, seed=1)
    model = tiny_net(seed=1, dtype=np.float32)
    optimizer = make_optimizer(model)
    with using("numpy"):
        initial = cross_entropy(model(x), labels)[0]
        for _ in range(6):                                      # 6 epochs, 48 steps of 32 images
            for i in range(0, len(x), 32):
                train_step(model, x[i:i + 32], labels[i:i + 32], optimizer)
        model.eval()
        final = cross_entropy(model(x), labels)[0]
        accuracy = (model(x_test.astype(np.float32)).argmax(axis=1) == labels_test).mean()
    assert final < 0.5 * initial
    assert accuracy > 0.85
    assert all(getattr(layer, attr).dtype == np.float32 for _, layer, attr in model.parameters())


# ---- against PyTorch -----------------------------------------------------------------------------------
def torch_twin(model):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 2))
    net.double().load_state_dict({k: torch.from_numpy(v.copy()) for k, v in model.state_dict().items()})
    return torch, net


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_two_steps_match_torch(name):
    model = tiny_net(seed=3)
    torch, net = torch_twin(model)
    if name == "sgd":
        ours, theirs = SGD(model, lr=0.1, momentum=0.9, weight_decay=1e-3), \
            torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    else:
        ours, theirs = Adam(model, lr=0.01, weight_decay=1e-3), torch.optim.Adam(net.parameters(), lr=0.01,
                                                                                 weight_decay=1e-3)
    x, labels = bars(8, seed=4)
    with using("numpy"):
        for _ in range(2):          # the second step uses the optimiser's state (momentum, moments)
            loss = train_step(model, x, labels, ours)
            theirs.zero_grad()
            torch_loss = torch.nn.functional.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(labels))
            torch_loss.backward()
            theirs.step()
            np.testing.assert_allclose(loss, torch_loss.item(), rtol=1e-10)
    for key, value in net.state_dict().items():
        np.testing.assert_allclose(model.state_dict()[key], value.numpy(), rtol=1e-9, atol=1e-12, err_msg=key)
