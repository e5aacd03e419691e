"""5xx: concurrency and locking across threads and child processes."""
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from pyrs.client import OCTET, make_data, read_response, sha256, upload_id
from pyrs.env import RsArea

ALLOW = dict(patterns=[r'\[resumable:warn\]'])


def patch_headers(offset):
    return {'Tus-Resumable': '1.0.0', 'Upload-Offset': str(offset), 'Content-Type': OCTET}


class Streamer(threading.Thread):
    """Streams data as one PATCH in pieces with small pauses; keeps the
    response (or the exception)."""

    def __init__(self, env, url, data, offset=0, piece=65536, pause=0.03):
        super().__init__(daemon=True)
        self.env, self.url, self.data, self.offset = env, url, data, offset
        self.piece, self.pause = piece, pause
        self.resp = None
        self.error = None
        self.started_at = None

    def run(self):
        try:
            body = self.data[self.offset:]
            s = self.env.client.send_partial('PATCH', self.url, patch_headers(self.offset),
                                             b'', len(body), timeout=30)
            self.started_at = time.time()
            try:
                for i in range(0, len(body), self.piece):
                    s.sendall(body[i:i + self.piece])
                    time.sleep(self.pause)
                self.resp = read_response(s, 'PATCH', timeout=30)
            finally:
                s.close()
        except Exception as ex:   # reported by the test
            self.error = ex


class TestLocking:
    CONF = dict(areas=[RsArea('/files/', dir='locking')])
    ALLOW_ERRORS = ALLOW

    def test_rs_500_01_second_writer_refused(self, env):
        tus = env.tus('/files/')
        data = make_data(6 * 1024 * 1024, seed=1)
        url = tus.create(length=len(data))
        first = Streamer(env, url, data)      # ~3 s of steady writing
        first.start()
        deadline = time.time() + 5
        while first.started_at is None and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        r = tus.patch(url, 0, b'x' * 1000, timeout=20)
        assert r.status in (423, 409), r
        first.join(40)
        assert not first.is_alive()
        assert first.error is None, first.error
        assert first.resp.status == 204, first.resp
        assert first.resp.headers.get('Upload-Offset') == str(len(data))
        assert sha256(tus.get(url).body) == sha256(data)
        assert env.sha256_file(env.area_dir('locking') / upload_id(url)) == sha256(data)

    def test_rs_500_02_racing_patches(self, env):
        """Many PATCHes at the same offset: exactly one wins."""
        tus = env.tus('/files/')
        url = tus.create(length=1024)
        bodies = [bytes([65 + i]) * 1024 for i in range(10)]
        barrier = threading.Barrier(len(bodies), timeout=10)

        def one(body):
            barrier.wait()
            return tus.patch(url, 0, body, timeout=20)

        with ThreadPoolExecutor(len(bodies)) as ex:
            results = list(ex.map(one, bodies))
        statuses = sorted(r.status for r in results)
        assert statuses.count(204) == 1, statuses
        assert all(s in (204, 409, 423) for s in statuses), statuses
        winner = bodies[[r.status for r in results].index(204)]
        assert tus.get(url).body == winner

    def test_rs_500_03_many_creations(self, env):
        tus = env.tus('/files/')
        datas = [make_data(20000 + i, seed=100 + i) for i in range(24)]

        def one(data):
            url = tus.create(length=len(data))
            tus.upload_rest(url, data, 0, chunk_size=7000)
            return url

        with ThreadPoolExecutor(8) as ex:
            urls = list(ex.map(one, datas))
        assert len({upload_id(u) for u in urls}) == len(urls)
        for url, data in zip(urls, datas):
            assert sha256(env.client.get(url).body) == sha256(data)

    def test_rs_500_04_parallel_uploads_interleaved(self, env):
        tus = env.tus('/files/')
        datas = [make_data(300000, seed=200 + i) for i in range(8)]
        urls = [tus.create(length=len(d)) for d in datas]

        def step(i, k):
            off = k * 75000
            r = tus.patch(urls[i], off, datas[i][off:off + 75000])
            assert r.status == 204, r

        with ThreadPoolExecutor(8) as ex:
            for k in range(4):
                list(ex.map(lambda i: step(i, k), range(8)))
        for url, data in zip(urls, datas):
            assert sha256(env.client.get(url).body) == sha256(data)


@pytest.mark.slow
class TestStall:
    CONF = dict(areas=[RsArea('/files/', dir='stall', directives=[
        'ResumableStallTime 1', 'ResumableLockWait 5'])])
    ALLOW_ERRORS = ALLOW

    def stall(self, env, url, data, upto):
        s = env.client.send_partial('PATCH', url, patch_headers(0), data[:upto], len(data),
                                    timeout=30)
        time.sleep(1.0)        # the server reads what was sent, then idles
        return s

    def test_rs_500_10_stalled_writer_yields(self, env):
        tus = env.tus('/files/')
        data = make_data(2 * 1024 * 1024, seed=10)
        url = tus.create(length=len(data))
        s = self.stall(env, url, data, 1024 * 1024)
        try:
            t0 = time.time()
            r = tus.head(url, timeout=15)
            assert r.status == 200, r
            off = int(r.headers['Upload-Offset'])
            assert 0 <= off <= 1024 * 1024
            r = tus.patch(url, off, data[off:], timeout=15)
            elapsed = time.time() - t0
            assert r.status == 204, r
            assert elapsed < 8, f'took {elapsed:.1f}s (Timeout is 10s)'
            assert sha256(tus.get(url).body) == sha256(data)
            assert env.sha256_file(env.area_dir('stall') / upload_id(url)) == sha256(data)
        finally:
            s.close()

    def test_rs_500_11_stalled_writer_cannot_corrupt(self, env):
        """The writer that lost its turn sends more: the upload stays intact."""
        tus = env.tus('/files/')
        data = make_data(1024 * 1024, seed=11)
        url = tus.create(length=len(data))
        s = self.stall(env, url, data, 300000)
        try:
            off = int(tus.head(url, timeout=15).headers['Upload-Offset'])
            r = tus.patch(url, off, data[off:], timeout=15)
            assert r.status == 204, r
            try:     # the old request goes on with garbage
                s.sendall(b'\0' * 200000)
                r_old = read_response(s, 'PATCH', timeout=10)
                assert r_old.status != 204, r_old
            except OSError:
                pass   # connection closed by the server: fine
        finally:
            s.close()
        time.sleep(0.5)
        assert tus.offset(url) == len(data)
        assert sha256(tus.get(url).body) == sha256(data)

    def test_rs_500_12_active_writer_not_preempted(self, env):
        """A writer that keeps sending is not taken over by a newcomer."""
        tus = env.tus('/files/')
        data = make_data(4 * 1024 * 1024, seed=12)
        url = tus.create(length=len(data))
        first = Streamer(env, url, data, piece=32768, pause=0.02)   # ~2.6 s
        first.start()
        deadline = time.time() + 5
        while first.started_at is None and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        r = tus.patch(url, 0, b'y' * 100, timeout=20)
        assert r.status in (409, 423), r
        first.join(40)
        assert first.error is None, first.error
        assert first.resp.status == 204, first.resp
        assert sha256(tus.get(url).body) == sha256(data)
