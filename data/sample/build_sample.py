"""Rebuild the committed offline sample in data/sample/ from two PyPI packages.

    .venv/bin/python data/sample/build_sample.py

Sources (both installed by the project's dev extras):
- bokeh-sampledata: daily AAPL, GOOG, IBM and MSFT OHLCV with Adj Close (2000-03-01 .. 2013-03-01);
- arch: S&P 500 daily OHLCV with Adj Close (1999-2018) and the VIX close (2014-2019).

Each series is written as one CSV in yfinance's flat export layout
(Date, Open, High, Low, Close, Adj Close, Volume), values exactly as the packages ship them.
The VIX has only a close, so its file holds Date, Close and Adj Close (the same value).
"""
from pathlib import Path

import pandas as pd

OUT = Path(__file__).resolve().parent
COLUMNS = ['Open', 'High', 'Low', 'Close', 'Adj Close', 'Volume']


def bokeh_stock(ticker: str) -> pd.DataFrame:
    from bokeh_sampledata import stocks
    raw = pd.DataFrame(getattr(stocks, ticker))
    frame = pd.DataFrame({'Date': pd.to_datetime(raw['date']), 'Open': raw['open'], 'High': raw['high'],
                          'Low': raw['low'], 'Close': raw['close'], 'Adj Close': raw['adj_close'],
                          'Volume': raw['volume']})
    return frame.set_index('Date').sort_index()


def arch_sp500() -> pd.DataFrame:
    from arch.data import sp500
    frame = sp500.load()[COLUMNS]
    frame.index = pd.to_datetime(frame.index).rename('Date')
    return frame


def arch_vix() -> pd.DataFrame:
    from arch.data import vix
    close = vix.load()['vix']
    close.index = pd.to_datetime(close.index).rename('Date')
    return pd.DataFrame({'Close': close, 'Adj Close': close})


def build(out: Path = OUT) -> dict:
    frames = {t: bokeh_stock(t) for t in ['AAPL', 'GOOG', 'IBM', 'MSFT']}
    frames['^GSPC'] = arch_sp500()
    frames['^VIX'] = arch_vix()
    for ticker, frame in frames.items():
        frame.to_csv(out/f'{ticker}.csv', date_format='%Y-%m-%d')
    return frames


if __name__ == '__main__':
    for ticker, frame in build().items():
        print(f'{ticker:6s} {len(frame):5d} rows  {frame.index[0].date()} .. {frame.index[-1].date()}')
