import hashlib
import os
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


@pytest.fixture
def no_network(monkeypatch):
    "Every socket connection fails at once, as on a machine with no network."
    import socket

    def refuse(*args, **kwargs):
        raise OSError('network disabled by the test')
    monkeypatch.setattr(socket, 'create_connection', refuse)
    monkeypatch.setattr(socket, 'getaddrinfo', refuse)


def reproduce(*args, timeout=1500):
    start = time.perf_counter()
    proc = subprocess.run([str(SCRIPT), '--config', 'smoke', *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    proc.seconds = time.perf_counter() - start
    return proc


def committed_figures() -> dict:
    "Hashes of everything under figures/ except the git-ignored figures/smoke/."
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((ROOT/'figures').rglob('*'))
            if p.is_file() and 'smoke' not in p.relative_to(ROOT/'figures').parts}


@pytest.fixture(scope='session')
def smoke(tmp_path_factory):
    "The whole smoke grid, once: runs and figures in temporary folders."
    runs, figures = tmp_path_factory.mktemp('runs'), tmp_path_factory.mktemp('figures')
    before = committed_figures()
    proc = reproduce(f'train.runs_dir={runs}', '--figures-dir', str(figures))
    return SimpleNamespace(runs=runs, figures=figures, proc=proc, before=before, overrides=[f'train.runs_dir={runs}'])
