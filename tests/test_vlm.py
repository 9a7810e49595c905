"""The Seemore VLM: tokenizer, loss, overfitting, generation, the captions CSV, DDP and kill-and-resume on the engine, the CLI."""
import base64
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from seemore_nb.engine.checkpoints import load_checkpoint
from seemore_nb.engine.launch import launch
from seemore_nb.vlm.data import CaptionDataError, CaptionDataset, CharTokenizer, read_captions, synthetic_rows
from seemore_nb.vlm.model import SeemoreVLM, caption_loss, generate
from seemore_nb.vlm.task import caption, greedy_captions
from test_train import KILL_AT_STEP, digests          # the engine tests' kill switch and weight digests

BIN = Path(sys.executable).parent
CAPTION = [str(BIN/'seemore_caption')] if (BIN/'seemore_caption').exists() else [sys.executable, '-m', 'seemore_nb.vlm.task']
TINY = dict(max_tokens=100, image_size=32, patch_size=8, encoder_width=32, encoder_layers=1, encoder_heads=2, encoder_mlp=64,
            projector_hidden=64, decoder_width=64, decoder_layers=2, decoder_heads=2, decoder_mlp=128, dropout=0.0)


def test_tokenizer_round_trip_and_unknown_characters():
    tok = CharTokenizer.from_captions(['a large red circle at the top left', 'a small blue square at the centre'])
    for text in ['a red square at the left', 'the centre', '']:
        ids = tok.encode(text)
        assert ids[0] == tok.BOS and ids[-1] == tok.EOS and tok.decode(ids) == text
    ids = tok.encode('a red box!')                                             # 'x' and '!' never seen
    assert ids.count(tok.UNK) == 2 and tok.decode(ids) == 'a red bo\ufffd\ufffd'
    assert CharTokenizer.from_state(json.loads(json.dumps(tok.state()))).encode('a red') == tok.encode('a red')


def test_loss_ignores_pad_and_targets_are_inputs_shifted_by_one():
    torch.manual_seed(0)
    model = SeemoreVLM(9, **TINY)
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    tokens = torch.tensor([[1, 4, 5, 6, 2, 0, 0], [1, 7, 8, 4, 5, 6, 2]])
    logits = model(images, tokens[:, :-1])
    terms = [torch.nn.functional.cross_entropy(logits[b, t], tokens[b, t + 1]) for b in range(2) for t in range(6) if tokens[b, t + 1]]
    assert torch.allclose(caption_loss(logits, tokens), torch.stack(terms).mean(), atol=1e-6)
    longer = torch.cat([tokens, torch.zeros(2, 5, dtype=torch.long)], 1)       # more PAD: the same loss
    assert torch.allclose(caption_loss(model(images, longer[:, :-1]), longer), caption_loss(logits, tokens), atol=1e-5)
    wrong_shift = torch.nn.functional.cross_entropy(logits.reshape(-1, 9), tokens[:, :-1].reshape(-1), ignore_index=0)
    assert not torch.allclose(wrong_shift, caption_loss(logits, tokens))


def test_a_tiny_model_overfits_eight_captions():
    rows = list(synthetic_rows(8, seed=3))
    images = np.stack([np.asarray(Image.fromarray(im).resize((32, 32), Image.BILINEAR)).transpose(2, 0, 1) for im, _ in rows])
    captions = [c for _, c in rows]
    tok = CharTokenizer.from_captions(captions)
    ds = CaptionDataset(images, captions, tok)
    torch.manual_seed(0)
    model = SeemoreVLM(tok.vocab_size, **TINY)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    batch = ds[list(range(8))]
    for step in range(400):
        loss = caption_loss(model(batch[0], batch[1][:, :-1]), batch[1])
        opt.zero_grad(); loss.backward(); opt.step()
        if step % 50 == 49 and greedy_captions(model, images, tok) == captions: break
    assert greedy_captions(model, images, tok) == captions, loss.item()


def test_generation_stops_at_eos_and_respects_the_maximum_length():
    torch.manual_seed(0)
    model = SeemoreVLM(9, **TINY).eval()
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad(): model.head.bias.zero_(); model.head.bias[5] = 40.0
    assert generate(model, images, 1, 2, max_tokens=10) == [[5] * 9] * 3     # never EOS: max_tokens - 1 new tokens
    assert all(len(g) == 99 for g in generate(model, images, 1, 2))           # the model's own maximum (100)
    with torch.no_grad(): model.head.bias[2] = 80.0
    assert generate(model, images, 1, 2, max_tokens=10) == [[2]] * 3           # EOS first: stops at once


def _b64(img, fmt='PNG', mode=None):
    buf = io.BytesIO()
    im = Image.fromarray(img)
    (im.convert(mode) if mode else im).save(buf, format=fmt)
    return base64.b64encode(buf.getvalue()).decode()


def test_captions_csv_modes_index_column_and_bad_rows(tmp_path):
    img = next(synthetic_rows(1))[0]
    rows = [(_b64(img, mode='RGBA'), 'rgba'), (_b64(img, mode='L'), 'grey'), (_b64(img, 'JPEG'), 'jpeg'),
            ('%%%', 'bad base64'), (base64.b64encode(b'GIF? no').decode(), 'not an image'), (_b64(img), '  ')]
    path = tmp_path/'inputs.csv'
    pd.DataFrame(rows, columns=['b64string_images', 'caption']).to_csv(path)              # unnamed index column first
    assert pd.read_csv(path).columns[0].startswith('Unnamed')
    with pytest.raises(CaptionDataError, match=r'inputs.csv: row 3 .*base64'): read_captions(path, 16)
    images, captions, manifest = read_captions(path, 16, on_bad_row='skip')
    assert captions == ['rgba', 'grey', 'jpeg'] and images.shape == (3, 3, 16, 16) and images.dtype == np.uint8
    assert manifest['skipped'] == {'bad_base64': 1, 'not_an_image': 1, 'empty_caption': 1}
    assert manifest['skipped_rows'] == {'bad_base64': [3], 'not_an_image': [4], 'empty_caption': [5]}
    pd.DataFrame(rows[:3] + rows[4:5], columns=['b64string_images', 'caption']).to_csv(path, index=False)
    with pytest.raises(CaptionDataError, match=r'row 3 .*not a PNG or JPEG'): read_captions(path, 16)


# --- on the engine -------------------------------------------------------------------------------

def vlm_overrides(tmp, run_id, *more):
    return [f'train.runs_dir={tmp}/runs', f'vlm.synthetic_dir={tmp}/data', f'vlm.cache_dir={tmp}/cache', f'train.run_id={run_id}', *more]


SHORT = ('train.epochs=2', 'train.checkpoint_every=5')


def run_launch(tmp, run_id, more=(), before='', timeout=240):
    "launch('vlm_smoke') in a fresh interpreter, after the patch code `before`."
    code = textwrap.dedent(before) + f"from seemore_nb.engine.launch import launch\nlaunch('vlm_smoke', {vlm_overrides(tmp, run_id, *more)!r})\n"
    env = os.environ | {'OMP_NUM_THREADS': '1'}
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    "A 2-process DDP run and an uninterrupted 1-process run of vlm_smoke."
    tmp = tmp_path_factory.mktemp('vlm')
    ddp = launch('vlm_smoke', vlm_overrides(tmp, 'ddp', 'train.devices=2'))
    ref = run_launch(tmp, 'reference', SHORT)
    assert ref.returncode == 0, ref.stderr[-3000:]
    return tmp, ddp


def test_two_process_ddp_runs_the_task(runs):
    tmp, folder = runs
    ranks = digests(tmp, 'ddp')
    assert len(ranks) == 2 and ranks[0] == ranks[1]
    metrics = pd.read_csv(folder/'metrics.csv')
    assert metrics.train_loss.iloc[-1] < metrics.train_loss.iloc[0] and (metrics.train_tokens > 20).all()
    timing = pd.read_parquet(folder/'timing.parquet')
    assert set(timing['rank']) == {0, 1}
    state = load_checkpoint(folder/'checkpoints'/'last.pt')
    assert 'a' in state.get('task', {}).get('tokenizer', {}).get('chars', 'a')
    assert state['optimizer']['param_groups'][0]['lr'] < 0.003 / 10          # the cosine schedule ran down to its floor (0)


def test_kill_mid_epoch_then_resume_gives_the_same_weights(runs):
    tmp, _ = runs
    killed = run_launch(tmp, 'killed', SHORT, before=KILL_AT_STEP.replace('KILL_STEP', '8'))
    assert killed.returncode == -signal.SIGKILL
    assert load_checkpoint(Path(tmp)/'runs'/'killed'/'checkpoints'/'last.pt')['global_step'] == 5
    resumed = run_launch(tmp, 'killed', SHORT)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'resumed killed at epoch 1, step 5' in resumed.stdout
    assert digests(tmp, 'killed') == digests(tmp, 'reference')


def test_caption_command_and_function(runs, tmp_path, capsys):
    from seemore_nb.vlm.task import main
    tmp, folder = runs
    best = folder/'checkpoints'/'best.pt'
    img, _ = next(synthetic_rows(1, seed=9))
    Image.fromarray(img).save(tmp_path/'a.png')
    Image.fromarray(img).convert('L').save(tmp_path/'b.jpg')
    proc = subprocess.run([*CAPTION, '--checkpoint', str(best), str(tmp_path/'a.png'), str(tmp_path/'b.jpg')],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 2 and lines[0] == caption([img], best)[0]
    (tmp_path/'c.png').write_text('not an image')
    capsys.readouterr()
    # the errors: the command's own function (the console script is `sys.exit(main())`), without a process each
    for args, said in ((['--checkpoint', str(tmp_path/'none.pt'), str(tmp_path/'a.png')], 'none.pt: no such checkpoint'),
                       (['--checkpoint', str(best), str(tmp_path/'c.png')], 'c.png: not a readable PNG or JPEG'),
                       (['--checkpoint', str(best), '--top-k', '-1', str(tmp_path/'a.png')], "top-k -1 (--top-k): give 0"),
                       (['--checkpoint', str(best), '--temperature', '-0.5', str(tmp_path/'a.png')],
                        'temperature -0.5 (--temperature): give 0'),
                       (['--checkpoint', str(best)], 'no image given; usage: seemore_caption --checkpoint')):
        code, err = main(args), capsys.readouterr().err
        assert code == 1 and len(err.strip().splitlines()) == 1 and said in err and 'Traceback' not in err, err


def test_skipped_bad_caption_rows_are_counted_recorded_and_keep_their_source_row_numbers(tmp_path):
    rows = [(_b64(img), cap) for img, cap in synthetic_rows(60, seed=3)]
    bad = {7: ('%%%', 'x'), 20: (rows[20][0], ' '), 33: ('%%%', 'y'), 41: (base64.b64encode(b'GIF? no').decode(), 'z')}
    for i, row in bad.items(): rows[i] = row
    path = tmp_path/'mine.csv'
    pd.DataFrame(rows, columns=['b64string_images', 'caption']).to_csv(path, index=False)
    proc = run_launch(tmp_path, 'skips', ['train.epochs=1', f'vlm.captions={path}', 'vlm.on_bad_row=skip'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    said = [l for l in proc.stderr.splitlines() if 'bad rows skipped' in l]
    assert len(said) == 1 and '56 of 60 rows kept, 4 bad rows skipped' in said[0] and '2 bad_base64' in said[0], proc.stderr[-2000:]
    folder = tmp_path/'runs'/'skips'
    record = json.loads((folder/'caption_rows.json').read_text())['main']
    assert record['skipped_rows'] == {'bad_base64': [7, 33], 'empty_caption': [20], 'not_an_image': [41]}
    captions = pd.read_csv(folder/'captions.csv')
    truth = dict(enumerate(cap for _, cap in rows))
    assert not set(captions.row) & set(bad) and all(truth[r] == t for r, t in zip(captions.row, captions.truth))
