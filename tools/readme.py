"""Write README.md from nbs/index.ipynb and the two records (figures/results.json, figures/benchmarks.json):
`seemore_nb.report.paper.readme_text` (67_report.paper). `make readme` runs it; tests/test_docs.py checks they agree."""
import sys

from seemore_nb.report.paper import readme_text, write_readme


def render(index=None) -> str:
    return readme_text(index)


if __name__ == '__main__':
    write_readme()
    sys.exit(0)
