"""The TensorFlow engine: MirroredStrategy over logical CPUs, weight copy, bf16, kill and resume bit for bit,
2-worker TF_CONFIG and 2-node torchrun runs on localhost, unsupported keys, 60_report.analysis over both engines.

TensorFlow takes seconds to import, so the TF checks share few processes: one killed run, one process that runs the
other checks as named parts (each part's error, output and results come back as JSON, written after every part, so a
failing part fails only the tests that read it, naming itself), and the two multi-machine pairs."""
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from seemore_nb.config import load_config

ENV = os.environ | {'OMP_NUM_THREADS': '1', 'TF_CPP_MIN_LOG_LEVEL': '2', 'PYTHONHASHSEED': '0'}
for k in ('TF_CONFIG', 'PET_NNODES', 'NODE_RANK', 'PET_NODE_RANK', 'PET_RDZV_ENDPOINT', 'MASTER_ADDR'): ENV.pop(k, None)
SHORT = ['train.framework=tensorflow', 'train.epochs=2', 'train.steps_per_epoch=12', 'train.checkpoint_every=5']


def overrides(tmp, run_id, *more):
    return [f'train.runs_dir={tmp}/runs', f'store.root={tmp}/stores', f'train.run_id={run_id}', *more]


def python(code, timeout=400, **popen):
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout, env=ENV, **popen)


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks: s.bind(('localhost', 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks: s.close()
    return ports


@pytest.fixture(scope='session')
def tmp(tmp_path_factory):
    "A folder with the smoke store already built (concurrent launchers must not race to build it)."
    tmp = tmp_path_factory.mktemp('tf')
    from seemore_nb.data.store import build_store
    build_store(load_config('smoke', [f'store.root={tmp}/stores']), progress=False)
    return tmp


@pytest.fixture(scope='session')
def killed(tmp):
    "A run killed by SIGKILL after step 8 (last checkpoint: step 5); the parts below resume it."
    return python(f"""
        import os, signal
        from seemore_nb.tf import trainer as train_tf
        from seemore_nb.config import load_config
        def after_step(self):
            if self.global_step == 8: os.kill(os.getpid(), signal.SIGKILL)
        train_tf.TFTrainer.after_step = after_step
        train_tf.train_tf(load_config('smoke', {overrides(tmp, 'killed', *SHORT)!r}))
    """)


# The parts of the one TensorFlow process, in order: each a name and the code of its body (`cfg(run, *more)` is the smoke
# config of run `run` in `tmp`; `res` takes the part's results; `after_step` the trainer's hook, reset after every part).
PARTS = {
    'copy': """
        c = cfg('copy')
        store = open_store(store_dir(c), c)
        x = store.read_indices(store.rows('val')[:32])
        torch.manual_seed(1); tm = vit_from_config(c).eval()
        km = copy_torch_weights(keras_vit_from_config(c), tm)
        with torch.no_grad(): res['logit_diff'] = float(np.abs(km(x).numpy() - tm(torch.from_numpy(x)).numpy()).max())
        res['params'] = [km.count_params(), parameter_count(tm)]
        res['paper_params'] = keras_vit_from_config(load_config('paper')).count_params()""",
    'reference': """
        train_tf.train_tf(cfg('reference', *SHORT))""",
    'killed': """
        assert (RUNS/'killed'/'checkpoints').exists(), 'the killed run left no checkpoint to resume'
        train_tf.train_tf(cfg('killed', *SHORT))""",
    'changed': """
        try: train_tf.train_tf(cfg('killed', *SHORT, 'train.lr=0.5'))
        except Exception as e: res['changed'] = f'{type(e).__name__}: {e}'""",
    'termed': """
        def sigterm_at_7(self):
            if self.global_step == 7: os.kill(os.getpid(), signal.SIGTERM)
        train_tf.TFTrainer.after_step = sigterm_at_7
        try: train_tf.train_tf(cfg('termed', *SHORT))
        except RunInterrupted as e: res['termed'] = str(e)
        shutil.copytree(RUNS/'termed', RUNS2/'termed')                 # a copy whose newest checkpoint breaks (part fallback)
        train_tf.TFTrainer.after_step = lambda self: None
        train_tf.train_tf(cfg('termed', *SHORT))""",
    'fallback': """
        ck = RUNS2/'termed'/'checkpoints'
        (ck/'step-0000007'/'ckpt.data-00000-of-00001').write_bytes(b'broken')
        (ck/'.step-0000009.worker0.12345.tmp').mkdir(); (ck/'.step-0000009.worker0.12345.tmp'/'ckpt.index').write_text('half')
        train_tf.train_tf(cfg('termed', *SHORT, f'train.runs_dir={RUNS2}'))
        res['fallback_left'] = sorted(p.name for p in ck.iterdir() if p.name.startswith('.'))""",
    'per_file': """
        pf = ('train.loader=per_file', 'model.input=rgb')     # the per-file loader's kept iterator resumes too
        def sigterm_at_7(self):
            if self.global_step == 7: os.kill(os.getpid(), signal.SIGTERM)
        train_tf.TFTrainer.after_step = sigterm_at_7
        try: train_tf.train_tf(cfg('pf-termed', *SHORT, *pf))
        except RunInterrupted as e: res['pf-termed'] = str(e)
        train_tf.TFTrainer.after_step = lambda self: None
        train_tf.train_tf(cfg('pf-termed', *SHORT, *pf))
        train_tf.train_tf(cfg('pf-reference', *SHORT, *pf))""",
    'mirrored': """
        train_tf.train_tf(cfg('mirrored', 'train.devices=2', 'train.epochs=3', 'train.profile_steps=[2,3]'))""",
    'bf16': """
        train_tf.train_tf(cfg('bf16', 'train.amp=bf16', 'train.epochs=1', 'train.steps_per_epoch=3'))""",
    'nan': """
        def poison_at_6(self):                                 # NaN weights after step 6: the loss of step 7 is NaN
            if self.global_step == 6:
                w = self.model.trainable_weights[0]; w.assign(tf.fill(w.shape, float('nan')))
        train_tf.TFTrainer.after_step = poison_at_6
        try: train_tf.train_tf(cfg('nan', *SHORT))
        except TrainingError as e: res['diverged'] = str(e)
        kept = {}
        for d in sorted((RUNS/'nan'/'checkpoints').glob('step-*')):
            r = tf.train.load_checkpoint(str(d/'ckpt'))
            arrays = [np.asarray(r.get_tensor(k)) for k in r.get_variable_to_shape_map()]
            kept[d.name] = all(np.isfinite(a).all() for a in arrays if a.dtype.kind == 'f')
        res['nan_checkpoints'] = kept""",
}

DRIVER = """
    import contextlib, io, json, os, shutil, signal, sys, traceback
    from pathlib import Path
    import numpy as np, torch
    import tensorflow as tf
    from seemore_nb.tf import trainer as train_tf
    from seemore_nb.config import load_config
    from seemore_nb.data.store import open_store, store_dir
    from seemore_nb.engine.runs import RunInterrupted, TrainingError
    from seemore_nb.study.vit import vit_from_config, parameter_count
    from seemore_nb.tf.vit import keras_vit_from_config, copy_torch_weights
    train_tf.tf_devices(2)                         # one runtime with 2 logical CPUs serves 1- and 2-device runs
    TMP, OUT = Path({tmp!r}), Path({out!r})
    RUNS, RUNS2, SHORT = TMP/'runs', TMP/'runs2', {short!r}
    cfg = lambda run, *more: load_config('smoke', [f'train.runs_dir={{RUNS}}', f'store.root={{TMP}}/stores',
                                                   f'train.run_id={{run}}', 'train.framework=tensorflow', *more])
    hook = train_tf.TFTrainer.after_step
    report = {{'results': {{}}, 'errors': {{}}, 'out': {{}}}}
    for name, body in {parts!r}.items():
        res, out = report['results'].setdefault(name, {{}}), io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                exec(compile(body, f'<part {{name}}>', 'exec'), globals() | {{'res': res}})
        except BaseException:
            report['errors'][name] = traceback.format_exc()
        finally: train_tf.TFTrainer.after_step = hook
        report['out'][name] = out.getvalue()
        OUT.write_text(json.dumps(report))             # after every part: a crash keeps the parts before it
"""


@pytest.fixture(scope='session')
def tf_parts(tmp, killed):
    "The one process that runs PARTS in order; {'results', 'errors', 'out'} by part, and the process itself."
    out = tmp/'parts.json'
    parts = {name: textwrap.dedent(body).strip('\n') for name, body in PARTS.items()}
    proc = python(DRIVER.format(tmp=str(tmp), out=str(out), short=SHORT[1:], parts=parts), timeout=600)
    return (json.loads(out.read_text()) if out.exists() else {'results': {}, 'errors': {}, 'out': {}}), proc


def part(tf_parts, *names) -> tuple[dict, str]:
    "The results of the parts `names` (merged) and their output; fails naming the part that failed or never ran."
    report, proc = tf_parts
    for name in names:
        if name not in report['out']:
            pytest.fail(f'part {name!r} never ran: the TensorFlow process exited with {proc.returncode}\n'
                        f'{proc.stdout[-2000:]}{proc.stderr[-5000:]}')
        if name in report['errors']:
            pytest.fail(f'part {name!r} failed:\n{report["errors"][name]}\n{report["out"][name][-3000:]}')
    return {k: v for n in names for k, v in report['results'][n].items()}, ''.join(report['out'][n] for n in names)


def complete(tmp, run):
    return json.loads((Path(tmp)/'runs'/run/'complete.json').read_text())


def test_weight_copy_gives_the_same_logits_and_parameter_count(tf_parts):
    res, _ = part(tf_parts, 'copy')
    assert res['logit_diff'] < 1e-4
    assert res['params'][0] == res['params'][1] and res['paper_params'] == 23_677_442


def test_mirrored_two_logical_devices_trains_with_the_pytorch_schema(tmp, tf_parts, smoke):
    from seemore_nb.engine.runs import TIMING_COLUMNS
    part(tf_parts, 'mirrored')
    run = Path(tmp)/'runs'/'mirrored'
    timing, metrics = pd.read_parquet(run/'timing.parquet'), pd.read_csv(run/'metrics.csv')
    assert list(timing.columns) == TIMING_COLUMNS
    train = timing[timing.phase == 'train']
    assert train[['data_wait', 'total']].notna().all().all() and train[['forward', 'backward', 'optimizer']].isna().all().all()
    assert complete(tmp, 'mirrored')['world_size'] == 2 and metrics.train_loss.iloc[-1] < metrics.train_loss.iloc[0]
    n_val = len(pd.read_parquet(Path(tmp)/'stores'/os.listdir(Path(tmp)/'stores')[0]/'index.parquet').query("split == 'val'"))
    assert (metrics.val_samples == n_val).all()                      # every validation sample counted once
    one_order = ['epoch', 'train_accuracy', 'train_loss', 'val_accuracy', 'val_loss', 'epoch_start', 'epoch_end', 'samples', 'val_samples']
    assert list(metrics.columns) == one_order                         # runs.end_epoch: the same order as the PyTorch engine's
    assert smoke.proc.returncode == 0, smoke.proc.stderr[-3000:]      # the smoke grid's PyTorch learn-1dev run beside it:
    torch_run = next(p.parent for p in smoke.runs.glob('smoke-learn-1dev-*/complete.json'))   # same columns, same schema
    assert list(pd.read_csv(torch_run/'metrics.csv').columns) == list(metrics.columns)
    torch_timing = pd.read_parquet(torch_run/'timing.parquet')
    assert list(torch_timing.columns) == list(timing.columns) and dict(torch_timing.dtypes) == dict(timing.dtypes)
    assert any((run/'profile').rglob('*.xplane.pb')) and any((run/'tensorboard').iterdir())
    evaluation = complete(tmp, 'mirrored')['evaluation']                   # the best weights on every test window once
    predictions = pd.read_parquet(run/evaluation['predictions'])
    assert evaluation['windows'] == len(predictions) == predictions.window_id.nunique() > 0 and predictions.prob_up.between(0, 1).all()


def test_bf16_policy_runs(tmp, tf_parts):
    part(tf_parts, 'bf16')
    assert complete(tmp, 'bf16')['global_step'] == 3


def test_sigkill_then_resume_is_bit_for_bit(tmp, killed, tf_parts):
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    res, out = part(tf_parts, 'reference', 'killed', 'changed')
    assert 'resumed killed at epoch 1, step 5' in out
    assert complete(tmp, 'killed')['weights_sha256_by_rank'] == complete(tmp, 'reference')['weights_sha256_by_rank']
    timing = pd.read_parquet(Path(tmp)/'runs'/'killed'/'timing.parquet')
    assert sorted(timing[timing.phase == 'train'].global_step) == list(range(24))      # no step lost or repeated
    assert 'ConfigError' in res['changed'] and 'train.lr' in res['changed']          # a changed setting is refused


def test_sigterm_checkpoints_then_resumes_bit_for_bit(tmp, tf_parts):
    res, out = part(tf_parts, 'reference', 'termed')
    assert 'stopped on SIGTERM after a checkpoint at epoch 1, step 7' in res['termed']
    assert 'resumed termed at epoch 1, step 7' in out
    assert complete(tmp, 'termed')['weights_sha256_by_rank'] == complete(tmp, 'reference')['weights_sha256_by_rank']


def test_the_per_file_loader_resumes_bit_for_bit(tmp, tf_parts):
    res, out = part(tf_parts, 'per_file')
    assert 'at epoch 1, step 7' in res['pf-termed'] and 'resumed pf-termed at epoch 1, step 7' in out
    assert complete(tmp, 'pf-termed')['weights_sha256_by_rank'] == complete(tmp, 'pf-reference')['weights_sha256_by_rank']
    timing = pd.read_parquet(Path(tmp)/'runs'/'pf-termed'/'timing.parquet')
    assert sorted(timing[timing.phase == 'train'].global_step) == list(range(24))      # no step lost or repeated


def test_a_damaged_newest_checkpoint_falls_back_and_a_killed_save_is_cleared(tmp, tf_parts):
    part(tf_parts, 'reference', 'termed')
    res, out = part(tf_parts, 'fallback')
    assert 'skipped step-0000007 (' in out and 'resumed termed at epoch 1, step 5' in out, out[-3000:]
    assert res['fallback_left'] == []                                  # the half-written folder of a killed save is gone
    again = json.loads((Path(tmp)/'runs2'/'termed'/'complete.json').read_text())['weights_sha256_by_rank']
    assert again == complete(tmp, 'reference')['weights_sha256_by_rank']


def test_unsupported_and_bad_keys_fail_clearly(tmp):
    cases = ((['train.strategy=dp'], 'train.strategy=dp'), (['train.num_workers=2'], 'train.num_workers=2'),
             (['train.framework=jax'], 'train.framework'))
    proc = python(f"""
        import contextlib, io, sys
        from seemore_nb.engine.launch import main
        for more, words in {cases!r}:
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                code = main(['--config', 'smoke', 'train.framework=tensorflow', *{overrides(tmp, 'bad')!r}, *more])
            assert code == 1 and words in err.getvalue() and 'Traceback' not in err.getvalue(), err.getvalue()
        assert 'tensorflow' not in sys.modules                 # refused before TensorFlow starts
    """)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _two_launchers(tmp, run, per_node):
    procs = [subprocess.Popen([sys.executable, '-c', 'import sys; from seemore_nb.engine.launch import main; sys.exit(main(sys.argv[1:]))',
                               '--config', 'smoke', *overrides(tmp, run), *more],
                              env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for more in per_node]
    outs = [p.communicate(timeout=400)[0] for p in procs]
    for p, out in zip(procs, outs): assert p.returncode == 0, out[-4000:]
    return outs


def test_two_tensorflow_workers_through_tf_config(tmp):
    a, b = free_ports(2)
    common = ['train.framework=tensorflow', 'train.nodes=2', f'train.rendezvous=localhost:{a},localhost:{b}',
              'train.epochs=1', 'train.steps_per_epoch=4']
    _two_launchers(tmp, 'tf2workers', [common + ['train.node_rank=0'], common + ['train.node_rank=1']])
    done = complete(tmp, 'tf2workers')
    timing = pd.read_parquet(Path(tmp)/'runs'/'tf2workers'/'timing.parquet')
    assert done['workers'] == 2 and sorted(timing['rank'].unique()) == [0, 1]


def test_two_torchrun_nodes_on_localhost(tmp):
    (port,) = free_ports(1)
    common = ['train.nodes=2', f'train.rendezvous=localhost:{port}', 'train.epochs=1', 'train.steps_per_epoch=4']
    _two_launchers(tmp, 'torch2nodes', [common + ['train.node_rank=0'], common + ['train.node_rank=1']])
    done = complete(tmp, 'torch2nodes')
    assert done['world_size'] == 2 and len(set(done['weights_sha256_by_rank'])) == 1


def test_analysis_reads_a_tensorflow_and_a_pytorch_run(smoke):
    "The smoke grid's 2-device store runs of both engines."
    from seemore_nb.report.analysis import load_run, step_times, timing_breakdown
    from seemore_nb.report.figures import plot_step_times
    assert smoke.proc.returncode == 0, smoke.proc.stderr[-3000:]
    names = ['tf-store-2dev', 'pt-store-2dev']
    runs = [load_run(next(p.parent for p in sorted(smoke.runs.glob(f'smoke-{n}-r1-*/complete.json')))) for n in names]
    table = timing_breakdown(runs)
    assert len(table) == 2 and table['total'].notna().all()
    tf_row = table.loc[[i for i in table.index if 'tensorflow' in str(i)][0]]
    assert pd.isna(tf_row['forward']) and tf_row['data_wait'] > 0               # missing, not zero
    cells = pd.DataFrame(dict(name=names, run=runs))
    steps = step_times(cells)
    assert steps[(steps.framework == 'tensorflow') & (steps.phase == 'forward')].ms.isna().all()
    pt, tf = plot_step_times(steps).axes                                         # one panel per engine, TF's phases n/a
    assert len(tf.texts) == 4 and not pt.texts


def test_a_diverging_tensorflow_run_stops_and_keeps_the_last_finite_checkpoint(tmp, tf_parts):
    res, _ = part(tf_parts, 'nan')
    assert res['diverged'].startswith('run nan diverged at epoch 1, step 7: the training loss is not finite'), res.get('diverged')
    assert not (Path(tmp)/'runs'/'nan'/'complete.json').exists()
    assert res['nan_checkpoints'] == {'step-0000005': True}          # the step-5 weights, never NaN ones after them
