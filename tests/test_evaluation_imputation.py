"""Noisy linear imputation (minixai.evaluation.imputation): the values it must give, the system it solves,
and the nested-dissection solve against SciPy's default sparse solver."""
import numpy as np
import pytest
from scipy.sparse.linalg import spsolve

from minixai.evaluation.imputation import imputation_system, nested_dissection, noisy_linear_imputation


def test_imputation_is_exact_on_a_plane_away_from_the_border():
    """Inside the image every pixel has its 8 neighbours with symmetric weights, so their weighted mean of a
    plane a r + b c + d is the plane itself: removed interior pixels come back exactly."""
    r, c = np.mgrid[0:12, 0:12]
    image = np.stack([2.0 * r - 0.5 * c + 1, -r + 3.0 * c])
    removed = np.zeros((12, 12), bool)
    removed[3:9, 2:10] = True
    removed[5, 5:8] = False
    np.testing.assert_allclose(noisy_linear_imputation(image, removed), image, atol=1e-12)


def test_imputed_pixel_is_the_weighted_mean_of_its_neighbours():
    image = np.arange(25.0).reshape(1, 5, 5) ** 1.5
    removed = np.zeros((5, 5), bool)
    removed[0, 0] = removed[2, 3] = True                  # a corner (3 neighbours) and an interior pixel
    out = noisy_linear_imputation(image, removed)[0]
    x = image[0]
    corner = (x[0, 1] / 6 + x[1, 0] / 6 + x[1, 1] / 12) / (1 / 6 + 1 / 6 + 1 / 12)
    inner = (x[1, 3] + x[3, 3] + x[2, 2] + x[2, 4]) / 6 + (x[1, 2] + x[1, 4] + x[3, 2] + x[3, 4]) / 12
    np.testing.assert_allclose([out[0, 0], out[2, 3]], [corner, inner], rtol=1e-12)
    np.testing.assert_array_equal(out[~removed], x[~removed])


def test_noise_is_seeded_and_has_its_scale():
    image = np.zeros((3, 40, 40))
    removed = np.zeros((40, 40), bool)
    removed[5:35, 5:35] = True
    first = noisy_linear_imputation(image, removed, 0.5, np.random.default_rng(7))
    again = noisy_linear_imputation(image, removed, 0.5, np.random.default_rng(7))
    np.testing.assert_array_equal(first, again)
    assert first[:, removed].std() == pytest.approx(0.5, rel=0.03)        # 2700 draws
    assert (first[:, ~removed] == 0).all()


def test_nested_dissection_solves_what_spsolve_solves():
    rng = np.random.default_rng(0)
    image = rng.standard_normal((3, 48, 40))
    removed = rng.random((48, 40)) < 0.85
    removed[10:30, 5:25] = True                              # a large connected hole as well
    unknown = np.flatnonzero(removed)
    A, b = imputation_system(image.reshape(3, -1), unknown, 48, 40)
    expected = spsolve(A, b)
    np.testing.assert_allclose(noisy_linear_imputation(image, removed)[:, removed], expected.T, rtol=1e-9,
                               atol=1e-12)


def test_nested_dissection_orders_every_unknown_once_with_separating_lines():
    r, c = np.divmod(np.arange(30 * 20), 20)
    groups = nested_dissection(np.arange(600), r, c)
    assert sorted(np.concatenate(groups).tolist()) == list(range(600))
    last = groups[-1]                                        # the first separator: the median row, eliminated last
    assert len(set(r[last])) == 1 and len(last) == 20


def test_the_system_is_symmetric_and_diagonally_dominant():
    removed = np.zeros((6, 6), bool)
    removed[1:4, 2:5] = removed[0, 0] = True
    unknown = np.flatnonzero(removed)
    A, _ = imputation_system(np.zeros((1, 36)), unknown, 6, 6)
    dense = A.toarray()
    np.testing.assert_array_equal(dense, dense.T)
    off = np.abs(dense).sum(axis=1) - np.abs(np.diag(dense))
    assert (np.diag(dense) >= off).all() and (np.diag(dense) > off).any()
