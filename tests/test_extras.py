"""Dependencies by need: the base install trains with PyTorch and runs the data pipeline; TensorFlow, the paper's
notebook stack and baselines, the docs tools and submitit are extras, and a feature without its extra says in one line
which to install."""
import os
import runpy
import subprocess
import sys
import textwrap
from configparser import ConfigParser

import pytest
import setuptools

from conftest import ROOT

EXTRA_ONLY = ('tensorflow', 'keras', 'papermill', 'nbformat', 'nbconvert', 'ipykernel', 'statsmodels', 'scikit-learn',
              'submitit', 'sphinx', 'myst-nb', 'furo', 'nbdev', 'execnb')
BLOCKED = ('tensorflow', 'keras', 'papermill', 'nbformat', 'nbconvert', 'ipykernel', 'statsmodels', 'sklearn',
           'submitit', 'sphinx', 'myst_nb', 'furo')


def package(requirement: str) -> str:
    "The distribution name of a requirement such as 'tensorflow-cpu>=2.21', lower case."
    for sep in '<>=!~[; ': requirement = requirement.split(sep)[0]
    return requirement.lower().replace('_', '-')


@pytest.fixture(scope='module')
def setup_kwargs():
    "What setup.py passes to setuptools.setup, without building anything."
    got, real = {}, setuptools.setup
    setuptools.setup = lambda **kw: got.update(kw)
    try: runpy.run_path(str(ROOT/'setup.py'))
    finally: setuptools.setup = real
    return got


def test_the_base_requirements_hold_no_extra(setup_kwargs):
    cfg = ConfigParser(delimiters=['='])
    cfg.read(ROOT/'settings.ini', encoding='utf-8')
    base = [package(r) for r in cfg['DEFAULT']['requirements'].split()]
    assert base == [package(r) for r in setup_kwargs['install_requires']]
    assert not [p for p in base if any(p.startswith(x) for x in EXTRA_ONLY)], base
    assert {'torch', 'numpy', 'pandas', 'pyarrow', 'scipy', 'yfinance', 'tensorboard'} <= set(base)


def test_dev_holds_every_extra(setup_kwargs):
    extras = setup_kwargs['extras_require']
    assert {'tf', 'paper', 'docs', 'cluster', 'dev'} <= set(extras)
    for name, reqs in extras.items():
        assert set(reqs) <= set(extras['dev']), name
    found = {package(r) for r in extras['dev']}
    assert {'tensorflow-cpu', 'papermill', 'statsmodels', 'scikit-learn', 'submitit', 'sphinx', 'nbdev', 'pytest'} <= found
    assert package(extras['tf'][0]) == 'tensorflow-cpu' and 'statsmodels' in {package(r) for r in extras['paper']}


def test_need_names_the_extra_in_one_line():
    from seemore_nb.core import MissingExtra, SeemoreError, need
    with pytest.raises(MissingExtra) as e: need('no_such_module_xyz', 'tf', 'this feature')
    assert isinstance(e.value, SeemoreError) and '\n' not in str(e.value)
    assert str(e.value) == ("this feature needs no_such_module_xyz, which is not installed: "
                            "pip install 'seemore_nb[tf]' (or make install)")


def fresh_python(code: str, timeout=60) -> subprocess.CompletedProcess:
    block = f"import sys\nfor name in {BLOCKED!r}: sys.modules[name] = None\n"      # `import name` raises ImportError
    return subprocess.run([sys.executable, '-c', block + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, 'OMP_NUM_THREADS': '1'})


def test_the_base_modules_import_without_any_extra():
    proc = fresh_python("""
        import importlib, pkgutil
        import seemore_nb, seemore_nb.config, seemore_nb.engine.launch, seemore_nb.engine.trainer, seemore_nb.data
        import seemore_nb.study.baselines, seemore_nb.study.classifier
        for m in pkgutil.iter_modules(seemore_nb.data.__path__, 'seemore_nb.data.'): importlib.import_module(m.name)
        from seemore_nb.core import MissingExtra
        try: import seemore_nb.tf.trainer
        except MissingExtra as e: print('TF:', e)
        print('LOADED', sorted(m for m in sys.modules if m.partition('.')[0] in BLOCKED and sys.modules[m]))
    """.replace('BLOCKED', repr(BLOCKED)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'LOADED []' in proc.stdout
    assert ("TF: the TensorFlow engine (seemore_nb.tf) needs TensorFlow, which is not installed: "
            "pip install 'seemore_nb[tf]'") in proc.stdout


def test_a_tensorflow_run_without_tensorflow_fails_in_one_line_before_any_worker(tmp_path):
    proc = fresh_python(f"""
        from seemore_nb.engine.launch import main
        code = main(['--config', 'smoke', 'train.framework=tensorflow', 'train.runs_dir={tmp_path}'])
        print('TF IMPORTED', 'tensorflow' in sys.modules and sys.modules['tensorflow'] is not None)
        sys.exit(code)
    """)
    assert proc.returncode == 1, proc.stdout + proc.stderr[-3000:]
    assert proc.stderr == ("seemore_train: error: train.framework=tensorflow needs TensorFlow, which is not installed: "
                           "pip install 'seemore_nb[tf]' (or make install) (--debug shows the traceback)\n")
    assert 'TF IMPORTED False' in proc.stdout and list(tmp_path.iterdir()) == []    # no run folder, no worker
