"""The training engine: DDP over gloo, kill-and-resume bit for bit, torchrun restarts, config errors (bf16: the
notebook 24_engine.trainer and the smoke grid's pt-store-bf16-1dev cell)."""
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from seemore_nb.config import ConfigError
from seemore_nb.engine.checkpoints import load_checkpoint
from seemore_nb.engine.launch import launch

BIN = Path(sys.executable).parent


def overrides(tmp, run_id, *more):
    return [f'train.runs_dir={tmp}/runs', f'store.root={tmp}/stores', f'train.run_id={run_id}', *more]


# A short classifier run that checkpoints mid-epoch: 2 epochs of 12 steps, a checkpoint every 5 steps.
SHORT = ('train.epochs=2', 'train.steps_per_epoch=12', 'train.checkpoint_every=5')


def run_launch(tmp, run_id, more=(), before='', sitecustomize_dir=None, timeout=300):
    "launch() in a fresh interpreter (same thread settings every time), after the patch code `before`."
    code = textwrap.dedent(before) + textwrap.dedent(f"""
        from seemore_nb.engine.launch import launch
        launch('smoke', {overrides(tmp, run_id, *more)!r})
    """)
    env = os.environ | {'OMP_NUM_THREADS': '1', 'TF_CPP_MIN_LOG_LEVEL': '2'}
    if sitecustomize_dir: env['PYTHONPATH'] = f'{sitecustomize_dir}:{env.get("PYTHONPATH", "")}'
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=timeout, env=env)


def digests(tmp, run_id):
    return json.loads((Path(tmp)/'runs'/run_id/'complete.json').read_text())['weights_sha256_by_rank']


KILL_AT_STEP = """
    import os, signal, torch
    _steps = {'n': 0}
    _step = torch.optim.Adam.step
    def step(self, *a, **k):
        out = _step(self, *a, **k)
        _steps['n'] += 1
        if _steps['n'] == KILL_STEP: os.kill(os.getpid(), signal.SIGKILL)
        return out
    torch.optim.Adam.step = step
"""


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
    "The uninterrupted short run that the interrupted ones must match bit for bit."
    tmp = tmp_path_factory.mktemp('train')
    proc = run_launch(tmp, 'reference', SHORT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp, digests(tmp, 'reference')[0]


def test_sigkill_mid_epoch_then_resume_gives_identical_weights(reference):
    tmp, expected = reference
    killed = run_launch(tmp, 'killed', SHORT, before=KILL_AT_STEP.replace('KILL_STEP', '8'))
    assert killed.returncode == -signal.SIGKILL
    ckpt = Path(tmp)/'runs'/'killed'/'checkpoints'
    assert load_checkpoint(ckpt/'last.pt')['global_step'] == 5 and not (ckpt.parent/'complete.json').exists()
    resumed = run_launch(tmp, 'killed', SHORT)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'resumed killed at epoch 1, step 5' in resumed.stdout
    assert digests(tmp, 'killed') == [expected]
    timing = pd.read_parquet(Path(tmp)/'runs'/'killed'/'timing.parquet')
    train_rows = timing[timing.phase == 'train']
    assert sorted(train_rows.global_step) == list(range(24))          # no step lost or counted twice


def test_kill_during_checkpoint_write_keeps_the_previous_one_loadable(reference):
    tmp, expected = reference
    die_in_second_save = """
        import os, signal, torch
        _save, _calls = torch.save, {'n': 0}
        def save(obj, f, *a, **k):
            _calls['n'] += 1
            if _calls['n'] == 2:
                f.write(b'half a checkpoint'); f.flush(); os.kill(os.getpid(), signal.SIGKILL)
            return _save(obj, f, *a, **k)
        torch.save = save
    """
    killed = run_launch(tmp, 'torn', SHORT, before=die_in_second_save)
    assert killed.returncode == -signal.SIGKILL
    last = load_checkpoint(Path(tmp)/'runs'/'torn'/'checkpoints'/'last.pt')
    assert last['global_step'] == 5                                     # the first checkpoint, intact
    resumed = run_launch(tmp, 'torn', SHORT)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert digests(tmp, 'torn') == [expected]


def test_ddp_two_ranks_keep_identical_weights_and_learn(tmp_path):
    folder = launch('smoke', overrides(tmp_path, 'ddp-toy', 'train.task=toy', 'train.devices=2', 'train.lr=0.05', 'train.epochs=3'))
    ranks = digests(tmp_path, 'ddp-toy')
    assert len(ranks) == 2 and ranks[0] == ranks[1]
    losses = pd.read_csv(folder/'metrics.csv').val_loss
    assert losses.iloc[-1] < losses.iloc[0] / 10
    timing = pd.read_parquet(folder/'timing.parquet')
    assert set(timing['rank']) == {0, 1} and (timing['world_size'] == 2).all()


def test_torchrun_restart_after_a_killed_rank_resumes_to_the_same_weights(tmp_path):
    common = ('train.task=toy', 'train.devices=2', 'train.lr=0.05', 'train.epochs=2', 'train.checkpoint_every=4')
    assert run_launch(tmp_path, 'clean', common).returncode == 0
    site = tmp_path/'site'
    site.mkdir()
    (site/'sitecustomize.py').write_text(textwrap.dedent(f"""
        import os, signal
        if os.environ.get('RANK') == '1' and not os.path.exists({str(tmp_path/'killed-once')!r}):
            import torch
            _step, _n = torch.optim.Adam.step, {{'n': 0}}
            def step(self, *a, **k):
                out = _step(self, *a, **k)
                _n['n'] += 1
                if _n['n'] == 7:
                    open({str(tmp_path/'killed-once')!r}, 'w').close()
                    os.kill(os.getpid(), signal.SIGKILL)
                return out
            torch.optim.Adam.step = step
    """))
    proc = run_launch(tmp_path, 'restarted', (*common, 'train.max_restarts=1'), sitecustomize_dir=site)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path/'killed-once').exists()
    assert digests(tmp_path, 'restarted') == digests(tmp_path, 'clean')


def test_failing_rank_raises_with_its_log_tail(tmp_path):
    site = tmp_path/'site'
    site.mkdir()
    (site/'sitecustomize.py').write_text("import os\nif os.environ.get('RANK') == '1': raise SystemExit('rank one refuses to start')\n")
    proc = run_launch(tmp_path, 'fails', ('train.task=toy', 'train.devices=2'), sitecustomize_dir=site)
    assert proc.returncode != 0
    assert 'TrainingError' in proc.stderr and 'rank one refuses to start' in proc.stderr


def test_a_two_device_classifier_run_writes_every_log(smoke):
    "The smoke grid's learn-2dev run: the smoke profile on 2 processes (the console script's 2-process path: test_run_safety)."
    assert smoke.proc.returncode == 0, smoke.proc.stderr[-3000:]
    folder = next(p.parent for p in smoke.runs.glob('smoke-learn-2dev-*/complete.json'))
    for name in ('config.yaml', 'metrics.csv', 'timing.parquet', 'complete.json', 'checkpoints/last.pt', 'checkpoints/best.pt'):
        assert (folder/name).exists(), name
    assert list((folder/'tensorboard').glob('events.out.tfevents.*'))
    timing = pd.read_parquet(folder/'timing.parquet')
    assert set(timing['rank']) == {0, 1} and {'data_wait', 'to_device', 'forward', 'backward', 'optimizer', 'total'} <= set(timing.columns)
    assert len(pd.read_csv(folder/'metrics.csv')) == 2


def test_unknown_config_key_fails_clearly(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown config key 'train.epoch'\. Valid keys in 'train': task, epochs"):
        launch('smoke', ['train.epoch=2'])
    proc = subprocess.run([str(BIN/'seemore_train'), '--config', 'smoke', 'train.amp=fp8'], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "config key 'train.amp' must be one of off, bf16, fp16" in proc.stderr


def test_profiler_trace_per_file_loader_and_loader_workers(tmp_path):
    folder = launch('smoke', overrides(tmp_path, 'profiled', 'train.loader=per_file', 'model.input=rgb', 'train.num_workers=1', 'train.epochs=1',
                                       'train.steps_per_epoch=6', 'train.profile_steps=[2,3]'))
    trace = folder/'profile'/'rank0-steps2-3.json'
    assert trace.stat().st_size > 1000 and '"traceEvents"' in trace.read_text()[:2000]
    timing = pd.read_parquet(folder/'timing.parquet')
    assert (timing.phase == 'train').sum() == 6


def test_corrupt_last_checkpoint_falls_back_to_the_previous_one(reference):
    tmp, expected = reference
    every3 = ('train.epochs=2', 'train.steps_per_epoch=12', 'train.checkpoint_every=3')
    killed = run_launch(tmp, 'corrupt', every3, before=KILL_AT_STEP.replace('KILL_STEP', '8'))
    assert killed.returncode == -signal.SIGKILL
    ckpt = Path(tmp)/'runs'/'corrupt'/'checkpoints'
    (ckpt/'last.pt').write_bytes(b'not a checkpoint')        # the same file as step-0000006.pt (a hard link)
    resumed = run_launch(tmp, 'corrupt', every3)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'skipped last.pt' in resumed.stderr and 'resumed corrupt at epoch 1, step 3' in resumed.stdout
    assert digests(tmp, 'corrupt') == [expected]             # never from scratch: from step 3, to the same weights


def test_a_killed_rank_is_named_with_its_signal_not_rank_zeros_progress(tmp_path):
    site = tmp_path/'site'
    site.mkdir()
    (site/'sitecustomize.py').write_text(textwrap.dedent("""
        import os, signal
        if os.environ.get('RANK') == '1':
            import torch
            _step, _n = torch.optim.Adam.step, {'n': 0}
            def step(self, *a, **k):
                _n['n'] += 1
                if _n['n'] == 3: os.kill(os.getpid(), signal.SIGKILL)
                return _step(self, *a, **k)
            torch.optim.Adam.step = step
    """))
    proc = run_launch(tmp_path, 'killed-rank', ('train.task=toy', 'train.devices=2'), sitecustomize_dir=site)
    assert proc.returncode != 0
    error = [l for l in proc.stderr.splitlines() if 'TrainingError' in l][-1]
    assert 'training killed-rank failed: rank 1 (killed by SIGKILL)' in error and 'attempt_0/1/stderr.log' in error, error
