"""The ViT's test predictions under a padded 2-rank DDP split, the baselines command, and the figure templates with the
ViT: on a copy of the session's smoke grid (its learn-1dev run and its fitted baselines)."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seemore_nb.config import load_config

ROOT = Path(__file__).resolve().parent.parent


def overrides(tmp):
    "The smoke grid's config with its runs in `tmp`/runs (the store is the grid's: the same key)."
    return [f'train.runs_dir={tmp}/runs']


def saved_plan(tmp) -> str:
    "The smoke grid's plan with these overrides, saved as the main job hands it to the figure templates."
    from seemore_nb.orchestrate.grid import grid_plan
    from seemore_nb.report.cells import save_plan
    return str(save_plan(grid_plan(load_config('smoke', overrides(tmp))), f'{tmp}/plan.json'))


def ddp_overrides(tmp):
    "Smoke with one ticker and an odd number of test windows, so that two ranks need a padding repeat."
    return [f'train.runs_dir={tmp}/runs', f'store.root={tmp}/stores', 'data.tickers=[AAPL]', 'data.test_fraction=0.152',
            'train.epochs=1', 'train.steps_per_epoch=3']


@pytest.fixture(scope='module')
def ddp_run(tmp_path_factory):
    "A 2-process classifier run whose engine predicted the test split through the final-evaluation hook."
    tmp = tmp_path_factory.mktemp('ddp')
    more = ddp_overrides(tmp) + ['train.run_id=ddp', 'train.devices=2']
    code = f"from seemore_nb.engine.launch import launch; launch('smoke', {more!r})"
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300,
                          env=os.environ | {'OMP_NUM_THREADS': '1'}, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp, tmp/'runs'/'ddp'


def test_vit_test_predictions_hold_each_test_window_once_under_a_padded_two_rank_split(ddp_run):
    from seemore_nb.engine.checkpoints import load_checkpoint
    from seemore_nb.study.evaluation import predict_rows
    from seemore_nb.data.store import open_store, store_dir
    from seemore_nb.study.vit import vit_from_config
    tmp, folder = ddp_run
    cfg = load_config('smoke', ddp_overrides(tmp))
    store = open_store(store_dir(cfg), cfg)
    rows = store.rows('test')
    assert len(rows) % 2 == 1                                   # the DistributedSampler padded rank 1 with a repeat
    pred = pd.read_parquet(folder/'predictions'/'test.parquet')
    assert pred['window_id'].tolist() == sorted(rows)           # every test window exactly once
    assert (pred['label'].to_numpy() == store.labels[pred['window_id']]).all()
    assert json.loads((folder/'complete.json').read_text())['evaluation']['windows'] == len(rows)
    model = vit_from_config(cfg)                                # one process with the best weights: the same probabilities
    model.load_state_dict(load_checkpoint(folder/'checkpoints'/'best.pt')['model'])
    one = predict_rows(model, store, 'test', batch_size=64)
    assert np.allclose(one['prob_up'], pred['prob_up'], atol=1e-5)


def run_baselines(*args):
    code = 'import sys; from seemore_nb.report.baselines import main; sys.exit(main())'
    return subprocess.run([sys.executable, '-c', code, *args], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env=os.environ | {'OMP_NUM_THREADS': '1'})


@pytest.fixture(scope='module')
def with_vit(smoke, tmp_path_factory):
    """The smoke grid's learn-1dev run copied, without its test predictions, to where the main job's 1-device run lives
    in a folder of its own, with the baselines the grid's stage fitted; then the reproduce stage (which predicts)."""
    from seemore_nb.report.baselines import reproduce_stage, vit_predictions_path
    from seemore_nb.orchestrate.grid import grid_plan
    assert smoke.proc.returncode == 0, smoke.proc.stderr[-3000:]
    tmp = tmp_path_factory.mktemp('baselines')
    engine = next(p.parent for p in smoke.runs.glob('smoke-learn-1dev-*/complete.json'))
    cfg = load_config('smoke', overrides(tmp))
    plan = grid_plan(cfg, stages=False)
    target = vit_predictions_path(plan)
    shutil.copytree(engine, target.parent.parent, ignore=shutil.ignore_patterns('predictions'))
    shutil.copytree(smoke.runs/'baselines', tmp/'runs'/'baselines')
    reproduce_stage(cfg, plan)
    return tmp, target, engine/'predictions'/'test.parquet'


def test_reproduce_stage_predicts_a_finished_run_without_predictions_as_the_engine_does(with_vit):
    tmp, target, engine = with_vit
    made, engine = pd.read_parquet(target), pd.read_parquet(engine)
    assert len(made) > 0 and made['window_id'].tolist() == engine['window_id'].tolist()
    assert np.allclose(made['prob_up'], engine['prob_up'], atol=1e-5)


def test_baselines_command_prints_the_table_and_reuses_its_folder(with_vit):
    proc = run_baselines('--config', 'smoke', *overrides(with_vit[0]))
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = Path(proc.stdout.splitlines()[0])
    assert folder.parent == with_vit[0]/'runs'/'baselines' and (folder/'config.yaml').exists()
    for model in ('majority', 'logistic', 'arima', 'multi_output', 'buy and hold'): assert f'| {model} |' in proc.stdout
    assert 'gross of costs' in proc.stdout
    from seemore_nb.report.baselines import build_baselines
    stamp = (folder/'complete.json').stat().st_mtime_ns
    assert build_baselines(load_config('smoke', overrides(with_vit[0]))) == folder
    assert (folder/'complete.json').stat().st_mtime_ns == stamp                                 # reused, not refitted


def test_figure_templates_draw_the_baselines_and_the_backtest(smoke):
    "The smoke grid drew 70_baselines and 71_backtest from its saved plan, its learn-1dev ViT among the models."
    assert smoke.proc.returncode == 0, smoke.proc.stderr[-3000:]
    for figure in ('baselines.png', 'backtest.png'): assert (smoke.figures/figure).stat().st_size > 10_000
    assert '| vit |' in (smoke.figures/'baselines.md').read_text()


def test_long_short_spread_is_positive_for_a_score_that_is_the_future_return_and_negative_for_its_negation():
    from seemore_nb.study.evaluation import long_short
    rng = np.random.default_rng(0)
    returns = pd.DataFrame(rng.normal(0, .01, (120, 4)), columns=list('ABCD'))
    signals = pd.DataFrame([(t, p) for p in range(20, 80) for t in 'ABCD'], columns=['ticker', 'end_pos'])
    future = np.array([returns[t].iloc[p + 1:p + 21].sum() for t, p in zip(signals.ticker, signals.end_pos)])
    best = long_short(signals.assign(score=future), returns, 20, 2)
    worst = long_short(signals.assign(score=-future), returns, 20, 2)
    assert best.mean() > .002 and (best[best != 0] > 0).mean() > .6      # each tranche gains over its 20 days
    assert np.allclose(worst, -best)


def test_results_hold_the_momentum_baseline_and_every_scored_models_long_short_spread(with_vit):
    from seemore_nb.report.baselines import baselines_markdown, load_results
    cfg = load_config('smoke', overrides(with_vit[0]))
    res = load_results(cfg, vit=with_vit[1])
    spreads = {c for c in res.daily if c.endswith('_long_short')}
    assert spreads == {'vit_long_short', 'logistic_long_short', 'arima_long_short', 'multi_output_long_short',
                       'momentum_long_short'}                                   # the majority class ranks nothing
    assert spreads <= set(res.performance.strategy) and set(res.complete['momentum_auc']) == {'train', 'val', 'test'}
    table = baselines_markdown(res, cfg)
    assert '| momentum |' in table and 'long-short Sharpe' in table


def test_auc_check_template_finds_the_labels_right_and_writes_its_table(with_vit, tmp_path):
    from seemore_nb.orchestrate.reproduce import run_notebook
    run = with_vit[1].parent.parent.name
    params = dict(plan=saved_plan(with_vit[0]), figures_dir=str(tmp_path), seed_runs=[run])
    run_notebook(ROOT/'nbs'/'paper'/'73_auc_check.ipynb', tmp_path/'73.ipynb', params)
    text = (tmp_path/'auc_check.md').read_text()
    assert '\n0 of ' in text and f'| {run} |' in text and (tmp_path/'auc_check.png').stat().st_size > 10_000
    params['seed_runs'] = ['no-such-run']                                       # no runs: says so, writes nothing
    run_notebook(ROOT/'nbs'/'paper'/'73_auc_check.ipynb', tmp_path/'73-none.ipynb',
                 params | {'figures_dir': str(tmp_path/'none')})
    assert not (tmp_path/'none'/'auc_check.md').exists()


def test_horizons_grid_has_one_learning_cell_per_label_horizon():
    from seemore_nb.config import PROFILES_DIR
    from seemore_nb.orchestrate.grid import grid_plan
    cfg = load_config('cpu')
    plan = grid_plan(cfg, grid=PROFILES_DIR/'grids'/'horizons.yaml', stages=False)
    assert list(plan.name) == [f'horizon-{h}' for h in cfg.data.horizons] and (plan.kind == 'learning').all()
    assert plan.run_id.is_unique and [c.data.label_horizon for c in plan.config] == list(cfg.data.horizons)


def test_horizons_template_tables_each_finished_horizon_with_its_baselines_and_names_the_missing(with_vit, tmp_path):
    "The horizon-20 run is the learn-1dev run copied to its grid folder; horizon-5 is never run: listed as missing."
    from seemore_nb.orchestrate.grid import grid_plan
    from seemore_nb.orchestrate.reproduce import run_notebook
    tmp, target, _ = with_vit
    grid = tmp_path/'horizons.yaml'
    grid.write_text(
        'device_kind: cpu\nrepeats: 1\ncolumns: [name, kind, needs, profile, task, framework, devices, loader, num_workers, amp, '
        'epochs, warmup, overrides]\ncells:\n'
        "- [horizon-5,  learning, -, -, classifier, pytorch, 1, store, 0, 'off', -, -, [data.label_horizon=5]]\n"
        "- [horizon-20, learning, -, -, classifier, pytorch, 1, store, 0, 'off', -, -, [data.label_horizon=20]]\n")
    params = dict(plan=saved_plan(tmp), figures_dir=str(tmp_path/'none'), grid=str(grid))
    run_notebook(ROOT/'nbs'/'paper'/'74_horizons.ipynb', tmp_path/'74-none.ipynb', params)
    assert not (tmp_path/'none'/'horizons.md').exists()                     # no run: says so, writes nothing
    plan = grid_plan(load_config('smoke', overrides(tmp)), grid, stages=False).set_index('name')
    shutil.copytree(target.parent.parent, plan.loc['horizon-20', 'folder'])
    run_notebook(ROOT/'nbs'/'paper'/'74_horizons.ipynb', tmp_path/'74.ipynb', params | {'figures_dir': str(tmp_path)})
    text = (tmp_path/'horizons.md').read_text()
    vit = pd.read_parquet(target)
    acc = ((vit.prob_up > .5).astype(int) == vit.label).mean()
    row = next(line for line in text.splitlines() if line.startswith('| 20 | vit |'))
    assert row.startswith(f'| 20 | vit | {len(vit)} (') and f'| {acc:.3f} [' in row     # the run's own test accuracy
    for model in ('majority', 'logistic', 'arima', 'multi_output', 'momentum'): assert f'| 20 | {model} |' in text
    assert '| 5 |' not in text and 'Not run yet: horizon-5.' in text
    assert (tmp_path/'horizons.png').stat().st_size > 10_000
