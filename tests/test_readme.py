"""The README as a new user reads it: its links lead somewhere inside the repository, and its
commands run as written from a fresh checkout (after `make`), without an activated venv."""

from __future__ import annotations

import re
from pathlib import Path

from hedger.chain.abi import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"


def _links(text: str) -> list[str]:
    return [t for t in re.findall(r"\]\(([^)\s]+)\)", text) if not re.match(r"[a-z][a-z0-9+.-]*:|#", t)]


def test_every_relative_link_resolves_inside_the_repository() -> None:
    text = README.read_text()
    root = PROJECT_ROOT.resolve()
    links = _links(text)
    assert links, "the README links to the docs it relies on"
    for target in links:
        path = (root / target.split("#", 1)[0]).resolve()
        assert path.is_relative_to(root), f"{target} points outside the repository"
        assert path.exists(), f"{target} does not exist"


def test_no_path_outside_the_repository() -> None:
    """A user has only the repository: no `../` reference, in a link or as a code span."""
    text = README.read_text()
    outside = re.findall(r"[`(](\.\./[^`)\s]*)", text)
    assert outside == [], outside


def test_python_commands_name_the_venv_interpreter() -> None:
    """`python scripts/demo.py` fails outside the venv (no web3): the README says `.venv/bin/python`."""
    text = README.read_text()
    bare = [m.group(0) for m in re.finditer(r"(?<![\w/.-])python3? (scripts|bench)/\S+", text)]
    assert bare == [], bare
    for script in re.findall(r"\.venv/bin/python ((?:scripts|bench)/\S+?\.py)", text):
        assert (PROJECT_ROOT / script).exists(), script


def test_link_finder_sees_links(tmp_path: Path) -> None:
    """The checks above can fail: a link out of the repository and a bare python command are found."""
    sample = "see [x](../shared/X.md) and [y](docs/Y.md) or [w](https://example.org), run `python scripts/demo.py`"
    assert _links(sample) == ["../shared/X.md", "docs/Y.md"]
    assert re.findall(r"[`(](\.\./[^`)\s]*)", sample) == ["../shared/X.md"]
