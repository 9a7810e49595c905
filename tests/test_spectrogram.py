"""Spectrogram renderers against the four original images and PyWavelets' CWT."""
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from seemore_nb.data import spectrogram as S
from seemore_nb.config import load_config

FIXTURE = Path(__file__).resolve().parent/'fixtures'/'original_spectrograms.npz'


@pytest.fixture(scope='module')
def original():
    "series (4, 80), images (4, 3, 128, 128) uint8 and labels of the original renderings."
    with np.load(FIXTURE) as f:
        return f['series'], f['images'].transpose(0, 3, 1, 2), [str(m) for m in f['meta']]


@pytest.fixture(scope='module')
def paper():
    return load_config('paper').spectrogram


def pearson(a, b) -> float:
    return float(np.corrcoef(a.ravel().astype(float), b.ravel().astype(float))[0, 1])


def test_cwt_magnitude_matches_pywavelets(original, paper):
    pywt = pytest.importorskip('pywt')
    series, _, labels = original
    scales = np.logspace(np.log10(0.1), np.log10(300), 500)
    np.testing.assert_allclose(S.spectrogram_scales(paper), scales, rtol=1e-15)
    ours = S.spectrogram_magnitude(series, paper)
    for x, mine, label in zip(S.minmax_normalize(series), ours, labels):
        coef, _ = pywt.cwt(x * np.sqrt(2) * np.pi**0.25, scales, 'cmor2.0-1.0')
        expected = np.abs(coef)
        interior = slice(25, 475)                       # the brief's check: scales without the outer 5%
        np.testing.assert_allclose(mine[interior], expected[interior], rtol=1e-9, atol=1e-12, err_msg=label)
        np.testing.assert_allclose(mine, expected, rtol=1e-9, atol=1e-12, err_msg=label)   # and all of them


def test_reference_reproduces_the_original_images(original, paper):
    series, images, labels = original
    for x, image, label in zip(series, images, labels):
        drawn = S.render_reference(x, paper)
        assert drawn.shape == (3, 128, 128) and drawn.dtype == np.uint8
        mean_abs = np.abs(drawn.astype(int) - image).mean()
        differing = int((drawn != image).any(axis=0).sum())
        print(f'{label}: mean |diff| {mean_abs:.4f}, pixels differing {differing}, pearson {pearson(drawn, image):.6f}')
        assert mean_abs <= 0.01 and pearson(drawn, image) >= 0.9999, label     # measured: 0 and 1 (pixel-exact)


def test_fast_agrees_with_the_original_images(original, paper):
    series, images, labels = original
    fast = S.render_fast(series, paper)
    per_image = [S.agreement(fast[i:i + 1], images[i:i + 1]) for i in range(len(images))]
    print('fast vs original:', {label: round(a, 4) for label, a in zip(labels, per_image)})
    assert min(per_image) >= 0.99 and S.agreement(fast, images) >= 0.995      # measured: 0.9964 .. 0.9998
    strip = S.strip_rows(128)
    assert np.abs(fast[:, :, :strip].astype(int) - images[:, :, :strip]).mean() < 0.1   # the grey strip, within rounding


@pytest.mark.parametrize('size', [32, 64, 128])
def test_shapes_and_dtypes(original, paper, size):
    series = original[0][:3]
    cfg = dataclasses.replace(paper, image_size=size)
    fast = S.render_windows(series, cfg)
    assert fast.shape == (3, 3, size, size) and fast.dtype == np.uint8
    reference = S.render_windows(series[:1], dataclasses.replace(cfg, renderer='reference'))
    assert reference.shape == (1, 3, size, size) and reference.dtype == np.uint8
    assert S.agreement(fast[:1], reference) > 0.99


def test_other_window_lengths_and_configs(original):
    smoke = load_config('smoke').spectrogram
    short = original[0][:2, 20:60]                                   # 40-day windows, 48 scales, 32 px
    fast = S.render_fast(short, smoke)
    reference = np.stack([S.render_reference(w, smoke) for w in short])
    assert fast.shape == (2, 3, 32, 32) and S.agreement(fast, reference) > 0.98
    with pytest.raises(ValueError, match='valid renderers: fast, reference'):
        S.render_windows(short, dataclasses.replace(smoke, renderer='svg'))


def test_benchmark_runs_single_threaded_and_formats_its_line():
    result = S.benchmark_spectrogram(n_fast=64, n_reference=2, image_size=32, seed=0)
    assert {'fast', 'reference', 'ratio', 'agreement'} <= set(result) and result['threads'] == 1
    assert result['fast'] > result['reference'] > 0 and result['agreement'] > 0.98
    line = S.format_spectrogram_line(result)
    assert line.startswith('spectrogram: fast ') and line.endswith(f"agreement {result['agreement']:.3f}")
