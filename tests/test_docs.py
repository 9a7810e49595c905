"""The README is the landing notebook rendered, and it gives the two commands that CI and users run."""
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/'tools'))


def test_readme_is_rendered_from_the_index_notebook():
    import readme
    assert (ROOT/'README.md').read_text() == readme.render(), 'README.md is stale: run `make readme`'


MEASUREMENT_LOG = {
    'a commit hash': re.compile(r'(?<![\w/.-])(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,12}(?![\w/.-])'),
    'a dated measurement': re.compile(r'\b20\d\d-\d\d-\d\d\b'),
    'a list of runs': re.compile(r'\bruns? gave\b|\(runs? [-\u2212+]?\d|\brounds? [-\u2212+]?\d'),
}


def measurement_log(text: str) -> list[str]:
    "What in `text` (code blocks left out) reads as a measurement log: commit hashes, dates, per-run lists."
    prose = re.sub(r'```.*?```', '', text, flags=re.S)
    return [f'{what}: ...{prose[max(0, m.start() - 50):m.end() + 20]!r}' for what, p in MEASUREMENT_LOG.items()
            for m in p.finditer(prose)]


def test_the_measurement_log_check_finds_one():
    assert len(measurement_log('at e3f1a2b (2026-11-23) the runs gave 1.2, 1.3; `make test`\n```\n2026-01-01\n```')) == 3
    assert measurement_log('run `cpu-learn-1dev-1ef0bcc1` drew fig01 in 2 s') == []


def test_readme_is_short_and_holds_no_measurement_log():
    text = (ROOT/'README.md').read_text()
    assert len(text.splitlines()) <= 200 and len(text) <= 14_000, (len(text.splitlines()), len(text))
    assert measurement_log(text) == []


def test_notebook_prose_holds_no_measurement_log():
    found = []
    for nb in sorted((ROOT/'nbs').rglob('*.ipynb')):
        for cell in json.loads(nb.read_text())['cells']:
            if cell['cell_type'] == 'markdown': found += [f'{nb.name}: {h}' for h in measurement_log(''.join(cell['source']))]
    assert found == [], found


def test_the_readme_python_example_is_the_tested_quick_start():
    "The README's Python block is the index notebook's code cell that nbdev_test runs (smoke profile)."
    nb = json.loads((ROOT/'nbs'/'index.ipynb').read_text())
    code = [''.join(c['source']).strip() for c in nb['cells'] if c['cell_type'] == 'code']
    assert any("sn.load_config('smoke'" in c and 'sn.train(cfg)' in c for c in code)
    assert f"```python\n{code[0]}\n```" in (ROOT/'README.md').read_text()


def _flat(d):
    for v in (d.values() if isinstance(d, dict) else d):
        if isinstance(v, (dict, list)): yield from _flat(v)
        else: yield str(v)


def test_every_number_in_the_paper_comes_from_the_committed_record():
    """The paper rendered from the committed results.json: each number in its text is a recorded number (or an end of
    its interval), a config value, a signal strength of the control, or provenance; years and code spans aside."""
    from seemore_nb.config import config_dict, load_config
    from seemore_nb.report.paper import committed_record, paper_markdown
    rec, cfg = committed_record(), load_config('cpu')
    text = paper_markdown(rec, cfg, ROOT/'figures', 'reproduced 1 of 1 numbers')
    number = r'(?<![\w.-])-?\d[\d.,]*%?'
    allowed = {'1'} | set(_flat(config_dict(cfg))) | set(re.findall(number, ' '.join(_flat(rec.meta))))
    for key, n in rec.numbers.items():
        allowed |= {n.text} | ({f'{n.low:.3g}', f'{n.high:.3g}'} if n.low is not None else set())
        if key.startswith('learnability/'): allowed.add(key.split('/')[1])
    body = re.sub(r'!\[[^\]]*\]\([^)]*\)|`[^`]*`', '', text)          # figures and code spans: names, not numbers
    numbers = [t.rstrip('.,') for t in re.findall(number, body)]
    assert len(numbers) > 30
    assert not [t for t in numbers if t not in allowed and not re.fullmatch(r'(19|20)\d\d', t)]
    assert '{{' not in text and 'not measured yet' not in text


def test_readme_gives_the_two_commands_and_ci_calls_the_test_one():
    text = (ROOT/'README.md').read_text()
    assert 'make reproduce' in text and 'make test' in text
    assert 'make test' in (ROOT/'.ci'/'run').read_text()


def _site(smoke, out, *extra):
    import subprocess
    docs = Path(sys.executable).parent/'seemore_docs'
    return subprocess.run([str(docs), '--config', 'smoke', *smoke.overrides, '--only', '11_data.prices,10_prices_overview',
                           '--out', str(out), *extra], capture_output=True, text=True, timeout=600, cwd=ROOT)


def test_the_site_builds_offline_with_figures_tables_and_resolving_links(smoke, tmp_path):
    "A subset of the site (the landing page, a notebook, an executed template of the session's smoke grid)."
    from seemore_nb.tools.docs import check_site
    out = tmp_path/'site'
    proc = _site(smoke, out)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    pages = {p: (out/p).read_text() for p in ('index.html', '11_data.prices.html', 'paper/10_prices_overview.html')}
    for name in ('11_data.prices.html', 'paper/10_prices_overview.html'):
        html = pages[name]
        images = re.findall(r'<img[^>]+src="([^"]+)"', html)
        assert any((out/Path(name).parent/src).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' for src in images), name   # a rendered figure
        assert '<table' in html, name                                                                            # a rendered table
    text = {p: re.sub(r'<[^>]+>', '', html) for p, html in pages.items()}             # what a reader sees (highlighting splits code)
    assert '<table' in pages['index.html'] and 'make reproduce' in text['index.html']       # the landing page is index.ipynb
    assert 'def load_study_prices(cfg' in text['11_data.prices.html']                           # the API under its definition
    assert 'href="11_data.prices.html"' in pages['index.html']                                   # the navigation
    paper = (out/'paper.html').read_text()                              # the paper, as the main job wrote it, with its figures
    assert 'Stock spectrograms' in paper and 'href="paper.html"' in pages['index.html']
    assert any((out/src).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' for src in re.findall(r'<img[^>]+src="([^"]+)"', paper))
    assert check_site(out) == []                                                            # links resolve, nothing remote
    again = _site(smoke, out)                                                                # a second build executes nothing
    assert again.returncode == 0 and '0 to execute' in again.stdout, again.stdout + again.stderr[-2000:]


def test_a_broken_notebook_stops_the_build_naming_it(tmp_path, monkeypatch):
    from seemore_nb.core import SeemoreError
    import seemore_nb.tools.docs as docs
    nb = tmp_path/'bad.ipynb'
    nb.write_text(json.dumps({'cells': [{'cell_type': 'code', 'execution_count': None, 'id': 'a1', 'metadata': {}, 'outputs': [],
                                         'source': 'raise ValueError("boom")'}], 'metadata': {}, 'nbformat': 4, 'nbformat_minor': 5}))
    with pytest.raises(SeemoreError, match=r'1 notebook\(s\) failed.*: bad'):
        docs._execute_all({'bad': (nb, tmp_path/'out.ipynb')}, ['slow'], 1)
    assert not (tmp_path/'out.ipynb').exists()                                               # a failure is not cached


def test_kill_9_of_the_builder_leaves_no_worker_and_nothing_in_the_cache(tmp_path):
    import signal
    import subprocess
    import time
    nb = tmp_path/'slow.ipynb'
    nb.write_text(json.dumps({'cells': [{'cell_type': 'code', 'execution_count': None, 'id': 'a1', 'metadata': {}, 'outputs': [],
                                         'source': 'import time; time.sleep(6)'}], 'metadata': {}, 'nbformat': 4, 'nbformat_minor': 5}))
    out = tmp_path/'out.ipynb'
    code = (f"from pathlib import Path; import seemore_nb.tools.docs as d\n"
            f"d._execute_all({{'slow': (Path({str(nb)!r}), Path({str(out)!r}))}}, ['slow'], 2)")
    builder = subprocess.Popen([sys.executable, '-c', code])

    def children(pid):
        found = []
        for stat in Path('/proc').glob('[0-9]*/stat'):
            try: fields = stat.read_text().rsplit(')', 1)[1].split()
            except OSError: continue
            if int(fields[1]) == pid and fields[0] != 'Z': found.append(int(stat.parent.name))
        return found
    deadline = time.time() + 60
    while time.time() < deadline and len(children(builder.pid)) < 2: time.sleep(0.1)   # the resource tracker and a worker
    workers = children(builder.pid)
    assert len(workers) >= 2, 'no worker started'
    time.sleep(1)
    builder.send_signal(signal.SIGKILL); builder.wait()
    time.sleep(5)
    alive = [p for p in workers if Path(f'/proc/{p}/stat').exists()
             and Path(f'/proc/{p}/stat').read_text().rsplit(')', 1)[1].split()[0] != 'Z']
    assert alive == [], f'workers still alive 5 s after their parent died: {alive}'
    time.sleep(3)                                                   # when the notebook would have finished
    assert not out.exists()
