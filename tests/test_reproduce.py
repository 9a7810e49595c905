"""The main job end to end on the smoke grid (once per session, shared by the tests), and the committed sample against its build script."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT, SCRIPT, committed_figures, reproduce    # the session's smoke grid is the `smoke` fixture in conftest.py

FIGURES = ['prices_overview', 'spectrogram_gallery', 'classifier_curves', 'timing_breakdown', 'fig01_total_time',
           'fig02_pytorch_vs_tensorflow', 'fig03_throughput', 'fig04_scaling_efficiency', 'fig05_epoch_time',
           'fig06_iteration_breakdown', 'fig07_loaders_breakdown', 'fig08_loaders_total_time', 'fig09_loaders_throughput',
           'fig10_loaders_efficiency', 'amp_vs_fp32', 'baselines', 'backtest', 'vlm_loss', 'vlm_timing', 'vlm_samples', 'learnability']


def test_smoke_grid_runs_every_template_and_draws_every_figure(smoke):
    assert smoke.proc.returncode == 0, smoke.proc.stdout[-3000:] + smoke.proc.stderr[-3000:]
    for name in FIGURES:
        png, pdf = smoke.figures/f'{name}.png', smoke.figures/f'{name}.pdf'
        assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and png.stat().st_size > 10_000, png
        assert pdf.read_bytes()[:5] == b'%PDF-' and pdf.stat().st_size > 5_000, pdf
    executed = smoke.runs/'reproduce'/'smoke'
    for template in sorted((ROOT/'nbs'/'paper').glob('[0-9]*.ipynb')):
        assert (executed/template.name).exists(), template.name
    assert 'stand-in for ^VIX' in (executed/'10_prices_overview.ipynb').read_text()   # the output says which volatility series was used
    trained = [p.parent for p in smoke.runs.glob('*/complete.json')]
    assert len(trained) >= 9 and all((p/'train_run.ipynb').exists() for p in trained)   # the executed template is the run's record
    assert committed_figures() == smoke.before                                        # figures/ itself is untouched
    out = smoke.proc.stdout + smoke.proc.stderr
    assert 'skipped (needs tensorflow' in out or 'tf-store-1dev[2/2]: done' in out     # every repeat is trained
    for noise in ('without encryption', 'TqdmWarning', 'No artists with labels', 'resumed'):
        assert noise not in out, noise
    assert smoke.proc.stdout.strip().splitlines()[-1].startswith('no reference record at ')   # a first run: one line
    assert not (smoke.figures/'REPRODUCTION.md').exists()


def test_the_paper_places_every_figure_the_grid_draws():
    from seemore_nb.report.paper import FIGURES as PLACED
    assert set(FIGURES) <= set(PLACED), set(FIGURES) - set(PLACED)         # each with its caption in PAPER.md


NUMBER = re.compile(r'^-?\d[\d.]*(e[+-]?\d+)?%?$')


def table_numbers(text: str) -> list[tuple[str, str]]:
    "(column, printed value) of every number in the markdown tables of `text` (an interval's median; ids left out)."
    out, head = [], None
    for line in text.splitlines():
        if not line.startswith('|'): head = None; continue
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if head is None: head = cells; continue
        if set(line) <= set('|-'): continue
        for col, cell in zip(head, cells):
            value = re.split(r' \[| \(', cell)[0]
            if col not in ('run id', 'config hash', 'run', 'signal') and NUMBER.match(value): out.append((col, value))
    return out


def test_results_json_holds_every_number_of_results_md_with_its_schema(smoke):
    from seemore_nb.record import KINDS, read_record
    assert smoke.proc.returncode == 0, smoke.proc.stderr[-3000:]
    raw = json.loads((smoke.figures/'results.json').read_text())
    assert raw['profile'] == 'smoke' and raw['commit'] and raw['cpu']
    rec = read_record(smoke.figures/'results.json')
    assert len(rec) > 200
    for key, n in rec.numbers.items():
        assert n.kind in KINDS and isinstance(n.unit, str) and n.machine and isinstance(n.runs, list), key
        assert (n.low is None) == (n.high is None) and (n.value is None) == (n.text == 'n/a'), key
    kind = lambda test: {n.kind for k, n in rec.numbers.items() if test(k)}
    assert kind(lambda k: k.endswith('/E')) == {'ratio'} and kind(lambda k: k.endswith('/total_s')) == {'time'}
    assert kind(lambda k: k.startswith(('baselines/', 'learnability/', 'vlm/'))) == {'outcome'}
    timed = rec[next(k for k in rec.numbers if k.startswith('runs/') and k.endswith('/total_s'))]
    assert timed.kind == 'time' and timed.unit == 's' and len(timed.runs) == 1 and timed.runs[0].startswith('smoke-')
    assert any(n.low is not None for k, n in rec.numbers.items() if k.startswith('timing/'))     # repeats: intervals
    printed = {n.text for n in rec.numbers.values()}
    numbers = table_numbers((smoke.figures/'RESULTS.md').read_text())
    assert len(numbers) > 200 and {c for c, _ in numbers} >= {'samples/s', 'E', 'accuracy', 'ViT'}
    missing = [(c, v) for c, v in numbers if v not in printed]
    assert not missing, missing[:10]
    for table in ('baselines', 'learnability'):         # the templates' tables: printed through parts of the record
        part = read_record(smoke.figures/'records'/f'{table}.json')
        assert len(part) >= 3 and all(rec[k].text == n.text for k, n in part.numbers.items()), table
        numbers = table_numbers((smoke.figures/f'{table}.md').read_text())
        assert numbers and not [(c, v) for c, v in numbers if v not in {n.text for n in part.numbers.values()}], table


def test_results_md_numbers_equal_the_run_folders(smoke):
    from seemore_nb.report.analysis import load_run, samples_per_s, total_time
    from seemore_nb.report.results import read_results_table
    table = read_results_table(smoke.figures/'RESULTS.md')
    assert len(table) >= 9 and {'run id', 'config hash', 'device kind', 'samples/s', 'E'} <= set(table.columns)
    for row in table.itertuples(index=False):
        row = dict(zip(table.columns, row))
        run = load_run(smoke.runs/row['run id'])
        assert float(row['samples/s']) == pytest.approx(samples_per_s(run), abs=0.006), row['run id']
        assert float(row['total s (after warm-up)']) == pytest.approx(total_time(run), abs=0.006), row['run id']
        assert int(row['devices']) == run.world_size and row['run id'].endswith(row['config hash'])
        accuracy = run.complete['final'].get('val_accuracy')
        if accuracy is not None: assert float(row['val accuracy']) == pytest.approx(accuracy, abs=6e-5)
    text = (smoke.figures/'RESULTS.md').read_text()
    for name in FIGURES: assert f'`{name}.png` (+ .pdf)' in text
    assert '## Provenance' in text and 'git commit' in text and 'papermill overhead' in text
    from seemore_nb.config import cpu_info
    assert f"- the runs ran on: {cpu_info()['cores']} cores of {cpu_info()['model']} (" in text      # read from the runs
    for done in smoke.runs.glob('*vlm*/complete.json'):                          # the VLM's exact match, from its run folder
        ev = json.loads(done.read_text())['evaluation']['test']
        assert f"| test | {ev['count']} | {ev['exact_match']:.1%} | {ev['cer']:.1%} |" in text


def test_second_pass_skips_every_completed_run_and_unchanged_template_without_a_kernel(smoke):
    records = {p: p.stat().st_mtime_ns for p in smoke.runs.glob('*/train_run.ipynb')}
    templates = sorted((smoke.runs/'reproduce'/'smoke').glob('[0-9]*.ipynb'))
    drawn = {p: p.stat().st_mtime_ns for p in [*templates, *smoke.figures.glob('*.png')]}
    proc = reproduce(*smoke.overrides, '--figures-dir', str(smoke.figures), timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    skipped = dict(re.findall(r'^(\S+): skipped \(complete: (.*)\)$', out, re.M))
    stages = {name for name, folder in skipped.items() if folder == 'nothing left to do'}
    assert stages == {'baselines', 'control'}, out[-3000:]             # the stages find their outputs made
    assert len(skipped) - len(stages) == len(records) >= 9 + 9       # every repeat of every timing cell skipped too
    unchanged = re.findall(r'^(\S+): skipped \(its inputs are unchanged', out, re.M)
    assert sorted(unchanged) == [p.stem for p in templates] and len(templates) >= 14, out[-3000:]
    assert {p: p.stat().st_mtime_ns for p in records} == records                       # no notebook executed again
    assert {p: p.stat().st_mtime_ns for p in drawn} == drawn                           # no figure drawn again
    assert re.match(r'reproduced \d+ of \d+ numbers', proc.stdout.strip().splitlines()[-1]), out[-2000:]   # vs the first
    rows = [line.split(' | ') for line in (smoke.figures/'REPRODUCTION.md').read_text().splitlines()
            if line.startswith('| `')]
    outcomes = [r for r in rows if r[1] == 'outcome']
    assert len(outcomes) > 100 and all(r[-1].rstrip(' |') == 'same' for r in outcomes), [r for r in outcomes
                                                                                        if 'same' not in r[-1]][:5]


def test_an_unreadable_reference_is_one_line_and_the_main_job_still_finishes(smoke, tmp_path):
    bad = tmp_path/'results.json'
    bad.write_text('{"numbers": ')
    proc = reproduce(*smoke.overrides, '--figures-dir', str(smoke.figures), '--against', str(bad), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    said = [line for line in (proc.stdout + proc.stderr).splitlines() if 'not valid JSON' in line]
    assert said and all(str(bad) in line and '--against PATH, or delete it' in line for line in said), said
    assert (smoke.figures/'RESULTS.md').exists() and not (smoke.figures/'REPRODUCTION.md').exists()
    text = (smoke.figures/'RESULTS.md').read_text()
    for name in FIGURES: assert f'`{name}.png` (+ .pdf)' in text                       # still listed with its template
    assert proc.seconds < 60


def test_a_failing_cell_is_listed_with_its_notebook_and_the_others_finish(smoke, tmp_path):
    grid = tmp_path/'grid.yaml'
    grid.write_text('cells:\n'
                    '- [bad, timing, -, -, classifier, pytorch, 1, store, 0, "off", 1, 0, ["data.tickers=[NOPE]"]]\n'
                    '- [toy, timing, -, -, toy, pytorch, 1, -, 0, "off", 1, 0, []]\n')
    proc = reproduce(*smoke.overrides, '--grid', str(grid), '--only', 'bad,toy', timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    notebook = re.search(r'FAILED bad: .*\n\s+executed notebook: (\S+)', out)
    assert notebook and Path(notebook.group(1)).exists() and 'NOPE' in Path(notebook.group(1)).read_text(), out[-3000:]
    assert [p.parent.name for p in smoke.runs.glob('smoke-toy-*/complete.json')], out[-3000:]


def test_list_prints_the_grid_and_why_cells_are_skipped():
    proc = subprocess.run([str(SCRIPT), '--config', 'paper', '--list'], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:4] == ['name', 'repeat', 'kind', 'needs'] and any(l.startswith('pt-store-8dev') or ' pt-store-8dev ' in l for l in lines)
    assert re.search(r'pt-store-8dev .* skipped: needs 8 GPUs, this machine has \d', proc.stdout) or 'nvidia' in proc.stdout
    assert re.search(r'tf-store-8dev +3/3 +timing', proc.stdout)                   # the paper grid repeats its timing cells 3 times


def test_reproduce_rejects_a_bad_key_before_running_anything(tmp_path):
    proc = subprocess.run([str(SCRIPT), '--config', 'smoke', 'train.epohcs=1', '--figures-dir', str(tmp_path)],
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
def test_benchmark_commands_print_their_ratio_line_last_and_record_it(args, last_line, tmp_path):
    import re
    bench, record = str(Path(sys.executable).parent/'seemore_bench'), tmp_path/'benchmarks.json'
    proc = subprocess.run([bench, *args, '--record', str(record)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = proc.stdout.strip().splitlines()[-1]
    assert re.fullmatch(last_line, line)
    (entry,) = json.loads(record.read_text()).values()
    assert entry['name'] == args[0] and entry['line'] == line and entry['result']['ratio' if args[0] == 'spectrogram'
                                                                               else 'overhead'] is not None
    assert f'| `seemore_bench {args[0]}` |' in (tmp_path/'BENCHMARKS.md').read_text()
    key = 'ratio' if args[0] == 'spectrogram' else 'bare'                # make bench's check, with an impossible target
    check = subprocess.run([bench, 'check', '--record', str(record), '--require', f'{args[0]}:{key}>=1e12'],
                           capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert check.returncode == 1, check.stdout + check.stderr
    assert f'MISSED {args[0]}: {key} >= 1e+12 (required) missed: ' in check.stdout
    assert 'MISSED tf: not recorded on this machine' in check.stdout and 'target(s) missed' in check.stdout


def test_a_damaged_finished_cell_is_listed_as_damaged_and_trained_again_from_its_checkpoint(smoke):
    import importlib.util
    second = 'tf-store-1dev' if importlib.util.find_spec('tensorflow') else 'pt-per_file-1dev'
    folder = lambda cell: next(p.parent for p in smoke.runs.glob(f'smoke-{cell}-*/complete.json'))
    metrics, timing = folder('pt-store-1dev')/'metrics.csv', folder(second)/'timing.parquet'
    kept_metrics, kept_timing = metrics.read_bytes(), pd.read_parquet(timing)
    repeat = lambda cell: re.search(r'-r(\d+)-', folder(cell).name).group(1)          # the damaged repeat of each cell
    labels = {cell: f'{cell}[{repeat(cell)}/2]' for cell in ('pt-store-1dev', second)}
    metrics.write_bytes(kept_metrics[:len(kept_metrics) * 2 // 3]); timing.unlink()
    listed = reproduce(*smoke.overrides, '--list', '--only', f'pt-store-1dev,{second}', timeout=120)
    assert re.search(r'pt-store-1dev .* damaged: metrics.csv has \d+ bytes \(the run wrote \d+ bytes, 2 rows\)', listed.stdout), listed.stdout
    assert re.search(rf'{second} .* damaged: timing.parquet is missing', listed.stdout), listed.stdout
    proc = reproduce(*smoke.overrides, '--only', f'pt-store-1dev,{second},51_frameworks', '--figures-dir', str(smoke.figures),
                     timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and all(f'{label}: done' in out for label in labels.values()), out[-3000:]
    record = (folder('pt-store-1dev')/'train_run.ipynb').read_text()                    # the executed template says why
    assert 'is damaged (metrics.csv has' in record and 'nothing to train' not in record
    assert metrics.read_bytes() == kept_metrics                    # from the checkpoint's history: no epoch trained again
    pd.testing.assert_frame_equal(pd.read_parquet(timing), kept_timing)


def test_sigterm_ends_the_running_cell_with_a_checkpoint_and_prints_the_continue_line_once(tmp_path):
    import shlex
    import signal
    import time
    grid, runs = tmp_path/'grid.yaml', tmp_path/'runs'
    grid.write_text('cells:\n'
                    '- [toy-long, timing, -, -, toy, pytorch, 1, -, 0, "off", 400, 0, []]\n'
                    '- [toy-next, timing, -, -, toy, pytorch, 1, -, 0, "off", 1, 0, []]\n')
    cmd = [str(SCRIPT), '--config', 'smoke', f'train.runs_dir={runs}', '--grid', str(grid), '--only', 'toy-*']
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.time() + 240
    while proc.poll() is None and time.time() < deadline and not list(runs.glob('smoke-toy-long-*/metrics.csv')):
        time.sleep(0.1)                                             # the first epoch ended: the cell is training
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 128 + signal.SIGTERM, out[-2000:] + err[-3000:]
    said = [line for line in err.splitlines() if 'stopped on SIGTERM' in line]
    assert len(said) == 1 and 'interrupted toy-long' in said[0] and 'toy-next' not in said[0], err[-3000:]
    assert said[0].endswith('continue with: ' + shlex.join(['seemore_reproduce', *cmd[1:4], '--only', 'toy-*', '--grid', str(grid)]))
    folder = next(runs.glob('smoke-toy-long-*'))
    assert not (folder/'complete.json').exists() and list((folder/'checkpoints').glob('step-*'))   # ended with a checkpoint
    assert not list(runs.glob('smoke-toy-next-*'))                  # nothing else started
    assert 'error: interrupted' not in err and 'Traceback' not in err


def test_timing_cells_train_the_same_samples_on_every_device_count(smoke):
    from seemore_nb.report.analysis import load_run, work
    from seemore_nb.report.results import read_results_table
    compared = 0
    for variant in ('pt-store', 'pt-per_file', 'pt-parallel', 'tf-store', 'tf-per_file'):
        runs = {p.parent.name: load_run(p.parent) for p in smoke.runs.glob(f'smoke-{variant}-[12]dev-*/complete.json')}
        if not runs: continue                                       # TensorFlow not installed
        done = {name: work(run) for name, run in runs.items()}
        # 2 device counts × 2 repeats (the smoke grid's repeats), one folder each, the id saying the repeat
        assert len(runs) == 4 and {n.split('-')[-2] for n in runs} == {'r1', 'r2'}, sorted(runs)
        assert len({(w['samples'], w['val_samples'], w['epochs']) for w in done.values()}) == 1, done
        assert sorted(len(r.timing[(r.timing.phase == 'train') & (r.timing['rank'] == 0)]) for r in runs.values()) == [4, 4, 8, 8]
        for name, run in runs.items():                              # timing cells skip the test-split evaluation
            assert 'evaluation' not in run.complete and not (run.folder/'predictions').exists(), name
        compared += 1
    learned = [load_run(p.parent) for p in smoke.runs.glob('smoke-learn-[12]dev-*/complete.json')]
    assert learned and all(r.complete['evaluation']['windows'] > 0 for r in learned)     # learning cells keep it
    drew = lambda folder: 'image/png' in (folder/'train_run.ipynb').read_text()         # the template's curves
    timing = [p.parent for p in smoke.runs.glob('smoke-pt-*/complete.json')]
    assert all(drew(r.folder) for r in learned) and timing and not any(drew(folder) for folder in timing)
    assert compared >= 3
    table = read_results_table(smoke.figures/'RESULTS.md')
    assert set(table[table.cell.str.match(r'pt-store-\ddev')]['samples/epoch']) == {'64'}
    assert sorted(table[table.cell == 'pt-store-1dev'].repeat) == ['1', '2']


def test_results_md_gives_every_repeated_timing_cell_its_median_and_interval(smoke):
    from seemore_nb.report.analysis import load_run, median_interval, samples_per_s
    from seemore_nb.report.results import read_results_table
    table = read_results_table(smoke.figures/'RESULTS.md', '## Timing: median [95% interval]').set_index('cell')
    row = table.loc['pt-store-1dev']
    runs = [load_run(p.parent) for p in smoke.runs.glob('smoke-pt-store-1dev-r*/complete.json')]
    values = sorted(samples_per_s(r) for r in runs)
    lo, hi = median_interval(values)
    assert row['repeats'] == '2' and row['samples/s'] == f'{sum(values) / 2:.3g} [{lo:.3g}, {hi:.3g}]', row.to_dict()
    assert table.loc['learn-1dev', 'repeats'] == '1' and table.loc['learn-1dev', 'samples/s'].endswith('(1 run)')
    breakdown = read_results_table(smoke.figures/'RESULTS.md', '## Per-iteration breakdown').set_index('cell')
    assert re.fullmatch(r'[\d.e+-]+ \[[\d.e+-]+, [\d.e+-]+\]', breakdown.loc['pt-store-2dev', 'forward ms'])


def test_the_engine_benchmark_runs_each_side_in_a_fresh_process_on_the_grid_cells():
    pytest.importorskip('tensorflow')
    from seemore_nb.config import load_config
    from seemore_nb.tools.bench import benchmark_tf
    r = benchmark_tf(load_config('smoke'), repeats=1, cells=('pytorch_1', 'tensorflow_1'))
    assert r['pytorch_processes_with_tensorflow'] == 0 and all(len(v) == 1 for v in r['runs'].values())
    assert r['ratio'] == pytest.approx(r['tensorflow_1'] / r['pytorch_1']) and r['ratio'] > 0


def test_an_edited_or_invalid_complete_json_is_damaged_in_one_line_and_trained_again(smoke):
    folder = lambda cell: next(p.parent for p in sorted(smoke.runs.glob(f'smoke-{cell}-*/complete.json')))
    edited, broken = folder('pt-store-bf16-1dev')/'complete.json', folder('pt-parallel-1dev')/'complete.json'
    record = json.loads(edited.read_text())
    accuracy = record['final']['val_accuracy']
    edited.write_text(edited.read_text().replace(json.dumps(accuracy), json.dumps(round(1 - accuracy, 4)), 1))
    broken.write_text(broken.read_text()[:-10])                                  # cut short: not JSON any more
    listed = reproduce(*smoke.overrides, '--list', timeout=120)
    assert listed.returncode == 0 and 'Traceback' not in listed.stderr, listed.stderr[-2000:]
    lines = listed.stdout.splitlines()
    assert any(re.search(r'pt-store-bf16-1dev.* damaged: complete.json was edited after the run wrote it', l) for l in lines)
    assert any(re.search(r'pt-parallel-1dev.* damaged: complete.json is not valid JSON', l) for l in lines)
    assert any(re.search(r'pt-store-1dev.* done', l) for l in lines)                 # the other cells are still read
    proc = reproduce(*smoke.overrides, '--only', 'pt-store-bf16-1dev,pt-parallel-1dev', timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert json.loads(edited.read_text())['final']['val_accuracy'] == accuracy     # trained again from its checkpoint
    assert 'is damaged (complete.json was edited' in (edited.parent/'train_run.ipynb').read_text()
    assert json.loads(broken.read_text())['digest']


def test_a_run_beside_a_busy_process_is_marked_busy_listed_and_flagged(smoke, tmp_path):
    from seemore_nb.engine.launch import launch, record_load
    from seemore_nb.orchestrate.grid import grid_plan
    from seemore_nb.report.results import results_markdown
    from seemore_nb.config import load_config
    burn = 'import time\nt = time.time()\nwhile time.time() - t < 60: pass'
    burners = [subprocess.Popen([sys.executable, '-c', burn]) for _ in range(2)]     # every core taken by others
    try: folder = launch('smoke', ['train.task=toy', 'train.epochs=1', f'train.runs_dir={tmp_path}', 'train.run_id=beside'])
    finally:
        for b in burners: b.kill()
    load = json.loads((folder/'complete.json').read_text())['load']
    assert load['busy'] and load['others_share'] > 0.2, load
    run = next(p.parent for p in sorted(smoke.runs.glob('smoke-pt-store-1dev-*/complete.json')))
    record_load(run, dict(load, others_share=0.5))                      # one of the grid's timing runs, as if busy
    try:
        listed = reproduce(*smoke.overrides, '--list', '--only', 'pt-store-1dev', timeout=120)
        assert 'done (busy: others took 50% of the CPU)' in listed.stdout, listed.stdout
        cfg = load_config('smoke', smoke.overrides)
        text = results_markdown(cfg, grid_plan(cfg), [], [])
        assert '**Measured on a busy machine:**' in text and run.name in text.split('**Measured on a busy machine:**')[1]
    finally: record_load(run, dict(load, others_share=0.0, busy=False))


def test_one_template_redrawn_keeps_every_figure_in_the_results(smoke):
    from seemore_nb.report.results import read_results_table
    results = smoke.figures/'RESULTS.md'
    before = set(read_results_table(results, '## Figures')['template'])
    proc = reproduce(*smoke.overrides, '--only', '10_prices_overview', '--figures-dir', str(smoke.figures), '--redraw',
                     timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    after = set(read_results_table(results, '## Figures')['template'])
    assert len(before) > 5 and after == before, (before, after)
