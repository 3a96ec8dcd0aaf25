"""L-inf adversarial attacks in pixel space: FGSM, FGSM with random start and PGD.

Every attack takes ``predict``, a callable mapping images to log-probabilities of
shape (N, classes) (for example ``lambda x: regime(model, x)``), images ``x`` of
shape (N, C, H, W) with values in [0, 1], and integer labels ``y`` of shape (N,).
It maximises ``F.nll_loss(predict(x_adv), y)`` and returns detached images with
||x_adv - x||_inf <= eps (up to float32 rounding) and values in [0, 1]. Gradients
are taken with respect to the input only, through ``torch.autograd.grad``, so no
``.grad`` of a model parameter is written. The attacks never change a model's
train/eval mode.

NOTE: a model in training mode stays in training mode, so its batch-norm running
statistics are updated by the attack's forward passes; switch to eval mode first
when that matters.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import torch
import torch.nn.functional as F

from metanode.models.blocks import check_choice

Predict = Callable[[torch.Tensor], torch.Tensor]

ATTACK_NAMES = ("fgsm", "fgsm-random", "pgd")

# Defaults for build_attack when alpha or steps is left out.
FGSM_RANDOM_ALPHA_FACTOR = 1.25  # alpha = 1.25 * eps, Wong, Rice and Kolter 2020
PGD_STEPS = 7
PGD_ALPHA_FACTOR = 2.5  # alpha = 2.5 * eps / steps, Madry et al. 2018


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_eps(eps) -> float:
    if not _is_real(eps):
        raise ValueError(f"`eps` must be a number in (0, 1], got {eps!r}")
    if not (math.isfinite(eps) and 0.0 < eps <= 1.0):
        raise ValueError(
            f"`eps` must be in (0, 1] because pixels lie in [0, 1], got {eps!r}"
        )
    return float(eps)


def _check_alpha(alpha) -> float:
    if not _is_real(alpha):
        raise ValueError(f"`alpha` (step size) must be a number, got {alpha!r}")
    if not (math.isfinite(alpha) and 0.0 < alpha <= 1.0):
        raise ValueError(f"`alpha` (step size) must be in (0, 1], got {alpha!r}")
    return float(alpha)


def _check_steps(steps) -> int:
    if not isinstance(steps, numbers.Integral) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"`steps` must be an integer >= 1, got {steps!r}")
    return int(steps)


def _check_inputs(x: torch.Tensor, y: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or not torch.is_floating_point(x):
        raise ValueError(f"`x` must be a floating-point tensor, got {type(x)}")
    if not isinstance(y, torch.Tensor) or y.dim() != 1 or y.shape[0] != x.shape[0]:
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y)
        raise ValueError(
            f"`y` must be a 1-D tensor of {x.shape[0]} labels, got {shape}"
        )


def input_gradient(predict: Predict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Return the gradient of the summed NLL loss with respect to the images x.

    The loss is summed, not averaged, so each image's gradient does not shrink with
    the batch size; the attacks use only its sign.
    """
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        log_probs = predict(x)
        loss = F.nll_loss(log_probs.float(), y, reduction="sum")
        (gradient,) = torch.autograd.grad(loss, x)
    return gradient


def _uniform_noise(
    x: torch.Tensor, eps: float, generator: torch.Generator | None
) -> torch.Tensor:
    device = generator.device if generator is not None else x.device
    noise = torch.rand(x.shape, generator=generator, device=device, dtype=x.dtype)
    return ((2 * noise - 1) * eps).to(x.device)


def _project(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Clip x_adv into the eps-ball around x and into [0, 1]."""
    x_adv = torch.minimum(torch.maximum(x_adv, x - eps), x + eps)
    return x_adv.clamp(0.0, 1.0)


def fgsm(predict: Predict, x: torch.Tensor, y: torch.Tensor, eps: float):
    """Fast gradient sign method: one step of size eps along the gradient's sign.

    Goodfellow, Shlens and Szegedy, "Explaining and Harnessing Adversarial
    Examples", 2015, https://arxiv.org/abs/1412.6572. L-inf threat model.
    """
    eps = _check_eps(eps)
    _check_inputs(x, y)
    x = x.detach()
    gradient = input_gradient(predict, x, y)
    return _project(x + eps * gradient.sign(), x, eps).detach()


def fgsm_random(
    predict: Predict,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    alpha: float,
    generator: torch.Generator | None = None,
):
    """FGSM from a uniform random start in the eps-ball, one step of size alpha.

    Wong, Rice and Kolter, "Fast is better than free: Revisiting adversarial
    training", 2020, https://arxiv.org/abs/2001.03994, who use alpha = 1.25 * eps
    for training. The result is projected back into the eps-ball and [0, 1].
    """
    eps = _check_eps(eps)
    alpha = _check_alpha(alpha)
    _check_inputs(x, y)
    x = x.detach()
    start = _project(x + _uniform_noise(x, eps, generator), x, eps)
    gradient = input_gradient(predict, start, y)
    return _project(start + alpha * gradient.sign(), x, eps).detach()


def pgd(
    predict: Predict,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    alpha: float,
    steps: int,
    random_start: bool = True,
    generator: torch.Generator | None = None,
):
    """Projected gradient descent: `steps` signed steps of size alpha, each
    projected back into the eps-ball and [0, 1].

    Madry, Makelov, Schmidt, Tsipras and Vladu, "Towards Deep Learning Models
    Resistant to Adversarial Attacks", 2018, https://arxiv.org/abs/1706.06083.
    With `random_start` the first iterate is drawn uniformly from the eps-ball.
    """
    eps = _check_eps(eps)
    alpha = _check_alpha(alpha)
    steps = _check_steps(steps)
    _check_inputs(x, y)
    x = x.detach()
    x_adv = x.clone()
    if random_start:
        x_adv = _project(x + _uniform_noise(x, eps, generator), x, eps)
    for _ in range(steps):
        gradient = input_gradient(predict, x_adv, y)
        x_adv = _project(x_adv + alpha * gradient.sign(), x, eps)
    return x_adv.detach()


class Attack:
    """An attack with fixed settings, called as attack(predict, x, y)."""

    def __init__(
        self,
        name: str,
        eps: float,
        alpha: float | None,
        steps: int | None,
        generator: torch.Generator | None,
    ):
        self.name = name
        self.eps = eps
        self.alpha = alpha
        self.steps = steps
        self.generator = generator

    def __call__(self, predict: Predict, x: torch.Tensor, y: torch.Tensor):
        if self.name == "fgsm":
            return fgsm(predict, x, y, self.eps)
        if self.name == "fgsm-random":
            return fgsm_random(predict, x, y, self.eps, self.alpha, self.generator)
        return pgd(
            predict, x, y, self.eps, self.alpha, self.steps, generator=self.generator
        )

    def describe(self) -> str:
        """Return a short description for tables and logs."""
        text = f"{self.name} eps={self.eps:.4g}"
        if self.alpha is not None:
            text += f" alpha={self.alpha:.4g}"
        if self.steps is not None:
            text += f" steps={self.steps}"
        return text

    def config(self) -> dict:
        """Return the settings as a JSON-able dict."""
        return {
            "name": self.name,
            "eps": self.eps,
            "alpha": self.alpha,
            "steps": self.steps,
        }

    def __repr__(self) -> str:
        return f"<Attack {self.describe()}>"


def build_attack(
    name: str,
    eps: float,
    alpha: float | None = None,
    steps: int | None = None,
    generator: torch.Generator | None = None,
) -> Attack:
    """Build the attack `name` (one of ATTACK_NAMES) with fixed settings.

    fgsm takes only eps. fgsm-random takes alpha, by default 1.25 * eps. pgd takes
    alpha and steps, by default 7 steps of 2.5 * eps / steps; it always starts at a
    random point of the eps-ball. `generator` draws the random starts.

    Raises:
        ValueError: for an unknown name, invalid eps, alpha or steps, or an alpha
            or steps that the attack does not use.
    """
    check_choice("attack", name, ATTACK_NAMES)
    eps = _check_eps(eps)
    if name == "fgsm":
        if alpha is not None or steps is not None:
            raise ValueError(
                f"fgsm takes one step of size eps and no alpha or steps (got "
                f"alpha={alpha!r}, steps={steps!r}); use 'pgd' for several steps"
            )
        return Attack(name, eps, None, None, generator)
    if name == "fgsm-random":
        if steps is not None:
            raise ValueError(
                f"fgsm-random takes one step and no steps (got steps={steps!r}); "
                "use 'pgd' for several steps"
            )
        if alpha is None:
            alpha = min(FGSM_RANDOM_ALPHA_FACTOR * eps, 1.0)
        return Attack(name, eps, _check_alpha(alpha), None, generator)
    steps = PGD_STEPS if steps is None else _check_steps(steps)
    if alpha is None:
        alpha = min(PGD_ALPHA_FACTOR * eps / steps, 1.0)
    return Attack(name, eps, _check_alpha(alpha), steps, generator)
