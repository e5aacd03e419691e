"""980: the mod_status section (counters in shared memory across children,
kept across restarts) and its HTML page in headless Chromium."""
import os
import re
import shutil
import subprocess
import time

import pytest

from pyrs.client import TUS_VERSION, RsClient, make_data, read_response, upload_id
from pyrs.env import RsArea, wait_for


def auto(env, prefix='Resumable'):
    """The lines of /server-status?auto starting with prefix (Resumable*
    by default) as a dict of ints, keyed without "Resumable"."""
    r = RsClient(env.url).get('/server-status?auto')
    assert r.status == 200, r
    out = {}
    for line in r.body.decode().splitlines():
        k, sep, v = line.partition(': ')
        if sep and k.startswith(prefix):
            out[k[len('Resumable'):]] = int(v)
    return out




class Pinned:
    """Keep-alive requests on one connection, so on one known child."""

    def __init__(self, env, sock, pid):
        self.env, self.sock, self.pid = env, sock, pid
        self.client = RsClient(env.url)

    def req(self, method, path, headers=None, body=b''):
        h = {'Connection': 'keep-alive', 'Tus-Resumable': TUS_VERSION,
             'Content-Length': str(len(body))}
        h.update(headers or {})
        self.sock.sendall(self.client._head_bytes(method, path, h, None) + body)
        return read_response(self.sock, method)

    def create(self, area, length):
        r = self.req('POST', area, {'Upload-Length': str(length)})
        assert r.status == 201, r
        return r.headers['Location']

    def patch(self, url, offset, data, headers=None):
        h = {'Upload-Offset': str(offset),
             'Content-Type': 'application/offset+octet-stream'}
        h.update(headers or {})
        return self.req('PATCH', url, h, data)


def pinned_children(env, n=2, tries=60):
    """n connections held by n different children (bounded tries)."""
    got, spare = {}, []
    client = RsClient(env.url)
    for _ in range(tries):
        s = client.connect()
        # httpd accepts a connection once data arrived (TCP_DEFER_ACCEPT):
        # start a request, find its child, then finish it
        s.sendall(f'GET /server-status?auto HTTP/1.1\r\nHost: {env.host}\r\n'
                  'Connection: keep-alive\r\n'.encode())
        pid = None
        for _ in range(100):
            pid = env.child_for_connection(s)
            if pid:
                break
            time.sleep(0.02)
        s.sendall(b'\r\n')
        assert read_response(s).status == 200
        if pid and pid not in got:
            got[pid] = Pinned(env, s, pid)
        else:
            spare.append(s)
        if len(got) >= n:
            break
    for s in spare:
        s.close()
    return list(got.values())


UPLOAD_KEYS = ('UploadsCreated', 'UploadsCompleted', 'UploadsTerminated',
               'UploadsExpired', 'UploadsFailed', 'BytesReceived',
               'UploadsInFlight')


class TestStatus:
    CONF = dict(areas=[
        RsArea('/files/', dir='st_files', directives=['ResumableExpire 1h']),
        RsArea('/exp/', dir='st_exp', directives=['ResumableExpire 2']),
    ])

    def test_rs_980_01_mix_across_children(self, env):
        before = auto(env)
        for k in UPLOAD_KEYS:
            assert k in before, f'no Resumable{k} line: {before}'
        kids = pinned_children(env)
        assert len(kids) == 2, 'could not reach two httpd children'
        sent = 0
        for k in kids:
            # complete
            url = k.create('/files/', 1000)
            r = k.patch(url, 0, make_data(1000, seed=1))
            assert r.status == 204, r
            # terminated
            url = k.create('/files/', 100)
            assert k.req('DELETE', url).status == 204
            # failed: the checksum does not match (460), bytes not counted
            url = k.create('/files/', 100)
            r = k.patch(url, 0, make_data(100, seed=2),
                        {'Upload-Checksum': 'sha1 AAAAAAAAAAAAAAAAAAAAAAAAAAA='})
            assert r.status == 460, r
            # expired: untouched for ResumableExpire 2
            url = k.create('/exp/', 100)
            assert k.patch(url, 0, b'x' * 10).status == 204
            sent += 1000 + 100 + 10
        for k in kids:
            k.sock.close()

        def delta():
            now = auto(env)
            return {key: now.get(key, 0) - before.get(key, 0) for key in now}
        assert wait_for(lambda: delta()['UploadsExpired'] >= 2, timeout=15), delta()
        d = delta()
        assert d['UploadsCreated'] == 8, d
        assert d['UploadsCompleted'] == 2, d
        assert d['UploadsTerminated'] == 2, d
        assert d['UploadsExpired'] == 2, d
        assert d['UploadsFailed'] == 2, d
        assert d['BytesReceived'] == sent, d
        assert auto(env)['UploadsInFlight'] == 0
        assert d['RequestsTus'] == 16, d
        assert d['Status460'] == 2, d
        assert d['ErrorChecksumMismatch'] == 2, d
        assert d['Sweeps'] >= 1, d

    def test_rs_980_02_restarts_keep_counts(self, env):
        tus = env.tus('/files/')
        tus.upload(make_data(500, seed=3))
        before = auto(env)
        assert before['UploadsCreated'] >= 1 and before['UploadsCompleted'] >= 1
        old = set(env.children())
        env.graceful()
        assert wait_for(lambda: set(env.children()) - old, timeout=15)
        after = auto(env)
        for k in UPLOAD_KEYS:
            assert after[k] == before[k], (k, before, after)
        env.restart()
        again = auto(env)
        for k in UPLOAD_KEYS:
            assert again[k] == before[k], (k, before, again)
        # and the children of the new generation add to them
        tus = env.tus('/files/')
        tus.upload(make_data(10, seed=4))
        last = auto(env)
        assert last['UploadsCreated'] == before['UploadsCreated'] + 1
        assert last['UploadsCompleted'] == before['UploadsCompleted'] + 1
        assert last['BytesReceived'] == before['BytesReceived'] + 10

    def test_rs_980_03_in_flight(self, env):
        tus = env.tus('/files/')
        url = tus.create(length=2000)
        s = RsClient(env.url).send_partial(
            'PATCH', url, {'Tus-Resumable': TUS_VERSION, 'Upload-Offset': '0',
                           'Content-Type': 'application/offset+octet-stream'},
            make_data(1000, seed=5), 2000)
        try:
            assert wait_for(lambda: auto(env)['UploadsInFlight'] == 1, timeout=10)
            s.sendall(make_data(2000, seed=5)[1000:])
            r = read_response(s, 'PATCH')
            assert r.status == 204, r
        finally:
            s.close()
        assert wait_for(lambda: auto(env)['UploadsInFlight'] == 0, timeout=10)
        assert tus.offset(url) == 2000
        assert upload_id(url)

    def test_rs_980_04_html_page(self, env):
        r = RsClient(env.url).get('/server-status')
        assert r.status == 200, r
        html = r.body.decode()
        assert '<h2 id="resumable">mod_resumable</h2>' in html
        assert 'UploadsCreated' in html and 'UploadsInFlight' in html
        r = RsClient(env.url).get('/server-status?notable')
        text = r.body.decode().split('<h2 id="resumable">', 1)[1]
        assert '<table' not in text.split('</body>')[0], text
        assert re.search(r'bytes received \(ResumableBytesReceived\): \d+<br>', text), text
        chromium = os.environ.get('CHROMIUM', '/usr/bin/chromium')
        if not shutil.which(chromium):
            pytest.skip(f'{chromium} is not installed')
        out = env.gen / 'screenshots'
        out.mkdir(parents=True, exist_ok=True)
        png = out / 'rs_980_04_server_status.png'
        if png.exists():
            png.unlink()
        home = env.gen / 'chromium-home'
        home.mkdir(exist_ok=True)
        p = subprocess.run(
            [chromium, '--headless', '--no-sandbox', '--disable-gpu',
             '--disable-background-networking', '--disable-component-update',
             '--no-first-run', f'--user-data-dir={home}',
             '--window-size=1100,2600', f'--screenshot={png}',
             f'{env.url}/server-status#resumable'],
            capture_output=True, timeout=90, env={**os.environ, 'HOME': str(home)})
        assert png.exists() and png.stat().st_size > 5000, p.stderr.decode()[-2000:]

    def test_rs_980_05_lock_takeover(self, env):
        """A stalled writer yields to a newer PATCH: one takeover, and the
        stalled request counts as failed (400 ERR_INTERRUPTED)."""
        tus = env.tus('/files/')
        data = make_data(200000, seed=6)
        url = tus.create(length=len(data))
        before = auto(env)
        s = RsClient(env.url).send_partial(
            'PATCH', url, {'Tus-Resumable': TUS_VERSION, 'Upload-Offset': '0',
                           'Content-Type': 'application/offset+octet-stream'},
            data[:100000], len(data))
        try:
            # the stalled writer puts what it has on disk at its idle tick
            assert wait_for(lambda: tus.offset(url) == 100000, timeout=10)
            r = tus.patch(url, 100000, data[100000:], timeout=15)
            assert r.status == 204, r
        finally:
            s.close()

        def delta(key):
            return auto(env).get(key, 0) - before.get(key, 0)
        assert wait_for(lambda: delta('UploadsInFlight') == 0, timeout=10)
        assert delta('LockTakeovers') == 1
        assert delta('UploadsFailed') == 1
        assert delta('ErrorInterrupted') == 1
        assert delta('UploadsCompleted') == 1
        assert delta('BytesReceived') == len(data)
