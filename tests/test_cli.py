"""Every console script turns the project's errors and the operating system's into one line and exit status 1."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


@pytest.fixture(scope='module')
def broken_store(tmp_path_factory):
    "A store folder whose manifest lost its hashes, where the smoke config would look for its store."
    from seemore_nb.config import load_config
    from seemore_nb.data.store import store_dir
    root = tmp_path_factory.mktemp('stores')
    folder = store_dir(load_config('smoke', [f'store.root={root}']))
    folder.mkdir(parents=True)
    (folder/'manifest.json').write_text(json.dumps({'key': folder.name}))
    return root


CASES = [
    ('seemore_prices', ['--config', 'smoke', 'data.tickers=[]'], "config key 'data.tickers' is empty"),
    ('seemore_prices', ['--config', 'smoke', 'data.source=csv', 'data.csv_dir=/nonexistent'], '/nonexistent: no such folder'),
    ('seemore_store', ['--config', 'smoke', 'store.root=/dev/null/stores'], 'a part of /dev/null/stores'),
    ('seemore_store', ['--config', 'smoke', 'store.root={broken}'], 'corrupt store: the manifest has no sha256, shapes'),
    ('seemore_train', ['--config', 'smoke', 'train.lr=0'], "config key 'train.lr' must be > 0"),
    ('seemore_train', ['--config', 'smoke', 'train.run_id=../x'], "'train.run_id' ('../x') must be a plain folder name"),
    ('seemore_train', ['--config', 'smoke', 'train.runs_dir=/dev/null/runs', 'train.task=toy'], 'a part of /dev/null/runs'),
    ('seemore_bench', ['train', '--config', 'smoke', 'model.heads=3'], "'model.hidden' (32) must be divisible by 'model.heads' (3)"),
    ('seemore_reproduce', ['--config', 'smoke', 'data.start=2013-01-01'], "'data.start' (2013-01-01) must be before 'data.end'"),
    ('seemore_baselines', ['--config', 'smoke', 'data.val_fraction=0'], "'data.val_fraction' must be > 0"),
]


@pytest.mark.parametrize('script, args, message', CASES, ids=[f'{c[0]}-{i}' for i, c in enumerate(CASES)])
def test_one_line_errors(script, args, message, broken_store):
    args = [a.replace('{broken}', str(broken_store)) for a in args]
    proc = subprocess.run([str(BIN/script), *args], capture_output=True, text=True, timeout=120)
    lines = [l for l in proc.stderr.splitlines() if l.startswith(f'{script}: error: ')]
    assert proc.returncode == 1 and len(lines) == 1 and message in lines[0], proc.stderr[-2000:]
    assert 'Traceback' not in proc.stderr


def test_debug_shows_the_traceback():
    proc = subprocess.run([str(BIN/'seemore_train'), '--config', 'smoke', 'train.lr=0', '--debug'], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and 'Traceback' in proc.stderr and 'ConfigError' in proc.stderr
