"""262: the md5 front end merges chunks and hashes the whole file as the
contiguous run from chunk 0 grows (issue 15), so the last chunk does not
re-read the file: the data file holds the merged run before the end, the
merge state survives in "<id>.md5s", and a lost or damaged state only means
merging again from chunk 0 (same result)."""
import json

from pyrs.client import make_data, sha256
from pyrs.env import wait_for
from pyrs.seeds import post_form, seeds_conf, seeds_dir as _seeds_dir

from test_820_md5 import handshake, send, split

AREA = 'seeds-md5inc'
CHUNK = 64 * 1024


def staging(env):
    return _seeds_dir(env, AREA) / '.resumable'


def merge_state(env):
    """(data file sizes, md5s files) in the staging folder."""
    d = staging(env)
    files = list(d.iterdir()) if d.exists() else []
    return ([f.stat().st_size for f in files if f.name.endswith('.data')],
            [f for f in files if f.name.endswith('.md5s')])


class TestMd5Incremental:
    CONF = staticmethod(lambda env: seeds_conf(env, AREA))

    def test_rs_262_01_merged_as_it_grows(self, env):
        data = make_data(6 * CHUNK + 99, seed=2621)
        fid, chunks = split(data, CHUNK)
        ids = [c[0] for c in chunks]
        r, j = handshake(env, fid, '.bin', ids)
        assert r.status == 200, j
        for n, (cid, content) in enumerate(chunks[:-1], 1):
            r, j = send(env, fid, cid, content)
            assert r.status == 200 and j['code'] == 0, j
            sizes, states = merge_state(env)
            assert sizes == [n * CHUNK], (n, sizes)
            assert len(states) == 1, states
        r, j = send(env, fid, *chunks[-1])
        assert r.status == 200 and j['data'] == [], j
        assert env.sha256_file(_seeds_dir(env, AREA) / f'{fid}.bin') == sha256(data)
        # cleaned up (the chunk files and the state go after the answer)
        assert wait_for(lambda: merge_state(env) == ([], []), timeout=10) is True

    def test_rs_262_02_gap_then_fill(self, env):
        """Chunks out of order: the run grows when the gap is filled."""
        data = make_data(5 * CHUNK, seed=2622)
        fid, chunks = split(data, CHUNK)
        ids = [c[0] for c in chunks]
        handshake(env, fid, '.bin', ids)
        for i in (2, 3, 0):
            r, j = send(env, fid, *chunks[i])
            assert r.status == 200, j
        assert merge_state(env)[0] == [CHUNK]
        r, j = send(env, fid, *chunks[1])
        assert merge_state(env)[0] == [4 * CHUNK]
        r, j = send(env, fid, *chunks[4])
        assert r.status == 200 and j['data'] == [], j
        assert env.sha256_file(_seeds_dir(env, AREA) / f'{fid}.bin') == sha256(data)

    def test_rs_262_03_state_lost_or_damaged(self, env):
        """A damaged or missing state: merged again from chunk 0, same file;
        a wrong fileId is still refused."""
        for damage in ('garbage', 'remove'):
            data = make_data(4 * CHUNK + 5, seed=2623 if damage == 'garbage' else 2624)
            fid, chunks = split(data, CHUNK)
            handshake(env, fid, '.bin', [c[0] for c in chunks])
            for cid, content in chunks[:-1]:
                send(env, fid, cid, content)
            _, states = merge_state(env)
            assert len(states) == 1
            if damage == 'garbage':
                states[0].write_bytes(b'\0' * states[0].stat().st_size)
            else:
                states[0].unlink()
            r, j = send(env, fid, *chunks[-1])
            assert r.status == 200 and j['data'] == [], j
            assert env.sha256_file(_seeds_dir(env, AREA) / f'{fid}.bin') == sha256(data)
        data = make_data(3 * CHUNK, seed=2625)
        _, chunks = split(data, CHUNK)
        wrong = '0' * 32
        handshake(env, wrong, '.bin', [c[0] for c in chunks])
        for cid, content in chunks[:-1]:
            send(env, wrong, cid, content)
        r = post_form(env, '/api/upload', [
            ('file', ('blob', chunks[-1][1], 'application/octet-stream')),
            ('chunkId', chunks[-1][0]), ('fileId', wrong)])
        j = json.loads(r.body)
        assert r.status >= 400 and j['code'] == r.status, (r, j)
        assert not (_seeds_dir(env, AREA) / f'{wrong}.bin').exists()
        assert merge_state(env) == ([], [])
