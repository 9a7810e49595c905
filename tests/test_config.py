"""Every config error named in the foundation issue, through the API and a console script."""
import subprocess
import sys
from pathlib import Path

import pytest

from seemore_nb.config import ConfigError, load_config


@pytest.mark.parametrize('override, message', [
    ('train.epoch=3', "unknown config key 'train.epoch'. Valid keys in 'train': task, epochs, batch_size"),
    ('trian.epochs=3', "unknown config key 'trian'. Valid keys at the top level: profile, figures_dir, data"),
    ('train.epochs=ten', "config key 'train.epochs' expects int, got 'ten' (str)"),
    ('train.lr=fast', "config key 'train.lr' expects float, got 'fast' (str)"),
    ('data.horizons=[1,x]', "config key 'data.horizons[1]' expects int, got 'x'"),
    ('data.source=bloomberg', "config key 'data.source' must be one of sample, yfinance, csv"),
    ('train.epochs', "override 'train.epochs' is not of the form section.key=value"),
    ('model=3', "config section 'model' expects a mapping"),
])
def test_bad_override_names_the_key(override, message):
    with pytest.raises(ConfigError) as err:
        load_config('smoke', [override])
    assert message in str(err.value)


def test_unknown_profile_lists_profiles():
    with pytest.raises(ConfigError, match='Valid profiles: control, control_smoke, cpu, paper, smoke'):
        load_config('laptop')


def test_bad_yaml_file_names_the_file_and_key(tmp_path):
    bad = tmp_path/'mine.yaml'
    bad.write_text('train:\n  epochs: 2\n  batchsize: 8\n')
    with pytest.raises(ConfigError, match="unknown config key 'train.batchsize'"):
        load_config(str(bad))
    broken = tmp_path/'broken.yaml'
    broken.write_text('train: [unclosed\n')
    with pytest.raises(ConfigError, match=f'{broken} is not valid YAML'):
        load_config(str(broken))


def test_yaml_file_profile_and_overrides_apply_in_order(tmp_path):
    mine = tmp_path/'mine.yaml'
    mine.write_text('train:\n  epochs: 2\n  lr: 3e-4\n')
    cfg = load_config(str(mine), ['train.epochs=5'])
    assert (cfg.profile, cfg.train.epochs, cfg.train.lr) == ('mine', 5, 3e-4)


def test_console_script_reports_the_key_and_exits_1():
    script = Path(sys.executable).parent/'seemore_prices'
    proc = subprocess.run([str(script), '--config', 'smoke', 'data.tikers=[AAPL]'],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "unknown config key 'data.tikers'. Valid keys in 'data': source, tickers" in proc.stderr
