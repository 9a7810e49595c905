"""Tasks as plug-ins (02_config's registry, 90_api's `sn.train`): a task of the user's own, outside the package, by import
path on 2 DDP processes and resumed bit for bit, as a grid row, and by a registered entry point."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

import seemore_nb as sn
from seemore_nb.config import ConfigError, registered_tasks, task_class

ROOT = Path(__file__).resolve().parent.parent

TASK = '''
import torch
from torch import nn
import torch.nn.functional as F

class SineTask:
    "Fit y = sin(x) with a small MLP: a user's own task, unknown to seemore_nb."
    def __init__(self, cfg): self.cfg = cfg
    def prepare(self, env): pass
    def build_model(self): return nn.Sequential(nn.Linear(1, 16), nn.Tanh(), nn.Linear(16, 1))
    def dataset(self, split):
        g = torch.Generator().manual_seed({'train': 0, 'val': 1}[split])
        x = torch.rand(128, 1, generator=g) * 6 - 3
        return torch.utils.data.TensorDataset(x, torch.sin(x).squeeze(-1))
    def to_device(self, batch, device): return [b.to(device) for b in batch]
    def forward(self, model, batch):
        x, y = batch
        loss = F.mse_loss(model(x).squeeze(-1), y)
        return loss, {'loss': loss.detach() * len(y), 'count': len(y)}
'''


@pytest.fixture(scope='module')
def user_package(tmp_path_factory):
    "A folder with the module `usertasks` and a distribution `usertasks-0.1` that registers it as `sine`."
    root = tmp_path_factory.mktemp('user')
    (root/'usertasks.py').write_text(TASK)
    info = root/'usertasks-0.1.dist-info'
    info.mkdir()
    (info/'METADATA').write_text('Metadata-Version: 2.1\nName: usertasks\nVersion: 0.1\n')
    (info/'entry_points.txt').write_text('[seemore_nb.tasks]\nsine = usertasks:SineTask\n')
    return root


@pytest.fixture
def on_path(user_package, monkeypatch):
    "The user's folder on sys.path here and on PYTHONPATH for the processes this one starts (torchrun's ranks)."
    monkeypatch.syspath_prepend(str(user_package))
    monkeypatch.setenv('PYTHONPATH', os.pathsep.join([str(user_package), os.environ.get('PYTHONPATH', '')]))
    return user_package


def config(tmp, run_id, *more):
    return sn.load_config('smoke', [f'train.runs_dir={tmp}', f'train.run_id={run_id}', 'train.batch_size=8',
                                    'train.lr=0.01', 'train.devices=2', *more])


def weights(folder) -> list:
    return json.loads((Path(folder)/'complete.json').read_text())['weights_sha256_by_rank']


def test_a_task_outside_the_package_trains_on_two_processes_and_resumes_bit_for_bit(on_path, tmp_path):
    straight = sn.train(config(tmp_path, 'straight', 'train.epochs=2'), task='usertasks:SineTask')
    first = sn.train(config(tmp_path, 'grown', 'train.epochs=1', 'train.task=usertasks:SineTask'))
    assert len(sn.load_run(first).metrics) == 1
    grown = sn.train(config(tmp_path, 'grown', 'train.epochs=2', 'train.task=usertasks:SineTask'))  # more epochs: resumes
    a, b = sn.load_run(straight), sn.load_run(grown)
    assert a.config['train']['task'] == b.config['train']['task'] == 'usertasks:SineTask'
    assert len(weights(straight)) == 2 and weights(straight) == weights(grown)          # both ranks, every bit
    cols = ['epoch', 'train_loss', 'val_loss']
    pd.testing.assert_frame_equal(a.metrics[cols], b.metrics[cols])
    assert a.metrics.val_loss.iloc[-1] < a.metrics.val_loss.iloc[0]


def test_a_task_outside_the_package_runs_as_a_grid_row(on_path, tmp_path):
    grid = tmp_path/'mine.yaml'
    grid.write_text('repeats: 1\ncolumns: [name, kind, needs, profile, task, framework, devices, loader, num_workers, amp, '
                    'epochs, warmup, overrides]\ncells:\n'
                    "- [sine, learning, -, -, 'usertasks:SineTask', pytorch, 1, store, 0, 'off', 1, 0, "
                    '[train.batch_size=8]]\n')
    env = os.environ | {'OMP_NUM_THREADS': '1'}
    command = [str(Path(sys.executable).parent/'seemore_reproduce'), '--config', 'smoke', f'train.runs_dir={tmp_path}',
               '--grid', str(grid), '--only', 'sine']
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    [done] = [p.parent for p in tmp_path.glob('smoke-sine-*/complete.json')]
    assert sn.load_run(done).config['train']['task'] == 'usertasks:SineTask' and (done/'train_run.ipynb').exists()


def test_an_entry_point_registers_a_name(on_path, tmp_path):
    assert registered_tasks()['sine'] == 'usertasks:SineTask' and {'classifier', 'toy', 'vlm'} <= set(registered_tasks())
    assert task_class('sine').__name__ == 'SineTask'
    folder = sn.train(sn.load_config('smoke', ['train.task=sine', 'train.epochs=1', f'train.runs_dir={tmp_path}']))
    assert len(sn.load_run(folder).metrics) == 1


def test_an_unknown_task_is_one_line_naming_it_the_registered_ones_and_an_import_path():
    with pytest.raises(ConfigError) as err: sn.load_config('smoke', ['train.task=nope'])
    line = str(err.value)
    assert '\n' not in line and "train.task='nope'" in line and '(classifier, toy, vlm)' in line
    assert 'train.task=package.module:Class' in line
    with pytest.raises(ConfigError, match="train.task='no_such_mod:Task': cannot import no_such_mod"):
        task_class('no_such_mod:Task')
    proc = subprocess.run([str(Path(sys.executable).parent/'seemore_train'), '--config', 'smoke', 'train.task=nope'],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines()[0].startswith("seemore_train: error: train.task='nope'")
