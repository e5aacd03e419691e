"""4xx: interrupted uploads resume: client aborts, killed children, restarts."""
import os
import signal
import time

import pytest

from pyrs.client import OCTET, abort_socket, make_data, sha256, upload_id
from pyrs.env import RsArea

AREA = 'resume'
# a client that goes away, or a child that is killed, may be worth a warning
ALLOW = dict(patterns=[r'\[resumable:warn\]'])


def settled_offset(tus, url, timeout=15):
    """HEAD until the offset is stable and a PATCH would not be refused as
    locked (the server may still be finishing the aborted request)."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        r = tus.head(url)
        if r.status == 200 and 'Upload-Offset' in r.headers:
            off = int(r.headers['Upload-Offset'])
            if off == last:
                return off
            last = off
        time.sleep(0.3)
    raise AssertionError(f'offset of {url} did not settle (last {last})')


def patch_rest(tus, url, data, offset, timeout=15):
    """PATCH the rest; retries while the upload is still locked (423)."""
    deadline = time.time() + timeout
    for _ in range(int(timeout / 0.3) + 1):
        r = tus.patch(url, offset, data[offset:])
        if r.status != 423 or time.time() > deadline:
            break
        time.sleep(0.3)
    return r


class TestResume:
    CONF = dict(areas=[RsArea('/files/', dir=AREA)])
    ALLOW_ERRORS = ALLOW

    def partial(self, env, url, data, upto, offset=0):
        s = env.client.send_partial('PATCH', url, {
            'Tus-Resumable': '1.0.0', 'Upload-Offset': str(offset),
            'Content-Type': OCTET}, data[offset:upto], len(data) - offset)
        return s

    @pytest.mark.parametrize('how', ['fin', 'rst'])
    def test_rs_400_01_client_abort(self, env, how):
        tus = env.tus('/files/')
        data = make_data(8 * 1024 * 1024, seed=1)
        sent = 4 * 1024 * 1024
        url = tus.create(length=len(data))
        s = self.partial(env, url, data, sent)
        time.sleep(0.5)
        if how == 'rst':
            abort_socket(s)
        else:
            s.close()
        off = settled_offset(tus, url)
        assert 0 < off <= sent, off
        staged = env.staged_data_file(env.area_dir(AREA), upload_id(url))
        assert staged is not None
        assert staged.stat().st_size == off, (staged, off)
        r = patch_rest(tus, url, data, off)
        assert r.status == 204, r
        assert sha256(tus.get(url).body) == sha256(data)
        assert env.sha256_file(env.area_dir(AREA) / upload_id(url)) == sha256(data)

    def test_rs_400_02_stored_equals_offset(self, env):
        """After a clean abort the offset is exactly what is stored."""
        tus = env.tus('/files/')
        data = make_data(3 * 1024 * 1024, seed=2)
        url = tus.create(length=len(data))
        s = self.partial(env, url, data, 1024 * 1024 + 3)
        time.sleep(0.5)
        s.close()
        off = settled_offset(tus, url)
        staged = env.staged_data_file(env.area_dir(AREA), upload_id(url))
        assert staged.stat().st_size == off, (staged, off)
        with open(staged, 'rb') as f:
            assert sha256(f.read(off)) == sha256(data[:off])
        assert patch_rest(tus, url, data, off).status == 204
        assert sha256(tus.get(url).body) == sha256(data)

    def test_rs_400_03_many_interruptions(self, env):
        tus = env.tus('/files/')
        data = make_data(2 * 1024 * 1024, seed=3)
        url = tus.create(length=len(data))
        off = 0
        for i in range(4):
            upto = min(len(data), off + 300000 + i * 1000)
            s = self.partial(env, url, data, upto, offset=off)
            time.sleep(0.3)
            s.close()
            new = settled_offset(tus, url)
            assert off <= new <= upto
            off = new
        assert patch_rest(tus, url, data, off).status == 204
        assert sha256(tus.get(url).body) == sha256(data)

    def test_rs_400_04_resume_after_restart(self, env):
        tus = env.tus('/files/')
        data = make_data(500000, seed=4)
        url = tus.create(length=len(data), metadata={'filename': 'restart.bin'})
        assert tus.patch(url, 0, data[:200000]).status == 204
        env.restart()
        assert tus.offset(url) == 200000
        env.graceful()
        assert tus.offset(url) == 200000
        assert tus.patch(url, 200000, data[200000:]).status == 204
        assert sha256(tus.get(url).body) == sha256(data)
        assert env.sha256_file(env.area_dir(AREA) / 'restart.bin') == sha256(data)

    def test_rs_400_05_resume_after_stop_start(self, env):
        tus = env.tus('/files/')
        data = make_data(300000, seed=5)
        url = tus.create(length=len(data))
        assert tus.patch(url, 0, data[:100000]).status == 204
        env.stop()
        env.start()
        assert tus.offset(url) == 100000
        assert tus.patch(url, 100000, data[100000:]).status == 204
        assert sha256(tus.get(url).body) == sha256(data)


@pytest.mark.slow
class TestKill:
    CONF = dict(areas=[RsArea('/files/', dir='killed')])
    ALLOW_ERRORS = dict(patterns=ALLOW['patterns'] + [r'exit signal Killed'])

    def test_rs_400_10_kill_child(self, env):
        tus = env.tus('/files/')
        area = env.area_dir('killed')
        data = make_data(16 * 1024 * 1024, seed=10)
        sent = 6 * 1024 * 1024
        url = tus.create(length=len(data))
        uid = upload_id(url)
        s = env.client.send_partial('PATCH', url, {
            'Tus-Resumable': '1.0.0', 'Upload-Offset': '0', 'Content-Type': OCTET},
            data[:sent], len(data))
        try:
            # wait until the server has stored something
            deadline = time.time() + 10
            while time.time() < deadline:
                f = env.staged_data_file(area, uid)
                if f and f.stat().st_size > 0:
                    break
                time.sleep(0.1)
            time.sleep(0.5)
            old = env.children()
            victim = env.child_for_connection(s)
            victims = [victim] if victim else old
            assert victims, 'no child to kill'
            for pid in victims:
                os.kill(pid, signal.SIGKILL)
        finally:
            s.close()
        assert env.wait_children(exclude=victims, timeout=20), 'children not respawned'
        tus_off = settled_offset(tus, url)
        staged = env.staged_data_file(area, uid)
        assert staged is not None
        if env.pg_params:
            # cluster mode (pgsql): the offset is the last checkpoint of
            # the killed writer, bytes after it are re-sent
            assert tus_off <= staged.stat().st_size
        else:
            # one node: the bytes on disk are adopted
            assert tus_off == staged.stat().st_size, (tus_off, staged.stat().st_size)
        assert tus_off <= sent
        with open(staged, 'rb') as f:
            assert sha256(f.read()[:tus_off]) == sha256(data[:tus_off])
        r = patch_rest(tus, url, data, tus_off)
        assert r.status == 204, r
        assert sha256(tus.get(url).body) == sha256(data)
        assert env.sha256_file(area / uid) == sha256(data)
