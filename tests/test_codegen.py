"""The code generator: freshness check, write-if-changed and emitted code shape."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tableau_gen import codegen

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def repository_copy(tmp_path: Path) -> Path:
    """Copy the inputs and outputs of generation into a scratch root."""
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    shutil.copytree(ROOT / "generated", tmp_path / "generated")
    (tmp_path / "tableau_gen").mkdir()
    shutil.copy(ROOT / codegen.CATALOGUE_PATH, tmp_path / codegen.CATALOGUE_PATH)
    for cache in (tmp_path / "generated").glob("__pycache__"):
        shutil.rmtree(cache)
    return tmp_path


def test_check_passes_on_committed_tree(capsys):
    assert codegen.main(["--check", "--root", str(ROOT)]) == 0
    assert "up to date" in capsys.readouterr().out


def test_check_names_edited_file(repository_copy, capsys):
    target = repository_copy / "generated" / "rk2.py"
    target.write_text(
        target.read_text().replace("k1 = func(t, y)", "k1 = func(t, 2 * y)")
    )
    assert codegen.main(["--check", "--root", str(repository_copy)]) == 1
    message = capsys.readouterr().err
    assert "generated/rk2.py" in message
    assert "generated/rk3.py" not in message


def test_check_names_missing_and_leftover_files(repository_copy, capsys):
    (repository_copy / "generated" / "rk3.py").unlink()
    (repository_copy / "generated" / "rk9.py").write_text("# left over\n")
    assert codegen.main(["--check", "--root", str(repository_copy)]) == 1
    message = capsys.readouterr().err
    assert "generated/rk3.py" in message
    assert "generated/rk9.py" in message


def test_generate_restores_only_changed_files(repository_copy, capsys):
    edited = repository_copy / "generated" / "rk2.py"
    original = edited.read_text()
    edited.write_text(original + "# stray edit\n")
    untouched = repository_copy / "generated" / "rk3.py"
    before = untouched.stat().st_mtime_ns
    assert codegen.main(["--root", str(repository_copy)]) == 0
    assert edited.read_text() == original
    assert untouched.stat().st_mtime_ns == before
    assert "generated/rk2.py" in capsys.readouterr().out


def test_missing_catalogue_is_clear_error(tmp_path, capsys):
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    assert codegen.main(["--check", "--root", str(tmp_path)]) == 2
    assert "catalogue" in capsys.readouterr().err


def test_class_names():
    assert codegen.class_name("rk2") == "RK2"
    assert codegen.class_name("rk4_c2_half_c3_zero") == "RK4C2HalfC3Zero"


SMALL_FAMILY = {
    "name": "rk2",
    "title": "general two-stage, order 2",
    "stages": 2,
    "order": 2,
    "parameters": ["u"],
    "parameter_roles": {"u": "c2"},
    "A": [["0", "0"], ["u", "0"]],
    "b": ["1 - 1/(2*u)", "1/(2*u)"],
    "c": ["0", "u"],
    "singular": {
        "nonzero": ["u"],
        "forbidden_values": {"u": ["0"]},
        "description": "u = 0",
    },
    "domain": {"u": [0.05, 1.0]},
    "default": {"u": "1/2"},
}


def test_context_inlines_constants_and_skips_zeros():
    family = {**SMALL_FAMILY, "A": [["0", "0"], ["1", "0"]], "c": ["0", "1"]}
    family["b"] = ["1 - u", "u"]
    context = codegen.family_context(family)
    assert context["coefficient_names"] == ["b1", "b2"]
    assert "z = axpy(y, dt, k1)" in context["step_lines"]
    assert "k2 = func(t + dt, z)" in context["step_lines"]


def test_context_rejects_implicit_tableau():
    family = {**SMALL_FAMILY, "A": [["0", "u"], ["u", "0"]]}
    with pytest.raises(ValueError, match="not explicit"):
        codegen.family_context(family)


def test_context_rejects_unknown_symbol():
    family = {**SMALL_FAMILY, "b": ["1 - w", "w"]}
    with pytest.raises(ValueError, match="unknown symbols w"):
        codegen.family_context(family)


def test_context_rejects_irrational_constant():
    family = {**SMALL_FAMILY, "b": ["1 - pi*u", "pi*u"]}
    with pytest.raises(ValueError, match="rational coefficients"):
        codegen.family_context(family)


def test_broken_template_is_clear_error(repository_copy, capsys):
    template = repository_copy / "templates" / codegen.FAMILY_TEMPLATE
    template.write_text(template.read_text().replace("{% endfor %}", "{% endfo %}", 1))
    assert codegen.main(["--check", "--root", str(repository_copy)]) == 2
    assert "template" in capsys.readouterr().err


def test_clashing_class_names_rejected(repository_copy, capsys):
    catalogue_file = repository_copy / codegen.CATALOGUE_PATH
    catalogue = json.loads(catalogue_file.read_text())
    clone = dict(catalogue["families"][0], name="r_k2")
    catalogue["families"].append(clone)
    catalogue_file.write_text(json.dumps(catalogue))
    assert codegen.main(["--check", "--root", str(repository_copy)]) == 2
    assert "both map to class RK2" in capsys.readouterr().err
