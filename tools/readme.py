"""Write README.md from nbs/index.ipynb (Quarto is not available offline): markdown cells as they are,
code cells as fenced python blocks. `make readme` runs it; tests/test_docs.py checks they agree."""
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent


def render(index=ROOT/'nbs'/'index.ipynb') -> str:
    nb = nbformat.read(index, as_version=4)
    parts = ['<!-- generated from nbs/index.ipynb by tools/readme.py: edit the notebook, then `make readme` -->']
    for cell in nb.cells:
        source = cell.source.strip()
        if not source or source.startswith('#| hide'): continue
        parts.append(source if cell.cell_type == 'markdown' else f'```python\n{source}\n```')
    return '\n\n'.join(parts) + '\n'


if __name__ == '__main__':
    (ROOT/'README.md').write_text(render())
    sys.exit(0)
