"""Time order-condition generation and the derivation of all s = p <= 4 families.

Order conditions: ``order_conditions(p, p)`` for p = 1..8, that is the 1 to 200
conditions of a general p-stage method. The first call runs on SymPy's cold
cache; the median over the repeats shows the warm cost.

Derivation: the case split for s = p = 2, 3, 4, naming the branches, and the
symbolic verification of every family, from cleared caches. The optimal-member
search and the catalogue are timed on their own line because they are analysis,
not derivation.

    python benchmarks/tableau_gen_speed.py [--repeats 5]

Targets: all 200 conditions for p = 8 in under 1 s, and derivation plus
verification in under 30 s.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import sympy as sp

from tableau_gen import catalogue
from tableau_gen.analysis import optimal_member, principal_error_square
from tableau_gen.conditions import order_conditions
from tableau_gen.derivation import derive
from tableau_gen.families import derive_families
from tableau_gen.verify import check_family


def time_call(function, *args) -> float:
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def bench_conditions(repeats: int) -> None:
    print("order conditions of a general p-stage method, seconds")
    print(f"{'p':>2} {'conditions':>10} {'first':>8} {'median':>8}")
    for p in range(1, 9):
        first = time_call(order_conditions, p, p)
        rest = [time_call(order_conditions, p, p) for _ in range(repeats)]
        count = len(order_conditions(p, p))
        print(f"{p:>2} {count:>10} {first:>8.4f} {statistics.median(rest):>8.4f}")
    total = time_call(lambda: [order_conditions(p, p) for p in range(1, 9)])
    print(f"all p = 1..8 in one pass: {total:.3f} s (target < 1 s)")


def bench_derivation() -> None:
    derive.cache_clear()
    derive_families.cache_clear()
    principal_error_square.cache_clear()
    print("\nderivation and verification of all s = p <= 4 families, seconds")
    start = time.perf_counter()
    for s in (2, 3, 4):
        elapsed = time_call(derive, s, s)
        cases = derive(s, s)
        print(
            f"  case split s = p = {s}: {elapsed:.2f} "
            f"({cases.leaves} leaves, {len(cases.branches)} branches)"
        )
    families = derive_families()
    named = time.perf_counter() - start
    print(f"  naming and re-parameterising: {named:.2f} cumulative")
    checks = [check_family(family) for family in families]
    if not all(check.ok for check in checks):
        raise SystemExit("verification failed; run `tableau-gen verify`")
    derived = time.perf_counter() - start
    print(f"derivation + verification: {derived:.2f} s (target < 30 s)")

    start = time.perf_counter()
    for family in families:
        optimal_member(family)
    catalogue.render(catalogue.build())
    print(f"optimal members and catalogue: {time.perf_counter() - start:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeats", type=int, default=5, help="warm repetitions per order (default 5)"
    )
    args = parser.parse_args()
    print(
        f"Python {platform.python_version()}, SymPy {sp.__version__}, "
        f"{platform.machine()}, single process"
    )
    bench_conditions(args.repeats)
    bench_derivation()


if __name__ == "__main__":
    main()
