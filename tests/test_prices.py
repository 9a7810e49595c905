"""Price sources at their boundaries: yfinance-shaped frames, the cache, no network, bad CSV files."""
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seemore_nb.data import prices as P
from seemore_nb.data import sources as S
from seemore_nb.config import load_config

SCRIPT = Path(sys.executable).parent/'seemore_prices'


def yf17_frame(ticker: str, auto_adjust: bool, n: int = 5) -> pd.DataFrame:
    "A frame shaped exactly like `yf.download(ticker, auto_adjust=...)` in yfinance 1.7."
    idx = pd.DatetimeIndex(pd.bdate_range('2024-03-01', periods=n), name='Date')
    base = 100 + np.arange(n, dtype=float)
    cols = {'Open': base, 'High': base + 1, 'Low': base - 1, 'Close': base + .5, 'Volume': np.arange(n) * 1000 + 5000}
    if not auto_adjust:
        cols['Adj Close'] = (base + .5) * .98
    one = pd.DataFrame(cols, index=idx)
    frame = pd.concat({ticker: one}, axis=1, names=['Ticker', 'Price'])   # how yfinance 1.7 builds it
    frame.columns = frame.columns.swaplevel(0, 1)
    return frame.sort_index(level=0, axis=1)


@pytest.fixture
def fake_yahoo(monkeypatch):
    "yfinance reachable, answering with 1.7-shaped frames; records the tickers it was asked for."
    asked = []

    def download(ticker, start, end, auto_adjust=False):
        asked.append(ticker)
        return yf17_frame(ticker, auto_adjust), ''
    monkeypatch.setattr(S, 'probe_network', lambda *a, **k: True)
    monkeypatch.setattr(S, '_yf_download', download)
    return asked


@pytest.mark.parametrize('auto_adjust', [False, True])
def test_yfinance_17_frames_become_tidy(auto_adjust):
    raw = yf17_frame('MSFT', auto_adjust)
    assert raw.columns.names == ['Price', 'Ticker']
    tidy = S.from_yfinance_frame(raw, 'MSFT')
    assert list(tidy.columns) == list(S.PRICE_COLUMNS) and tidy.index.name == 'date'
    assert tidy.attrs['auto_adjusted'] is auto_adjust
    expected_adj = raw[('Close', 'MSFT')] if auto_adjust else raw[('Adj Close', 'MSFT')]
    np.testing.assert_array_equal(tidy['adj_close'].to_numpy(), expected_adj.to_numpy())
    np.testing.assert_array_equal(tidy['volume'].to_numpy(), raw[('Volume', 'MSFT')].to_numpy())


def test_cache_round_trip_downloads_once(tmp_path, fake_yahoo):
    first = P.load_prices(['AAPL', 'IBM'], '2024-03-01', '2024-03-07', source='yfinance', cache_dir=tmp_path)
    assert fake_yahoo == ['AAPL', 'IBM'] and sorted(p.name for p in tmp_path.iterdir()) == ['AAPL.parquet', 'IBM.parquet']
    again = P.load_prices(['AAPL', 'IBM'], '2024-03-01', '2024-03-07', source='yfinance', cache_dir=tmp_path)
    assert fake_yahoo == ['AAPL', 'IBM']                      # served from the cache, no new download
    pd.testing.assert_frame_equal(first['AAPL'], again['AAPL'], check_freq=False)
    meta = pd.read_parquet(tmp_path/'AAPL.parquet').attrs['download']
    assert (meta['ticker'], meta['start'], meta['end'], meta['auto_adjust']) == ('AAPL', '2024-03-01', '2024-03-07', False)
    P.load_prices(['AAPL'], '2024-02-01', '2024-03-07', source='yfinance', cache_dir=tmp_path)
    assert fake_yahoo == ['AAPL', 'IBM', 'AAPL']              # a wider request downloads again


def test_empty_download_names_the_ticker(tmp_path, monkeypatch):
    monkeypatch.setattr(S, 'probe_network', lambda *a, **k: True)
    monkeypatch.setattr(S, '_yf_download', lambda t, s, e: (pd.DataFrame(), f"['{t}']: possibly delisted; no price data found"))
    with pytest.raises(S.EmptyDownloadError, match=r'yfinance returned no rows for NOPE .*possibly delisted'):
        P.load_prices('NOPE', '2024-03-01', '2024-03-07', source='yfinance', cache_dir=tmp_path)
    assert not list(tmp_path.iterdir())                       # nothing cached for a failure


def test_offline_fails_fast_and_points_to_cache_and_sample(tmp_path, no_network):
    start = time.perf_counter()
    with pytest.raises(S.OfflineError) as err:
        P.load_prices(['AAPL', 'MSFT'], '2024-03-01', '2024-03-07', source='yfinance', cache_dir=tmp_path)
    assert time.perf_counter() - start < 5
    msg = str(err.value)
    assert 'AAPL, MSFT' in msg and str(tmp_path) in msg and 'add data.source=sample to the command' in msg


def test_offline_serves_what_is_cached(tmp_path, fake_yahoo, monkeypatch):
    online = P.load_prices(['AAPL'], '2024-03-01', '2024-03-07', source='yfinance', cache_dir=tmp_path)
    monkeypatch.setattr(S, 'probe_network', lambda *a, **k: False)
    with pytest.warns(UserWarning, match='no network: serving AAPL from the cache'):
        offline = P.load_prices(['AAPL'], '2024-03-01', '2024-03-07', source='yfinance', cache_dir=tmp_path)
    pd.testing.assert_frame_equal(online['AAPL'], offline['AAPL'], check_freq=False)
    with pytest.raises(S.OfflineError, match='cannot download IBM.*Cached tickers in .*: AAPL'):
        P.load_prices(['AAPL', 'IBM'], '2024-03-01', '2024-03-07', source='yfinance', cache_dir=tmp_path)


def test_probe_gives_up_on_a_silent_server_within_its_timeout():
    "A server that accepts the connection and never answers, like a stalled network."
    import socket
    with socket.socket() as silent:
        silent.bind(('127.0.0.1', 0)); silent.listen(1)
        start = time.perf_counter()
        assert S.probe_network(f'https://127.0.0.1:{silent.getsockname()[1]}/', timeout=1.0) is False
        assert time.perf_counter() - start < 2


def test_probe_counts_any_http_answer_as_online():
    import http.server, threading
    server = http.server.HTTPServer(('127.0.0.1', 0), http.server.BaseHTTPRequestHandler)   # answers 501 to HEAD
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert S.probe_network(f'http://127.0.0.1:{server.server_address[1]}/', timeout=2.0) is True
    finally:
        server.shutdown()


def test_cli_without_network_exits_nonzero_within_5s(tmp_path):
    "The real console script's code path, in a fresh interpreter whose sockets all fail."
    code = textwrap.dedent(f"""
        import socket, sys
        def refuse(*a, **k): raise OSError('no network')
        socket.create_connection = refuse; socket.getaddrinfo = refuse
        from seemore_nb.data.prices import main
        sys.exit(main(['--source', 'yfinance', '--tickers', 'AAPL', 'data.cache_dir={tmp_path}']))
    """)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert time.perf_counter() - start < 5
    assert 'no network: cannot download AAPL, ^GSPC from yfinance' in proc.stderr
    assert str(tmp_path) in proc.stderr and 'data.source=sample' in proc.stderr and '--source sample' not in proc.stderr


def test_interrupted_cache_write_keeps_the_previous_file(tmp_path, fake_yahoo):
    "SIGKILL a process in the middle of rewriting a cache file: the old file stays whole and readable."
    P.load_prices(['AAPL'], '2024-03-01', '2024-03-07', source='yfinance', cache_dir=tmp_path)
    before = (tmp_path/'AAPL.parquet').read_bytes()
    code = textwrap.dedent(f"""
        import os, signal, pandas as pd
        from seemore_nb.data import sources as S
        def half_then_die(self, f, *a, **k):
            f.write(b'PAR1 half a parquet file'); f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        pd.DataFrame.to_parquet = half_then_die
        frame = S.read_cache({str(tmp_path)!r}, 'AAPL')
        S.write_cache(frame * 2, {str(tmp_path)!r}, 'AAPL', '2024-01-01', '2024-12-31')
    """)
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert (tmp_path/'AAPL.parquet').read_bytes() == before
    assert S.read_cache(tmp_path, 'AAPL')['close'].iloc[0] == 100.5


def test_rate_limit_retries_with_backoff(monkeypatch):
    answers = iter([(pd.DataFrame(), "['X']: YFRateLimitError('Too Many Requests. Rate limited. Try after a while.')")] * 2
                   + [(yf17_frame('X', False), '')])
    monkeypatch.setattr(S, '_yf_download', lambda t, s, e: next(answers))
    naps = []
    frame = S.download_yfinance('X', '2024-03-01', '2024-03-07', backoff=0.5, sleep=naps.append)
    assert len(frame) == 5 and naps == [0.5, 1.0]


WELL_FORMED = 'Date,Open,High,Low,Close,Adj Close,Volume\n' + ''.join(
    f'2024-03-{d:02d},10,11,9,10.5,10.4,{d}000\n' for d in (4, 5, 6, 7, 8))


def _csv_folder(tmp_path, text, name='AAA'):
    (tmp_path/f'{name}.csv').write_text(text)
    return tmp_path


@pytest.mark.parametrize('text, message', [
    (WELL_FORMED.replace('2024-03-06,10,11,9,10.5', '2024-03-06,10,11,9,-10.5'), r'AAA.csv, line 4 \(2024-03-06\): close is -10.5'),
    (WELL_FORMED.replace('2024-03-07', '2024-03-05'), r'AAA.csv, line 5 \(2024-03-05\): duplicate date'),
    (WELL_FORMED.replace('2024-03-07', '2024-03-01'), r'AAA.csv, line 5 \(2024-03-01\): date goes backwards'),
    (WELL_FORMED.replace('10.4,6000', 'n/a?,6000'), r"AAA.csv, line 4: adj_close 'n/a\?' is not a number"),
    (WELL_FORMED.replace(',Adj Close', ',AdjClose'), r'AAA.csv: missing column\(s\) adj_close'),
    ('\x00\x01garbage\xff' * 3, r'AAA.csv'),
    ('', r'AAA.csv: empty; re-export it'),
    (WELL_FORMED.splitlines()[0] + '\n', r'AAA.csv: a header and no rows of prices'),
])
def test_bad_csv_names_file_and_line(tmp_path, text, message):
    folder = _csv_folder(tmp_path, text)
    with pytest.raises(S.PriceDataError, match=message):
        P.load_prices('AAA', source='csv', folder=folder)


def test_nan_prices_are_reported_and_kept(tmp_path):
    folder = _csv_folder(tmp_path, WELL_FORMED.replace('2024-03-06,10,11,9,10.5,10.4', '2024-03-06,10,11,9,,'))
    with pytest.warns(UserWarning, match='AAA: 1 row\\(s\\) with no adj_close, first 2024-03-06; kept'):
        frame = P.load_prices('AAA', source='csv', folder=folder)['AAA']
    assert len(frame) == 5 and frame.loc['2024-03-06', ['close', 'adj_close']].isna().all()


def test_sample_source_is_real_and_long_enough():
    study = P.load_study_prices(load_config('cpu', ['data.start=2004-09-01', 'data.end=2013-02-28']))
    summary = study.summary()
    assert set(summary.index) == {'AAPL', 'GOOG', 'IBM', 'MSFT'}
    spans = pd.to_datetime(summary['last']) - pd.to_datetime(summary['first'])
    assert (spans > pd.Timedelta(days=8 * 365)).all()
    assert study.volatility_label == P.REALIZED_LABEL
    assert (summary.missing_days == 0).all()              # checked against the S&P 500 calendar


def test_gaps_against_the_calendar_are_reported(tmp_path):
    sample = S.read_price_csv(Path(P.resolve_path('data/sample'))/'IBM.csv')
    holey = sample.loc['2010-01-01':'2010-12-31'].drop(pd.Timestamp('2010-06-15'))
    holey.reset_index().rename(columns={'date': 'Date', 'adj_close': 'Adj Close', 'open': 'Open', 'high': 'High', 'low': 'Low',
                                        'close': 'Close', 'volume': 'Volume'}).to_csv(tmp_path/'IBM.csv', index=False)
    for name in ('^GSPC', '^VIX'):
        (tmp_path/f'{name}.csv').write_bytes((Path(P.resolve_path('data/sample'))/f'{name}.csv').read_bytes())
    study = P.load_study_prices(load_config('smoke', ['data.source=csv', f'data.csv_dir={tmp_path}', 'data.tickers=[IBM]',
                                                      'data.start=2010-01-01', 'data.end=2010-12-31']))
    assert study.gaps.values.tolist() == [['IBM', pd.Timestamp('2010-06-15'), 'missing']]
    assert study.summary().loc['IBM', 'missing_days'] == 1


def test_offline_partial_cache_is_refused_unless_allowed(tmp_path, fake_yahoo, monkeypatch):
    P.load_prices(['AAPL'], '2024-03-01', '2024-03-07', source='yfinance', cache_dir=tmp_path)     # cached for March 1-7
    monkeypatch.setattr(S, 'probe_network', lambda *a, **k: False)
    with pytest.raises(S.OfflineError, match=r'covers less than the 2024-01-01\.\.2024-03-07 asked for: AAPL holds '
                                             r'2024-03-01\.\.2024-03-07 \(downloaded for 2024-03-01\.\.2024-03-07\).*data.allow_partial=true'):
        P.load_prices(['AAPL'], '2024-01-01', '2024-03-07', source='yfinance', cache_dir=tmp_path)
    with pytest.warns(UserWarning, match='cover less than'):
        short = P.load_prices(['AAPL'], '2024-01-01', '2024-03-07', source='yfinance', cache_dir=tmp_path, allow_partial=True)
    assert len(short['AAPL']) == 5


def test_semicolon_csv_is_reported_as_a_delimiter_problem(tmp_path):
    folder = _csv_folder(tmp_path, WELL_FORMED.replace(',', ';'))
    with pytest.raises(S.PriceDataError, match=r"AAA.csv: the columns are separated by ';', not commas"):
        P.load_prices('AAA', source='csv', folder=folder)


def test_dates_with_utc_offsets_are_read_as_trading_days(tmp_path):
    text = WELL_FORMED.replace('2024-03-04', '2024-03-04 00:00:00-05:00').replace('2024-03-05', '2024-03-05 00:00:00-05:00')
    frame = P.load_prices('AAA', source='csv', folder=_csv_folder(tmp_path, text))['AAA']
    assert frame.index.tz is None and list(frame.index.day) == [4, 5, 6, 7, 8]


def test_sample_vix_without_volume_loads_and_gspc_can_be_a_ticker():
    vix = P.load_prices(['^VIX'], source='sample')['^VIX']
    assert 'adj_close' in vix.columns and 'volume' not in vix.columns and len(vix) > 1000
    study = P.load_study_prices(load_config('smoke', ['data.tickers=[AAPL,MSFT,^GSPC]']))
    assert list(study.prices) == ['AAPL', 'MSFT', '^GSPC']                  # nothing the user asked for is dropped
    with pytest.raises(S.PriceDataError, match=r'\^VIX: no Volume column'):
        P.load_study_prices(load_config('smoke', ['data.tickers=[^VIX]', 'data.start=2014-06-01', 'data.end=2015-06-01']))
