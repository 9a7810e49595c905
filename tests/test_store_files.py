"""Store keys that follow the data, old RGB stores rebuilt, no orphans after kill -9, a full disk reported in one line."""
import errno
import json
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from seemore_nb.data import store as store_module
from seemore_nb.config import file_sha256, load_config
from seemore_nb.data.palette import from_palette
from seemore_nb.data.store_files import input_files
from seemore_nb.data.store import StoreSpaceError, build_store, main, open_store, store_dir


@pytest.fixture
def smoke(tmp_path):
    return load_config('smoke', [f'store.root={tmp_path}/stores'])


def test_an_edited_csv_gives_a_new_store(tmp_path):
    csv = tmp_path/'csv'
    csv.mkdir()
    for f in input_files(load_config('smoke')): shutil.copy(f, csv)
    cfg = load_config('smoke', ['data.source=csv', f'data.csv_dir={csv}', f'store.root={tmp_path}/stores'])
    first = open_store(build_store(cfg, progress=False), cfg)
    lines = (csv/'AAPL.csv').read_text().splitlines()
    row = next(i for i, l in enumerate(lines) if l.startswith('2011-06-01'))
    fields = lines[row].split(',')
    fields[5] = str(float(fields[5]) * 1.5)                              # one Adj Close, 50% higher
    lines[row] = ','.join(fields)
    (csv/'AAPL.csv').write_text('\n'.join(lines) + '\n')
    assert store_dir(cfg) != first.folder
    second = open_store(build_store(cfg, progress=False), cfg)
    assert second.folder != first.folder and second.manifest['inputs']['AAPL.csv'] != first.manifest['inputs']['AAPL.csv']
    assert not np.array_equal(second.stock[:], first.stock[:])


def test_an_old_rgb_store_is_detected_and_rebuilt_with_a_message(smoke, capsys):
    folder = build_store(smoke, progress=False)
    new = open_store(folder, smoke)
    stock, context = from_palette(new.stock[:]), from_palette(new.context[:])   # the same images in the RGB form
    manifest = dict(new.manifest)
    del manifest['form'], manifest['palette']
    manifest['shapes'] = {'stock': list(stock.shape), 'context': list(context.shape)}
    np.save(folder/'stock.npy', stock); np.save(folder/'context.npy', context)
    manifest['sha256'] |= {f'{k}.npy': file_sha256(folder/f'{k}.npy') for k in ('stock', 'context')}
    (folder/'manifest.json').write_text(json.dumps(manifest))
    del new
    assert build_store(smoke, progress=False) == folder
    assert 'RGB form from before palette stores' in capsys.readouterr().err
    rebuilt = open_store(folder, smoke)
    assert rebuilt.stock.shape[1] == 2 and np.array_equal(rebuilt.read(np.arange(len(rebuilt))[:50]), np.concatenate(
        [stock[:50], context[rebuilt.context_rows[:50]]], axis=1))


SLOW_BUILD = """
    import sys, time
    import seemore_nb.data.store as s
    _render = s.render_windows
    def slow(*a, **k):
        time.sleep(0.5)
        return _render(*a, **k)
    s.render_windows = slow                               # forked workers inherit it
    sys.exit(s.main(['--config', 'smoke', 'store.workers=2', 'store.root={root}']))
"""


def test_kill_9_of_a_build_leaves_no_worker_and_the_next_build_cleans_up(smoke, capsys):
    root = Path(smoke.store.root)
    proc = subprocess.Popen([sys.executable, '-c', textwrap.dedent(SLOW_BUILD.format(root=root))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parent = psutil.Process(proc.pid)
    deadline = time.time() + 60
    while time.time() < deadline and (len(parent.children()) < 2 or not list(root.glob('.*.building-*'))): time.sleep(0.1)
    workers = parent.children()
    assert len(workers) == 2, 'the build did not start its workers'
    proc.send_signal(signal.SIGKILL); proc.wait()
    gone, alive = psutil.wait_procs(workers, timeout=10)
    alive = [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f'workers still running after the builder died: {alive}'
    [tmp] = root.glob('.*.building-*')
    folder = build_store(smoke, progress=False)
    assert f'removed {tmp}' in capsys.readouterr().err
    assert not list(root.glob('.*.building-*')) and open_store(folder, smoke)


@pytest.mark.parametrize('target', ['allocate', 'atomic_write'])
def test_disk_full_is_one_line_and_leaves_no_junk(smoke, monkeypatch, capsys, target):
    def full(*args, **kwargs): raise OSError(errno.ENOSPC, 'No space left on device')
    monkeypatch.setattr(store_module, target, full)
    root = Path(smoke.store.root)
    with pytest.raises(StoreSpaceError, match=f'no space left on {root} '):
        build_store(smoke, progress=False)
    assert not list(root.iterdir())                                       # no temporary folder, no half store
    assert main(['--config', 'smoke', f'store.root={root}']) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f'seemore_store: error: no space left on {root} ') and 'Traceback' not in ''.join(err)
