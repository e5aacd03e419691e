"""91x: 100 concurrent requests racing on one upload: bytes land exactly
once. A stalled client is cut by mod_reqtimeout and releases its upload, so
a resume succeeds (the takeover of rs_lock is set out of reach here).
Every loop is bounded."""
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from pyrs.client import OCTET, abort_socket, make_data, sha256, upload_id
from pyrs.env import RsArea

AREA = 'race913'
# AH00484: 100 clients are more than MaxRequestWorkers (64): expected here
ALLOW = dict(tags=['AH00484'], patterns=[r'\[resumable:warn\]', r'AH01382'])
N = 100


def race(n, fn):
    """Run fn(i) in n threads released together; returns the results."""
    barrier = threading.Barrier(n, timeout=30)

    def go(i):
        barrier.wait()
        return fn(i)

    with ThreadPoolExecutor(max_workers=n) as ex:
        return list(ex.map(go, range(n)))


def check_final(env, tus, url, data):
    r = tus.head(url)
    assert r.status == 200 and r.headers['Upload-Offset'] == str(len(data)), r
    assert sha256(tus.get(url).body) == sha256(data)


@pytest.mark.slow
class TestRace:
    CONF = dict(areas=[RsArea('/files/', dir=AREA,
                              directives=['ResumableExpire 1h',
                                          'ResumableLockWait 2',
                                          'ResumableStallTime 60'])],
                server_extra='RequestReadTimeout header=5 body=2')
    ALLOW_ERRORS = ALLOW

    def test_rs_913_01_same_patch(self, env):
        """100 identical PATCHes at offset 0: exactly one stores the bytes,
        the others are refused (409 offset / 423 locked), none fails."""
        tus = env.tus('/files/')
        data = make_data(256 * 1024, seed=9131)
        url = tus.create(length=len(data))
        res = race(N, lambda i: tus.patch(url, 0, data, timeout=60))
        codes = sorted(r.status for r in res)
        assert codes.count(204) == 1, codes
        assert set(codes) <= {204, 409, 423}, codes
        check_final(env, tus, url, data)

    def test_rs_913_02_racing_appenders(self, env):
        """100 clients each append the next 4 KiB at the offset they last
        saw: every byte lands exactly once, in order."""
        tus = env.tus('/files/')
        data = make_data(400 * 1024, seed=9132)
        url = tus.create(length=len(data))
        chunk = 4096

        def appender(i):
            codes = []
            for _ in range(40):
                r = tus.head(url, timeout=60)
                off = int(r.headers['Upload-Offset'])
                if off >= len(data):
                    break
                r = tus.patch(url, off, data[off:off + chunk], timeout=60)
                codes.append(r.status)
            return codes

        codes = [c for cs in race(N, appender) for c in cs]
        assert set(codes) <= {204, 409, 423}, sorted(set(codes))
        assert codes.count(204) == len(data) // chunk, codes.count(204)
        check_final(env, tus, url, data)

    def test_rs_913_03_stalled_client_released(self, env):
        """A client stalls mid-body; mod_reqtimeout (body=2) ends its
        request and the upload is released: the resume succeeds."""
        tus = env.tus('/files/')
        data = make_data(1024 * 1024, seed=9133)
        url = tus.create(length=len(data))
        h = dict(tus.base_headers)
        h.update({'Upload-Offset': '0', 'Content-Type': OCTET})
        s = env.client.send_partial('PATCH', url, h, data[:300 * 1024], len(data))
        try:
            t0 = time.time()
            r = None
            for _ in range(60):
                off = int(tus.head(url).headers['Upload-Offset'])
                r = tus.patch(url, off, data[off:], timeout=30)
                # 423: still held; 409: the stalled request stored more
                # bytes since the HEAD (a client reads the offset again)
                if r.status not in (409, 423):
                    break
                time.sleep(0.25)
            assert r.status == 204, r
            # released by the timeout, not by a takeover (StallTime 60)
            assert time.time() - t0 < 30
        finally:
            abort_socket(s)
        check_final(env, tus, url, data)
        area = env.area_dir(AREA)
        assert env.sha256_file(area / upload_id(url)) == sha256(data)
