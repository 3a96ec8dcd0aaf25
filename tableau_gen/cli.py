"""Command line: ``tableau-gen``.

Exit codes: 0 success, 1 a failed check, 2 invalid input.
"""

from __future__ import annotations

import argparse
import difflib
import sys

from tableau_gen import catalogue as catalogue_module


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors exit with status 2 and no traceback."""


def _cmd_catalogue(args) -> int:
    text = catalogue_module.render(catalogue_module.build())
    path = catalogue_module.CATALOGUE_PATH
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


def _cmd_generate(args) -> int:
    # Imported here so that the other subcommands work without the code generator.
    from tableau_gen import codegen

    return codegen.main(args.rest)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
    catalogue.set_defaults(handler=_cmd_catalogue)

    generate = commands.add_parser(
        "generate",
        help="emit one PyTorch solver module per family (options: --check, --root)",
        add_help=False,
    )
    generate.add_argument("rest", nargs=argparse.REMAINDER)
    generate.set_defaults(handler=_cmd_generate)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except ValueError as error:
        print(f"tableau-gen: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
