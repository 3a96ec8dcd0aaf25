"""Tests for the meta-solver regimes on a small real ODE-Net."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

from metanode.models import build_model
from metanode.regimes import (
    REGIME_NAMES,
    ModelEnsemble,
    Smoothing,
    SolverEnsemble,
    Standalone,
    Switching,
    build_regime,
)
from metanode.solvers import make_solver

SCALE = 0.0125


@pytest.fixture(autouse=True)
def _one_thread():
    # One intra-op thread: on a busy two-core machine two threads run the small
    # kernels here many times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("odenet", width=8).eval()


@pytest.fixture(scope="module")
def images():
    return torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))


def _solvers(*values):
    return [make_solver("rk2", u=u, steps=2) for u in values]


def _all_regimes():
    three = _solvers(0.5 - SCALE, 0.5, 0.5 + SCALE)
    return [
        Standalone(three[1]),
        Switching(three, generator=torch.Generator().manual_seed(0)),
        Smoothing(three[1], generator=torch.Generator().manual_seed(0)),
        SolverEnsemble(three),
        ModelEnsemble(three, weights=[0.2, 0.3, 0.5]),
    ]


@pytest.mark.parametrize("regime", _all_regimes(), ids=lambda r: r.name)
def test_regime_returns_log_probabilities(regime, model, images):
    log_probs = regime(model, images)
    assert log_probs.shape == (4, 10)
    # float32 softmax: the probabilities sum to one within a few ulps per class.
    totals = log_probs.exp().sum(dim=1)
    assert torch.allclose(totals, torch.ones(4), atol=1e-5, rtol=0)


@pytest.mark.parametrize("regime", _all_regimes(), ids=lambda r: r.name)
def test_regime_passes_input_gradient(regime, model, images):
    x = images.clone().requires_grad_(True)
    loss = F.nll_loss(regime(model, x), torch.arange(4))
    (gradient,) = torch.autograd.grad(loss, x)
    assert gradient.abs().sum() > 0


@pytest.mark.parametrize("regime", _all_regimes(), ids=lambda r: r.name)
def test_regime_config_is_json(regime):
    config = json.loads(json.dumps(regime.config()))
    assert config["name"] == regime.name
    assert len(config["solvers"]) == len(regime.solvers)
    assert regime.describe().startswith(regime.name)


def test_standalone_is_log_softmax(model, images):
    solver = _solvers(0.5)[0]
    expected = F.log_softmax(model(images, [solver]), dim=1)
    assert torch.equal(Standalone(solver)(model, images), expected)


def test_switching_uses_every_solver(model, images):
    solvers = _solvers(0.4875, 0.5, 0.5125)
    regime = Switching(solvers, generator=torch.Generator().manual_seed(3))
    seen = set()
    for _ in range(12):
        log_probs = regime(model, images)
        seen.add(regime.last_index)
        drawn = solvers[regime.last_index]
        expected = F.log_softmax(model(images, [drawn]), dim=1)
        assert torch.equal(log_probs, expected)
    assert seen == {0, 1, 2}


def test_switching_follows_probabilities():
    regime = Switching(
        _solvers(0.4, 0.5, 0.6),
        probs=[0.2, 0.3, 0.5],
        generator=torch.Generator().manual_seed(0),
    )
    draws = 4000
    counts = [0, 0, 0]
    for _ in range(draws):
        counts[regime.draw_index()] += 1
    # The standard error of a frequency over 4000 draws is at most 0.008, so
    # 0.03 is more than three standard errors.
    for count, prob in zip(counts, regime.probs, strict=True):
        assert count / draws == pytest.approx(prob, abs=0.03)


def test_switching_zero_probability_never_drawn():
    regime = Switching(_solvers(0.4, 0.5), probs=[0.0, 1.0])
    assert {regime.draw_index() for _ in range(50)} == {1}


def test_switching_generator_reproducible():
    first = Switching(
        _solvers(0.4, 0.5, 0.6), generator=torch.Generator().manual_seed(7)
    )
    second = Switching(
        _solvers(0.4, 0.5, 0.6), generator=torch.Generator().manual_seed(7)
    )
    assert [first.draw_index() for _ in range(20)] == [
        second.draw_index() for _ in range(20)
    ]


def test_smoothing_normal_draws_within_window():
    solver = make_solver("rk3", u=0.5, v=0.75, steps=2)
    regime = Smoothing(solver, scale=SCALE, generator=torch.Generator().manual_seed(0))
    draws = [regime.draw_parameters() for _ in range(400)]
    for name, base in (("u", 0.5), ("v", 0.75)):
        values = [d[name] for d in draws]
        moved = [v for v in values if v != base]
        assert all(abs(v - base) <= 2 * SCALE for v in values)
        # A standard Normal draw lands beyond 2 with probability 0.0455, so about
        # 18 of 400 fall back; 350 moved draws leave room for chance.
        assert len(moved) > 350
        assert len(moved) < 400


def test_smoothing_cauchy_falls_back_outside_window():
    solver = make_solver("rk2", u=0.5, steps=2)
    regime = Smoothing(
        solver,
        distribution="cauchy",
        scale=SCALE,
        generator=torch.Generator().manual_seed(0),
    )
    values = [regime.draw_parameters()["u"] for _ in range(1000)]
    fallbacks = sum(1 for v in values if v == 0.5)
    assert all(abs(v - 0.5) <= 2 * SCALE for v in values)
    # P(|z| > 2) = 1 - 2 atan(2) / pi = 0.295 for a standard Cauchy draw; the
    # standard error over 1000 draws is 0.015, so 0.06 is four standard errors.
    assert fallbacks / 1000 == pytest.approx(1 - 2 * math.atan(2) / math.pi, abs=0.06)


class _FixedDraws(Smoothing):
    """Smoothing whose standard draws come from a list, to reach exact cases."""

    def __init__(self, solver, draws, **options):
        super().__init__(solver, **options)
        self.draws = list(draws)

    def _standard_draw(self) -> float:
        return self.draws.pop(0)


def test_smoothing_falls_back_on_singular_draw():
    # u = 0.0125 - 0.0125 * 1.0 = 0 lies in the rk2 singular set.
    solver = make_solver("rk2", u=SCALE, steps=2)
    regime = _FixedDraws(solver, [-1.0, 0.5], scale=SCALE)
    assert regime.draw_parameters() == {"u": SCALE}
    assert regime.draw_parameters() == {"u": pytest.approx(SCALE * 1.5)}


def test_smoothing_falls_back_per_parameter():
    solver = make_solver("rk3", u=0.5, v=0.75, steps=2)
    regime = _FixedDraws(solver, [3.0, 1.0], scale=SCALE)
    drawn = regime.draw_parameters()
    assert drawn["u"] == 0.5
    assert drawn["v"] == pytest.approx(0.75 + SCALE)


def test_smoothing_falls_back_on_singular_pair():
    # v = u makes the rk3 tableau singular even though each value alone is fine.
    solver = make_solver("rk3", u=0.5, v=0.5 + SCALE, steps=2)
    regime = _FixedDraws(solver, [1.0, 0.0], scale=SCALE)
    assert regime.draw_parameters() == {"u": 0.5, "v": 0.5 + SCALE}


def test_smoothing_prob_zero_keeps_solver(model, images):
    solver = _solvers(0.5)[0]
    regime = Smoothing(solver, prob=0.0, generator=torch.Generator().manual_seed(0))
    for _ in range(5):
        log_probs = regime(model, images)
        assert regime.last_parameters == {"u": 0.5}
    assert torch.equal(log_probs, Standalone(solver)(model, images))


def test_smoothing_prob_half_applies_half():
    regime = Smoothing(
        _solvers(0.5)[0], prob=0.5, generator=torch.Generator().manual_seed(0)
    )
    moved = sum(regime.draw_parameters()["u"] != 0.5 for _ in range(1000))
    # About 500 applied draws, of which 4.55% fall back; the standard error of
    # the count is about 16, so +-80 is five standard errors.
    assert moved == pytest.approx(1000 * 0.5 * (1 - 0.0455), abs=80)


def test_smoothing_call_uses_drawn_solver(model, images):
    regime = Smoothing(_solvers(0.5)[0], generator=torch.Generator().manual_seed(0))
    # One draw in 22 falls back to u = 0.5; the first of ten that moved is used.
    for _ in range(10):
        log_probs = regime(model, images)
        drawn_u = regime.last_parameters["u"]
        if drawn_u != 0.5:
            break
    assert drawn_u != 0.5
    expected = Standalone(make_solver("rk2", u=drawn_u, steps=2))(model, images)
    assert torch.equal(log_probs, expected)


def test_solver_ensemble_weights_block_outputs(model, images):
    solvers = _solvers(0.5, 1.0)
    regime = SolverEnsemble(solvers, weights=[0.25, 0.75])
    expected = F.log_softmax(model(images, solvers, [0.25, 0.75]), dim=1)
    assert torch.equal(regime(model, images), expected)
    unweighted = SolverEnsemble(solvers, weights=[0.5, 0.5])(model, images)
    assert not torch.allclose(regime(model, images), unweighted)


def test_model_ensemble_averages_probabilities(model, images):
    solvers = _solvers(0.05, 0.5, 1.0)
    weights = [0.2, 0.3, 0.5]
    log_probs = ModelEnsemble(solvers, weights=weights)(model, images)
    probs = sum(
        w * F.softmax(model(images, [s]).double(), dim=1)
        for w, s in zip(weights, solvers, strict=True)
    )
    # float32 log-probabilities against a float64 reference: 1e-5 relative.
    assert torch.allclose(log_probs.double(), probs.log(), atol=1e-5, rtol=1e-5)


def test_model_ensemble_stable_for_tiny_probabilities(images):
    torch.manual_seed(0)
    model = build_model("odenet", width=8).eval()
    with torch.no_grad():
        model.head[-1].weight.mul_(1e4)
    solvers = _solvers(0.5, 1.0)
    log_probs = ModelEnsemble(solvers)(model, images)
    naive = sum(0.5 * F.softmax(model(images, [s]), dim=1) for s in solvers).log()
    # Sharp logits underflow float32 probabilities, so the naive log is -inf.
    assert torch.isinf(naive).any()
    assert torch.isfinite(log_probs).all()


def test_build_regime_every_name():
    solvers = _solvers(0.5)
    for name in REGIME_NAMES:
        regime = build_regime(name, solvers)
        assert regime.name == name
        assert regime.solvers == solvers


def test_build_regime_passes_options():
    regime = build_regime("smoothing", _solvers(0.5), distribution="cauchy", scale=0.1)
    assert regime.distribution == "cauchy"
    assert regime.scale == 0.1
    switching = build_regime("switching", _solvers(0.4, 0.6), probs=[0.1, 0.9])
    assert switching.probs == pytest.approx((0.1, 0.9))


def test_unknown_regime_name_lists_valid():
    with pytest.raises(ValueError, match="'ensemble'") as error:
        build_regime("ensemble", _solvers(0.5))
    assert "model-ensemble" in str(error.value)


def test_regime_option_not_taken_raises():
    with pytest.raises(ValueError, match="'probs'"):
        build_regime("standalone", _solvers(0.5), probs=[1.0])


@pytest.mark.parametrize("name", ["standalone", "smoothing"])
def test_single_solver_regime_rejects_several(name):
    with pytest.raises(ValueError, match="exactly one solver"):
        build_regime(name, _solvers(0.4, 0.6))


@pytest.mark.parametrize(
    ("weights", "fragment"),
    [
        ([0.5, 0.5], "2 values"),
        ([0.2, 0.2, 0.2], "sum to 0.6"),
        ([1.2, -0.1, -0.1], "non-negative"),
        (["a", 0.5, 0.5], "sequence of numbers"),
    ],
)
def test_bad_weights_raise(weights, fragment):
    solvers = _solvers(0.4, 0.5, 0.6)
    with pytest.raises(ValueError, match=fragment):
        SolverEnsemble(solvers, weights=weights)
    with pytest.raises(ValueError, match=fragment):
        ModelEnsemble(solvers, weights=weights)
    with pytest.raises(ValueError, match=fragment):
        Switching(solvers, probs=weights)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"distribution": "laplace"}, "laplace"),
        ({"scale": 0.0}, "scale"),
        ({"scale": float("nan")}, "scale"),
        ({"prob": 1.5}, "prob"),
    ],
)
def test_bad_smoothing_option_raises(options, fragment):
    with pytest.raises(ValueError, match=fragment):
        Smoothing(_solvers(0.5)[0], **options)


def test_regime_without_solvers_raises():
    with pytest.raises(ValueError, match="at least one solver"):
        SolverEnsemble([])


def test_batch_block_holds_one_draw():
    model = build_model("odenet", width=8, norm="none")
    solvers = [make_solver("rk2", u=u, steps=1) for u in (0.3, 0.5, 0.9)]
    regime = Switching(solvers, generator=torch.Generator().manual_seed(3))
    x = torch.rand(2, 1, 28, 28)
    with regime.batch():
        first = regime(model, x)
        drawn = regime.last_index
        for _ in range(10):
            torch.testing.assert_close(regime(model, x), first)
            assert regime.last_index == drawn
    indices = set()
    for _ in range(30):
        regime(model, x)
        indices.add(regime.last_index)
    assert indices == {0, 1, 2}, "outside the block every call draws anew"
