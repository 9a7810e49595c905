"""The PyTorch engine's GPU path, checked on CPU where it can be: compile and exact resume, the device loader,
the GPU check's one-line refusal, and the minimal environment the GPU check runs in; on a GPU, a CUDA smoke run."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
TOY = ['train.task=toy', 'train.device=cpu', 'train.compile=true']


def run_in_fresh_python(code: str, timeout: int = 600, env: dict | None = None):
    env = os.environ | {'OMP_NUM_THREADS': '1'} | (env or {})
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, env=env)


def trains(runs, *runs_and_overrides):
    "Code that trains each (run_id, overrides) on the smoke profile in turn, in one process."
    return textwrap.dedent(f"""
        from seemore_nb.config import load_config
        from seemore_nb.engine.trainer import train
        for run_id, more in {list(runs_and_overrides)!r}:
            train(load_config('smoke', [f'train.runs_dir={runs}', f'train.run_id={{run_id}}', *more]))
    """)


def digest(runs, run_id):
    return json.loads((Path(runs)/run_id/'complete.json').read_text())['weights_sha256_by_rank']


def test_compiled_training_resumes_bit_for_bit_and_its_checkpoints_load_with_compile_off(tmp_path):
    from seemore_nb.engine.checkpoints import load_checkpoint
    first = run_in_fresh_python(trains(tmp_path, ('whole', TOY), ('stopped', TOY + ['train.epochs=1']),
                                       ('swapped', TOY + ['train.epochs=1'])))
    assert first.returncode == 0, first.stderr[-3000:]
    weights = load_checkpoint(tmp_path/'stopped'/'checkpoints'/'last.pt')['model']
    assert sorted(weights) == ['bias', 'weight']                     # clean keys: no _orig_mod. prefix
    # each resumed in a fresh process: compiled again, and with compile off (a resumable change)
    second = run_in_fresh_python(trains(tmp_path, ('stopped', TOY), ('swapped', TOY[:2] + ['train.compile=false'])))
    assert second.returncode == 0, second.stderr[-3000:]
    assert 'resumed stopped at epoch 2' in second.stdout and 'resumed swapped at epoch 2' in second.stdout
    assert digest(tmp_path, 'stopped') == digest(tmp_path, 'whole')


def test_the_device_loader_gives_the_store_loaders_batches_through_make_loader(tmp_path):
    from seemore_nb.config import load_config
    from seemore_nb.data.loaders import DeviceDataset, StoreDataset, split_dataset
    from seemore_nb.data.store import build_store, open_store
    from seemore_nb.engine.distributed import EpochBatches, make_loader
    cfg = load_config('smoke', [f'store.root={tmp_path}', 'train.loader=device'])
    store = open_store(build_store(cfg, progress=False), cfg)
    on_device = split_dataset(store, 'train', cfg, torch.device('cpu'))
    assert isinstance(on_device, DeviceDataset)
    batches = EpochBatches(len(on_device), 16, shuffle=True, seed=3)
    for epoch, skip in ((0, 0), (1, 2)):                         # another order, and a resumed epoch's skip
        batches.set_epoch(epoch, skip)
        pairs = list(zip(make_loader(on_device, batches), make_loader(StoreDataset(store, 'train'), batches)))
        assert len(pairs) == len(batches) > 0
        for (xa, ya), (xb, yb) in pairs: assert torch.equal(xa, xb) and torch.equal(ya, yb)


@pytest.mark.skipif(torch.cuda.is_available(), reason='the refusal is for machines without a GPU')
def test_the_gpu_check_without_a_gpu_prints_one_line_and_exits_1():
    proc = subprocess.run([str(Path(sys.executable).parent/'seemore_bench'), 'gpu'], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert proc.returncode == 1 and proc.stderr == ''
    assert proc.stdout.startswith('seemore_bench gpu: no CUDA GPU visible') and len(proc.stdout.splitlines()) == 1


BLOCKED = textwrap.dedent("""
    import sys
    for name in ('papermill', 'nbformat', 'tensorflow', 'tensorboard', 'pywt', 'nbdev', 'execnb'):
        sys.modules[name] = None                                 # `import name` now raises ImportError
    from seemore_nb.tools.gpu import main, run_gpu
    import seemore_nb.tools.bench, seemore_nb.engine.trainer, seemore_nb.study.classifier, seemore_nb.data.store
""")
LOADED = "print('LOADED', sorted(m for m in ('fastcore', 'papermill', 'nbformat', 'tensorflow', 'pywt') if sys.modules.get(m)))"


def test_the_gpu_check_and_the_engine_run_without_papermill_nbformat_tensorflow_or_tensorboard(tmp_path):
    "The GPU machine's Python has none of them: the check imports, and a run trains, warning once for TensorBoard."
    more = [f'store.root={tmp_path}/stores', 'train.loader=device', 'train.epochs=1', 'train.steps_per_epoch=3']
    proc = run_in_fresh_python(BLOCKED + trains(tmp_path, ('bare-env', more)) + LOADED)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count('UserWarning: TensorBoard is not installed') == 1 and "LOADED ['fastcore']" in proc.stdout
    assert (tmp_path/'bare-env'/'complete.json').exists() and not (tmp_path/'bare-env'/'tensorboard').exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
def test_a_cuda_smoke_run_with_compile_the_device_loader_and_event_timing(tmp_path):
    import pandas as pd
    from seemore_nb.config import load_config
    from seemore_nb.engine.runs import TIMING_COLUMNS
    from seemore_nb.engine.trainer import train
    more = [f'train.runs_dir={tmp_path}', f'store.root={tmp_path}/stores', 'train.device=cuda', 'train.compile=true',
            'train.loader=device', 'train.checkpoint_every=5', 'train.deterministic=false']
    folder = train(load_config('smoke', more + ['train.run_id=cuda']))
    timing = pd.read_parquet(folder/'timing.parquet')
    assert list(timing.columns) == TIMING_COLUMNS and timing[['to_device', 'forward', 'total']].notna().all().all()
    train_rows = timing[timing.phase == 'train']
    assert (train_rows.forward > 0).all() and (train_rows.backward > 0).all() and (train_rows.optimizer > 0).all()
    assert json.loads((folder/'complete.json').read_text())['gpu']
