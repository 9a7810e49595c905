"""The learnability control: the synthetic source's planted signal, its labels through the real windowing, and the
smoke control cells' ViT against the majority rate (from the session's smoke grid)."""
import numpy as np
import pandas as pd
import pytest

from seemore_nb.config import ConfigError, load_config

TICKERS = 'data.tickers=[' + ','.join(f'SYN{i}' for i in range(200)) + ']'


def control(*overrides):
    return load_config('control_smoke', list(overrides))


def shape_reader(windows):
    """An oracle that knows the two planted cycles: each window's log-price increments projected onto the increments
    of the two templates (phase 0 on the last day); the larger projection names the class."""
    from seemore_nb.data.sources import SYNTHETIC_PERIODS
    t = np.arange(windows.window) - (windows.window - 1)
    templates = np.stack([np.diff(np.sin(2 * np.pi * t / p)) for p in SYNTHETIC_PERIODS])
    templates /= np.linalg.norm(templates, axis=1, keepdims=True)
    idx = windows.index
    read = np.empty(len(idx), int)
    for ticker, rows in idx.groupby('ticker').groups.items():
        steps = np.diff(np.log(windows.series(ticker, 'adj_close', idx.loc[rows, 'end_pos'])), axis=1)
        read[np.asarray([idx.index.get_loc(r) for r in rows])] = (steps @ templates.T).argmax(axis=1)
    return read


@pytest.fixture(scope='module')
def planted():
    "The windows of 200 synthetic tickers at signal 0 and at signal 1, through the study's windowing."
    from seemore_nb.data.prices import load_study_prices
    from seemore_nb.data.windows import make_windows
    return {s: make_windows(load_study_prices(c), c) for s in (0, 1) for c in [control(TICKERS, f'data.signal={s}')]}


def test_synthetic_prices_are_deterministic_by_seed_with_the_sample_columns():
    from seemore_nb.data.prices import load_study_prices
    a, b, other = (load_study_prices(control(f'data.seed={s}')) for s in (0, 0, 1))
    for t in a.prices:
        pd.testing.assert_frame_equal(a.prices[t], b.prices[t])
        assert not np.allclose(a.prices[t]['adj_close'].iloc[:50], other.prices[t]['adj_close'].iloc[:50])
    sample = load_study_prices(load_config('smoke', ['data.volatility_source=realized']))
    first = next(iter(sample.prices.values()))
    for frame in a.prices.values():
        assert list(frame.columns) == list(first.columns) and (frame.dtypes == first.dtypes).all()
        assert frame.notna().all().all() and (frame['low'] <= frame[['open', 'close']].min(axis=1)).all()
    assert list(a.context.columns) == list(sample.context.columns) and a.context.notna().all().all()
    assert a.source == 'synthetic' and 'synthetic' in a.volatility_label


def test_at_signal_1_the_planted_shape_decides_every_label(planted):
    w = planted[1]
    assert len(w.index) > 1500
    assert (shape_reader(w) == w.index['label'].to_numpy()).all()       # labels from the prices, as for real tickers


def test_at_signal_0_the_labels_are_coin_flips_independent_of_the_shape(planted):
    w = planted[0]
    labels, n = w.index['label'].to_numpy(), len(w.index)
    tolerance = 3 * 0.5 / np.sqrt(n)                                   # three binomial standard deviations
    assert abs(labels.mean() - 0.5) < tolerance
    read = shape_reader(w)
    assert abs((read == labels).mean() - 0.5) < tolerance
    assert read.mean() == pytest.approx(0.5, abs=tolerance)            # the shapes are still there, both classes


def test_synthetic_windows_do_not_share_a_future(planted):
    idx = planted[1].index
    gaps = idx.groupby('ticker')['end_pos'].diff().dropna()
    assert gaps.min() >= 100                                            # window + horizon apart


def test_auc_orientation():
    from seemore_nb.study.evaluation import auc
    y = np.array([0, 1, 1, 0, 1, 0, 0, 1])
    assert auc(y, y) == 1.0 and auc(y, -y) == 0.0 and auc(y, np.zeros(8)) == 0.5
    assert auc(y, y * 0.5 + np.arange(8) * 0.01) == 1.0                # scores are P(up): up windows rank higher


@pytest.mark.parametrize('overrides, key', [
    (['data.signal=1.5'], "'data.signal' must be >= 0 and <= 1; got 1.5"),
    (['data.tickers=[AAPL]'], "'data.tickers' holds AAPL, which data.source=synthetic cannot make"),
    (['data.stride=50'], "'data.stride' (50) must be at least"),
])
def test_bad_control_values_are_one_line_errors_naming_the_key(overrides, key):
    with pytest.raises(ConfigError) as err:
        control(*overrides)
    assert key in str(err.value) and '\n' not in str(err.value)


def test_smoke_control_vit_learns_the_planted_signal(smoke):
    from seemore_nb.report.control import detection_limits, learnability_table
    from seemore_nb.study.evaluation import auc
    assert smoke.proc.returncode == 0, smoke.proc.stderr[-3000:]
    from seemore_nb.orchestrate.grid import grid_plan
    table = learnability_table(grid_plan(load_config('smoke', smoke.overrides)))
    vit = table[table.model == 'vit'].set_index('signal')
    assert sorted(vit.index) == [0, 1]
    assert vit.loc[1, 'accuracy'] >= 0.9 and vit.loc[1, 'accuracy_low'] > vit.loc[1, 'majority_rate']
    assert vit.loc[0, 'accuracy_low'] <= 0.5 <= vit.loc[0, 'accuracy_high']
    assert detection_limits(table)['vit'] == 1
    folder = next(smoke.runs.glob('control_smoke-control-s1-*/predictions/test.parquet'))
    pred = pd.read_parquet(folder)
    assert auc(pred['label'], pred['prob_up']) > 0.9                     # the score is P(up), not P(down)
    text = (smoke.figures/'RESULTS.md').read_text()
    assert '## Learnability control' in text and f"{vit.loc[1, 'accuracy']:.3f} [" in text
    assert (smoke.figures/'learnability.md').read_text().startswith('| signal | windows | majority rate | ViT |')
