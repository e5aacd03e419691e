"""81x: the "slice" front end (design documents 000 and 003): multipart
chunks in any order and all at once, merge by JSON or by total, on the
seeds' own URLs (conf/seeds.conf: /sliceUpload, /sliceMerge)."""
import json
import random
import time
from concurrent.futures import ThreadPoolExecutor

from pyrs.client import make_data, sha256
from pyrs.seeds import post_form, seeds_conf, seeds_dir as _seeds_dir

AREA = 'seeds-slice'


def seeds_dir(env, name=AREA):
    return _seeds_dir(env, name)

OK = '成功'.encode()


def chunks_of(data, size):
    return [data[i:i + size] for i in range(0, len(data), size)]


def send_chunk(env, name, index, chunk, field='chunk', total=None):
    """As the seed clients build their FormData: the Blob first."""
    parts = [(field, ('blob', chunk, 'application/octet-stream')),
             ('index', index), ('name', name)]
    if total is not None:
        parts.append(('total', total))
    return post_form(env, '/sliceUpload', parts)


def merge(env, name, size, ctype='text/plain;charset=UTF-8', body=None):
    if body is None:
        body = json.dumps({'name': name, 'size': size}).encode()
    return env.client.request('POST', '/sliceMerge', {'Content-Type': ctype},
                              body)


def send_all(env, name, pieces, base=0, total=None, field='chunk', order=None):
    order = order or list(range(len(pieces)))
    with ThreadPoolExecutor(max_workers=8) as ex:
        rs = list(ex.map(lambda i: send_chunk(env, name, i + base, pieces[i],
                                              field, total), order))
    for r in rs:
        assert r.status == 200, r
        assert r.body == OK, r
    return rs


def staged_leftovers(env, timeout=20):
    """Spool and chunk files left; chunk files go once the merged upload
    is materialised (after the response, test_235): waited for, bounded."""
    st = seeds_dir(env) / '.resumable'
    end = time.monotonic() + timeout
    while True:
        left = sorted(p.name for p in st.iterdir()
                      if p.name.startswith('form-') or '.c' in p.name) if st.exists() else []
        if not left or time.monotonic() > end:
            return left
        time.sleep(0.05)


def published(path, timeout=20):
    """A merge completes composed; the file is published after the
    response went out (test_235): wait, bounded, for it."""
    end = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < end:
        time.sleep(0.05)
    return path


class TestSlice:
    CONF = staticmethod(lambda env: seeds_conf(env, AREA))

    def test_rs_810_01_seed000_concurrent_then_merge(self, env):
        size = 64 * 1024
        data = make_data(10 * size + 123, seed=811)
        pieces = chunks_of(data, size)
        order = list(range(len(pieces)))
        random.Random(1).shuffle(order)
        send_all(env, 'video.mp4', pieces, order=order)
        assert not (seeds_dir(env) / 'video.mp4').exists()
        r = merge(env, 'video.mp4', size)
        assert r.status == 200 and r.body == b'ok', r
        assert env.sha256_file(published(seeds_dir(env) / 'video.mp4')) == sha256(data)
        r = env.client.get('/upload/video.mp4', {'Range': 'bytes=100'})
        assert r.status == 206 and r.body == data[100:], r
        assert staged_leftovers(env) == []

    def test_rs_810_02_seed003_total_one_based(self, env):
        data = make_data(5 * 10000 + 7, seed=812)
        pieces = chunks_of(data, 10000)
        order = list(range(len(pieces)))
        random.Random(2).shuffle(order)
        send_all(env, 'shard.bin', pieces, base=1, total=len(pieces),
                 field='data', order=order)
        assert env.sha256_file(published(seeds_dir(env) / 'shard.bin')) == sha256(data)
        assert staged_leftovers(env) == []

    def test_rs_810_03_total_zero_based(self, env):
        data = make_data(3 * 5000, seed=813)
        pieces = chunks_of(data, 5000)
        send_all(env, 'zero.bin', pieces, base=0, total=len(pieces),
                 field='data', order=[2, 0, 1])
        assert env.sha256_file(published(seeds_dir(env) / 'zero.bin')) == sha256(data)

    def test_rs_810_04_resend_and_conflict(self, env):
        a, b = make_data(4000, seed=1), make_data(4000, seed=2)
        assert send_chunk(env, 'twice.bin', 0, a).status == 200
        assert send_chunk(env, 'twice.bin', 0, a).status == 200   # idempotent
        r = send_chunk(env, 'twice.bin', 0, b)
        assert r.status == 409, r
        assert send_chunk(env, 'twice.bin', 1, b[:100]).status == 200
        r = merge(env, 'twice.bin', 4000)
        assert r.status == 200, r
        assert published(seeds_dir(env) / 'twice.bin').read_bytes() == a + b[:100]
        assert staged_leftovers(env) == []

    def test_rs_810_05_merge_with_gap(self, env):
        pieces = chunks_of(make_data(3000, seed=815), 1000)
        assert send_chunk(env, 'gap.bin', 0, pieces[0]).status == 200
        assert send_chunk(env, 'gap.bin', 2, pieces[2]).status == 200
        r = merge(env, 'gap.bin', 1000)
        assert r.status == 409, r
        assert not (seeds_dir(env) / 'gap.bin').exists()
        assert send_chunk(env, 'gap.bin', 1, pieces[1]).status == 200
        r = merge(env, 'gap.bin', 1000)
        assert r.status == 200, r
        assert published(seeds_dir(env) / 'gap.bin').read_bytes() == b''.join(pieces)
        r = merge(env, 'gap.bin', 1000)             # again: nothing to do
        assert r.status == 200, r

    def test_rs_810_06_bad_inputs(self, env):
        blob = ('chunk', ('blob', b'xyz', 'application/octet-stream'))
        cases = [
            [blob, ('name', 'bad.bin')],                       # no index
            [blob, ('index', 'abc'), ('name', 'bad.bin')],
            [blob, ('index', '-1'), ('name', 'bad.bin')],
            [blob, ('index', '99999999'), ('name', 'bad.bin')],
            [blob, ('index', '0'), ('name', '')],
            [blob, ('index', '0'), ('name', '..')],
            [blob, ('index', '0'), ('name', 'bad.bin'), ('total', 'x')],
            [blob, ('index', '0'), ('name', 'bad.bin'), ('name', 'again')],
            [('index', '0'), ('name', 'bad.bin')],             # no file
        ]
        for parts in cases:
            r = post_form(env, '/sliceUpload', parts)
            assert r.status == 400, (parts, r)
        # out of the declared range, count changes
        assert send_chunk(env, 'range.bin', 1, b'a', total=3).status == 200
        assert send_chunk(env, 'range.bin', 4, b'a', total=3).status == 400
        assert send_chunk(env, 'range.bin', 2, b'a', total=5).status == 400
        # malformed multipart
        r = env.client.request('POST', '/sliceUpload', {
            'Content-Type': 'multipart/form-data; boundary=xx'},
            b'--xx\r\nContent-Disposition: form-data; name="index"\r\n\r\n1')
        assert r.status == 400, r
        r = env.client.request('POST', '/sliceUpload', {
            'Content-Type': 'multipart/form-data'}, b'--xx--')
        assert r.status == 400, r
        # merge: bad JSON, wrong types, unknown name, wrong chunk size
        assert merge(env, 'x', 1, body=b'{"name": "x", ').status == 400
        assert merge(env, 'x', 1, body=b'[' * 50 + b']' * 50).status == 400
        assert merge(env, 'x', 1, body=b'{"name": 5, "size": 1}').status == 400
        assert merge(env, 'x', 1, body=b'{"name": "x", "size": "1"}').status == 400
        assert merge(env, 'never-sent.bin', 10).status == 404
        assert send_chunk(env, 'sized.bin', 0, b'a' * 10).status == 200
        assert send_chunk(env, 'sized.bin', 1, b'b' * 10).status == 200
        assert merge(env, 'sized.bin', 8).status == 400
        assert not (seeds_dir(env) / 'sized.bin').exists()
        assert merge(env, 'sized.bin', 10).status == 200
        for name in ('bad.bin', 'again', 'range.bin', 'x'):
            assert not (seeds_dir(env) / name).exists()
        assert [n for n in staged_leftovers(env) if n.startswith('form-')] == []

    def test_rs_810_07_hostile_names(self, env):
        area = seeds_dir(env)
        for name in ('../../up.txt', '.htaccess', 'dir/..\\evil.txt'):
            assert send_chunk(env, name, 0, b'hostile').status == 200
            assert merge(env, name, 100).status == 200
        assert published(area / 'up.txt').read_bytes() == b'hostile'
        assert published(area / 'htaccess').read_bytes() == b'hostile'
        assert published(area / 'evil.txt').read_bytes() == b'hostile'
        assert not (area.parent / 'up.txt').exists()
        assert not (area / '.htaccess').exists()

    def test_rs_810_08_same_name_again(self, env):
        area = seeds_dir(env)
        for name, data in (('again.txt', b'one'), ('again (1).txt', b'two!')):
            assert send_chunk(env, 'again.txt', 0, data).status == 200
            assert merge(env, 'again.txt', 10).status == 200
            assert published(area / name).read_bytes() == data

    def test_rs_810_09_survives_restart(self, env):
        pieces = chunks_of(make_data(30000, seed=819), 10000)
        assert send_chunk(env, 'persist.bin', 0, pieces[0]).status == 200
        assert send_chunk(env, 'persist.bin', 2, pieces[2]).status == 200
        env.restart()
        assert send_chunk(env, 'persist.bin', 1, pieces[1]).status == 200
        assert merge(env, 'persist.bin', 10000).status == 200
        assert published(seeds_dir(env) / 'persist.bin').read_bytes() == b''.join(pieces)

    def test_rs_810_10_not_ours_falls_through(self, env):
        r = env.client.get('/sliceUpload')
        assert r.status == 404, r
        r = env.client.request('POST', '/sliceMerge',
                               {'Content-Type': 'application/octet-stream'},
                               b'raw bytes')
        assert r.status in (404, 405), r


class TestSliceLimit:
    CONF = staticmethod(lambda env: seeds_conf(env, name='seeds-limit', after=(
        '<Location "/sliceUpload">\n    ResumableMaxSize 1000\n</Location>\n')))

    def test_rs_810_20_oversize_chunk(self, env):
        r = send_chunk(env, 'big.bin', 0, b'x' * 2000)
        assert r.status == 413, r
        st = seeds_dir(env, 'seeds-limit') / '.resumable'
        assert [p.name for p in st.iterdir() if p.name.startswith('form-')] == []
        assert send_chunk(env, 'big.bin', 0, b'x' * 1000).status == 200
