"""Run safety end to end: one writer per run, no orphans after kill -9, graceful SIGTERM and bit-identical resume, full disks."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent

SLOW_STEPS = """
    import os, time
    if os.environ.get('SLOW_STEP'):
        import torch
        _step = torch.optim.Adam.step
        def step(self, *a, **k):
            time.sleep(float(os.environ['SLOW_STEP']))
            return _step(self, *a, **k)
        torch.optim.Adam.step = step
"""

TOY = ('train.task=toy', 'train.lr=0.05', 'train.epochs=2', 'train.checkpoint_every=4')


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    "A sitecustomize that slows every optimizer step when SLOW_STEP is set (in torchrun's workers too)."
    folder = tmp_path_factory.mktemp('site')
    (folder/'sitecustomize.py').write_text(textwrap.dedent(SLOW_STEPS))
    return folder


def start(tmp, run_id, *more, site=None, slow=None):
    env = os.environ | {'OMP_NUM_THREADS': '1', 'TF_CPP_MIN_LOG_LEVEL': '2'}
    if site: env['PYTHONPATH'] = f'{site}:{env.get("PYTHONPATH", "")}'
    if slow: env['SLOW_STEP'] = str(slow)
    args = [str(BIN/'seemore_train'), '--config', 'smoke', f'train.runs_dir={tmp}/runs', f'train.run_id={run_id}', *TOY, *more]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def processes(marker: str) -> list[int]:
    "Live (not zombie) processes whose command line contains `marker`."
    pids = []
    for p in Path('/proc').iterdir():
        if not p.name.isdigit() or int(p.name) == os.getpid(): continue
        try:
            cmd = (p/'cmdline').read_bytes().replace(b'\0', b' ').decode(errors='replace')
            state = (p/'stat').read_text().rsplit(')', 1)[1].split()[0]
        except OSError: continue
        if marker in cmd and state != 'Z': pids.append(int(p.name))
    return pids


def wait_for(predicate, timeout=120, what='condition'):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate(): return
        time.sleep(0.1)
    raise AssertionError(f'timed out waiting for {what}')


def digests(tmp, run_id):
    return json.loads((Path(tmp)/'runs'/run_id/'complete.json').read_text())['weights_sha256_by_rank']


def test_kill9_of_a_two_process_launcher_stops_every_worker_within_10s(tmp_path, site):
    proc = start(tmp_path, 'orphans', 'train.devices=2', 'train.epochs=20', site=site, slow=0.2)
    config = f'{tmp_path}/runs/orphans/config.yaml'
    try:
        wait_for(lambda: len(processes(config)) >= 3 and (tmp_path/'runs'/'orphans'/'checkpoints'/'last.pt').exists(),
                 what='the agent and both workers training')
        proc.kill(); proc.wait()
        killed_at = time.monotonic()
        wait_for(lambda: not processes(config), timeout=10, what='every agent and worker to stop')
        assert time.monotonic() - killed_at < 10
    finally:
        for pid in processes(config): os.kill(pid, signal.SIGKILL)


def test_sigterm_checkpoints_every_rank_and_the_resume_is_bit_identical(tmp_path, site):
    reference = start(tmp_path, 'reference', 'train.devices=2')
    assert reference.wait(timeout=300) == 0, reference.stderr.read()[-3000:]
    proc = start(tmp_path, 'stopped', 'train.devices=2', site=site, slow=0.1)
    wait_for(lambda: (tmp_path/'runs'/'stopped'/'checkpoints'/'step-0000004.pt').exists(), what='the first checkpoint')
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert 'stopped on SIGTERM' in last and 'resume with: seemore_train --config smoke train.run_id=stopped' in last, err[-2000:]
    assert not processes(f'{tmp_path}/runs/stopped/config.yaml')
    assert not (tmp_path/'runs'/'stopped'/'complete.json').exists()
    resumed = start(tmp_path, 'stopped', 'train.devices=2')
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-3000:]
    assert 'resumed stopped at epoch' in out
    assert digests(tmp_path, 'stopped') == digests(tmp_path, 'reference')


def test_a_second_launch_of_a_live_run_is_refused_and_deletes_nothing(tmp_path, site):
    first = start(tmp_path, 'live', 'train.epochs=20', site=site, slow=0.05)
    ckpt = tmp_path/'runs'/'live'/'checkpoints'
    wait_for(lambda: (ckpt/'last.pt').exists(), what='the first checkpoint')
    assert first.stdout.readline().startswith('run live ')                   # every run prints its id first
    second = subprocess.run([str(BIN/'seemore_train'), '--config', 'smoke', f'train.runs_dir={tmp_path}/runs', 'train.run_id=live',
                             *TOY, 'train.resume=off'], capture_output=True, text=True, timeout=120)
    assert second.returncode == 1 and f'run live is in use by PID {first.pid}' in second.stderr, second.stderr
    assert (ckpt/'last.pt').exists() and (tmp_path/'runs'/'live'/'config.yaml').exists()
    first.send_signal(signal.SIGTERM)                                       # one process: the trainer's own graceful stop
    _, err = first.communicate(timeout=60)
    assert first.returncode == 1 and 'stopped on SIGTERM after a checkpoint' in err


def test_a_full_disk_during_training_says_so_and_keeps_the_last_good_checkpoint(tmp_path):
    full_disk = tmp_path/'site'
    full_disk.mkdir()
    (full_disk/'sitecustomize.py').write_text(textwrap.dedent("""
        import errno, seemore_nb.engine.checkpoints as c
        _write, _n = c.atomic_write, {'k': 0}
        def atomic_write(path, write, mode='wb'):
            _n['k'] += 1
            if _n['k'] == 2:                                    # the second checkpoint finds the disk full
                def fail(f): f.write(b'part of a checkpoint'); raise OSError(errno.ENOSPC, 'No space left on device')
                return _write(path, fail, mode)
            return _write(path, write, mode)
        c.atomic_write = atomic_write
    """))
    proc = start(tmp_path, 'full', site=full_disk)
    _, err = proc.communicate(timeout=300)
    ckpt = tmp_path/'runs'/'full'/'checkpoints'
    assert proc.returncode == 1
    assert err.strip().splitlines()[-1].startswith(f'seemore_train: error: no space left on {ckpt}/step-0000008.pt'), err[-2000:]
    assert not [p for p in ckpt.iterdir() if p.name.startswith('.')]         # no temporary file left behind
    from seemore_nb.engine.checkpoints import load_checkpoint
    assert load_checkpoint(ckpt/'last.pt')['global_step'] == 4


def test_a_diverging_two_process_run_stops_with_exit_1_and_keeps_the_last_finite_checkpoint(tmp_path):
    """lr=1e30 is finite (lr=inf is refused by the config): one Adam step sends every weight to about 1e30, and the next
    loss overflows. Both ranks stop at that step, with one line, no complete.json, and the step-1 checkpoint kept."""
    proc = start(tmp_path, 'diverged', 'train.devices=2', 'train.lr=1e30', 'train.checkpoint_every=1')
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert 'run diverged diverged at epoch 1, step 2: the training loss is not finite' in last, err[-2000:]
    assert 'train.lr=1e+30' in last and 'Traceback' not in err.split('seemore_train: error:')[-1]
    run = tmp_path/'runs'/'diverged'
    assert not (run/'complete.json').exists()
    assert sorted(p.name for p in (run/'checkpoints').glob('step-*')) == ['step-0000001.pt']
    import torch
    state = torch.load(run/'checkpoints'/'step-0000001.pt', weights_only=True)
    assert all(torch.isfinite(v).all() for v in state['model'].values())
