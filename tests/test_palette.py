"""The palette store: exact round trip on real windows of every ticker, and training on palette batches equal bit for bit to RGB."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

from seemore_nb.config import load_config, resolve_path
from seemore_nb.data.palette import from_palette, to_palette
from seemore_nb.data.prices import read_price_csv
from seemore_nb.data.spectrogram import render_fast
from seemore_nb.engine.trainer import train
from seemore_nb.study.classifier import ClassifierTask
from seemore_nb.study.vit import vit_from_config


@pytest.mark.parametrize('ticker', ['AAPL', 'GOOG', 'IBM', 'MSFT', '^GSPC', '^VIX'])
def test_palette_round_trip_equals_the_fast_renderer_on_real_windows(ticker):
    "Every ticker of the sample, both series, at the paper's size: indices expanded (host and stem) == the RGB drawn."
    cfg = load_config('paper')
    columns = ['adj_close'] + (['volume'] if ticker != '^VIX' else [])           # the VIX file has no volume
    frame = read_price_csv(resolve_path(cfg.data.sample_dir)/f'{ticker}.csv', tuple(columns))
    windows = np.concatenate([sliding_window_view(frame[c].dropna().to_numpy(np.float64), cfg.data.window)[::53] for c in columns])
    windows = windows[np.isfinite(windows).all(1) & (np.ptp(windows, 1) > 0)]
    rgb = render_fast(windows, cfg.spectrogram)
    indices, stats = to_palette(rgb)
    assert stats == {'misfit_pixels': 0, 'max_error': 0} and len(windows) >= 20
    assert np.array_equal(from_palette(indices[:, None]), rgb)
    model = vit_from_config(cfg)
    four = torch.from_numpy(indices[:len(indices) // 4 * 4].reshape(-1, 4, *indices.shape[1:]))    # as 4-series samples
    assert torch.equal(model.expand(four), torch.from_numpy(rgb[:len(four) * 4].reshape(len(four), 12, *rgb.shape[2:])))


class RecordingTask(ClassifierTask):
    "The classifier task, keeping each training step's loss."
    def __init__(self, cfg):
        super().__init__(cfg)
        self.losses = []

    def forward(self, model, batch):
        loss, sums = super().forward(model, batch)
        if model.training: self.losses.append(loss.item())
        return loss, sums


def test_training_on_palette_batches_equals_rgb_expanded_on_the_host_bit_for_bit(tmp_path):
    "The same samples as stored indices (expanded in the stem) or as host-expanded RGB (model.input=rgb): the same run."
    runs = {}
    for form in ('palette', 'rgb'):
        cfg = load_config('smoke', [f'store.root={tmp_path}/stores', f'train.runs_dir={tmp_path}/runs', f'train.run_id={form}',
                                    f'model.input={form}', 'train.epochs=2', 'train.steps_per_epoch=6', 'train.device=cpu'])
        task = RecordingTask(cfg)
        folder = train(cfg, task)
        assert task.dataset('train').form == form
        runs[form] = task.losses, pd.read_csv(folder/'metrics.csv'), folder
    (losses_p, metrics_p, folder_p), (losses_r, metrics_r, folder_r) = runs['palette'], runs['rgb']
    assert len(losses_p) == 12 and losses_p == losses_r                          # every step's loss, exactly
    scores = [c for c in metrics_p if 'loss' in c or 'acc' in c]                # the clock columns differ, of course
    assert len(scores) >= 4
    pd.testing.assert_frame_equal(metrics_p[scores], metrics_r[scores], check_exact=True)
    weights = [json.loads((f/'complete.json').read_text())['weights_sha256_by_rank'] for f in (folder_p, folder_r)]
    assert weights[0] == weights[1]
    assert 'input: palette' in (folder_p/'config.yaml').read_text() and 'input: rgb' in (folder_r/'config.yaml').read_text()
