"""The derived family catalogue: build it, write it as JSON, load it back.

The JSON text is deterministic (fixed key order, indent 2, no timestamps or
paths), so a fresh derivation can be compared with the committed file as text.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tableau_gen.families import Family

CATALOGUE_PATH = Path(__file__).with_name("catalogue.json")
SCHEMA_VERSION = 1

# Significant digits of the optimal parameter values in the catalogue.
OPTIMUM_DIGITS = 15


def load(path: Path | str = CATALOGUE_PATH) -> dict:
    """Parse the committed catalogue (or the one at ``path``)."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def build() -> dict:
    """Derive every family and assemble the catalogue as plain data."""
    # SymPy and the derivation are imported here, not at module level, so that
    # load() stays cheap for code that only reads the committed file.
    from tableau_gen.families import derive_families

    return {
        "schema_version": SCHEMA_VERSION,
        "generated_by": "tableau-gen catalogue",
        "families": [family_entry(family) for family in derive_families()],
    }


def render(catalogue: dict) -> str:
    """JSON text of the catalogue, indent 2, with a trailing newline."""
    return json.dumps(catalogue, indent=2, ensure_ascii=False) + "\n"


def family_entry(family: Family) -> dict:
    """Catalogue record of one family, in the fixed key order of the schema."""
    import sympy as sp

    from tableau_gen.analysis import (
        optimal_member,
        principal_error_norm,
        stability_polynomial,
    )

    spec = family.spec
    tableau = family.tableau
    optimum = optimal_member(family)
    optimal = {
        name: str(sp.N(value, OPTIMUM_DIGITS)) for name, value in optimum.point.items()
    }
    optimal["error_norm"] = float(optimum.error_norm)
    entry = {
        "name": spec.name,
        "title": spec.title,
        "stages": spec.stages,
        "order": family.order,
        "parameters": list(family.parameters),
        "parameter_roles": dict(spec.roles),
        "A": [
            [str(tableau.A[i, j]) for j in range(tableau.stages)]
            for i in range(tableau.stages)
        ],
        "b": [str(x) for x in tableau.b],
        "c": [str(x) for x in tableau.c],
        "singular": singular_entry(family),
        "domain": {name: list(bounds) for name, bounds in spec.domain.items()},
        "default": dict(spec.default),
        "named_members": {
            name: dict(point) for name, point in spec.named_members.items()
        },
        "optimal": optimal,
        "error_norm_constant": optimum.constant,
        "principal_error_norm": str(principal_error_norm(family)),
        "stability_polynomial": str(stability_polynomial(tableau)),
    }
    return entry


def singular_entry(family: Family) -> dict:
    """Describe the singular set: its factors, exact forbidden values and a summary."""
    import sympy as sp

    forbidden: dict[str, list[str]] = {name: [] for name in family.parameters}
    parts = []
    for factor in family.singular:
        symbols = sorted(factor.free_symbols, key=str)
        if len(symbols) == 1:
            (symbol,) = symbols
            name = str(symbol)
            for root in sorted(sp.solve(factor, symbol), key=sp.default_sort_key):
                forbidden[name].append(str(root))
                parts.append(f"{name} = {root}")
        else:
            parts.append(f"{factor} = 0")
    return {
        "nonzero": [str(factor) for factor in family.singular],
        "forbidden_values": {
            name: values for name, values in forbidden.items() if values
        },
        "description": ", ".join(parts),
    }
