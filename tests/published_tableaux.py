"""Published explicit Runge-Kutta tableaux, typed in from the literature.

Each entry is (A, b, published order). Exact entries are rationals; Ralston's
fourth-order method is given to the 8 decimals of its publication (Ralston,
Math. Comp. 16, 1962), so comparisons with it allow for that rounding.
"""

from __future__ import annotations

import sympy as sp

R = sp.Rational

MIDPOINT = ([[0, 0], [R(1, 2), 0]], [0, 1], 2)
HEUN_2 = ([[0, 0], [1, 0]], [R(1, 2), R(1, 2)], 2)
RALSTON_2 = ([[0, 0], [R(2, 3), 0]], [R(1, 4), R(3, 4)], 2)

KUTTA_3 = (
    [[0, 0, 0], [R(1, 2), 0, 0], [-1, 2, 0]],
    [R(1, 6), R(2, 3), R(1, 6)],
    3,
)
HEUN_3 = (
    [[0, 0, 0], [R(1, 3), 0, 0], [0, R(2, 3), 0]],
    [R(1, 4), 0, R(3, 4)],
    3,
)
RALSTON_3 = (
    [[0, 0, 0], [R(1, 2), 0, 0], [0, R(3, 4), 0]],
    [R(2, 9), R(1, 3), R(4, 9)],
    3,
)

CLASSIC_RK4 = (
    [[0, 0, 0, 0], [R(1, 2), 0, 0, 0], [0, R(1, 2), 0, 0], [0, 0, 1, 0]],
    [R(1, 6), R(1, 3), R(1, 3), R(1, 6)],
    4,
)
THREE_EIGHTHS_RULE = (
    [[0, 0, 0, 0], [R(1, 3), 0, 0, 0], [R(-1, 3), 1, 0, 0], [1, -1, 1, 0]],
    [R(1, 8), R(3, 8), R(3, 8), R(1, 8)],
    4,
)
RALSTON_4_DECIMALS = (
    [
        [0, 0, 0, 0],
        [0.4, 0, 0, 0],
        [0.29697761, 0.15875964, 0, 0],
        [0.21810040, -3.05096516, 3.83286476, 0],
    ],
    [0.17476028, -0.55148066, 1.20553560, 0.17118478],
    4,
)

EXACT = {
    "midpoint": MIDPOINT,
    "heun_2": HEUN_2,
    "ralston_2": RALSTON_2,
    "kutta_3": KUTTA_3,
    "heun_3": HEUN_3,
    "ralston_3": RALSTON_3,
    "classic_rk4": CLASSIC_RK4,
    "three_eighths_rule": THREE_EIGHTHS_RULE,
}
