"""91x: apachectl -k graceful, graceful-stop and restart in the middle of
uploads. A graceful restart or stop lets the running upload finish; a hard
restart cuts it, and it resumes from an offset that is never ahead of the
data file. Every wait is bounded."""
import subprocess
import time

import pytest

from pyrs.client import OCTET, abort_socket, make_data, read_response, sha256, \
    upload_id
from pyrs.env import RsArea

AREA = 'restart91'
ALLOW = dict(patterns=[r'\[resumable:warn\]', r'AH00045', r'AH00046'])


def start_patch(env, tus, url, data, sent):
    """PATCH all of data from 0, sending only `sent` bytes now; returns the
    socket once the server has stored some of them."""
    h = dict(tus.base_headers)
    h.update({'Upload-Offset': '0', 'Content-Type': OCTET})
    s = env.client.send_partial('PATCH', url, h, data[:sent], len(data))
    area = env.area_dir(AREA)
    deadline = time.time() + 10
    while time.time() < deadline:
        f = env.staged_data_file(area, upload_id(url))
        if f and f.stat().st_size > 0:
            break
        time.sleep(0.05)
    return s


def apachectl(env, cmd):
    r = subprocess.run([env.apache, '-d', str(env.gen), '-f', str(env.conf_path),
                        '-k', cmd], capture_output=True, text=True, timeout=60,
                       env=env.httpd_env())
    assert r.returncode == 0, r.stdout + r.stderr


def finish_on(sock, data, sent):
    """Send the rest on the old connection and read the answer."""
    try:
        sock.sendall(data[sent:])
        return read_response(sock, 'PATCH', timeout=20)
    finally:
        sock.close()


def check_offset_on_disk(env, tus, url, data):
    r = tus.head(url)
    assert r.status == 200, r
    off = int(r.headers['Upload-Offset'])
    if off < len(data):
        disk = env.staged_data_file(env.area_dir(AREA), upload_id(url)).read_bytes()
        assert len(disk) >= off and disk[:off] == data[:off], (len(disk), off)
    return off


@pytest.mark.slow
class TestRestart:
    CONF = dict(areas=[RsArea('/files/', dir=AREA,
                              directives=['ResumableExpire 1h'])])
    ALLOW_ERRORS = ALLOW

    def test_rs_911_01_graceful(self, env):
        """A graceful restart does not cut a running upload short."""
        tus = env.tus('/files/')
        data = make_data(2 * 1024 * 1024, seed=9111)
        url = tus.create(length=len(data))
        sent = 1024 * 1024
        s = start_patch(env, tus, url, data, sent)
        env.graceful()
        r = finish_on(s, data, sent)
        assert r.status == 204, r
        assert r.headers.get('Upload-Offset') == str(len(data))
        assert sha256(tus.get(url).body) == sha256(data)

    def test_rs_911_02_graceful_stop(self, env):
        """graceful-stop lets the running upload finish; it is complete
        after the next start."""
        tus = env.tus('/files/')
        data = make_data(2 * 1024 * 1024, seed=9112)
        url = tus.create(length=len(data))
        sent = 512 * 1024
        s = start_patch(env, tus, url, data, sent)
        apachectl(env, 'graceful-stop')
        time.sleep(0.5)                   # the parent stops listening
        r = finish_on(s, data, sent)
        assert r.status == 204, r
        deadline = time.time() + 20
        while env.pid() and time.time() < deadline:
            time.sleep(0.1)
        assert not env.pid(), 'httpd did not stop after graceful-stop'
        env.start()
        assert check_offset_on_disk(env, tus, url, data) == len(data)
        assert sha256(tus.get(url).body) == sha256(data)

    def test_rs_911_03_restart(self, env):
        """A hard restart cuts the upload; it resumes where the disk says."""
        tus = env.tus('/files/')
        data = make_data(3 * 1024 * 1024, seed=9113)
        url = tus.create(length=len(data))
        sent = 2 * 1024 * 1024
        s = start_patch(env, tus, url, data, sent)
        env.restart()
        abort_socket(s)
        off = check_offset_on_disk(env, tus, url, data)
        assert off <= sent
        deadline = time.time() + 15
        while True:
            r = tus.patch(url, off, data[off:])
            if r.status != 423 or time.time() > deadline:
                break
            time.sleep(0.2)
        assert r.status == 204, r
        assert sha256(tus.get(url).body) == sha256(data)

    def test_rs_911_04_graceful_many(self, env):
        """Three uploads in flight over two graceful restarts: all finish."""
        tus = env.tus('/files/')
        ups = []
        for i in range(3):
            data = make_data(1024 * 1024 + i, seed=9114 + i)
            url = tus.create(length=len(data))
            ups.append((url, data, start_patch(env, tus, url, data, 300 * 1024)))
        env.graceful()
        env.graceful()
        for url, data, s in ups:
            r = finish_on(s, data, 300 * 1024)
            assert r.status == 204, r
            assert sha256(tus.get(url).body) == sha256(data)
