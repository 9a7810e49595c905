"""Store keys that follow the data, old RGB stores rebuilt, stopped builds resumed without orphans, a full disk reported in
one line, a build that writes what it stores once, and the store benchmark."""
import errno
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from seemore_nb.data import store as store_module
from seemore_nb.config import file_sha256, load_config
from seemore_nb.data.palette import from_palette
from seemore_nb.data.store_files import build_lock, finished_items, input_files
from seemore_nb.data.store import BUILD_FIELDS, StoreSpaceError, build_store, main, open_store, store_dir


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

KILLED_AT = """
    import os, signal, sys
    import seemore_nb.data.store as s
    _item, calls = s._render_item, []
    def item(k):
        calls.append(k)
        if len(calls) > {stop}: os.kill(os.getpid(), signal.SIGKILL)   # items before this one are journaled
        return _item(k)
    s._render_item = item
    sys.exit(s.main(['--config', 'smoke', 'store.workers=1', 'store.root={root}']))
"""


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
    "An uninterrupted smoke build, to compare resumed builds with."
    cfg = load_config('smoke', [f'store.root={tmp_path_factory.mktemp("reference")}'])
    return open_store(build_store(cfg, progress=False), cfg)


def counting_renders(monkeypatch) -> list:
    "The work items this process renders from now on (smoke builds render in this process)."
    calls, render = [], store_module._render_item
    monkeypatch.setattr(store_module, '_render_item', lambda k: (calls.append(k), render(k))[1])
    return calls


def assert_same_store(folder, reference):
    for name in ('stock.npy', 'context.npy', 'index.parquet'):
        assert (folder/name).read_bytes() == (reference.folder/name).read_bytes(), name
    manifest = json.loads((folder/'manifest.json').read_text())
    assert {k: v for k, v in manifest.items() if k not in BUILD_FIELDS} == \
        {k: v for k, v in reference.manifest.items() if k not in BUILD_FIELDS}
    assert not (folder/'plan.json').exists() and not (folder/'done.jsonl').exists()


@pytest.mark.parametrize('sig', [signal.SIGKILL, signal.SIGINT])
def test_a_stopped_build_leaves_no_worker_and_the_next_build_resumes_it(smoke, reference, monkeypatch, capsys, sig):
    root = Path(smoke.store.root)
    proc = subprocess.Popen([sys.executable, '-c', textwrap.dedent(SLOW_BUILD.format(root=root))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    parent = psutil.Process(proc.pid)
    deadline = time.time() + 60
    while time.time() < deadline and not any(p.stat().st_size for p in root.glob('.*.building-*/done.jsonl')):
        time.sleep(0.1)
    workers = parent.children()
    assert len(workers) == 2, 'the build did not start its workers'
    proc.send_signal(sig)
    err = proc.communicate(timeout=60)[1]
    gone, alive = psutil.wait_procs(workers, timeout=10)
    alive = [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f'workers still running after the builder stopped: {alive}'
    [tmp] = root.glob('.*.building-*')
    kept = finished_items(tmp)
    assert kept and (sig == signal.SIGKILL or 'images rendered so far are kept in' in err and 'Traceback' not in err)
    renders = counting_renders(monkeypatch)
    folder = build_store(smoke, progress=False)
    assert 'resuming a stopped build' in capsys.readouterr().err
    assert sorted(renders) == sorted(set(range(6)) - set(kept))           # 6 items: 4 of stock rows, 2 of dates
    assert not list(root.glob('.*.building-*'))
    assert_same_store(folder, reference)
    assert open_store(folder, smoke).manifest['kept_images'] == sum(e['images'] for e in kept.values())


def test_a_build_killed_at_a_chosen_item_renders_only_the_rest(smoke, reference, monkeypatch):
    root = Path(smoke.store.root)
    proc = subprocess.run([sys.executable, '-c', textwrap.dedent(KILLED_AT.format(root=root, stop=3))],
                          capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL
    [tmp] = root.glob('.*.building-*')
    assert sorted(finished_items(tmp)) == [0, 1, 2]
    renders = counting_renders(monkeypatch)
    assert_same_store(build_store(smoke, progress=False), reference)
    assert sorted(renders) == [3, 4, 5]


def test_a_build_writes_what_it_stores_once(tmp_path):
    cfg = load_config('smoke', [f'store.root={tmp_path}', 'store.workers=2'])
    folder = build_store(cfg, progress=False)
    m = json.loads((folder/'manifest.json').read_text())
    if m['bytes_written'] is None: pytest.skip('this platform does not count the bytes a process writes')
    arrays = sum((folder/f'{k}.npy').stat().st_size for k in ('stock', 'context'))
    store = sum(p.stat().st_size for p in folder.iterdir())
    assert arrays <= m['bytes_written'] <= 1.5 * store, (m['bytes_written'], arrays, store)


def test_prune_removes_a_stopped_build_unless_a_build_holds_it(smoke):
    root = Path(smoke.store.root)
    proc = subprocess.run([sys.executable, '-c', textwrap.dedent(KILLED_AT.format(root=root, stop=2))],
                          capture_output=True, timeout=120)
    [tmp] = root.glob('.*.building-*')
    key = tmp.name[1:].split('.')[0]
    with build_lock(root/key):
        assert main(['--config', 'smoke', f'store.root={root}', '--prune']) == 0 and tmp.exists()
    assert main(['--config', 'smoke', f'store.root={root}', '--prune']) == 0 and not tmp.exists()


@pytest.mark.parametrize('target', ['allocate', 'atomic_write'])
def test_disk_full_is_one_line_and_keeps_only_finished_work(smoke, reference, monkeypatch, capsys, target):
    def full(*args, **kwargs): raise OSError(errno.ENOSPC, 'No space left on device')
    monkeypatch.setattr(store_module, target, full)
    root = Path(smoke.store.root)
    with pytest.raises(StoreSpaceError, match=f'no space left on {root} '):
        build_store(smoke, progress=False)
    assert main(['--config', 'smoke', f'store.root={root}']) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f'seemore_store: error: no space left on {root} ') and 'Traceback' not in ''.join(err)
    if target == 'allocate':                              # before any image: no temporary folder, no half store
        assert not list(root.iterdir())
        return
    # the disk filled after every image was rendered (writing the index): the images are kept for the next build
    assert 'images rendered so far are kept in' in err[-1] and len(list(root.glob('.*.building-*'))) == 1
    monkeypatch.undo()
    renders = counting_renders(monkeypatch)
    assert_same_store(build_store(smoke, progress=False), reference)
    assert renders == []


def test_the_store_benchmark_prints_its_ratio_last_and_records_it(tmp_path):
    record = tmp_path/'benchmarks.json'
    proc = subprocess.run([str(Path(sys.executable).parent/'seemore_bench'), 'store', '--config', 'smoke', '--sizes', '2,3',
                           'data.start=2011-06-01', 'data.end=2012-12-31', '--record', str(record)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert [l.split(',')[0] for l in lines[:2]] == ['store: 2 tickers', 'store: 3 tickers']
    assert lines[2].startswith('store growth from 2 to 3 tickers: time exponent ')
    assert re.fullmatch(r'store: bytes written / store size (\d\.\d\dx|n/a) at 3 tickers \(runs .*\)', lines[-1])
    [entry] = json.loads(record.read_text()).values()
    assert entry['line'] == lines[-1] and [r['tickers'] for r in entry['result']['rows']] == [2, 3]
    assert not list(Path(tempfile.gettempdir()).glob('seemore-store-bench-*'))      # the generated universe is gone


def test_a_stopped_build_whose_arrays_were_removed_starts_again(smoke, reference, monkeypatch):
    root = Path(smoke.store.root)
    subprocess.run([sys.executable, '-c', textwrap.dedent(KILLED_AT.format(root=root, stop=2))], capture_output=True,
                   timeout=120)
    [tmp] = root.glob('.*.building-*')
    (tmp/'stock.npy').unlink()
    renders = counting_renders(monkeypatch)
    assert_same_store(build_store(smoke, progress=False), reference)
    assert sorted(renders) == list(range(6))
