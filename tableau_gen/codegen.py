"""Emission of one PyTorch solver module per catalogue family.

`tableau-gen generate` renders templates/family_solver.py.j2 for each family of
tableau_gen/catalogue.json, plus templates/registry.py.j2 for the package's
``__init__``, formats the result with ruff and writes generated/. With ``--check`` it
writes nothing and exits 1 when a committed file differs from what it would write.

The tableau formulas are turned into straight-line Python with common subexpressions
shared (SymPy's cse). The same code runs on Python floats and on 0-dim tensors, which
lets the solvers skip autograd bookkeeping for frozen parameters.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import jinja2
import sympy

FAMILY_TEMPLATE = "family_solver.py.j2"
REGISTRY_TEMPLATE = "registry.py.j2"
CATALOGUE_PATH = "tableau_gen/catalogue.json"
OUTPUT_DIRECTORY = "generated"
_HEADER_WORD = "Generated"  # kept apart from the header text below on purpose


class GenerationError(RuntimeError):
    """A catalogue entry that cannot be turned into a solver module."""


def default_root() -> Path:
    """Return the repository root that contains templates/ and generated/."""
    return Path(__file__).resolve().parent.parent


def header(template: str) -> str:
    return (
        f"# {_HEADER_WORD} by `tableau-gen generate` from templates/{template} and\n"
        f"# {CATALOGUE_PATH}. Do not edit by hand: change the template or the\n"
        "# catalogue, then regenerate from the repository root with\n"
        "#     tableau-gen generate"
    )


def module_name(family_name: str) -> str:
    return family_name


def class_name(family_name: str) -> str:
    """Return the class name for a family: rk4 -> RK4, rk4_c2_half -> RK4C2Half."""
    head, *rest = family_name.split("_")
    return head.upper() + "".join(part.capitalize() for part in rest)


@contextmanager
def _context(family_name: str) -> Iterator[None]:
    try:
        yield
    except (
        sympy.SympifyError,
        KeyError,
        TypeError,
        ValueError,
        IndexError,
        jinja2.TemplateError,
    ) as error:
        raise GenerationError(
            f"failed to generate family {family_name!r}: {error}"
        ) from error


def _parse(text: str, symbols: dict) -> sympy.Expr:
    expression = sympy.sympify(text, locals=symbols)
    unexpected = expression.free_symbols - set(symbols.values())
    if unexpected:
        names = ", ".join(sorted(map(str, unexpected)))
        raise ValueError(f"formula {text!r} uses unknown symbols {names}")
    # The emitted code has no imports, so only rational functions with rational
    # coefficients print as Python that runs (no pi, E, sqrt or I).
    parameters = sorted(symbols.values(), key=str)
    numerator, denominator = sympy.fraction(sympy.together(expression))
    if not all(
        part.is_polynomial(*parameters)
        and all(c.is_Rational for c in sympy.Poly(part, *parameters).coeffs())
        for part in (numerator, denominator)
    ) or expression.has(sympy.zoo, sympy.nan):
        raise ValueError(
            f"formula {text!r} is not a rational function of "
            f"{', '.join(map(str, parameters))} with rational coefficients"
        )
    return expression


def _python(expression: sympy.Expr) -> str:
    """Print a rational function of u, v as Python that works on floats and tensors."""
    return str(expression)


def _literal(value: sympy.Expr) -> str:
    text = str(value)
    return text if value.is_Integer else f"({text})"


def _scaled(coefficient: str, constant: sympy.Expr | None) -> str:
    """Return the Python text for coefficient * dt."""
    if constant is None:
        return f"{coefficient} * dt"
    if constant == 1:
        return "dt"
    if constant == -1:
        return "-dt"
    return f"{_literal(constant)} * dt"


def family_context(family: dict) -> dict:
    """Prepare the template variables for one catalogue family."""
    symbols = {name: sympy.Symbol(name) for name in family["parameters"]}
    stages = family["stages"]

    A = [[_parse(text, symbols) for text in row] for row in family["A"]]
    b = [_parse(text, symbols) for text in family["b"]]
    c = [_parse(text, symbols) for text in family["c"]]
    for i in range(stages):
        for j in range(i, stages):
            if A[i][j] != 0:
                raise ValueError(f"A[{i + 1}][{j + 1}] = {A[i][j]} is not explicit")
    if c[0] != 0:
        raise ValueError(f"c1 = {c[0]} must be 0")

    # Name every tableau entry; constant ones are inlined into the code.
    entries: list[tuple[str, sympy.Expr]] = []
    for i in range(1, stages):
        entries += [(f"a{i + 1}{j + 1}", A[i][j]) for j in range(i)]
    entries += [(f"b{i + 1}", b[i]) for i in range(stages)]
    entries += [(f"c{i + 1}", c[i]) for i in range(1, stages)]
    variable = [(name, expr) for name, expr in entries if expr.free_symbols]
    constant = {name: expr for name, expr in entries if not expr.free_symbols}
    if not variable:
        raise ValueError("no tableau entry depends on the family parameters")

    replacements, reduced = sympy.cse(
        [expr for _, expr in variable],
        symbols=sympy.numbered_symbols("x"),
        order="none",
    )
    coefficient_lines = [f"{sym} = {_python(expr)}" for sym, expr in replacements]
    coefficient_lines += [
        f"{name} = {_python(expr)}"
        for (name, _), expr in zip(variable, reduced, strict=True)
    ]
    names = [name for name, _ in variable]

    def entry(name: str) -> str:
        return name if name in names else _python(constant[name])

    tableau_rows = []
    for i in range(stages):
        tableau_rows.append(
            [entry(f"a{i + 1}{j + 1}") if j < i else "0" for j in range(stages)]
        )

    step_lines = ["k1 = func(t, y)"]
    for i in range(1, stages):
        state = "y"
        for j in range(i):
            name = f"a{i + 1}{j + 1}"
            if name in constant and constant[name] == 0:
                continue
            scale = _scaled(name, constant.get(name))
            step_lines.append(f"z = axpy({state}, {scale}, k{j + 1})")
            state = "z"
        time_name = f"c{i + 1}"
        if time_name in constant and constant[time_name] == 0:
            time = "t"
        else:
            time = f"t + {_scaled(time_name, constant.get(time_name))}"
        step_lines.append(f"k{i + 1} = func({time}, {state})")
    state = "y"
    for i in range(stages):
        name = f"b{i + 1}"
        if name in constant and constant[name] == 0:
            continue
        step_lines.append(
            f"y_next = axpy({state}, {_scaled(name, constant.get(name))}, k{i + 1})"
        )
        state = "y_next"
    step_lines.append(f"return {state}")

    formula_lines = [f"{name} = {expr}" for name, expr in entries]
    parameter_text = ", ".join(
        f"{name} = {family['parameter_roles'][name]}" for name in family["parameters"]
    )
    defaults = [
        (name, repr(float(sympy.Rational(family["default"][name]))))
        for name in family["parameters"]
    ]
    singular_set = []
    for text in family["singular"]["nonzero"]:
        factor = _parse(text, symbols)
        involved = tuple(
            name
            for name in family["parameters"]
            if symbols[name] in factor.free_symbols
        )
        singular_set.append((_python(factor), involved))
    members = family.get("named_members", {})
    named = "; ".join(
        f"{member} ({', '.join(f'{k} = {v}' for k, v in values.items())})"
        for member, values in members.items()
    )
    return {
        "header": header(FAMILY_TEMPLATE),
        "family": family,
        "title_line": f"{family['title'][0].upper()}{family['title'][1:]}.",
        "class_name": class_name(family["name"]),
        "parameter_text": parameter_text,
        "default_text": ", ".join(f"{name} = {value}" for name, value in defaults),
        "defaults": defaults,
        "domain": [
            (name, [repr(float(x)) for x in family["domain"][name]])
            for name in family["parameters"]
        ],
        "domain_text": " x ".join(
            f"{name} in [{family['domain'][name][0]:g}, {family['domain'][name][1]:g}]"
            for name in family["parameters"]
        ),
        "singular_set": singular_set,
        "forbidden_values": sorted(family["singular"]["forbidden_values"].items()),
        "signature": ", ".join(family["parameters"]),
        "quoted_parameters": [json.dumps(name) for name in family["parameters"]],
        "singular_texts": [text for text, _ in singular_set],
        "coefficient_lines": coefficient_lines,
        "coefficient_names": names,
        "tableau_rows": tableau_rows,
        "tableau_b": [entry(f"b{i + 1}") for i in range(stages)],
        "tableau_c": ["0"] + [entry(f"c{i + 1}") for i in range(1, stages)],
        "step_lines": step_lines,
        "formula_lines": formula_lines,
        "named_members": named,
    }


def _environment(root: Path) -> jinja2.Environment:
    templates = root / "templates"
    if not templates.is_dir():
        raise GenerationError(
            f"template directory {templates} not found; run tableau-gen generate "
            "from a checkout of the repository or pass --root"
        )
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def format_python(source: str, filename: str, root: Path) -> str:
    """Format source with the ruff configuration of the repository at root."""
    # The ruff next to this interpreter is the pinned one; PATH may hold another
    # release that formats differently.
    beside = Path(sys.executable).parent / "ruff"
    ruff = str(beside) if beside.is_file() else shutil.which("ruff")
    if ruff is None:
        raise GenerationError(
            "ruff is not installed; install the test extra (pip install -e '.[test]')"
        )
    result = subprocess.run(
        [ruff, "format", "--stdin-filename", filename, "-"],
        input=source,
        capture_output=True,
        text=True,
        cwd=root,
        check=False,
    )
    if result.returncode != 0:
        raise GenerationError(
            f"ruff failed to format {filename}: {result.stderr.strip()}; check the "
            "template output"
        )
    return result.stdout


def render(root: Path) -> dict[str, str]:
    """Return {relative path: text} of every file generated/ should contain."""
    catalogue_file = root / CATALOGUE_PATH
    try:
        catalogue = json.loads(catalogue_file.read_text())
    except FileNotFoundError:
        raise GenerationError(
            f"catalogue {catalogue_file} not found; run `tableau-gen catalogue` first"
        ) from None
    except json.JSONDecodeError as error:
        raise GenerationError(
            f"catalogue {catalogue_file} is not JSON: {error}"
        ) from None
    families = catalogue.get("families") if isinstance(catalogue, dict) else None
    if not isinstance(families, list):
        raise GenerationError(
            f"catalogue {catalogue_file} has no list of families; regenerate it with "
            "`tableau-gen catalogue`"
        )
    environment = _environment(root)
    try:
        family_template = environment.get_template(FAMILY_TEMPLATE)
    except jinja2.TemplateError as error:
        raise GenerationError(f"template {FAMILY_TEMPLATE}: {error}") from None

    files: dict[str, str] = {}
    registry = []
    class_names: dict[str, str] = {}
    for family in families:
        with _context(family.get("name", "?")):
            context = family_context(family)
            text = family_template.render(**context)
        name = context["class_name"]
        if name in class_names:
            raise GenerationError(
                f"families {class_names[name]!r} and {family['name']!r} both map to "
                f"class {name}; rename one of them in the catalogue spec"
            )
        class_names[name] = family["name"]
        path = f"{OUTPUT_DIRECTORY}/{module_name(family['name'])}.py"
        files[path] = format_python(text, path, root)
        registry.append(
            {
                "name": family["name"],
                "module": module_name(family["name"]),
                "class_name": context["class_name"],
            }
        )
    init_path = f"{OUTPUT_DIRECTORY}/__init__.py"
    try:
        registry_text = environment.get_template(REGISTRY_TEMPLATE).render(
            header=header(REGISTRY_TEMPLATE),
            families=registry,
            imports=sorted(registry, key=lambda entry: entry["module"]),
        )
    except jinja2.TemplateError as error:
        raise GenerationError(f"template {REGISTRY_TEMPLATE}: {error}") from None
    files[init_path] = format_python(registry_text, init_path, root)
    return files


def stale_files(root: Path, files: dict[str, str]) -> list[str]:
    """Return the paths whose committed text differs, is missing or is left over."""
    stale = []
    for path, text in files.items():
        target = root / path
        if not target.is_file() or target.read_text() != text:
            stale.append(path)
    output = root / OUTPUT_DIRECTORY
    if output.is_dir():
        for existing in sorted(output.glob("*.py")):
            relative = f"{OUTPUT_DIRECTORY}/{existing.name}"
            if relative not in files:
                stale.append(relative)
    return stale


def write(root: Path, files: dict[str, str]) -> list[str]:
    """Write the files that changed and remove left-over modules; return the paths."""
    changed = stale_files(root, files)
    (root / OUTPUT_DIRECTORY).mkdir(exist_ok=True)
    for path in changed:
        target = root / path
        if path in files:
            target.write_text(files[path])
        else:
            target.unlink()
    return changed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of `tableau-gen generate` to a parser."""
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 and list the files that are out of date",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=default_root(),
        help="repository root holding templates/, generated/ and the catalogue "
        "(default: the checkout this package runs from)",
    )


def run(args: argparse.Namespace) -> int:
    """Generate or check generated/; return the exit code."""
    try:
        files = render(args.root)
    except GenerationError as error:
        print(f"tableau-gen generate: {error}", file=sys.stderr)
        return 2

    if args.check:
        stale = stale_files(args.root, files)
        if stale:
            print(
                "tableau-gen generate --check: out of date: " + ", ".join(stale),
                file=sys.stderr,
            )
            print("regenerate with: tableau-gen generate", file=sys.stderr)
            return 1
        print(f"generated/ is up to date ({len(files)} files)")
        return 0

    changed = write(args.root, files)
    print(
        f"wrote {len(changed)} of {len(files)} files"
        + (": " + ", ".join(changed) if changed else " (all up to date)")
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tableau-gen generate",
        description="Emit one PyTorch solver module per catalogue family.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
