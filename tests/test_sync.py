"""A step that never waits for the host: the PyTorch trainer reads the device only every `train.sync_every` steps (and
at epoch ends and before checkpoints), yet stops on SIGTERM, stops a diverging run and resumes bit for bit."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import torch

from test_run_safety import digests, processes, start

COUNT_READS = """
    import collections, json, sys, torch
    from seemore_nb.config import load_config
    from seemore_nb.engine.trainer import train
    cfg = load_config('smoke', [f'train.runs_dir={sys.argv[1]}', 'train.run_id=reads', 'train.task=toy',
                                'train.batch_size=4', 'train.epochs=1', 'train.device=cpu', *sys.argv[2:]])
    counts = collections.Counter()
    def counted(name, read):
        def wrapper(self, *a, **k):
            counts[name] += 1
            return read(self, *a, **k)
        return wrapper
    for name in ('item', 'tolist', '__float__', '__int__', '__bool__'):
        setattr(torch.Tensor, name, counted(name, getattr(torch.Tensor, name)))
    folder = train(cfg)
    print(json.dumps(counts))
"""


def host_reads(tmp, *more) -> tuple[dict, Path]:
    "The host's reads of tensors in a whole one-epoch toy run (128 steps of batch 4) in one process, by kind."
    proc = subprocess.run([sys.executable, '-c', textwrap.dedent(COUNT_READS), str(tmp), *more], capture_output=True,
                          text=True, timeout=120, env=os.environ | {'OMP_NUM_THREADS': '1'})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), Path(tmp)/'reads'


def test_a_128_step_toy_epoch_reads_the_device_fewer_than_40_times(tmp_path):
    """Training, validation, the checkpoint and complete.json together: no read per step (the loss was read at every
    step, and the default Adam read each parameter's step count: 386 `.item()` calls)."""
    counts, run = host_reads(tmp_path)
    assert sum(counts.values()) < 40, counts
    steps = pd.read_parquet(run/'timing.parquet').query("phase == 'train'")
    assert len(steps) == 128 and steps.loss.notna().all()      # every step's loss still recorded, read in batches


def site_hook(tmp: Path, code: str) -> Path:
    "A sitecustomize that runs `code` in torchrun's rank-1 worker only."
    folder = tmp/'site'
    folder.mkdir()
    (folder/'sitecustomize.py').write_text("import os\nif os.environ.get('RANK') == '1':\n"
                                          + textwrap.indent(textwrap.dedent(code), '    '))
    return folder


SIGTERM_AT_STEP_8 = """
    import signal, torch
    _step, _n = torch.optim.Adam.step, {'k': 0}
    def step(self, *a, **k):
        out = _step(self, *a, **k)
        _n['k'] += 1
        if _n['k'] == 8: os.kill(os.getpid(), signal.SIGTERM)
        return out
    torch.optim.Adam.step = step
"""

# 2 ranks × batch 16 over the toy's 512 samples: 16 steps an epoch
ONE_EPOCH = ('train.devices=2', 'train.epochs=1', 'train.checkpoint_every=0')
EVERY_6 = (*ONE_EPOCH, 'train.sync_every=6')


def test_sigterm_between_synchronizations_stops_every_rank_at_the_next_with_a_checkpoint_and_resumes_bit_for_bit(
        tmp_path):
    """SIGTERM reaches rank 1 alone after its step 8; the synchronizations come at steps 6, 12 and 16: both ranks
    stop at step 12, checkpointed, and the resumed run ends with the weights of a run never stopped (which
    synchronized at other steps: the default sync_every)."""
    reference = start(tmp_path, 'reference', *ONE_EPOCH)
    stopped = start(tmp_path, 'stopped', *EVERY_6, site=site_hook(tmp_path, SIGTERM_AT_STEP_8))
    _, err = stopped.communicate(timeout=300)
    assert stopped.returncode == 1 and 'stopped on' in err.strip().splitlines()[-1], err[-3000:]
    run = tmp_path/'runs'/'stopped'
    assert not processes(f'{run}/config.yaml') and not (run/'complete.json').exists()
    from seemore_nb.engine.checkpoints import load_checkpoint
    state = load_checkpoint(run/'checkpoints'/'last.pt')
    assert (state['epoch'], state['step'], state['global_step']) == (0, 12, 12)    # within sync_every steps of 8
    assert sorted(p.name for p in (run/'checkpoints').glob('step-*')) == ['step-0000012.pt']
    resumed = start(tmp_path, 'stopped', *EVERY_6)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0 and 'resumed stopped at epoch 1, step 12' in out, err[-3000:]
    assert reference.wait(timeout=300) == 0, reference.stderr.read()[-3000:]
    assert digests(tmp_path, 'stopped') == digests(tmp_path, 'reference')
    steps = pd.read_parquet(run/'timing.parquet').query("phase == 'train'")
    for rank in (0, 1):                                        # every step once, with its loss
        assert sorted(steps[steps['rank'] == rank].global_step) == list(range(16))
    assert steps.loss.notna().all()


NAN_LOSS_AT_STEP_11 = """
    from seemore_nb.engine.trainer import ToyTask
    _forward, _n = ToyTask.forward, {'k': 0}
    def forward(self, model, batch):
        loss, sums = _forward(self, model, batch)
        _n['k'] += 1
        if _n['k'] == 11: loss, sums = loss * float('nan'), sums | {'loss': sums['loss'] * float('nan')}
        return loss, sums
    ToyTask.forward = forward
"""


def test_a_loss_not_finite_between_synchronizations_stops_the_run_before_any_checkpoint_of_its_weights(tmp_path):
    """Rank 1's loss is NaN at step 11; the synchronizations come at steps 4 and 8 (checkpoints), 5, 10, and 12
    (a checkpoint: it synchronizes first). Both ranks stop there, naming step 11, with no complete.json and only the
    finite checkpoints of steps 4 and 8."""
    proc = start(tmp_path, 'nan', 'train.devices=2', 'train.sync_every=5', 'train.checkpoint_every=4',
                 site=site_hook(tmp_path, NAN_LOSS_AT_STEP_11))
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert 'run nan diverged at epoch 1, step 11: the training loss is not finite' in last, err[-3000:]
    run = tmp_path/'runs'/'nan'
    assert not (run/'complete.json').exists() and not processes(f'{run}/config.yaml')
    kept = sorted((run/'checkpoints').glob('*.pt'))
    assert sorted(p.name for p in kept if p.name.startswith('step-')) == ['step-0000004.pt', 'step-0000008.pt']
    for path in kept:
        state = torch.load(path, weights_only=True)
        assert state['global_step'] <= 8 and all(torch.isfinite(v).all() for v in state['model'].values()), path
