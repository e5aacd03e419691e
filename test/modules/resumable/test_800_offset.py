"""80x: the "offset" front end (design document 001, X-File-Id) on the
seeds' own URL layout (conf/seeds.conf: GET /status, POST /upload), plus
the resumable downloads of finished files (seed 000 part 1, seed 004)."""
import time

from pyrs.client import abort_socket, make_data, sha256
from pyrs.seeds import seeds_conf, seeds_dir as _seeds_dir

AREA = 'seeds-offset'


def seeds_dir(env):
    return _seeds_dir(env, AREA)

# a client that goes away may be worth a warning
ALLOW = dict(patterns=[r'\[resumable:warn\]'])


def file_id(name, size, mtime=1700000000123):
    """The seed client's id: name + '-' + size + '-' + lastModified."""
    return f'{name}-{size}-{mtime}'


def status(env, fid):
    r = env.client.get('/status', {'X-File-Id': fid})
    assert r.status == 200, r
    assert r.headers.get('Content-Type', '').startswith('text/plain'), r
    return int(r.body.decode())


def post(env, fid, start, body, size=None, headers=None):
    h = {'X-File-Id': fid, 'X-Start-Byte': str(start),
         'Content-Type': 'video/mp4'}
    if size is not None:
        h['X-File-Size'] = str(size)
    h.update(headers or {})
    return env.client.request('POST', '/upload', h, body)


def post_retry(env, fid, start, body, size=None, timeout=15):
    """POST; retries while the aborted request still holds the upload."""
    deadline = time.time() + timeout
    for _ in range(int(timeout / 0.3) + 1):
        r = post(env, fid, start, body, size)
        if r.status != 423 or time.time() > deadline:
            return r
        time.sleep(0.3)
    return r


def settled(env, fid, timeout=15):
    """Status until it stops changing (the aborted request has ended)."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        n = status(env, fid)
        if n == last:
            return n
        last = n
        time.sleep(0.5)
    raise AssertionError(f'status of {fid} did not settle ({last})')


class TestOffset:
    CONF = staticmethod(lambda env: seeds_conf(env, AREA))
    ALLOW_ERRORS = ALLOW

    def test_rs_800_01_unknown_is_zero(self, env):
        assert status(env, 'never-seen-1-1') == 0

    def test_rs_800_02_whole_file(self, env):
        data = make_data(300001, seed=801)
        fid = file_id('clip.mp4', len(data))
        r = post(env, fid, 0, data, len(data))
        assert r.status == 200, r
        assert r.body == b'Success %d' % len(data), r
        assert status(env, fid) == len(data)
        path = seeds_dir(env) / 'clip.mp4'
        assert env.sha256_file(path) == sha256(data)
        r = env.client.get('/upload/clip.mp4')
        assert r.status == 200 and sha256(r.body) == sha256(data), r

    def test_rs_800_03_stop_and_resume(self, env):
        """Uploader.upload(), stop() mid-way, upload() again."""
        data = make_data(6 * 1024 * 1024, seed=803)
        fid = file_id('movie.mp4', len(data))
        s = env.client.send_partial('POST', '/upload', {
            'X-File-Id': fid, 'X-Start-Byte': '0',
            'X-File-Size': str(len(data)), 'Content-Type': 'video/mp4'},
            data[:2 * 1024 * 1024], len(data))
        time.sleep(0.5)
        abort_socket(s)
        got = settled(env, fid)
        assert 0 < got <= 2 * 1024 * 1024, got
        r = post_retry(env, fid, got, data[got:], len(data))
        assert r.status == 200, r
        assert r.body == b'Success %d' % len(data)
        assert env.sha256_file(seeds_dir(env) / 'movie.mp4') == sha256(data)

    def test_rs_800_04_wrong_start_byte(self, env):
        data = make_data(5000, seed=804)
        fid = file_id('w.bin', len(data))
        assert post(env, fid, 0, data[:1000], len(data)).status == 200
        for start in (0, 999, 1001, 4000):
            r = post(env, fid, start, data[start:], len(data))
            assert r.status == 400, (start, r)
            assert r.body == b'1000', r
        assert status(env, fid) == 1000
        r = post(env, 'other-5000-1', 10, data[10:], len(data))
        assert r.status == 400 and r.body == b'0', r
        assert status(env, 'other-5000-1') == 0

    def test_rs_800_05_open_without_size(self, env):
        data = make_data(70000, seed=805)
        fid = 'no-size-id'
        r = post(env, fid, 0, data[:30000])
        assert r.status == 200 and r.body == b'', r
        assert status(env, fid) == 30000
        r = post(env, fid, 30000, data[30000:50000])
        assert r.status == 200 and r.body == b'', r
        assert status(env, fid) == 50000
        assert not (seeds_dir(env) / fid).exists()
        r = post(env, fid, 50000, data[50000:], len(data))
        assert r.status == 200 and r.body == b'Success 70000', r
        assert env.sha256_file(seeds_dir(env) / fid) == sha256(data)

    def test_rs_800_06_bad_headers(self, env):
        r = env.client.request('POST', '/upload', {'X-Start-Byte': '0'}, b'x')
        assert r.status == 400, r
        for bad in ('', '-1', 'abc', '1e3', '0x10'):
            r = post(env, 'bad-start', bad, b'x')
            assert r.status == 400, (bad, r)
        r = env.client.request('POST', '/upload', {'X-File-Id': 'bad-nostart'},
                               b'x')
        assert r.status == 400, r
        r = post(env, 'bad-size', 0, b'x', headers={'X-File-Size': 'ten'})
        assert r.status == 400, r
        r = post(env, 'x' * 2000, 0, b'x', 1)
        assert r.status == 400, r
        for fid in ('bad-start', 'bad-nostart', 'bad-size'):
            assert status(env, fid) == 0
        r = post(env, 'short-3-1', 0, b'abcd', 3)
        assert r.status == 413, r
        assert status(env, 'short-3-1') == 0

    def test_rs_800_07_hostile_names(self, env):
        area = seeds_dir(env)
        for i, name in enumerate(['../../escape.txt', '.htaccess', 'a/b\\c.txt',
                                  '..', 'ctl\x01name.txt']):
            data = b'hostile %d' % i
            fid = file_id(name, len(data))
            r = post(env, fid, 0, data, len(data))
            assert r.status in (200, 400), (name, r)
        assert not (area.parent / 'escape.txt').exists()
        assert (area / 'escape.txt').read_bytes() == b'hostile 0'
        assert (area / 'htaccess').read_bytes() == b'hostile 1'
        assert not (area / '.htaccess').exists()
        for p in area.iterdir():
            assert p.name == '.resumable' or not p.name.startswith('.'), p
            assert all(ord(c) >= 32 for c in p.name), p

    def test_rs_800_08_never_overwrites(self, env):
        a, b = b'first version', b'second version!'
        assert post(env, file_id('same.txt', len(a), 1), 0, a, len(a)).status == 200
        assert post(env, file_id('same.txt', len(b), 2), 0, b, len(b)).status == 200
        area = seeds_dir(env)
        assert (area / 'same.txt').read_bytes() == a
        assert (area / 'same (1).txt').read_bytes() == b

    def test_rs_800_09_finished_is_idempotent(self, env):
        """The client asks again after success: it sees the full size, and
        a zero-length POST at that byte is a no-op."""
        data = b'finished data'
        fid = file_id('done.txt', len(data))
        assert post(env, fid, 0, data, len(data)).status == 200
        assert status(env, fid) == len(data)
        r = post(env, fid, len(data), b'', len(data))
        assert r.status == 200, r
        r = post(env, fid, 0, data, len(data))
        assert r.status == 400 and r.body == b'%d' % len(data), r
        assert (seeds_dir(env) / 'done.txt').read_bytes() == data
        assert not (seeds_dir(env) / 'done (1).txt').exists()

    def test_rs_800_10_fall_through(self, env):
        r = env.client.get('/index.html')
        assert r.status == 200, r
        r = env.client.get('/status')           # no X-File-Id: not ours
        assert r.status == 404, r
        r = env.client.get('/nothing-here')
        assert r.status == 404, r
        env.allow_errors(tags=['AH01630'])     # client denied
        r = env.client.get('/upload/.resumable/')
        assert r.status == 403, r

    def test_rs_800_11_survives_restart(self, env):
        data = make_data(100000, seed=811)
        fid = file_id('restart.bin', len(data))
        assert post(env, fid, 0, data[:40000], len(data)).status == 200
        env.restart()
        assert status(env, fid) == 40000
        r = post(env, fid, 40000, data[40000:], len(data))
        assert r.status == 200, r
        assert env.sha256_file(seeds_dir(env) / 'restart.bin') == sha256(data)


class TestRangeDownload:
    """Seed 000's page resumes with "Range: bytes=N"; seed 004's client
    uses HEAD, then Range: bytes=a-b pieces."""
    CONF = staticmethod(lambda env: seeds_conf(env, AREA))

    def put(self, env, name, data):
        r = post(env, file_id(name, len(data)), 0, data, len(data))
        assert r.status == 200, r

    def test_rs_800_20_bytes_n_without_dash(self, env):
        data = make_data(200000, seed=820)
        self.put(env, 'test.mp4', data)
        r = env.client.get('/upload/test.mp4', {'Range': 'bytes=12345'})
        assert r.status == 206, r
        assert r.headers['Content-Range'] == f'bytes 12345-{len(data) - 1}/{len(data)}'
        assert r.body == data[12345:]
        assert r.headers['Content-Length'] == str(len(data) - 12345)

    def test_rs_800_21_head_and_ranges(self, env):
        data = make_data(50000, seed=821)
        self.put(env, 'content.txt', data)
        r = env.client.head('/upload/content.txt')
        assert r.status == 200, r
        assert r.headers['Content-Length'] == str(len(data))
        assert r.headers['Accept-Ranges'] == 'bytes'
        assert r.headers['Content-Disposition'].startswith('attachment'), r
        got = b''
        for start in range(0, len(data), 16384):
            end = min(start + 16383, len(data) - 1)
            r = env.client.get('/upload/content.txt',
                               {'Range': f'bytes={start}-{end}'})
            assert r.status == 206, r
            assert r.headers['Content-Range'] == f'bytes {start}-{end}/{len(data)}'
            got += r.body
        assert got == data

    def test_rs_800_22_bad_ranges_untouched(self, env):
        data = b'0123456789'
        self.put(env, 'ten.txt', data)
        r = env.client.get('/upload/ten.txt', {'Range': 'bytes=3-4'})
        assert r.status == 206 and r.body == b'34', r
        r = env.client.get('/upload/ten.txt', {'Range': 'bytes=x'})
        assert r.status == 200 and r.body == data, r
        r = env.client.get('/upload/ten.txt', {'Range': 'bytes=20'})
        assert r.status == 416, r
