"""The layout rules, read from the notebooks themselves (imports inside functions count): no import cycle, no two notebooks
sharing a number, every notebook's exported code importing only lower-numbered notebooks, the engine importing no task,
store or model, and the package's module map naming every module."""
import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NBS = sorted(p for p in (ROOT/'nbs').glob('*.ipynb') if p.name != 'index.ipynb')
NUMBER = re.compile(r'^(\d+)_')


def exported(nb: Path) -> tuple[str, list[str]]:
    "The module a notebook exports and the source of its exported cells."
    cells = [''.join(c['source']) for c in json.loads(nb.read_text())['cells'] if c['cell_type'] == 'code']
    module = next(m.group(1) for c in cells if (m := re.search(r'#\|\s*default_exp\s+(\S+)', c)))
    return module, [c for c in cells if re.match(r'#\|\s*export', c)]


def imported(sources: list[str]) -> set[str]:
    "Every `seemore_nb` module the sources import, at any depth."
    out = set()
    for s in sources:
        for node in ast.walk(ast.parse(s)):
            if isinstance(node, ast.Import): names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):         # `from seemore_nb.tf import trainer` imports seemore_nb.tf.trainer
                names = [node.module or ''] + [f'{node.module}.{a.name}' for a in node.names]
            else: continue
            out |= {n.removeprefix('seemore_nb.') for n in names if n.startswith('seemore_nb.')}
    return out


def graph() -> dict:
    "module -> (notebook number, imported modules)."
    g = {}
    for nb in NBS:
        module, cells = exported(nb)
        g[module] = (int(NUMBER.match(nb.name).group(1)), imported(cells), nb.name)
    return g


def cycles(edges: dict) -> list[list[str]]:
    "Strongly connected components of more than one module (or a module importing itself)."
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]
    def visit(v):
        index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
        for w in edges.get(v, ()):
            if w not in index: visit(w); low[v] = min(low[v], low[w])
            elif w in on: low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            if len(comp) > 1 or v in edges.get(v, ()): out.append(sorted(comp))
    for v in list(edges): 
        if v not in index: visit(v)
    return out


def test_every_notebook_has_its_own_number():
    numbers = [NUMBER.match(p.name) for p in NBS]
    assert all(numbers), [p.name for p, m in zip(NBS, numbers) if not m]
    seen = {}
    for p in NBS: seen.setdefault(NUMBER.match(p.name).group(1), []).append(p.name)
    assert not {k: v for k, v in seen.items() if len(v) > 1}


def test_notebook_names_say_their_module():
    for nb in NBS:
        module, _ = exported(nb)
        assert nb.stem.split('_', 1)[1] == module, f'{nb.name} exports {module}: name it NN_{module}.ipynb'


def test_no_cycles_and_no_later_imports():
    g = graph()
    assert cycles({m: deps & set(g) for m, (_, deps, _) in g.items()}) == []
    later = [f'{name} imports {d} from the later {g[d][2]}' for m, (num, deps, name) in g.items() for d in deps
             if d in g and g[d][0] > num]
    assert later == []


def test_the_checks_catch_a_cycle_and_a_forward_import():
    assert cycles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == [['a', 'b', 'c']]
    found = imported(['def f():\n    from seemore_nb.orchestrate.grid import grid_plan\n    import seemore_nb.core\n'
                      '    from seemore_nb.tf import trainer'])
    assert {'orchestrate.grid', 'core', 'tf', 'tf.trainer'} <= found


def test_the_engine_imports_no_task_store_or_model():
    for m, (_, deps, name) in graph().items():
        if m.startswith('engine.'):
            bad = {d for d in deps if d.split('.')[0] in ('data', 'study', 'vlm', 'tf', 'report', 'orchestrate', 'tools')}
            assert not bad, f'{name} imports {sorted(bad)}'


def test_module_map_names_every_module():
    text = (ROOT/'seemore_nb'/'__init__.py').read_text()
    modules = set(graph())
    mapped = set(re.findall(r'^\s+- `([a-z_.]+)`:', text, re.M))
    assert mapped == modules, (sorted(modules - mapped), sorted(mapped - modules))
    for sub in {m.split('.')[0] for m in modules if '.' in m}:
        assert (ROOT/'seemore_nb'/sub/'__init__.py').read_text().strip(), f'seemore_nb/{sub}/__init__.py says nothing'


@pytest.mark.parametrize('task', ['classifier', 'vlm', 'toy'])
def test_every_registered_task_resolves(task):
    from seemore_nb.config import task_class
    cls = task_class(task)
    assert all(hasattr(cls, name) for name in ('prepare', 'build_model', 'dataset', 'to_device', 'forward'))


def test_unknown_task_is_one_line_listing_the_registered(tmp_path):
    import subprocess, sys
    bin_ = Path(sys.executable).parent/'seemore_train'
    r = subprocess.run([str(bin_), '--config', 'smoke', 'train.task=nope', f'train.runs_dir={tmp_path}'],
                       capture_output=True, text=True)
    assert r.returncode != 0 and 'classifier' in r.stderr and 'vlm' in r.stderr and 'toy' in r.stderr
    assert 'Traceback' not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def long_lines(path: Path) -> list[str]:
    "The lines over 120 characters of an exported module, but the first line of nbdev's generated `__all__`."
    return [f'{path.name}:{i}' for i, line in enumerate(path.read_text().splitlines(), 1)
            if len(line) > 120 and not line.startswith('__all__ = [')]


def test_modules_are_short_and_their_lines_fit():
    "No exported module over 400 lines, no line over 120 characters (nbdev wraps `__all__` at 120 before its prefix)."
    modules = [p for p in (ROOT/'seemore_nb').rglob('*.py') if p.name not in ('_modidx.py', '__init__.py')]
    assert len(modules) > 30
    assert not [p.name for p in modules if len(p.read_text().splitlines()) > 400]
    assert not [line for p in modules for line in long_lines(p)]


def test_the_line_check_catches_a_long_line(tmp_path):
    (tmp_path/'m.py').write_text('__all__ = [' + "'x', " * 40 + ']\nok = 1\n' + 'y = ' + '1 + ' * 40 + '1\n')
    assert long_lines(tmp_path/'m.py') == ['m.py:3']
