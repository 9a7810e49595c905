"""The README is the landing notebook rendered, and it gives the two commands that CI and users run."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/'tools'))


def test_readme_is_rendered_from_the_index_notebook():
    import readme
    assert (ROOT/'README.md').read_text() == readme.render(), 'README.md is stale: run `make readme`'


def test_readme_gives_the_two_commands_and_ci_calls_the_test_one():
    text = (ROOT/'README.md').read_text()
    assert 'make reproduce' in text and 'make test' in text
    assert 'make test' in (ROOT/'.ci'/'run').read_text()
