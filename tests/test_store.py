"""Windows, labels, the split and the store: leakage, skip counting, corruption, both loaders (the store's reuse and
shape: the notebook 16_data.store)."""
import shutil
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from seemore_nb.config import load_config
from seemore_nb.data.palette import from_palette
from seemore_nb.data.prices import StudyPrices, load_study_prices
from seemore_nb.data.loaders import PerFileDataset, StoreDataset
from seemore_nb.data.store import StoreError, build_store, open_store
from seemore_nb.engine.distributed import EpochBatches, make_loader
from seemore_nb.data.windows import make_windows


@pytest.fixture(scope='module')
def smoke(tmp_path_factory):
    return load_config('smoke', [f'store.root={tmp_path_factory.mktemp("stores")}'])


@pytest.fixture(scope='module')
def store(smoke):
    return open_store(build_store(smoke, progress=False), smoke)


def _study(adj_close, calendar=None):
    "A one-ticker study on a business-day calendar with the given Adj Close path."
    n = len(adj_close)
    calendar = calendar if calendar is not None else pd.bdate_range('2020-01-01', periods=n, name='date')
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({'open': adj_close, 'high': adj_close, 'low': adj_close, 'close': adj_close,
                          'adj_close': adj_close, 'volume': rng.integers(1000, 2000, n).astype(float)}, index=calendar)
    context = pd.DataFrame({'market': 100 + rng.normal(size=n).cumsum(), 'volatility': 20 + rng.random(n)}, index=calendar)
    return StudyPrices({'X': frame}, context, calendar, pd.DataFrame(columns=['ticker', 'date', 'kind']), 'test', 'test')


def test_label_crossing_a_power_of_ten_is_up():
    "9.5 rising to 10.2 is up: the originals compared prices as text and called it down."
    cfg = load_config('smoke', ['data.window=5', 'data.horizons=[1,2]', 'data.label_horizon=2', 'data.purge=2',
                                'data.val_fraction=0.2', 'data.test_fraction=0.2'])
    prices = np.r_[np.linspace(8, 9.5, 30), 9.8, 10.2, np.linspace(10.2, 12, 30)]
    w = make_windows(_study(prices), cfg)
    row = w.index[np.isclose(w.aligned['X']['adj_close'].to_numpy()[w.index['end_pos']], 9.5)].iloc[0]
    assert row['up_2'] == 1 and row['label'] == 1 and row['ret_2'] == pytest.approx(10.2 / 9.5 - 1)


def test_test_windows_never_overlap_a_training_span(smoke):
    w = make_windows(load_study_prices(smoke), smoke)
    span = smoke.data.window + max(smoke.data.horizons)               # 100 days: input plus horizon
    train_end = w.index.loc[w.index.split == 'train', 'end_pos']
    for part in ('val', 'test'):
        start = w.index.loc[w.index.split == part, 'end_pos'] - smoke.data.window + 1
        assert start.min() > train_end.max() + span - smoke.data.window, part
    # no calendar day is shared between a test window's 80 input days and any training window's 100 days
    train_days = set(np.concatenate([np.arange(e - smoke.data.window + 1, e + span - smoke.data.window + 1) for e in train_end]))
    test_days = set(np.concatenate([np.arange(e - smoke.data.window + 1, e + 1) for e in w.index.loc[w.index.split == 'test', 'end_pos']]))
    assert not train_days & test_days


def test_every_skip_is_counted_by_reason(smoke):
    study = load_study_prices(smoke)
    prices = {t: f.copy() for t, f in study.prices.items()}
    prices['AAPL'] = prices['AAPL'].drop(prices['AAPL'].index[200])            # a calendar gap
    prices['MSFT'].iloc[400, prices['MSFT'].columns.get_loc('adj_close')] = np.nan  # a missing value
    vol = prices['MSFT']['volume'].to_numpy().copy(); vol[600:700] = 1e6       # constant volume for 100 days
    prices['MSFT']['volume'] = vol
    m = make_windows(replace(study, prices=prices), smoke).manifest
    assert m['skipped_by_ticker']['AAPL'] == {'calendar_gap': 100, 'missing_value': 0, 'constant': 0}
    assert m['skipped_by_ticker']['MSFT']['missing_value'] == 100 and m['skipped_by_ticker']['MSFT']['constant'] == 21
    assert m['candidates'] == m['kept'] + m['purged'] + sum(m['skipped'].values())


def test_both_torch_loaders_give_the_same_samples(store, smoke):
    "The store's palette batches (N, 4, H, W), expanded, are the per-file loader's RGB batches (N, 12, H, W)."
    H = smoke.spectrogram.image_size
    store_ds, per_file_ds = StoreDataset(store, 'val'), PerFileDataset(store, 'val')
    xs, ys = next(iter(make_loader(store_ds, EpochBatches(len(store_ds), 8))))
    xp, yp = next(iter(make_loader(per_file_ds, EpochBatches(len(per_file_ds), 8))))
    assert xs.shape == (8, 4, H, H) and xs.dtype == torch.uint8 and xp.shape == (8, 12, H, H)
    assert torch.equal(torch.from_numpy(from_palette(xs.numpy())).float(), xp) and torch.equal(ys, yp)


def test_tf_data_pipeline_shape(store, smoke):
    "The one tf.data path (the TensorFlow engine's `batch_dataset`) reads the store's palette batches."
    from seemore_nb.tf.data import batch_dataset, epoch_order, replica_batches
    grid = replica_batches(epoch_order(store.rows('train'), True, 0, 0), 8, 1, 1)
    x, y, w = next(iter(batch_dataset(store, grid)))
    assert tuple(x.shape) == (8, 4, smoke.spectrogram.image_size, smoke.spectrogram.image_size) and x.dtype.name == 'uint8'
    assert (w.numpy() == 1).all() and set(y.numpy()) <= {0, 1}


def test_distributed_sampler_shards_cover_the_split(store):
    ds = StoreDataset(store, 'train')
    seen = []
    for rank in (0, 1):
        batches = EpochBatches(len(ds), 8, shuffle=True, seed=1, num_replicas=2, rank=rank)
        batches.set_epoch(0)
        seen.append(torch.cat([y for _, y in make_loader(ds, batches)]))
    assert len(seen[0]) == len(seen[1]) == (len(ds) + 1) // 2


@pytest.mark.parametrize('damage, message', [
    (lambda f: (f/'context.npy').write_bytes((f/'context.npy').read_bytes()[:-100]), 'context.npy: content hash does not match'),
    (lambda f: (f/'index.parquet').unlink(), 'index.parquet: content hash does not match'),
    (lambda f: (f/'manifest.json').unlink(), 'manifest.json: missing or unreadable'),
])
def test_corrupt_store_says_how_to_rebuild(store, smoke, tmp_path, damage, message):
    copy = tmp_path/store.folder.name
    shutil.copytree(store.folder, copy)
    damage(copy)
    with pytest.raises(StoreError, match=message) as err:
        open_store(copy, smoke)
    assert 'seemore_store --config <profile> --rebuild' in str(err.value)


def test_corrupt_store_is_refused_by_build_and_rebuilt_on_request(smoke, tmp_path):
    cfg = replace(smoke, store=replace(smoke.store, root=str(tmp_path)))
    folder = build_store(cfg, progress=False)
    with open(folder/'stock.npy', 'r+b') as f:                          # flip the last byte
        f.seek(-1, 2); last = f.read(1)[0]; f.seek(-1, 2); f.write(bytes([last ^ 0xFF]))
    with pytest.raises(StoreError, match='stock.npy: content hash does not match'):
        build_store(cfg, progress=False)
    assert open_store(build_store(cfg, rebuild=True, progress=False), cfg)


def test_two_builders_of_one_store_at_once_render_it_once(tmp_path):
    import subprocess, sys, textwrap
    marks = tmp_path/'renders.txt'
    code = textwrap.dedent(f"""
        import time
        import seemore_nb.data.store as s
        from seemore_nb.config import load_config
        render = s._render_all
        def slow_render(*a, **k):
            open({str(marks)!r}, 'a').write('rendered\\n'); time.sleep(3)      # long enough for the other to arrive
            return render(*a, **k)
        s._render_all = slow_render
        print(s.build_store(load_config('smoke', ['store.root={tmp_path}/stores']), progress=False))
    """)
    procs = [subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    assert marks.read_text() == 'rendered\n'                       # one of them rendered, the other reused its store
    assert outs[0][0] == outs[1][0] and sum('waiting for another process' in err for _, err in outs) == 1
