"""26x: upload bodies read from the socket in large blocks
(ResumableReadSize, src/mod_resumable_netread.c): keep-alive, pipelining,
chunked bodies, slow clients and the Off switch keep working."""
import re
import socket
import time

from pyrs.client import OCTET, make_data, sha256
from pyrs.env import RsArea

BLOCKS = re.compile(r'RS04050: reading the body (\d+) bytes at a time')


def patch_head(path, offset, length, close=False, extra=''):
    """The head of a tus PATCH of `length` bytes (extra: more header lines,
    each ending in CRLF)."""
    return (f'PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\n'
            f'Upload-Offset: {offset}\r\nContent-Type: {OCTET}\r\n'
            f'Content-Length: {length}\r\n{extra}'
            f'Connection: {"close" if close else "keep-alive"}\r\n\r\n').encode()


def patch_bytes(path, offset, body, close=False):
    return patch_head(path, offset, len(body), close) + body


def head_bytes(path):
    return (f'HEAD {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\n'
            'Connection: close\r\n\r\n').encode()


def read_all(sock, timeout=30):
    """Everything the server sends until it closes (bounded)."""
    sock.settimeout(timeout)
    out = []
    for _ in range(100000):
        b = sock.recv(65536)
        if not b:
            break
        out.append(b)
    return b''.join(out).decode('latin-1')


def statuses(text):
    return [int(m) for m in re.findall(r'^HTTP/1\.1 (\d{3})', text, re.M)]


def offsets(text):
    return [int(m) for m in re.findall(r'^Upload-Offset: (\d+)', text, re.M | re.I)]


def path_of(url):
    return '/' + url.split('/', 3)[3]


def block_sizes(env, mark):
    return [int(m.group(1)) for line in env.log_lines(mark)
            for m in [BLOCKS.search(line)] if m]


def pipelined(env, connect, seed):
    """Two PATCHes of 5 MiB and a HEAD of one upload, sent at once on the
    socket connect() opens: every answer right, bytes intact, both bodies
    read in 256 KiB blocks (what one block holds past the first body
    belongs to the next request)."""
    tus = env.tus('/files/')
    data = make_data(10 * 1024 * 1024 + 100, seed=seed)
    half = 5 * 1024 * 1024 + 3
    url = tus.create(length=len(data))
    path = path_of(url)
    mark = env.log_mark()
    s = connect()
    try:
        s.sendall(patch_bytes(path, 0, data[:half]) + patch_bytes(path, half, data[half:])
                  + head_bytes(path))
        text = read_all(s)
    finally:
        s.close()
    assert statuses(text) == [204, 204, 200], text[:500]
    assert offsets(text) == [half, len(data), len(data)]
    assert sha256(tus.get(url).body) == sha256(data)
    assert block_sizes(env, mark) == [256 * 1024, 256 * 1024]


def patch_sequence(env, count, piece, seed):
    """`count` PATCHes of `piece` bytes one after the other on one
    kept-alive connection, each answered before the next is sent (the
    last asks to close); the stored bytes are checked."""
    tus = env.tus('/files/')
    data = make_data(count * piece, seed=seed)
    url = tus.create(length=len(data))
    path = path_of(url)
    s = env.client.connect(30)
    try:
        for i in range(count):
            s.sendall(patch_bytes(path, i * piece, data[i * piece:(i + 1) * piece],
                                  close=i == count - 1))
            got = b''
            for _ in range(1000):
                got += s.recv(4096)
                if b'\r\n\r\n' in got:
                    break
            assert got.startswith(b'HTTP/1.1 204'), got[:200]
            assert f'Upload-Offset: {(i + 1) * piece}'.encode() in got
    finally:
        s.close()
    assert sha256(tus.get(url).body) == sha256(data)


class TestNetRead:
    CONF = dict(areas=[RsArea('/files/', dir='netread')])

    def test_rs_260_01_large_body(self, env):
        """A body over 64 KiB is read in ResumableReadSize blocks (default
        256K) and stored intact, a 1 MiB one too (issue 15: small uploads);
        one of 64 KiB or less keeps httpd's reads."""
        tus = env.tus('/files/')
        data = make_data(5 * 1024 * 1024 + 7, seed=26)
        mark = env.log_mark()
        url = tus.create(length=len(data))
        r = tus.patch(url, 0, data)
        assert r.status == 204, r
        assert tus.get(url).body == data
        assert block_sizes(env, mark) == [256 * 1024]
        mark = env.log_mark()
        mid = make_data(1024 * 1024, seed=25)
        url = tus.create(length=len(mid))
        assert tus.patch(url, 0, mid).status == 204
        assert tus.get(url).body == mid
        assert block_sizes(env, mark) == [256 * 1024]
        mark = env.log_mark()
        small = make_data(64 * 1024, seed=27)
        url = tus.create(length=len(small))
        assert tus.patch(url, 0, small).status == 204
        assert tus.get(url).body == small
        assert block_sizes(env, mark) == []

    def test_rs_260_02_pipelined(self, env):
        """Two large PATCHes and a HEAD sent at once on one connection."""
        pipelined(env, lambda: env.client.connect(30), 28)

    def test_rs_260_03_keepalive_sequence(self, env):
        """Several large PATCHes one after the other on one kept-alive
        connection, each answered before the next is sent."""
        patch_sequence(env, 4, 4 * 1024 * 1024 + 11, 29)

    def test_rs_260_04_chunked(self, env):
        """A chunked body (length unknown to httpd) is read in blocks too."""
        tus = env.tus('/files/')
        data = make_data(2 * 1024 * 1024 + 33, seed=30)
        url = tus.create(length=len(data))
        mark = env.log_mark()
        r = env.client.request('PATCH', url, {'Tus-Resumable': '1.0.0', 'Upload-Offset': '0',
                                              'Content-Type': OCTET},
                               body=data, chunked=True, chunk_size=100000)
        assert r.status == 204, r
        assert tus.get(url).body == data
        assert block_sizes(env, mark) == [256 * 1024]

    def test_rs_260_05_slow_client(self, env):
        """A client sending small pieces with pauses: every short read is
        kept (copied into a buffer of its size), nothing lost."""
        tus = env.tus('/files/')
        data = make_data(200 * 1024 + 5, seed=31)
        url = tus.create(length=len(data))
        r = env.client.request('PATCH', url, {'Tus-Resumable': '1.0.0', 'Upload-Offset': '0',
                                              'Content-Type': OCTET},
                               body=data, chunk_size=2048, send_delay=0.002)
        assert r.status == 204, r
        assert tus.get(url).body == data

    def test_rs_260_06_client_gone(self, env):
        """A client that disappears mid-body: what arrived is kept, the
        upload resumes to the same bytes."""
        tus = env.tus('/files/')
        data = make_data(5 * 1024 * 1024 + 9, seed=32)
        url = tus.create(length=len(data))
        s = env.client.send_partial('PATCH', url, {'Tus-Resumable': '1.0.0',
                                                   'Upload-Offset': '0',
                                                   'Content-Type': OCTET},
                                    data[:400 * 1024], len(data))
        time.sleep(0.3)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b'\x01\x00\x00\x00\x00\x00\x00\x00')
        s.close()
        off = None
        for _ in range(50):
            off = tus.offset(url)
            if off == 400 * 1024:
                break
            time.sleep(0.1)
        assert off == 400 * 1024
        assert tus.patch(url, off, data[off:]).status == 204
        assert tus.get(url).body == data


def one_patch_blocks(env, size, seed):
    """One PATCH of `size` bytes: checks the stored bytes, returns the
    block sizes the server logged for it."""
    tus = env.tus('/files/')
    data = make_data(size, seed=seed)
    mark = env.log_mark()
    url = tus.create(length=len(data))
    assert tus.patch(url, 0, data).status == 204
    assert sha256(tus.get(url).body) == sha256(data)
    return block_sizes(env, mark)


class TestNetReadOff:
    CONF = dict(server_extra='ResumableReadSize Off',
                areas=[RsArea('/files/', dir='netread-off')])

    def test_rs_260_10_off(self, env):
        """ResumableReadSize Off: httpd's own reads, same result."""
        assert one_patch_blocks(env, 5 * 1024 * 1024 + 1, 33) == []


class TestNetReadSize:
    CONF = dict(server_extra='ResumableReadSize 1M',
                areas=[RsArea('/files/', dir='netread-1m')])

    def test_rs_260_20_one_mib(self, env):
        assert one_patch_blocks(env, 5 * 1024 * 1024 + 3, 34) == [1024 * 1024]

def tls_conf(env):
    """The same area also served over TLS on a second port (mod_ssl sits
    between HTTP_IN and the core filter; the core filter still reads the
    socket, now in large blocks of TLS records)."""
    import subprocess
    from pyrs.env import MODULES_DIR, _free_port
    d = env.gen / 'tls'
    d.mkdir(parents=True, exist_ok=True)
    key, crt = d / 'key.pem', d / 'cert.pem'
    if not crt.exists():
        subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes',
                        '-keyout', str(key), '-out', str(crt), '-days', '2',
                        '-subj', '/CN=127.0.0.1', '-addext', 'basicConstraints=CA:FALSE',
                        '-addext', 'subjectAltName=IP:127.0.0.1'],
                       check=True, capture_output=True)
    env.tls_port = _free_port()
    return dict(
        areas=[RsArea('/files/', dir='netread-tls')],
        extra='\n'.join([
            f'LoadModule ssl_module "{MODULES_DIR}/mod_ssl.so"',
            f'LoadModule socache_shmcb_module "{MODULES_DIR}/mod_socache_shmcb.so"',
            f'SSLSessionCache "shmcb:{d}/scache(512000)"',
            f'Listen 127.0.0.1:{env.tls_port}',
            f'<VirtualHost 127.0.0.1:{env.tls_port}>',
            '    ServerName 127.0.0.1',
            '    SSLEngine on',
            f'    SSLCertificateFile "{crt}"',
            f'    SSLCertificateKeyFile "{key}"',
            '</VirtualHost>']))


class TestNetReadTLS:
    CONF = tls_conf

    def tls_socket(self, env):
        import ssl
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        raw = socket.create_connection(('127.0.0.1', env.tls_port), timeout=30)
        return ctx.wrap_socket(raw, server_hostname='127.0.0.1')

    def test_rs_260_30_tls_pipelined(self, env):
        """Over TLS: a large body read in blocks, two PATCHes and a HEAD
        pipelined on one connection, all answered right, bytes intact."""
        pipelined(env, lambda: self.tls_socket(env), 35)
