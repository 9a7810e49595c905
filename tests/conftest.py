import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).parent/'seemore_reproduce'
os.environ.setdefault('MPLBACKEND', 'Agg')
os.environ.setdefault('MPLCONFIGDIR', str(ROOT/'.cache'/'matplotlib'))
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
GRID_TIMEOUT = 1500            # seconds for the whole smoke grid


@pytest.fixture
def no_network(monkeypatch):
    "Every socket connection fails at once, as on a machine with no network."
    import socket

    def refuse(*args, **kwargs):
        raise OSError('network disabled by the test')
    monkeypatch.setattr(socket, 'create_connection', refuse)
    monkeypatch.setattr(socket, 'getaddrinfo', refuse)


def reproduce(*args, timeout=GRID_TIMEOUT):
    start = time.perf_counter()
    proc = subprocess.run([str(SCRIPT), '--config', 'smoke', *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    proc.seconds = time.perf_counter() - start
    return proc


def committed_figures() -> dict:
    "Hashes of everything under figures/ except the git-ignored figures/smoke/."
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((ROOT/'figures').rglob('*'))
            if p.is_file() and 'smoke' not in p.relative_to(ROOT/'figures').parts}


# The smoke grid takes minutes, most of them on one core of two: it runs in the background from the session's first
# test on, while the tests that do not read it run; those that read it (the `smoke` fixture) run last, in their files'
# order, test_reproduce's last of all (some of them damage and retrain runs of the grid).
GRID_NEEDED = pytest.StashKey[bool]()
GRID_PROCESSES = []                # the background grid, stopped with its whole process group if the session ends first


def reads_the_grid(item) -> bool:
    "Whether the test asks for this file's `smoke` fixture (directly or through another fixture; not a module's own)."
    defs = getattr(getattr(item, '_fixtureinfo', None), 'name2fixturedefs', {}).get('smoke')
    return bool(defs) and defs[-1].func.__module__ == __name__


def pytest_collection_modifyitems(session, config, items):
    readers = {item for item in items if reads_the_grid(item)}
    module = lambda item: getattr(getattr(item, 'module', None), '__name__', '')
    items.sort(key=lambda item: (item in readers, item in readers and module(item) == 'test_reproduce'))   # stable
    config.stash[GRID_NEEDED] = bool(readers)


def stop_grid():
    for proc in GRID_PROCESSES:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def pytest_unconfigure(config):
    stop_grid()                                                # after -x, Ctrl-C or an error: nothing left running


@pytest.fixture(scope='session', autouse=True)
def smoke_grid(request, tmp_path_factory):
    "The smoke grid, started in the background at the session's first test when a collected test reads it; else None."
    if not request.config.stash.get(GRID_NEEDED, False):
        return None
    runs, figures, logs = (tmp_path_factory.mktemp(name) for name in ('runs', 'figures', 'grid'))
    before = committed_figures()
    cmd = [str(SCRIPT), '--config', 'smoke', f'train.runs_dir={runs}', '--figures-dir', str(figures)]
    with open(logs/'stdout', 'w') as out, open(logs/'stderr', 'w') as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, cwd=ROOT, start_new_session=True)
    GRID_PROCESSES.append(proc)
    return SimpleNamespace(proc=proc, start=time.perf_counter(), runs=runs, figures=figures, logs=logs, before=before)


@pytest.fixture(scope='session')
def smoke(smoke_grid):
    "The whole smoke grid, once: runs and figures in temporary folders (`proc`: its exit status and output)."
    grid, late = smoke_grid, ''
    try: grid.proc.wait(timeout=max(1.0, GRID_TIMEOUT - (time.perf_counter() - grid.start)))
    except subprocess.TimeoutExpired:
        stop_grid()
        late = f'\nconftest: the smoke grid was stopped after {GRID_TIMEOUT} s'
    proc = SimpleNamespace(returncode=grid.proc.returncode, stdout=(grid.logs/'stdout').read_text(),
                           stderr=(grid.logs/'stderr').read_text() + late, seconds=time.perf_counter() - grid.start)
    return SimpleNamespace(runs=grid.runs, figures=grid.figures, proc=proc, before=grid.before,
                           overrides=[f'train.runs_dir={grid.runs}'])
