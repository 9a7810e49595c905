import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault('MPLBACKEND', 'Agg')
os.environ.setdefault('MPLCONFIGDIR', str(ROOT/'.cache'/'matplotlib'))
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')


@pytest.fixture
def no_network(monkeypatch):
    "Every socket connection fails at once, as on a machine with no network."
    import socket

    def refuse(*args, **kwargs):
        raise OSError('network disabled by the test')
    monkeypatch.setattr(socket, 'create_connection', refuse)
    monkeypatch.setattr(socket, 'getaddrinfo', refuse)
