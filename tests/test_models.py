"""Tests for the models: shapes, evaluation counts, options, config and bad input."""

import json

import pytest
import torch
from torch import nn

from metanode.models import (
    ACTIVATIONS,
    MODEL_NAMES,
    NORMS,
    WEIGHT_NORMS,
    ODEBlock,
    build_model,
    total_nfe,
)
from metanode.models.blocks import ConcatConv2d, ODEFunction, check_weights
from metanode.models.cifar import STAGE_LAYOUTS
from metanode.solvers import make_solver

GREY_MODELS = ("odenet", "resnet")
CIFAR_MODELS = tuple(name for name in MODEL_NAMES if name not in GREY_MODELS)


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    # One intra-op thread: on a busy two-core machine two threads run the small
    # kernels here many times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


def _images(name: str, batch: int = 2, size: int = 32) -> torch.Tensor:
    if name in GREY_MODELS:
        return torch.rand(batch, 1, 28, 28)
    return torch.rand(batch, 3, size, size)


def _ode_block_count(name: str) -> int:
    depth = int(name.removeprefix("pre").removeprefix("metanode"))
    return sum(ode for _, ode in STAGE_LAYOUTS[depth])


class Decay(ODEFunction):
    """dy/dt = -y, whose exact flow over [0, 1] is y0 * exp(-1)."""

    def forward(self, t, y):
        self.nfe += 1
        return -y


def test_model_names_cover_both_families():
    assert "odenet" in MODEL_NAMES
    assert "resnet" in MODEL_NAMES
    for depth in (4, 6, 10, 18, 34):
        assert f"metanode{depth}" in MODEL_NAMES
        assert f"premetanode{depth}" in MODEL_NAMES


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_output_shape(name):
    model = build_model(name, width=8, num_classes=7)
    solver = make_solver("rk2", u=0.5, steps=1)
    logits = model(_images(name, batch=3), [solver])
    assert logits.shape == (3, 7)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", CIFAR_MODELS)
def test_cifar_nfe_counts_every_block(name):
    model = build_model(name, width=8)
    solver = make_solver("rk2", u=0.5, steps=3)
    model(_images(name, size=16), [solver])
    blocks = [m for m in model.modules() if isinstance(m, ODEBlock)]
    assert len(blocks) == _ode_block_count(name)
    # Two stages per RK2 step, three steps per block.
    assert all(block.nfe == 6 for block in blocks)
    assert total_nfe(model) == 6 * len(blocks)


def test_odenet_nfe_per_block_and_reset():
    model = build_model("odenet", width=8, ode_blocks=2)
    solver = make_solver("rk3", u=0.5, v=1.0, steps=2)
    x = _images("odenet")
    model(x, [solver])
    assert total_nfe(model) == 2 * 3 * 2
    # The count restarts with every forward pass instead of accumulating.
    model(x, [solver])
    assert total_nfe(model) == 2 * 3 * 2


def test_odenet_nfe_sums_ensemble_solvers():
    model = build_model("odenet", width=8)
    solvers = [make_solver("rk2", u=u, steps=2) for u in (0.5, 1.0)]
    model(_images("odenet"), solvers)
    assert total_nfe(model) == 2 * (2 * 2)


def test_resnet_ignores_solvers():
    model = build_model("resnet", width=8, ode_blocks=3)
    x = _images("resnet")
    solver = make_solver("rk2", u=0.5, steps=4)
    assert torch.equal(model(x), model(x, [solver]))
    assert total_nfe(model) == 0
    residual_blocks = [m for m in model.blocks]
    assert len(residual_blocks) == 3


def test_odenet_depends_on_solver():
    model = build_model("odenet", width=8)
    x = _images("odenet")
    coarse = model(x, [make_solver("rk2", u=0.5, steps=1)])
    other = model(x, [make_solver("rk2", u=1.0, steps=1)])
    assert not torch.allclose(coarse, other)


def test_ode_block_integrates_unit_interval():
    block = ODEBlock(Decay())
    y0 = torch.ones(4, 2, dtype=torch.float64)
    y1 = block(y0, [make_solver("rk3", u=0.5, v=1.0, steps=64)])
    # A third-order method with h = 1/64 has a global error near
    # h**3 = 4e-6; 1e-5 leaves room for the error constant.
    expected = torch.full_like(y0, torch.e**-1)
    assert torch.allclose(y1, expected, atol=1e-5, rtol=0)
    assert block.nfe == 3 * 64


def test_ode_block_averages_solver_outputs():
    block = ODEBlock(Decay())
    y0 = torch.randn(3, 5, dtype=torch.float64)
    first = make_solver("rk2", u=0.5, steps=1)
    second = make_solver("rk2", u=1.0, steps=2)
    averaged = block(y0, [first, second], weights=[0.25, 0.75])
    expected = 0.25 * first(Decay(), y0) + 0.75 * second(Decay(), y0)
    # Same float64 operations in a different order: agreement to rounding.
    assert torch.allclose(averaged, expected, atol=1e-14, rtol=0)
    uniform = block(y0, [first, second])
    expected_uniform = 0.5 * first(Decay(), y0) + 0.5 * second(Decay(), y0)
    assert torch.allclose(uniform, expected_uniform, atol=1e-14, rtol=0)


def test_concat_conv_depends_on_time():
    conv = ConcatConv2d(2, 3)
    x = torch.randn(1, 2, 5, 5)
    at_start = conv(torch.tensor(0.0), x)
    at_end = conv(torch.tensor(1.0), x)
    assert at_start.shape == (1, 3, 5, 5)
    assert not torch.allclose(at_start, at_end)


def test_model_normalizes_pixels_inside():
    model = build_model("odenet", width=8, mean=(0.5,), std=(0.25,))
    pixels = torch.tensor([0.0, 0.5, 1.0]).view(1, 1, 1, 3)
    normalized = model.normalize(pixels)
    assert torch.equal(normalized.flatten(), torch.tensor([-2.0, 0.0, 2.0]))


def test_premetanode10_defaults_gelu_no_norm():
    model = build_model("premetanode10")
    assert model.config["norm"] == "none"
    assert model.config["activation"] == "gelu"
    assert model.config["width"] == 64
    assert model.config["mean"] == pytest.approx([0.4914, 0.4822, 0.4465])
    norm_types = (nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d)
    assert not any(isinstance(m, norm_types) for m in model.modules())
    assert any(isinstance(m, nn.GELU) for m in model.modules())
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())


def test_odenet_defaults_group_norm_relu():
    model = build_model("odenet")
    assert model.config["in_channels"] == 1
    assert model.config["norm"] == "group"
    assert model.config["mean"] == pytest.approx([0.2860])
    groups = [m for m in model.modules() if isinstance(m, nn.GroupNorm)]
    assert groups
    assert all(g.num_groups == 32 for g in groups)


@pytest.mark.parametrize("norm", NORMS)
def test_every_norm_runs(norm):
    model = build_model("premetanode6", width=8, norm=norm)
    model.train()
    logits = model(_images("premetanode6"), [make_solver("rk2", u=0.5, steps=1)])
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("weight_norm", WEIGHT_NORMS)
def test_every_weight_norm_trains(weight_norm):
    model = build_model("odenet", width=8, weight_norm=weight_norm)
    model.train()
    logits = model(_images("odenet"), [make_solver("rk2", u=0.5, steps=2)])
    logits.sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []


def test_spectral_norm_bounds_conv_weight():
    model = build_model("metanode4", width=8, weight_norm="spectral")
    model.train()
    solver = make_solver("rk2", u=0.5, steps=1)
    for _ in range(30):
        model(_images("metanode4"), [solver])
    weight = model.stem.weight.detach().flatten(1)
    # Thirty power iterations bring the estimate within a few percent of the
    # largest singular value, which the reparametrized weight divides by.
    assert torch.linalg.matrix_norm(weight, ord=2) == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_activation_runs(activation):
    model = build_model("odenet", width=8, activation=activation)
    logits = model(_images("odenet"), [make_solver("rk2", u=0.5, steps=1)])
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", ["odenet", "resnet", "premetanode10", "metanode6"])
def test_config_rebuilds_same_model(name):
    model = build_model(name, width=8, weight_norm="weight", num_classes=5)
    config = json.loads(json.dumps(model.config))
    assert config["name"] == name
    rebuilt = build_model(**config)
    rebuilt.load_state_dict(model.state_dict())
    solver = make_solver("rk2", u=0.5, steps=1)
    x = _images(name)
    assert torch.equal(model(x, [solver]), rebuilt(x, [solver]))


def test_cifar_ode_blocks_multiplies_layout():
    model = build_model("metanode10", width=8, ode_blocks=3)
    blocks = [m for m in model.modules() if isinstance(m, ODEBlock)]
    assert len(blocks) == 3 * _ode_block_count("metanode10")


def test_model_follows_float64():
    model = build_model("odenet", width=8).double()
    solver = make_solver("rk2", u=0.5, steps=1)
    logits = model(_images("odenet").double(), [solver])
    assert logits.dtype == torch.float64


def test_gradients_reach_all_parameters():
    model = build_model("premetanode10", width=8)
    solver = make_solver("rk2", u=0.5, steps=1)
    model(_images("premetanode10"), [solver]).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []


def test_unknown_model_name_lists_valid():
    with pytest.raises(ValueError, match="'odenet3'") as error:
        build_model("odenet3")
    assert "premetanode34" in str(error.value)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"norm": "batchnorm"}, "batchnorm"),
        ({"weight_norm": "l2"}, "l2"),
        ({"activation": "swish"}, "swish"),
        ({"width": 0}, "width"),
        ({"ode_blocks": 1.5}, "ode_blocks"),
        ({"num_classes": True}, "num_classes"),
        ({"depth": 3}, "depth"),
        ({"mean": (0.5, 0.5)}, "mean"),
        ({"std": (0.0,)}, "std"),
        ({"in_channels": 3}, "mean"),
    ],
)
def test_bad_model_option_raises(options, fragment):
    with pytest.raises(ValueError, match=fragment):
        build_model("odenet", **options)


def test_model_without_solvers_raises():
    model = build_model("odenet", width=8)
    with pytest.raises(ValueError, match="solvers"):
        model(_images("odenet"))
    with pytest.raises(ValueError, match="empty"):
        model(_images("odenet"), [])


def test_block_rejects_bad_weights():
    block = ODEBlock(Decay())
    solvers = [make_solver("rk2", u=u, steps=1) for u in (0.5, 1.0)]
    with pytest.raises(ValueError, match="2 solvers"):
        block(torch.ones(1, 2), solvers, weights=[1.0])
    with pytest.raises(ValueError, match="sum to"):
        block(torch.ones(1, 2), solvers, weights=[0.5, 0.6])


def test_check_weights_rescales_within_tolerance():
    weights = check_weights([1 / 3] * 3, 3, "weights")
    assert sum(weights) == pytest.approx(1.0, abs=1e-15)
    with pytest.raises(ValueError, match="non-negative"):
        check_weights([1.5, -0.5], 2, "weights")
