"""Command line: ``tableau-gen``.

Exit codes: 0 success, 1 a failed check, 2 invalid input (argparse's usage errors
and the ValueError messages of the library, printed without a traceback).
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

import sympy as sp

from tableau_gen import catalogue as catalogue_module
from tableau_gen import codegen
from tableau_gen.analysis import member_error_norm, optimal_member
from tableau_gen.conditions import order_conditions, validate_stages_and_order
from tableau_gen.families import (
    derive_families,
    describe_domain,
    family_by_name,
    member,
    parse_parameter_value,
)
from tableau_gen.trees import tree_to_str
from tableau_gen.verify import check_completeness, check_family

# Order 12 already has 7,813 conditions, and order 10 (1,205) took about 16 s on a
# 2-core test machine. The count grows about threefold per order, so larger
# orders do not finish in useful time.
MAX_PRINTED_ORDER = 12


def _cmd_conditions(args) -> int:
    stages = args.order if args.stages is None else args.stages
    validate_stages_and_order(stages, args.order)
    if args.order > MAX_PRINTED_ORDER:
        raise ValueError(
            f"order {args.order} is too large to print; the number of conditions "
            f"grows about threefold per order, so choose an order up to "
            f"{MAX_PRINTED_ORDER}"
        )
    pairs = order_conditions(stages, args.order)
    print(
        f"order conditions for an explicit {stages}-stage method up to order "
        f"{args.order} ({len(pairs)} conditions, c_i = sum_j a_ij)"
    )
    width = max(len(tree_to_str(tree)) for tree, _ in pairs)
    for tree, equation in pairs:
        print(f"  {tree_to_str(tree):<{width}}  {equation.lhs} = {equation.rhs}")
    return 0


def _cmd_families(args) -> int:
    for family in derive_families():
        roles = ", ".join(
            f"{name} = {role}" for name, role in family.spec.roles.items()
        )
        print(f"{family.name:<32} {family.spec.title}; {roles}")
    return 0


def _cmd_tableau(args) -> int:
    family = family_by_name(args.family)
    roles = ", ".join(f"{name} = {role}" for name, role in family.spec.roles.items())
    print(f"{family.name}: {family.spec.title}; parameters {roles}")
    print(_format_tableau(family.tableau))
    print(f"singular set: {catalogue_module.singular_entry(family)['description']}")
    print(f"domain: {describe_domain(family)}")
    return 0


def _cmd_member(args) -> int:
    family = family_by_name(args.family)
    values, label = _member_values(family, args.values)
    tableau = member(family, values)
    print(f"{family.name} at {label}")
    print(_format_tableau(tableau))
    return 0


def _member_values(family, items: list[str]) -> tuple[dict, str]:
    """Parameter values from ``u=2/3`` items or a named member; default if none."""
    if not items:
        values = dict(family.spec.default)
        return _parse_all(values), _describe(values) + " (default member)"
    if len(items) == 1 and "=" not in items[0]:
        name = items[0]
        members = family.spec.named_members
        if name not in members:
            valid = ", ".join(members) or "none"
            raise ValueError(
                f"{name!r} is neither a parameter assignment such as u=1/2 nor a "
                f"named member of {family.name} (named members: {valid})"
            )
        return _parse_all(members[name]), f"{name} ({_describe(members[name])})"
    values = {}
    for item in items:
        name, separator, text = item.partition("=")
        name = name.strip()
        if not separator:
            raise ValueError(
                f"invalid assignment {item!r}: expected NAME=VALUE, e.g. u=1/2"
            )
        if name in values:
            raise ValueError(
                f"parameter {name} is given twice ({name}={values[name]} and "
                f"{item.strip()}); give each parameter once"
            )
        try:
            values[name] = parse_parameter_value(text)
        except ZeroDivisionError:
            raise ValueError(
                f"invalid parameter value {text!r}: division by zero; expected a "
                f"rational number such as 2/3, 0.4 or -1"
            ) from None
    return values, _describe(values)


def _parse_all(values: dict) -> dict:
    return {name: sp.sympify(text) for name, text in values.items()}


def _describe(values: dict) -> str:
    return ", ".join(f"{name} = {value}" for name, value in values.items())


def _format_tableau(tableau) -> str:
    """Butcher layout: c | A, a rule, then the weights b."""
    s = tableau.stages
    rows = [
        [str(tableau.c[i])] + [str(tableau.A[i, j]) for j in range(i)] for i in range(s)
    ]
    rows.append([""] + [str(x) for x in tableau.b])
    widths = [max(len(row[k]) for row in rows if k < len(row)) for k in range(s + 1)]
    lines = []
    for index, row in enumerate(rows):
        if index == s:
            lines.append(
                "-" * widths[0] + "-+-" + "-" * (sum(widths[1:]) + 2 * (s - 1))
            )
        cells = [row[0].rjust(widths[0])] + [
            cell.ljust(widths[k + 1]) for k, cell in enumerate(row[1:])
        ]
        lines.append((cells[0] + " | " + "  ".join(cells[1:])).rstrip())
    return "\n".join(lines)


def _cmd_verify(args) -> int:
    failures = 0
    print("families (each condition up to p simplified to zero in u, v):")
    for family in derive_families():
        check = check_family(family)
        failures += not check.ok
        print(f"  {family.name}: {'ok' if check.ok else 'FAILED'}")
        print("    " + _describe_check(family, check))
        singular = catalogue_module.singular_entry(family)["description"]
        print(f"    singular set: {singular}")
        optimum = optimal_member(family)
        point = ", ".join(
            f"{name} = {sp.N(x, 10)}" for name, x in optimum.point.items()
        )
        note = " (the norm is the same for every member)" if optimum.constant else ""
        print(
            f"    optimal member: {point}, error norm "
            f"{sp.N(optimum.error_norm, 10)}{note}"
        )
        if "ralston" in family.spec.named_members and len(family.parameters) == 2:
            print("    " + _describe_ralston(family, optimum))
    print("completeness (exhaustive case split on every pivot and factor):")
    for result in check_completeness():
        print(f"  {result.summary()}")
    if failures:
        print(f"{failures} families FAILED verification")
        return 1
    print("all families verified")
    return 0


def _describe_check(family, check) -> str:
    p = family.order
    if check.ok:
        return (
            f"order {p} exactly: {check.conditions} conditions hold identically, "
            f"an order-{p + 1} residual is nonzero"
        )
    problems = []
    if check.failed:
        failed = ", ".join(tree_to_str(tree) for tree in check.failed)
        problems.append(f"conditions not satisfied for trees {failed}")
    if check.next_order_residual is None:
        problems.append(f"all order-{p + 1} residuals vanish, so the order exceeds {p}")
    if not check.row_sum_ok:
        problems.append("c is not the row sum of A")
    return "; ".join(problems)


def _describe_ralston(family, optimum) -> str:
    """Ralston's published member minimises an error bound, not the 2-norm."""
    ralston = _parse_all(family.spec.named_members["ralston"])
    norm = sp.N(member_error_norm(family, ralston), 10)
    distance = sp.sqrt(
        sum((ralston[name] - optimum.point[name]) ** 2 for name in family.parameters)
    )
    return (
        f"Ralston's member: error norm {norm}, {sp.N(distance, 4)} from the "
        f"optimum in (u, v)"
    )


def _cmd_catalogue(args) -> int:
    text = catalogue_module.render(catalogue_module.build())
    path = Path(args.path)
    if args.check:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current == text:
            print(f"{path.name} is up to date")
            return 0
        diff = difflib.unified_diff(
            current.splitlines(keepends=True),
            text.splitlines(keepends=True),
            fromfile=f"committed {path.name}",
            tofile="fresh derivation",
        )
        sys.stdout.writelines(diff)
        print(
            f"{path.name} differs from a fresh derivation; run `tableau-gen catalogue`"
        )
        return 1
    if path.exists() and path.read_text(encoding="utf-8") == text:
        print(f"{path.name} unchanged")
        return 0
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path.name}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tableau-gen",
        description="Derive, verify and print explicit Runge-Kutta families.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    catalogue = commands.add_parser(
        "catalogue", help="derive all families and write tableau_gen/catalogue.json"
    )
    catalogue.add_argument(
        "--check",
        action="store_true",
        help="compare with the committed file instead of writing; exit 1 if it differs",
    )
    catalogue.add_argument(
        "--path",
        default=str(catalogue_module.CATALOGUE_PATH),
        help="catalogue file to write or check (default: the packaged catalogue.json)",
    )
    catalogue.set_defaults(handler=_cmd_catalogue)

    conditions = commands.add_parser(
        "conditions", help="print the order conditions up to an order"
    )
    conditions.add_argument("order", type=int, help="order p (>= 1)")
    conditions.add_argument(
        "--stages", type=int, help="number of stages s (>= p; default s = p)"
    )
    conditions.set_defaults(handler=_cmd_conditions)

    families = commands.add_parser("families", help="list the derived families")
    families.set_defaults(handler=_cmd_families)

    tableau = commands.add_parser("tableau", help="print a family's symbolic tableau")
    tableau.add_argument("family", help="family name, e.g. rk3 (see `families`)")
    tableau.set_defaults(handler=_cmd_tableau)

    member_parser = commands.add_parser(
        "member",
        help="print the tableau of one member, exact for rational parameter values",
    )
    member_parser.add_argument("family", help="family name, e.g. rk2")
    member_parser.add_argument(
        "values",
        nargs="*",
        help="assignments such as u=2/3 v=1, or the name of a published member; "
        "the family's default member if omitted",
    )
    member_parser.set_defaults(handler=_cmd_member)

    verify = commands.add_parser(
        "verify",
        help="verify every family symbolically and prove the branch list complete",
    )
    verify.set_defaults(handler=_cmd_verify)

    generate = commands.add_parser(
        "generate", help="emit one PyTorch solver module per family into generated/"
    )
    codegen.add_arguments(generate)
    generate.set_defaults(handler=codegen.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, OSError) as error:
        print(f"tableau-gen: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
