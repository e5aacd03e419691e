"""964: the mod_status gauges stay true when clients and children misbehave:
UploadsInFlight counts request bodies being read now, so a child killed
(SIGKILL, a crash) in the middle of a body must not leave it counted for
ever (the counters live in shared memory kept across restarts), and
aborted or pipelined requests bring it back to 0."""
import os
import signal
import time

from pyrs.client import TUS_VERSION, RsClient, abort_socket, make_data
from pyrs.env import RsArea
from test_980_status import auto, wait_for

ALLOW = dict(tags=['AH00052'], patterns=[r'\[resumable:warn\]'])


def partial_patch(env, url, sent, total):
    return RsClient(env.url).send_partial(
        'PATCH', url, {'Tus-Resumable': TUS_VERSION, 'Upload-Offset': '0',
                       'Content-Type': 'application/offset+octet-stream'},
        make_data(sent, seed=964), total)


class TestStatusTruth:
    CONF = dict(areas=[RsArea('/files/', dir='st964',
                              directives=['ResumableExpire 1h'])])
    ALLOW_ERRORS = ALLOW

    def test_rs_964_01_killed_child(self, env):
        """A child killed while it reads a body: not in flight any more."""
        tus = env.tus('/files/')
        base = auto(env)['UploadsInFlight']
        for i in range(3):
            url = tus.create(length=5000)
            s = partial_patch(env, url, 1000, 5000)
            try:
                assert wait_for(lambda: auto(env)['UploadsInFlight']
                                == base + 1, timeout=10)
                pid = None
                for _ in range(100):
                    pid = env.child_for_connection(s)
                    if pid:
                        break
                    time.sleep(0.02)
                assert pid
                os.kill(pid, signal.SIGKILL)
            finally:
                s.close()
            assert env.wait_live(10)
            assert wait_for(lambda: auto(env)['UploadsInFlight'] == base,
                            timeout=10), (i, auto(env))

    def test_rs_964_02_aborted_and_pipelined(self, env):
        """Bodies ended by FIN or RST mid-way, and pipelined requests on one
        connection (the last one cut short): the gauge returns to its
        base, and the upload offsets are what reached the disk."""
        tus = env.tus('/files/')
        base = auto(env)['UploadsInFlight']
        for i in range(4):
            url = tus.create(length=5000)
            s = partial_patch(env, url, 700, 5000)
            assert wait_for(lambda: auto(env)['UploadsInFlight'] == base + 1,
                            timeout=10)
            if i % 2:
                abort_socket(s)
            else:
                s.close()
            assert wait_for(lambda: auto(env)['UploadsInFlight'] == base,
                            timeout=10), (i, auto(env))
            assert wait_for(lambda: tus.offset(url) == 700, timeout=10)
        urls = [tus.create(length=10) for _ in range(3)]
        c = RsClient(env.url)
        s = c.connect()
        data = b''
        for n, u in enumerate(urls):
            h = {'Tus-Resumable': TUS_VERSION, 'Upload-Offset': '0',
                 'Content-Type': 'application/offset+octet-stream',
                 'Content-Length': '10', 'Connection': 'keep-alive'}
            data += c._head_bytes('PATCH', u, h, None)
            data += b'0123456789' if n < 2 else b'01234'
        s.sendall(data)
        time.sleep(0.5)
        abort_socket(s)
        assert wait_for(lambda: auto(env)['UploadsInFlight'] == base,
                        timeout=10), auto(env)
        assert [tus.offset(u) for u in urls] == [10, 10, 5]


class TestStatusTruthH2:
    """HTTP/2 (h2c): streams whose client goes mid-body (several at once
    on one connection, then the connection gone) leave no body counted."""
    CONF = dict(h2=True, server_extra='Timeout 3',
                areas=[RsArea('/files/', dir='st964h2',
                              directives=['ResumableExpire 1h'])])
    ALLOW_ERRORS = ALLOW

    def test_rs_964_03_h2_streams_gone(self, env):
        import subprocess
        tus = env.tus('/files/')
        base = auto(env)['UploadsInFlight']
        procs = []
        for i in range(3):
            url = tus.create(length=100000)
            p = subprocess.Popen(
                ['curl', '-s', '-o', '/dev/null', '--http2-prior-knowledge',
                 '-X', 'PATCH', '-H', 'Tus-Resumable: 1.0.0',
                 '-H', 'Upload-Offset: 0',
                 '-H', 'Content-Type: application/offset+octet-stream',
                 '-H', 'Content-Length: 100000', '-T', '-', url],
                stdin=subprocess.PIPE)
            p.stdin.write(make_data(1000, seed=i))
            p.stdin.flush()
            procs.append(p)
        try:
            assert wait_for(lambda: auto(env)['UploadsInFlight']
                            == base + 3, timeout=10), auto(env)
        finally:
            for p in procs:
                p.kill()
                p.wait(10)
        assert wait_for(lambda: auto(env)['UploadsInFlight'] == base,
                        timeout=15), auto(env)
