"""261: upload bodies moved from the socket into the data file in the
kernel (ResumableSplice, src/mod_resumable_netread.c): every protocol that
stores a body as it is splices it (a tus checksum of 1 MiB or more too);
TLS and the Off switch read it as memory; body boundaries (keep-alive, pipelining), slow and vanishing
clients and Expect: 100-continue keep working, bytes intact."""
import re
import socket
import time

from pyrs.client import OCTET, make_data, sha256
from pyrs.env import RsArea

from test_260_netread import (patch_bytes, patch_head, head_bytes, read_all, statuses,
                              offsets, path_of, tls_conf, pipelined,
                              patch_sequence)

SPLICED = re.compile(r'RS04051: moving the body into the file in the kernel')
NOT_SPLICED = re.compile(r'RS04052: not splicing the body: input filter (.+) reads it')
BIG = 5 * 1024 * 1024


def spliced(env, mark):
    """Bodies spliced since mark; none of their pieces may have been read
    back into memory (a split pipe bucket costs a copy and 1 MiB)."""
    lines = env.log_lines(mark)
    assert not [l for l in lines if 'RS04053' in l], 'a pipe bucket was read'
    return sum(1 for line in lines if SPLICED.search(line))


def refused_by(env, mark):
    return [m.group(1) for line in env.log_lines(mark)
            for m in [NOT_SPLICED.search(line)] if m]


def tus_patch(env, size, seed, **kw):
    """One tus upload of `size` bytes in one PATCH; returns (url, data)."""
    tus = env.tus('/files/')
    data = make_data(size, seed=seed)
    url = tus.create(length=len(data))
    r = tus.patch(url, 0, data, **kw)
    assert r.status == 204, r
    return url, data


class TestSplice:
    CONF = dict(areas=[RsArea('/files/', dir='splice')])

    def test_rs_261_01_tus_patch(self, env):
        """A large tus PATCH is spliced and stored intact, a 1 MiB one too
        (issue 15); a small one (64 KiB or less) is not: it keeps httpd's
        reads."""
        tus = env.tus('/files/')
        mark = env.log_mark()
        url, data = tus_patch(env, BIG + 4097, 61)
        assert sha256(tus.get(url).body) == sha256(data)
        assert spliced(env, mark) == 1
        mark = env.log_mark()
        url, data = tus_patch(env, 1024 * 1024, 62)
        assert tus.get(url).body == data
        assert spliced(env, mark) == 1
        mark = env.log_mark()
        url, data = tus_patch(env, 64 * 1024, 63)
        assert tus.get(url).body == data
        assert spliced(env, mark) == 0

    def test_rs_261_02_ietf_append(self, env):
        """IETF (interop version 6): appends are spliced, with and without
        completing the upload, when no digest is to be computed."""
        from test_700_ietf import ireq, hdrs
        data = make_data(2 * BIG + 12345, seed=63)
        r = ireq(env, 'POST', '/files/', hdrs(6, False, length=len(data)))
        assert r.status == 201, r
        url = r.headers['Location']
        mark = env.log_mark()
        r = ireq(env, 'PATCH', url, hdrs(6, False, 0, patch=True), body=data[:BIG])
        assert r.status == 204, r
        assert spliced(env, mark) == 1
        mark = env.log_mark()
        r = ireq(env, 'PATCH', url, hdrs(6, True, BIG, patch=True), body=data[BIG:])
        assert r.status == 200, r
        assert spliced(env, mark) == 1        # no digest asked for
        assert sha256(env.client.get(url).body) == sha256(data)

    def test_rs_261_03_checksum_spliced(self, env):
        """A tus checksum of 1 MiB or more is spliced too and digested from
        the page cache by a worker (issue 15, test_267); a smaller one is
        read as memory and digested as it streams. Verified, stored."""
        import base64
        import hashlib
        for size, n in ((BIG + 1, 1), (512 * 1024, 0)):
            data = make_data(size, seed=64)
            tus = env.tus('/files/')
            url = tus.create(length=len(data))
            mark = env.log_mark()
            digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
            r = tus.patch(url, 0, data, headers={'Upload-Checksum': f'sha256 {digest}'})
            assert r.status == 204, r
            assert spliced(env, mark) == n, size
            assert sha256(tus.get(url).body) == sha256(data)

    def test_rs_261_04_pipelined(self, env):
        """Two spliced PATCHes and a HEAD sent at once: the reader stops at
        each body's end, the next request's bytes are not taken."""
        mark = env.log_mark()
        pipelined(env, lambda: env.client.connect(30), 65)
        assert spliced(env, mark) == 2

    def test_rs_261_05_keepalive(self, env):
        """Spliced PATCHes one after another on one kept-alive connection."""
        mark = env.log_mark()
        patch_sequence(env, 3, BIG + 11, 66)
        assert spliced(env, mark) == 3

    def test_rs_261_06_slow_client(self, env):
        """Small pieces with pauses: every splice is short, nothing lost."""
        tus = env.tus('/files/')
        data = make_data(BIG + 5, seed=67)
        url = tus.create(length=len(data))
        # the first 4 MiB at full speed, then 64 KiB pieces with pauses
        r = env.client.request('PATCH', url, {'Tus-Resumable': '1.0.0', 'Upload-Offset': '0',
                                              'Content-Type': OCTET},
                               body=data, chunk_size=65536, send_delay=0.001)
        assert r.status == 204, r
        assert sha256(tus.get(url).body) == sha256(data)

    def test_rs_261_07_client_gone(self, env):
        """A client that disappears mid-body: what arrived is kept (the
        offset is what reached the file), the upload resumes intact."""
        tus = env.tus('/files/')
        data = make_data(BIG + 9, seed=68)
        url = tus.create(length=len(data))
        sent = 3 * 1024 * 1024 + 77
        s = env.client.send_partial('PATCH', url, {'Tus-Resumable': '1.0.0',
                                                   'Upload-Offset': '0',
                                                   'Content-Type': OCTET},
                                    data[:sent], len(data))
        time.sleep(0.3)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b'\x01\x00\x00\x00\x00\x00\x00\x00')
        s.close()
        off = None
        for _ in range(50):                     # bounded: 5 s
            off = tus.offset(url)
            if off == sent:
                break
            time.sleep(0.1)
        assert off == sent
        assert tus.patch(url, off, data[off:]).status == 204
        assert sha256(tus.get(url).body) == sha256(data)

    def test_rs_261_07b_urgent_byte(self, env):
        """An urgent (out-of-band) byte mid-body: splice stops in front of
        it for good (a thread used to spin there until the server
        stopped); the rest of the body is read into memory, which skips
        it as httpd always did. Answered at once, bytes intact."""
        tus = env.tus('/files/')
        data = make_data(BIG, seed=73)
        url = tus.create(length=len(data))
        mark = env.log_mark()
        s = env.client.connect(30)
        try:
            half = 2 * 1024 * 1024
            s.sendall(patch_head(path_of(url), 0, len(data), close=True) + data[:half])
            time.sleep(0.3)
            s.send(b'X', socket.MSG_OOB)
            s.sendall(data[half:])
            t0 = time.monotonic()
            text = read_all(s, timeout=8)
            took = time.monotonic() - t0
        finally:
            s.close()
        assert statuses(text) == [204], text[:300]
        assert took < 5, took                   # not the 10 s Timeout
        assert spliced(env, mark) == 1
        assert sha256(tus.get(url).body) == sha256(data)

    def test_rs_261_08_expect_continue(self, env):
        """Expect: 100-continue: the interim answer comes (the body is read
        non-blocking, and httpd's HTTP_IN sends it only before a blocking
        read), then the body: spliced when large, read as memory when
        small."""
        tus = env.tus('/files/')
        for size, seed, n_spliced in ((60000, 69, 0), (BIG + 21, 169, 1)):
            data = make_data(size, seed=seed)
            url = tus.create(length=len(data))
            mark = env.log_mark()
            s = env.client.connect(30)
            try:
                s.sendall(patch_head(path_of(url), 0, len(data), close=True,
                                     extra='Expect: 100-continue\r\n'))
                s.settimeout(10)
                interim = s.recv(4096)
                assert interim.startswith(b'HTTP/1.1 100'), interim
                s.sendall(data)
                text = read_all(s)
            finally:
                s.close()
            assert statuses(text) == [204], text[:300]
            assert spliced(env, mark) == n_spliced
            assert sha256(tus.get(url).body) == sha256(data)

    def test_rs_261_09_expect_refused(self, env):
        """Expect: 100-continue on a PATCH at the wrong offset: the error
        comes at once, no 100 before it, the body is not awaited."""
        tus = env.tus('/files/')
        url = tus.create(length=BIG)
        s = env.client.connect(30)
        try:
            s.sendall(patch_head(path_of(url), 5, BIG,
                                 extra='Expect: 100-continue\r\n'))
            text = read_all(s, timeout=10)
        finally:
            s.close()
        assert statuses(text) == [409], text[:300]


def send_in_pieces(sock, payload, rng, max_piece=3 * 1024 * 1024):
    """payload in random-sized pieces, some with a short pause between."""
    at = 0
    for _ in range(10000):                          # bounded
        if at >= len(payload):
            break
        n = rng.randint(1, max_piece)
        sock.sendall(payload[at:at + n])
        at += n
        if rng.random() < 0.2:
            time.sleep(0.005)
    assert at >= len(payload)


class TestSpliceMixed:
    CONF = dict(areas=[RsArea('/files/', dir='splice-mixed')])

    def test_rs_261_40_random_pipelines(self, env):
        """Bounded random trials: on one connection, PATCHes of sizes on
        both sides of the 64 KiB threshold (spliced and not) and a HEAD,
        pipelined and sent in random pieces; every answer and every byte
        right, so no body takes bytes of the request after it."""
        import random
        rng = random.Random(261)
        tus = env.tus('/files/')
        for trial in range(5):
            sizes = [rng.choice([rng.randint(1, 64 * 1024),
                                 rng.randint(64 * 1024 + 1, 7 * 1024 * 1024)])
                     for _ in range(3)]
            data = make_data(sum(sizes), seed=400 + trial)
            url = tus.create(length=len(data))
            path = path_of(url)
            payload, at = b'', 0
            for n in sizes:
                payload += patch_bytes(path, at, data[at:at + n])
                at += n
            payload += head_bytes(path)
            mark = env.log_mark()
            s = env.client.connect(30)
            try:
                send_in_pieces(s, payload, rng)
                text = read_all(s)
            finally:
                s.close()
            want = [sum(sizes[:i + 1]) for i in range(3)]
            assert statuses(text) == [204, 204, 204, 200], (sizes, text[:500])
            assert offsets(text) == want + [len(data)], sizes
            assert sha256(tus.get(url).body) == sha256(data), sizes
            big = sum(1 for n in sizes if n > 64 * 1024)
            assert spliced(env, mark) == big, sizes


class TestSpliceSeeds:
    @staticmethod
    def CONF(env):
        from pyrs.seeds import seeds_conf
        return seeds_conf(env, 'splice-seeds')

    ALLOW_ERRORS = dict(patterns=[r'\[resumable:warn\]'])

    def test_rs_261_10_offset_post(self, env):
        """The offset front end (design document 001) stores its POST
        body through the same append: spliced."""
        from test_800_offset import post, status, file_id
        data = make_data(BIG + 333, seed=70)
        fid = file_id('splice.bin', len(data))
        mark = env.log_mark()
        r = post(env, fid, 0, data, size=len(data))
        assert r.status in (200, 201, 204), r
        assert spliced(env, mark) == 1
        assert status(env, fid) == len(data)


class TestSpliceQuota:
    CONF = dict(areas=[RsArea('/files/', dir='splice-quota')])
    SOFT = '/proc/sys/fs/pipe-user-pages-soft'

    def test_rs_261_15_pipe_quota(self, env):
        """The httpd user's pipe quota spent (fs.pipe-user-pages-soft set
        to 1 page for the test, then restored): no 1 MiB pipe can be had,
        the body is read into memory instead (RS04054), stored intact."""
        import os
        import pytest
        if not env.as_root or not os.access(self.SOFT, os.W_OK):
            pytest.skip('needs root (httpd children as an unprivileged user) '
                        'and a writable ' + self.SOFT)
        with open(self.SOFT) as f:
            saved = f.read().strip()
        tus = env.tus('/files/')
        data = make_data(BIG + 99, seed=74)
        url = tus.create(length=len(data))
        mark = env.log_mark()
        try:
            with open(self.SOFT, 'w') as f:
                f.write('1')
            r = tus.patch(url, 0, data)
        finally:
            with open(self.SOFT, 'w') as f:
                f.write(saved)
        assert r.status == 204, r
        lines = env.log_lines(mark)
        assert [l for l in lines if 'RS04054' in l], 'no quota fallback logged'
        assert sha256(tus.get(url).body) == sha256(data)


class TestSpliceOff:
    CONF = dict(server_extra='ResumableSplice Off',
                areas=[RsArea('/files/', dir='splice-off')])

    def test_rs_261_20_off(self, env):
        """ResumableSplice Off: read as memory (in large blocks), same bytes."""
        tus = env.tus('/files/')
        mark = env.log_mark()
        url, data = tus_patch(env, BIG + 1, 71)
        assert spliced(env, mark) == 0
        assert sha256(tus.get(url).body) == sha256(data)


class TestSpliceTLS:
    CONF = tls_conf

    def test_rs_261_30_tls(self, env):
        """Over TLS the bytes must be decrypted: mod_ssl's filter reads
        them, nothing is spliced, the body is stored intact."""
        import ssl
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        tus = env.tus('/files/')
        data = make_data(BIG + 17, seed=72)
        url = tus.create(length=len(data))
        mark = env.log_mark()
        raw = socket.create_connection(('127.0.0.1', env.tls_port), timeout=30)
        s = ctx.wrap_socket(raw, server_hostname='127.0.0.1')
        try:
            s.sendall(patch_bytes(path_of(url), 0, data, close=True))
            text = read_all(s)
        finally:
            s.close()
        assert statuses(text) == [204], text[:300]
        assert spliced(env, mark) == 0
        assert refused_by(env, mark) == ['ssl/tls filter']
        assert sha256(tus.get(url).body) == sha256(data)
