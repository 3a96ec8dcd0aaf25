"""The tableau-gen command line: output, exit codes and bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tableau_gen import catalogue
from tableau_gen.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_conditions_prints_one_line_per_tree(capsys):
    code, out, _ = run(capsys, "conditions", "4")
    assert code == 0
    lines = out.splitlines()
    assert "up to order 4 (8 conditions" in lines[0]
    assert len(lines) == 1 + 8
    assert lines[1].split() == ["τ", "b1", "+", "b2", "+", "b3", "+", "b4", "=", "1"]
    assert lines[-1].endswith("= 1/4")


def test_conditions_with_more_stages(capsys):
    code, out, _ = run(capsys, "conditions", "2", "--stages", "3")
    assert code == 0
    assert "b2*c2 + b3*c3 = 1/2" in out


def test_tableau_prints_symbolic_family(capsys):
    code, out, _ = run(capsys, "tableau", "rk2")
    assert code == 0
    assert "(2*u - 1)/(2*u)" in out
    assert "singular set: u = 0" in out


def test_member_is_exact_for_rationals(capsys):
    code, out, _ = run(capsys, "member", "rk2", "u=2/3")
    assert code == 0
    assert out.splitlines()[-1].split() == ["|", "1/4", "3/4"]


def test_member_decimal_input_becomes_rational(capsys):
    code, out, _ = run(capsys, "member", "rk2", "u=0.5")
    assert code == 0
    assert "1/2" in out
    assert "0.5" not in out.splitlines()[-1]


def test_member_by_published_name(capsys):
    code, out, _ = run(capsys, "member", "rk4_c2_half_c3_half", "classic")
    assert code == 0
    assert out.splitlines()[-1].split() == ["|", "1/6", "1/3", "1/3", "1/6"]


def test_member_default(capsys):
    code, out, _ = run(capsys, "member", "rk3")
    assert code == 0
    assert "default member" in out.splitlines()[0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["tableau", "rk9"], "unknown family 'rk9'; valid families: rk2"),
        (["member", "rk2", "u=0"], "u = 0 is in the singular set of rk2"),
        (["member", "rk3", "u=1/2", "v=1/2"], "u - v = 0"),
        (["member", "rk2", "u=x"], "invalid parameter value 'x'"),
        (["member", "rk2", "v=1"], "rk2 has no parameter v"),
        (["member", "rk2", "euler"], "'euler' is neither a parameter assignment"),
        (["member", "rk2", "u=1/0"], "invalid parameter value '1/0': division by"),
        (["member", "rk2", "u=1/3", "u=1/2"], "parameter u is given twice"),
        (["conditions", "0"], "`order` must be an integer >= 1, got 0"),
        (["conditions", "-2"], "`order` must be an integer >= 1, got -2"),
        (["conditions", "3", "--stages", "2"], "order 3 needs `stages` >= 3"),
        (["conditions", "13"], "order 13 is too large to print"),
        (["catalogue", "--check", "--path", "/"], "Is a directory"),
    ],
)
def test_bad_input_exits_2_with_message(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert out == ""


def test_argparse_error_exits_2(capsys):
    with pytest.raises(SystemExit) as excinfo:
        main(["conditions", "three"])
    assert excinfo.value.code == 2
    assert "invalid int value" in capsys.readouterr().err


def test_console_script_bad_input_has_no_traceback():
    result = subprocess.run(
        [sys.executable, "-m", "tableau_gen.cli", "member", "rk2", "u=0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "singular set" in result.stderr
    assert "Traceback" not in result.stderr


def test_catalogue_check_passes_on_committed_file(capsys):
    code, out, _ = run(capsys, "catalogue", "--check")
    assert code == 0
    assert "up to date" in out


def test_catalogue_check_fails_on_modified_copy(capsys, tmp_path):
    copy = tmp_path / "catalogue.json"
    text = catalogue.CATALOGUE_PATH.read_text(encoding="utf-8")
    copy.write_text(text.replace('"order": 4', '"order": 5', 1), encoding="utf-8")
    code, out, _ = run(capsys, "catalogue", "--check", "--path", str(copy))
    assert code == 1
    assert '-      "order": 5,' in out
    assert "differs from a fresh derivation" in out


def test_catalogue_writes_missing_file(capsys, tmp_path):
    target = tmp_path / "catalogue.json"
    code, _, _ = run(capsys, "catalogue", "--path", str(target))
    assert code == 0
    assert target.read_text(encoding="utf-8") == catalogue.CATALOGUE_PATH.read_text(
        encoding="utf-8"
    )


@pytest.mark.slow
def test_verify_reports_every_family(capsys):
    code, out, _ = run(capsys, "verify")
    assert code == 0
    assert out.count(": ok") == 8
    assert "s = p = 4:" in out
    assert "4 solution branches" in out
    assert "all families verified" in out
