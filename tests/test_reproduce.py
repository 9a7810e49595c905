"""The main job end to end on the smoke profile, and the committed sample against its build script."""
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_reproduce_writes_the_figures_and_summary(tmp_path):
    script = Path(sys.executable).parent/'seemore_reproduce'
    proc = subprocess.run([str(script), '--config', 'smoke', '--figures-dir', str(tmp_path)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = (tmp_path/'summary.md').read_text()
    for figure, notebook in [('prices_overview.png', '10_prices_overview'), ('spectrogram_gallery.png', '20_spectrogram_gallery'),
                             ('classifier_curves.png', '30_classifier_curves'), ('timing_breakdown.png', '40_timing_breakdown'),
                             ('vlm_loss.png', '60_vlm_loss'), ('vlm_timing.png', '61_vlm_timing'), ('vlm_samples.png', '62_vlm_samples')]:
        assert (tmp_path/figure).stat().st_size > 10_000, figure
        assert f'`{figure}` | `nbs/paper/{notebook}.ipynb`' in summary
    executed = ROOT/'runs'/'reproduce'/'smoke'/'10_prices_overview.ipynb'
    assert 'stand-in for ^VIX' in executed.read_text()       # the output says which volatility series was used


def test_reproduce_rejects_a_bad_key_before_running_anything(tmp_path):
    script = Path(sys.executable).parent/'seemore_reproduce'
    proc = subprocess.run([str(script), '--config', 'smoke', 'train.epohcs=1', '--figures-dir', str(tmp_path)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode != 0 and "unknown config key 'train.epohcs'" in proc.stderr
    assert not list(tmp_path.iterdir())


def test_committed_sample_matches_its_build_script(tmp_path):
    pytest.importorskip('bokeh_sampledata'); pytest.importorskip('arch')
    sys.path.insert(0, str(ROOT/'data'/'sample'))
    import build_sample
    build_sample.build(tmp_path)
    for rebuilt in sorted(tmp_path.glob('*.csv')):
        committed = pd.read_csv(ROOT/'data'/'sample'/rebuilt.name)
        pd.testing.assert_frame_equal(committed, pd.read_csv(rebuilt), obj=rebuilt.name)
    assert {p.name for p in tmp_path.glob('*.csv')} == {p.name for p in (ROOT/'data'/'sample').glob('*.csv')}


@pytest.mark.parametrize('args, last_line', [
    (['spectrogram'], r'spectrogram: fast \d+/s, reference \d+/s, ratio \d+x, agreement 0\.\d{3}'),
    (['train', '--config', 'smoke', '--repeats', '1'], r'train: engine \d+ samples/s on palette batches, \d+ samples/s on RGB batches \(palette [+-]\d+\.\d%\), bare loop \d+ samples/s, overhead -?\d+\.\d%'),
])
def test_benchmark_commands_print_their_ratio_line_last(args, last_line):
    import re
    proc = subprocess.run([str(Path(sys.executable).parent/'seemore_bench'), *args], capture_output=True, text=True,
                          timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.fullmatch(last_line, proc.stdout.strip().splitlines()[-1])
