"""83x: the "flow" front end (Flow.js / Resumable.js, protocols.md 5) at
conf/seeds.conf's /flow: test GETs, multipart chunks in parallel and out
of order, completion without a commit request, geometry checks."""
import random
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

from pyrs.client import make_data, sha256
from pyrs.seeds import post_form, seeds_conf, seeds_dir as _seeds_dir

AREA = 'seeds-flow'
CS = 16 * 1024


def seeds_dir(env):
    return _seeds_dir(env, AREA)


def published(path, timeout=20):
    """The last chunk completes the upload composed; the file is published
    after the response went out (test_235): wait, bounded, for it."""
    end = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < end:
        time.sleep(0.05)
    return path


def geometry(size, cs=CS):
    n = max(size // cs, 1)
    return n, [(i * cs, size if i == n - 1 else (i + 1) * cs) for i in range(n)]


def params(pre, data, name, number, ident=None, cs=CS):
    n, spans = geometry(len(data), cs)
    a, b = spans[number - 1]
    return {f'{pre}ChunkNumber': number, f'{pre}ChunkSize': cs,
            f'{pre}CurrentChunkSize': b - a, f'{pre}TotalSize': len(data),
            f'{pre}Identifier': ident or f'{len(data)}-{name}',
            f'{pre}Filename': name, f'{pre}RelativePath': name,
            f'{pre}TotalChunks': n}


def probe(env, p):
    return env.client.get('/flow?' + urlencode(p))


def post_chunk(env, pre, data, name, number, ident=None, override=None,
               body=None):
    p = params(pre, data, name, number, ident)
    p.update(override or {})
    n, spans = geometry(len(data))
    a, b = spans[number - 1]
    parts = [(k, v) for k, v in p.items()]
    parts.append(('file', (name, data[a:b] if body is None else body,
                           'application/octet-stream')))
    return post_form(env, '/flow', parts)


def upload(env, pre, data, name, order=None):
    n, _ = geometry(len(data))
    order = order or list(range(1, n + 1))

    def one(i):
        r = probe(env, params(pre, data, name, i))
        if r.status == 200:
            return 'have'
        assert r.status == 204, r
        r = post_chunk(env, pre, data, name, i)
        assert r.status == 200, r
        return r.body.decode()

    with ThreadPoolExecutor(max_workers=3) as ex:     # simultaneousUploads
        return list(ex.map(one, order))


class TestFlow:
    CONF = staticmethod(lambda env: seeds_conf(env, AREA))

    def test_rs_830_01_flowjs(self, env):
        data = make_data(7 * CS + 999, seed=831)   # last chunk is longer
        order = list(range(1, 8))
        random.Random(3).shuffle(order)
        res = upload(env, 'flow', data, 'photo.jpg', order)
        assert res.count('done') == 1, res
        assert env.sha256_file(published(seeds_dir(env) / 'photo.jpg')) == sha256(data)
        for i in range(1, 8):                       # all "have it" now
            assert probe(env, params('flow', data, 'photo.jpg', i)).status == 200

    def test_rs_830_02_resumablejs_and_resume(self, env):
        data = make_data(4 * CS, seed=832)
        for i in (1, 3):
            assert post_chunk(env, 'resumable', data, 'r.bin', i).status == 200
        # a new page load: test GETs tell which chunks to send
        res = upload(env, 'resumable', data, 'r.bin')
        assert res[0] == 'have' and res[2] == 'have', res
        assert 'done' in res
        assert env.sha256_file(published(seeds_dir(env) / 'r.bin')) == sha256(data)

    def test_rs_830_03_small_file_one_chunk(self, env):
        data = b'tiny'
        res = upload(env, 'flow', data, 'tiny.txt')
        assert res == ['done'], res
        assert published(seeds_dir(env) / 'tiny.txt').read_bytes() == data

    def test_rs_830_04_bad_chunks(self, env):
        data = make_data(3 * CS, seed=834)
        cases = [
            dict(flowChunkNumber=0), dict(flowChunkNumber=4),
            dict(flowChunkNumber='x'), dict(flowTotalChunks=5),
            dict(flowCurrentChunkSize=CS - 1), dict(flowChunkSize=0),
            dict(flowIdentifier=''), dict(flowFilename='..'),
            dict(flowIdentifier='i' * 600),
        ]
        for o in cases:
            r = post_chunk(env, 'flow', data, 'bad.bin', 1, override=o)
            assert r.status == 400, (o, r)
            p = params('flow', data, 'bad.bin', 1)
            p.update(o)
            assert probe(env, p).status == 400, o
        r = post_chunk(env, 'flow', data, 'bad.bin', 1, body=b'short')
        assert r.status == 400, r
        assert probe(env, params('flow', data, 'bad.bin', 1)).status == 204
        # a different count for the same identifier once declared
        assert post_chunk(env, 'flow', data, 'bad.bin', 2).status == 200
        other = make_data(5 * CS, seed=835)
        r = post_chunk(env, 'flow', other, 'bad.bin', 1,
                       ident=f'{len(data)}-bad.bin')
        assert r.status == 400, r
        assert not (seeds_dir(env) / 'bad.bin').exists()

    def test_rs_830_05_resend_and_conflict(self, env):
        data = make_data(2 * CS, seed=836)
        assert post_chunk(env, 'flow', data, 'c.bin', 1).status == 200
        assert post_chunk(env, 'flow', data, 'c.bin', 1).status == 200
        r = post_chunk(env, 'flow', data, 'c.bin', 1, body=b'z' * CS)
        assert r.status == 409, r
        r = post_chunk(env, 'flow', data, 'c.bin', 2)
        assert r.status == 200 and r.body == b'done', r
        assert env.sha256_file(published(seeds_dir(env) / 'c.bin')) == sha256(data)

    def test_rs_830_06_not_ours(self, env):
        assert env.client.get('/flow').status == 404
        assert env.client.get('/flow?other=1').status == 404
