"""`seemore_reproduce --executor local|slurm` (71_orchestrate.cluster): the grid's rows as submitit jobs, with the toy task."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT, SCRIPT, reproduce

pytest.importorskip('submitit')
ENV = {**os.environ, 'OMP_NUM_THREADS': '1'}


def grid(tmp_path, *rows) -> Path:
    "A grid table of toy rows: (name, epochs, overrides)."
    path = tmp_path/'grid.yaml'
    path.write_text('cells:\n' + ''.join(f'- [{n}, learning, -, -, toy, pytorch, 1, -, 0, "off", {e}, 0, {json.dumps(o)}]\n'
                                         for n, e, o in rows))
    return path


def args(tmp_path, only):
    "The command's arguments: the grid in `tmp_path`, the rows `only`, local jobs, runs and job logs under tmp_path/runs."
    return ['--grid', str(tmp_path/'grid.yaml'), '--only', only, '--executor', 'local',
            f'train.runs_dir={tmp_path/"runs"}', f'cluster.logs={tmp_path/"runs"/"jobs"}']


def test_rows_run_as_local_jobs_and_a_second_pass_sends_none(tmp_path):
    grid(tmp_path, ('toy-a', 2, []), ('toy-b', 1, []))
    proc = reproduce(*args(tmp_path, 'toy-*'), timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert out.count('sent 1 job(s) to local') == 2 and '2 ran, 0 skipped, 0 failed' in out, out[-3000:]
    done = {p.parent.name.split('-')[2]: json.loads(p.read_text())
            for p in (tmp_path/'runs').glob('smoke-toy-*/complete.json')}
    assert {k: v['epochs'] for k, v in done.items()} == {'a': 2, 'b': 1}
    spans = sorted((m['epoch_start'].min(), m['epoch_end'].max()) for m in
                   (pd.read_csv(p) for p in (tmp_path/'runs').glob('smoke-toy-*/metrics.csv')))
    assert spans[0][1] <= spans[1][0], spans                     # one machine: one job at a time, never side by side
    jobs = sorted(p for p in (tmp_path/'runs'/'jobs').iterdir() if p.name.isdigit())      # one folder per job id
    assert len(jobs) == 2 and all(list(j.glob('*_log.out')) for j in jobs)
    again = reproduce(*args(tmp_path, 'toy-*'), timeout=120)
    out = again.stdout + again.stderr
    assert again.returncode == 0 and 'sent' not in out and '0 ran, 2 skipped, 0 failed' in out, out[-3000:]
    assert sorted(p for p in (tmp_path/'runs'/'jobs').iterdir() if p.name.isdigit()) == jobs    # none sent


def test_a_failing_job_is_listed_with_its_log_and_the_other_finishes(tmp_path):
    grid(tmp_path, ('toy-ok', 1, []), ('toy-bad', 1, ['train.lr=1.0e+30']))    # diverges at run time
    proc = reproduce(*args(tmp_path, 'toy-*'), timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    failed = re.search(r'FAILED toy-bad: TrainingError: .*diverged.*\n\s+executed notebook: (\S+)\n\s+job log: (\S+)', out)
    assert failed and Path(failed.group(1)).exists(), out[-3000:]
    assert 'diverged' in Path(failed.group(2)).read_text() or 'toy-bad: job process' in Path(failed.group(2)).read_text()
    assert list((tmp_path/'runs').glob('smoke-toy-ok-*/complete.json')), out[-3000:]


def test_a_job_stopped_by_the_scheduler_is_resubmitted_and_resumes_its_checkpoint(tmp_path):
    psutil = pytest.importorskip('psutil')
    epochs = 12
    grid(tmp_path, ('toy-slow', epochs, ['train.checkpoint_every=1']))
    cmd = [str(SCRIPT), '--config', 'smoke', *args(tmp_path, 'toy-slow')]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=ENV)
    try:
        deadline, job = time.monotonic() + 120, None
        while time.monotonic() < deadline and not list((tmp_path/'runs').glob('smoke-toy-slow-*/checkpoints/step-*')):
            time.sleep(0.1)
        job = [p for p in psutil.Process(proc.pid).children(recursive=True)
               if 'submitit.core._submit' in ' '.join(p.cmdline())]
        assert len(job) == 1, 'no job process found'
        job[0].send_signal(signal.SIGTERM)                       # as a scheduler's preemption does
        out, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None: proc.kill()
    assert proc.returncode == 0, out[-3000:]
    folder = next((tmp_path/'runs').glob('smoke-toy-slow-*'))
    complete = json.loads((folder/'complete.json').read_text())
    assert complete['epochs'] == epochs and complete['global_step'] == epochs * 32, complete
    assert re.search(rf'resumed {folder.name} at epoch \d+', (folder/'train_run.ipynb').read_text())
    log = next((tmp_path/'runs'/'jobs').glob('*/*_log.out')).read_text()
    assert 'toy-slow: stopped on SIGTERM' in log and 'toy-slow: resubmitted (1 of 2)' in log, log[-3000:]


def test_a_bad_executor_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    from seemore_nb.config import load_config
    from seemore_nb.orchestrate import cluster
    from seemore_nb.orchestrate.reproduce import main
    proc = subprocess.run([str(SCRIPT), '--config', 'smoke', '--executor', 'slurm', f'train.runs_dir={tmp_path}'],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, env={**ENV, 'PATH': str(tmp_path)})
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert 'sbatch is not on PATH' in proc.stderr and '--executor local' in proc.stderr
    with pytest.raises(SystemExit): main(['--config', 'smoke', '--executor', 'pbs'])
    assert 'invalid choice' in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, 'submitit', None)                          # as without the extra
    with pytest.raises(cluster.ClusterError, match=r"pip install 'seemore_nb\[cluster\]'"):
        cluster.make_executor('local', load_config('smoke'))
    assert main(['--config', 'smoke', '--executor', 'local', f'train.runs_dir={tmp_path}']) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'seemore_nb[cluster]'" in err[0], err


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGKILL])
def test_a_stopped_local_driver_takes_its_jobs_with_it(tmp_path, sig):
    psutil = pytest.importorskip('psutil')
    grid(tmp_path, ('toy-slow', 300, ['train.checkpoint_every=1']))
    cmd = [str(SCRIPT), '--config', 'smoke', *args(tmp_path, 'toy-slow')]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=ENV,
                            start_new_session=True)                  # as `setsid`: not in the test's process group
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list((tmp_path/'runs').glob('smoke-toy-slow-*/checkpoints/step-*')):
            time.sleep(0.1)
        family = psutil.Process(proc.pid).children(recursive=True)
        assert any('submitit.core._submit' in ' '.join(p.cmdline()) for p in family), 'no job process found'
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None: proc.kill()
    def running():
        try: return [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        except psutil.NoSuchProcess: return running()                  # gone between the two checks: ask again
    deadline = time.monotonic() + 10                                    # every one gone within 10 s
    while running() and time.monotonic() < deadline: time.sleep(0.1)
    alive = running()
    assert not alive, [' '.join(p.cmdline())[:120] for p in alive]
    assert not list((tmp_path/'runs').glob('smoke-toy-slow-*/complete.json'))      # it did not train on to the end
    if sig == signal.SIGTERM:
        assert proc.returncode == 128 + sig and re.search(r'stopped with this command: toy-slow \(job \d+\)', out), out
        assert 'interrupted toy-slow' in out and 'Traceback' not in out, out[-3000:]
