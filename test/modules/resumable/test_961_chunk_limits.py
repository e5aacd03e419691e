"""961: ResumableMaxSize bounds what a chunk upload stages and declares
(issue 11 part 3), in every chunk protocol, at every chunk: the sum of the
staged chunks, a chunk's place (index x size), and a chunk list declared
before any byte (md5's handshake: at most one chunk per KiB of the
maximum). Before the fix one slice name staged any number of 64 KiB chunks
under a 64 KiB maximum, and an md5 handshake stored 6,500 chunk ids."""
import json

from pyrs.env import RsArea
from test_960_crossproto import (Paths, md5, md5_chunk,
                                 md5_handshake, slice_chunk, slice_merge)
from pyrs.seeds import post_form

MAX = 64 * 1024
P = Paths('/files/')


def staged(env, suffix='.c'):
    st = env.area_dir('limits') / '.resumable'
    return [p for p in st.iterdir() if suffix in p.name] if st.exists() else []


def staged_bytes(env):
    return sum(p.stat().st_size for p in staged(env))


class TestChunkLimits:
    CONF = staticmethod(lambda env: dict(areas=[RsArea(
        '/files/', dir=env.area_dir('limits'),
        directives=['ResumableExpire 1h', 'ResumableMaxSize 64K'])]))

    def test_rs_961_01_slice_staged_sum(self, env):
        big = b'x' * MAX
        assert slice_chunk(env, P, 'sum.bin', 0, big).status == 200
        before = staged_bytes(env)
        for i in (1, 2, 50, 2999):
            r = slice_chunk(env, P, 'sum.bin', i, big)
            assert r.status == 413, (i, r)
        assert staged_bytes(env) == before          # nothing more staged
        assert slice_chunk(env, P, 'sum.bin', 0, big).status == 200  # re-send

    def test_rs_961_02_slice_index_times_size(self, env):
        # 100 bytes at index 1000: the file would be >= 100,000 bytes
        r = slice_chunk(env, P, 'place.bin', 1000, b'p' * 100)
        assert r.status == 413, r
        r = slice_chunk(env, P, 'place.bin', 10, b'p' * 100)
        assert r.status == 200, r
        # a whole file within the maximum still works, last chunk short
        data = b'a' * 30000 + b'b' * 30000 + b'c' * 5000
        for i, a in enumerate(range(0, len(data), 30000)):
            assert slice_chunk(env, P, 'ok.bin', i, data[a:a + 30000]).status == 200
        r = slice_merge(env, P, 'ok.bin', 30000)
        assert r.status == 200 and r.body == b'ok', r

    def test_rs_961_03_md5_handshake_chunk_list(self, env):
        ids = [md5(b'%d' % i) + str(i) for i in range(6500)]
        r = md5_handshake(env, P, md5(b'tiny file'), ids)
        assert r.status == 413, r
        assert json.loads(r.body)['code'] == 413, r
        ids = [md5(b'%d' % i) + str(i) for i in range(64)]   # 1 per KiB
        r = md5_handshake(env, P, md5(b'small file'), ids)
        assert r.status == 200, r

    def test_rs_961_04_md5_staged(self, env):
        # 3 chunks of 64 KiB can not make a file of at most 64 KiB: the
        # first chunk that is not the last is refused
        pieces = [bytes([65 + i]) * MAX for i in range(3)]
        fid = md5(b''.join(pieces))
        ids = [md5(c) + str(i) for i, c in enumerate(pieces)]
        r = md5_handshake(env, P, fid, ids)
        assert r.status == 200, r
        before = staged_bytes(env)
        r = md5_chunk(env, P, fid, ids[0], pieces[0])
        assert r.status == 413, r
        assert staged_bytes(env) == before
        # the last chunk large, then another: the staged sum is refused
        # although the file is not complete yet
        pieces = [b'a' * 24000, b'b' * 24000, b'c' * 60000]
        fid = md5(b''.join(pieces))
        ids = [md5(c) + str(i) for i, c in enumerate(pieces)]
        assert md5_handshake(env, P, fid, ids).status == 200
        assert md5_chunk(env, P, fid, ids[2], pieces[2]).status == 200
        before = staged_bytes(env)
        r = md5_chunk(env, P, fid, ids[0], pieces[0])
        assert r.status == 413, r
        assert staged_bytes(env) == before

    def test_rs_961_05_flow_geometry_and_staged(self, env):
        # a total size beyond the maximum is refused at the first chunk
        p = {'flowChunkNumber': 1, 'flowChunkSize': MAX,
             'flowCurrentChunkSize': MAX, 'flowTotalSize': 3 * MAX,
             'flowIdentifier': 'big', 'flowFilename': 'big.bin',
             'flowTotalChunks': 3}
        parts = list(p.items()) + [('file', ('big.bin', b'f' * MAX,
                                             'application/octet-stream'))]
        assert post_form(env, '/files/', parts).status == 413
        # chunks that each claim another geometry of 3 chunks cannot
        # stage more than the maximum between them
        rs, before = [], staged_bytes(env)
        for number, cs, size in ((1, 21845, MAX), (2, 21845, MAX),
                                 (1, 21846, MAX)):
            p = {'flowChunkNumber': number, 'flowChunkSize': cs,
                 'flowCurrentChunkSize': cs, 'flowTotalSize': size,
                 'flowIdentifier': 'mix', 'flowFilename': 'mix.bin',
                 'flowTotalChunks': 3}
            parts = list(p.items()) + [('file', ('mix.bin', b'm' * cs,
                                                 'application/octet-stream'))]
            rs.append(post_form(env, '/files/', parts).status)
        assert staged_bytes(env) - before <= MAX, rs
        assert all(s < 500 for s in rs), rs
