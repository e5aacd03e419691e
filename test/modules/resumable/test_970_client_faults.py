"""970: a client's fault while the body is read is a 4xx, in the answer and
in the access log, for every protocol (tus, ietf, offset, slice, md5,
flow): a malformed chunked trailer (no colon, a bad field name, a field
longer than LimitRequestFieldSize) or chunk size line is a 400 (httpd's
own handlers answer 400); a client that drops the connection mid-body
(FIN or RST) is logged 400, never 500; a client that stalls past Timeout
gets 408. Each time the upload keeps what it had acknowledged: no file of
the area shrinks or disappears, stream offsets never go back."""
import hashlib
import socket
import time

import pytest

from pyrs.client import OCTET, make_data, read_response, split_url
from pyrs.env import RsArea
from pyrs.hostile import area_state, flow_parts, jbody, mp_type, \
    multipart, send_whole

AREA = 'faults'
P = '/cf/'
TUS = {'Tus-Resumable': '1.0.0'}
IETF = {'Upload-Draft-Interop-Version': '8'}
MP_T = {'Content-Type': mp_type()}
N = 300000                       # body bytes of each faulty request
ACKED = 1000                     # bytes acknowledged before it
# a client's fault is logged at info; httpd's HTTP_IN logs a bad trailer
# or chunk line at info too: nothing above warn is expected
ALLOW = dict(tags=[], patterns=[r'\[resumable:warn\]'])

TRAILERS = {
    'no-colon': b'0\r\nNoColonHere\r\n\r\n',
    'bad-token': b'0\r\nBad Token: x\r\n\r\n',
    'bad-ctl': b'0\r\nX-\x01Ctl: x\r\n\r\n',
    'too-long': b'0\r\nX-Long: ' + b'a' * 20000 + b'\r\n\r\n',
    'bad-size': b'zz\r\nabc\r\n0\r\n\r\n',
    'size-overflow': b'fffffffffffffffffffff\r\n',
}


def md5(b):
    return hashlib.md5(b).hexdigest()


class Proto:
    """One protocol: prepare() acknowledges ACKED bytes (or a chunk) and
    returns (method, path, headers, body) of a request of N body bytes
    that continues the upload; kept() checks the acknowledged bytes."""

    def __init__(self, env, name, n=N):
        self.env, self.name, self.c, self.n = env, name, env.client, n
        self.seq = getattr(Proto, 'seq', 0) + 1
        Proto.seq = self.seq

    def prepare(self):
        getattr(self, 'prep_' + self.name)()
        return self.req

    def prep_tus(self):
        tus = self.env.tus(P)
        self.url = tus.create(length=10 * self.n)
        assert tus.patch(self.url, 0, b'a' * ACKED).status == 204
        self.req = ('PATCH', split_url(self.url)[0],
                    {**TUS, 'Upload-Offset': str(ACKED),
                     'Content-Type': OCTET},
                    make_data(self.n, self.seq))
        self.offset = lambda: tus.offset(self.url)

    def prep_ietf(self):
        r = send_whole(self.c, 'POST', P, dict(IETF, **{
            'Upload-Complete': '?0', 'Upload-Length': str(10 * self.n)}),
            b'a' * ACKED)
        assert r.status == 201, r
        path = split_url(r.headers['Location'])[0]
        self.req = ('PATCH', path, {
            **IETF, 'Upload-Complete': '?0', 'Upload-Offset': str(ACKED),
            'Content-Type': 'application/partial-upload'},
            make_data(self.n, self.seq))
        self.offset = lambda: int(self.c.head(path, IETF).headers[
            'Upload-Offset'])

    def prep_offset(self):
        fid = f'fault-{self.seq}'
        h = {'X-File-Id': fid, 'X-File-Size': str(10 * self.n)}
        r = self.c.request('POST', P, dict(h, **{'X-Start-Byte': '0'}),
                           b'a' * ACKED)
        assert r.status == 200, r
        self.req = ('POST', P, dict(h, **{'X-Start-Byte': str(ACKED)}),
                    make_data(self.n, self.seq))
        self.offset = lambda: int(self.c.get(P, {'X-File-Id': fid}).body)

    def _chunk(self, parts):
        r = self.c.request('POST', P, MP_T, multipart(parts))
        assert r.status == 200, r

    def prep_slice(self):
        name = f'fault-{self.seq}.bin'
        self._chunk([('chunk', ('blob', b'a' * ACKED, OCTET)),
                     ('index', '0'), ('name', name)])
        self.req = ('POST', P, MP_T, multipart([
            ('chunk', ('blob', make_data(self.n, self.seq), OCTET)),
            ('index', '1'), ('name', name)]))

    def prep_md5(self):
        c0, c1 = b'a' * ACKED, make_data(self.n, self.seq)
        fid = md5(c0 + c1)
        r = self.c.request('POST', P, {'Content-Type': 'application/json'},
                           jbody({'fileId': fid, 'ext': '.bin',
                                  'chunkIds': [md5(c0) + '0',
                                               md5(c1) + '1']}))
        assert r.status == 200, r
        self._chunk([('file', ('blob', c0, OCTET)),
                     ('chunkId', md5(c0) + '0'), ('fileId', fid)])
        self.req = ('POST', P, MP_T, multipart([
            ('file', ('blob', c1, OCTET)), ('chunkId', md5(c1) + '1'),
            ('fileId', fid)]))

    def prep_flow(self):
        geo = dict(flowChunkSize=self.n, flowTotalSize=2 * self.n,
                   flowTotalChunks=2, flowIdentifier=f'fault-{self.seq}')
        self._chunk(flow_parts(b'a' * self.n, flowChunkNumber=1, **geo))
        self.req = ('POST', P, MP_T, multipart(flow_parts(
            make_data(self.n, self.seq), flowChunkNumber=2,
            flowCurrentChunkSize=self.n, **geo)))


PROTOS = ['tus', 'ietf', 'offset', 'slice', 'md5', 'flow']


def head_bytes(env, method, path, headers, length=None):
    h = dict(headers)
    h['Connection'] = 'close'
    if length is None:
        h['Transfer-Encoding'] = 'chunked'
    else:
        h['Content-Length'] = str(length)
    return env.client._head_bytes(method, path, h, None)


def fault_log(env):
    return env.gen / 'logs' / 'fault_log'


def access_status(env, tag, timeout=15):
    """Status logged for the request that sent X-Fault: tag (a second
    access log, written when httpd is done with the request)."""
    end = time.time() + timeout
    while time.time() < end:
        for line in fault_log(env).read_text().splitlines():
            f = line.split()
            if len(f) == 2 and f[0] == tag:
                return int(f[1])
        time.sleep(0.1)
    raise AssertionError(f'no access log line for X-Fault: {tag}')


def snapshot(env):
    return area_state(env, env.area_dir(AREA))[0]


def assert_kept(env, before, proto, acked_offset):
    """No file of the area shrank or went away; a stream never went back."""
    after = snapshot(env)
    lost = {k: (v, after.get(k)) for k, v in before.items()
            if after.get(k, -1) < v}
    assert not lost, lost
    if hasattr(proto, 'offset'):
        off = proto.offset()
        assert acked_offset <= off <= ACKED + proto.n, off


class TestClientFaults:
    CONF = staticmethod(lambda env: dict(
        server_extra='Timeout 2\nRequestReadTimeout header=5 body=20\n'
                     f'CustomLog "{fault_log(env)}" "%{{X-Fault}}i %>s"',
        areas=[RsArea(P, dir=AREA, directives=[
            f'ResumableMaxSize {200 * 1024 * 1024}'])]))
    ALLOW_ERRORS = ALLOW

    def run(self, env, name, send, n=N):
        """prepare, send the faulty request, return (answer or None,
        access log status)."""
        proto = Proto(env, name, n)
        method, path, headers, body = proto.prepare()
        tag = f'{name}-{proto.seq}'
        headers = dict(headers, **{'X-Fault': tag})
        before = snapshot(env)
        answer = send(env, method, path, headers, body)
        status = access_status(env, tag)
        assert_kept(env, before, proto, ACKED)
        return answer, status

    @pytest.mark.parametrize('proto', PROTOS)
    @pytest.mark.parametrize('trailer', sorted(TRAILERS))
    def test_rs_970_01_bad_trailer(self, env, proto, trailer):
        """The whole body chunked, then a malformed trailer: 400."""
        def send(env, method, path, headers, body):
            s = env.client.connect(15)
            try:
                s.sendall(head_bytes(env, method, path, headers))
                s.sendall(b'%x\r\n' % len(body) + body + b'\r\n')
                s.sendall(TRAILERS[trailer])
                return read_response(s, method, 15)
            finally:
                s.close()
        r, logged = self.run(env, proto, send)
        want = 413 if trailer == 'size-overflow' else 400   # httpd: ENOSPC
        assert r.status == want, r
        assert logged == want

    @pytest.mark.parametrize('proto', PROTOS)
    @pytest.mark.parametrize('how', ['fin', 'rst', 'fin-chunked'])
    def test_rs_970_02_client_drops(self, env, proto, how):
        """Half the body, then the client goes: logged 4xx, never 5xx."""
        def send(env, method, path, headers, body):
            half = body[:len(body) // 2]
            s = env.client.connect(15)
            if how == 'fin-chunked':
                s.sendall(head_bytes(env, method, path, headers))
                s.sendall(b'%x\r\n' % len(body) + half)
            else:
                s.sendall(head_bytes(env, method, path, headers, len(body)))
                s.sendall(half)
            time.sleep(0.3)
            if how == 'rst':
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             b'\x01\x00\x00\x00\x00\x00\x00\x00')
            s.close()
        _r, logged = self.run(env, proto, send)
        assert 400 <= logged < 500, logged

    @pytest.mark.parametrize('proto', PROTOS)
    @pytest.mark.parametrize('framing', ['length', 'chunked'])
    def test_rs_970_03_client_stalls(self, env, proto, framing):
        """Half the body, then nothing past Timeout (2 s): 408."""
        def send(env, method, path, headers, body):
            s = env.client.connect(15)
            try:
                if framing == 'chunked':
                    s.sendall(head_bytes(env, method, path, headers))
                    s.sendall(b'%x\r\n' % len(body) + body[:len(body) // 2])
                else:
                    s.sendall(head_bytes(env, method, path, headers,
                                         len(body)))
                    s.sendall(body[:len(body) // 2])
                t0 = time.time()
                r = read_response(s, method, 15)
                assert time.time() - t0 < 12
                return r
            finally:
                s.close()
        r, logged = self.run(env, proto, send)
        assert r.status == 408, r
        assert logged == 408

    @pytest.mark.parametrize('proto', ['tus', 'ietf', 'offset'])
    @pytest.mark.parametrize('how', ['fin', 'rst', 'stall'])
    def test_rs_970_04_large_body(self, env, proto, how):
        """A body over 4 MiB is read in large blocks and spliced into the
        file (mod_resumable_netread.c): a client that goes or stalls
        after 2 MiB is logged 400 or 408 there too, and what arrived is
        kept."""
        def send(env, method, path, headers, body):
            s = env.client.connect(15)
            try:
                s.sendall(head_bytes(env, method, path, headers, len(body)))
                s.sendall(body[:2 * 1024 * 1024])
                if how == 'stall':
                    return read_response(s, method, 15)
                time.sleep(0.3)
                if how == 'rst':
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 b'\x01\x00\x00\x00\x00\x00\x00\x00')
            finally:
                s.close()
        r, logged = self.run(env, proto, send, n=6 * 1024 * 1024)
        assert logged == (408 if how == 'stall' else 400), logged
        if how == 'stall':
            assert r.status == 408, r


class TestClientFaultsH2:
    """The same over HTTP/2 (h2c, mod_http2: blocking reads of the
    stream's input): a client that goes mid-body is logged 400, one that
    stalls past Timeout 408; what arrived is kept."""
    CONF = staticmethod(lambda env: dict(
        h2=True, server_extra='Timeout 3\n'
        f'CustomLog "{fault_log(env)}" "%{{X-Fault}}i %>s"',
        areas=[RsArea(P, dir=AREA + '-h2')]))
    ALLOW_ERRORS = ALLOW

    @pytest.mark.parametrize('how', ['kill', 'stall'])
    def test_rs_970_05_h2(self, env, how):
        import subprocess
        tus = env.tus(P)
        url = tus.create(length=10 * N)
        assert tus.patch(url, 0, b'a' * ACKED).status == 204
        tag = f'h2-{how}'
        p = subprocess.Popen(
            ['curl', '-s', '-o', '/dev/null', '--http2-prior-knowledge',
             '-X', 'PATCH', '-H', 'Tus-Resumable: 1.0.0',
             '-H', f'Upload-Offset: {ACKED}', '-H', f'X-Fault: {tag}',
             '-H', f'Content-Type: {OCTET}', '-H', f'Content-Length: {N}',
             '-T', '-', url], stdin=subprocess.PIPE)
        try:
            p.stdin.write(make_data(N // 2, 5))
            p.stdin.flush()
            time.sleep(1)
            if how == 'kill':
                p.kill()
            status = access_status(env, tag, timeout=15)
        finally:
            p.kill()
            p.wait(10)
        assert status == (400 if how == 'kill' else 408), status
        assert ACKED <= tus.offset(url) <= ACKED + N // 2
