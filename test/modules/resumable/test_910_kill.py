"""91x: SIGKILL of the child serving an upload at >= 50 random points.

Kill points: PATCH bodies (plain and checksummed), creation-with-upload,
final concatenation (composition at creation of the final, and
composition triggered by the last partial's PATCH, each followed by the
copy into the published file after the response: materialisation, also
killed on purpose). After every kill: the reported
offset is never ahead of the bytes on disk and those bytes are the client's
bytes; every upload then resumes to a sha256-identical file; finally
resumablectl verify finds every record consistent with its data file.
Every loop is bounded; the random points come from a fixed seed.
"""
import json
import os
import random
import signal
import time

import pytest

from pyrs.client import OCTET, abort_socket, digest_b64, make_data, sha256, \
    split_url, upload_id
from pyrs.ctl import resumablectl
from pyrs.env import RsArea

AREA = 'kill'
SEED = 9100
KILLS = {'count': 0}        # kill points survived in this module (>= 51)
ALLOW = dict(patterns=[r'exit signal Killed', r'\[resumable:warn\]'])


def _alive(pid):
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] not in ('Z', 'X')
    except (OSError, IndexError):
        return False


def serving_child(env, sock, timeout=10):
    deadline = time.time() + timeout
    pid = None
    while time.time() < deadline and not pid:
        pid = env.child_for_connection(sock)
        if not pid:
            time.sleep(0.005)
    assert pid, 'no child holds the connection'
    return pid


def kill_serving(env, sock, timeout=10, pid=None):
    """SIGKILL the child holding the server side of sock (pid, when known
    already); wait until it is gone and the server answers again."""
    deadline = time.time() + timeout
    pid = pid or serving_child(env, sock, timeout)
    os.kill(pid, signal.SIGKILL)
    while time.time() < deadline and _alive(pid):
        time.sleep(0.01)
    abort_socket(sock)
    assert env.wait_live(max(1, deadline - time.time())), 'server gone'
    KILLS['count'] += 1
    return pid


def head_retry(tus, url, timeout=15):
    """HEAD until it is not refused as locked (the lock of a killed writer
    is released by the kernel; a takeover may need a moment)."""
    deadline = time.time() + timeout
    while True:
        r = tus.head(url)
        if r.status != 423 or time.time() > deadline:
            return r
        time.sleep(0.1)


def check_disk(env, tus, url, data, area, expect_max=None):
    """The reported offset is never ahead of the data file, whose first
    `offset` bytes are the client's. Returns the offset."""
    r = head_retry(tus, url)
    assert r.status == 200, r
    off = int(r.headers['Upload-Offset'])
    assert 0 <= off <= len(data), off
    if expect_max is not None:
        assert off <= expect_max, (off, expect_max)
    if off < len(data):
        f = env.staged_data_file(area, upload_id(url))
        assert f is not None, 'data file missing'
        disk = f.read_bytes()
        assert len(disk) >= off, (len(disk), off)
        assert disk[:off] == data[:off], 'data file differs from the client bytes'
    return off


def wait_for_file(env, area, uid, timeout=5):
    """-> a function that waits (bounded) until the data file of uid is not
    empty."""
    def wait():
        deadline = time.time() + timeout
        while time.time() < deadline:
            f = env.staged_data_file(area, uid)
            if f and f.stat().st_size > 0:
                return True
            time.sleep(0.0005)
        return False
    return wait


def published(path, timeout=20):
    """path, once there (bounded wait): a composed upload is published after
    its response, or by the sweep when the child doing it was killed."""
    deadline = time.time() + timeout
    while not path.exists() and time.time() < deadline:
        time.sleep(0.05)
    return path


def patch_headers(tus, off, extra=None):
    h = dict(tus.base_headers)
    h.update({'Upload-Offset': str(off), 'Content-Type': OCTET})
    h.update(extra or {})
    return h


def patch_kill(env, tus, url, data, off, rnd, checksum=False, whole=False):
    """Start a PATCH of the rest, send a random prefix (with whole: maybe
    all of it, racing the response), SIGKILL the child."""
    rest = data[off:]
    n = rnd.randrange(0, len(rest) + (1 if whole else 0))
    extra = {'Upload-Checksum': 'sha1 ' + digest_b64('sha1', rest)} if checksum else None
    s = env.client.send_partial('PATCH', url, patch_headers(tus, off, extra),
                                rest[:n], len(rest))
    time.sleep(rnd.choice([0, 0, 0.002, 0.01, 0.03]))
    kill_serving(env, s)
    return n


def patch_retry(tus, url, data, off, timeout=15):
    deadline = time.time() + timeout
    while True:
        r = tus.patch(url, off, data[off:])
        if r.status != 423 or time.time() > deadline:
            return r
        time.sleep(0.1)


def resume(env, tus, url, data, area, download=True):
    """PATCH the rest; the result is the client's file (a partial is not
    downloadable: its data file is compared)."""
    off = check_disk(env, tus, url, data, area)
    if off < len(data):
        r = patch_retry(tus, url, data, off)
        assert r.status == 204, r
        assert int(r.headers['Upload-Offset']) == len(data)
    if not download:
        f = env.staged_data_file(area, upload_id(url))
        assert f is not None and sha256(f.read_bytes()) == sha256(data)
        return
    r = tus.get(url)
    assert r.status == 200 and len(r.body) == len(data), \
        (r.status, len(r.body), len(data), r.body[:200])
    assert sha256(r.body) == sha256(data)


def statedb(env):
    """This file's own state database: verify judges only what these
    tests did, not what other suites of the session leave broken on
    purpose (files removed behind the server's back)."""
    return env.state_dir / 'kill910'


def own_db(areas):
    return staticmethod(lambda env: dict(statedb=f'"{statedb(env)}"',
                                         areas=areas))


def ctl(env, *args):
    """Output of resumablectl on the server's database (read-only use)."""
    return resumablectl(env, statedb(env), *args)[1]


def ctl_verify(env):
    """resumablectl verify on the running server's database: exit 0."""
    rc, out = resumablectl(env, statedb(env), 'verify')
    assert rc == 0, out
    return out


@pytest.mark.slow
class TestKill:
    CONF = own_db([RsArea('/files/', dir=AREA,
                          directives=['ResumableExpire 1h',
                                      'ResumableLockWait 5',
                                      'ResumableStallTime 2'])])
    ALLOW_ERRORS = ALLOW

    def test_rs_910_01_patch(self, env):
        """30 kills in PATCH bodies, 5 per upload, then resume."""
        tus, area, rnd = env.tus('/files/'), env.area_dir(AREA), random.Random(SEED)
        for i in range(6):
            data = make_data(rnd.randrange(64 * 1024, 512 * 1024), seed=SEED + i)
            url = tus.create(length=len(data), metadata={'filename': f'k{i}.bin'})
            off = 0
            for _ in range(5):
                sent = patch_kill(env, tus, url, data, off, rnd)
                off = check_disk(env, tus, url, data, area, expect_max=off + sent)
            resume(env, tus, url, data, area)

    def test_rs_910_02_patch_checksum(self, env):
        """8 kills in checksummed PATCHes: unverified bytes never count."""
        tus, area, rnd = env.tus('/files/'), env.area_dir(AREA), random.Random(SEED + 1)
        for i in range(2):
            data = make_data(256 * 1024 + i, seed=SEED + 10 + i)
            url = tus.create(length=len(data))
            r = tus.patch(url, 0, data[:1000])
            assert r.status == 204, r
            off = 1000
            for _ in range(4):
                sent = patch_kill(env, tus, url, data, off, rnd, checksum=True,
                                  whole=True)
                new = check_disk(env, tus, url, data, area)
                # the whole checksummed body or nothing of it
                assert new == off or (new == len(data) and sent == len(data) - off), \
                    (off, new, sent)
                off = new
                if off == len(data):
                    break
            resume(env, tus, url, data, area)

    def test_rs_910_03_creation_with_upload(self, env):
        """8 kills during creation-with-upload; the client creates again."""
        tus, area, rnd = env.tus('/files/'), env.area_dir(AREA), random.Random(SEED + 2)
        for i in range(8):
            data = make_data(rnd.randrange(32 * 1024, 256 * 1024), seed=SEED + 20 + i)
            h = dict(tus.base_headers)
            h.update({'Upload-Length': str(len(data)), 'Content-Type': OCTET})
            n = rnd.randrange(0, len(data))
            s = env.client.send_partial('POST', '/files/', h, data[:n], len(data))
            time.sleep(rnd.choice([0, 0.002, 0.01]))
            kill_serving(env, s)
        url = tus.create(length=len(data), body=data)
        assert check_disk(env, tus, url, data, area) == len(data)
        assert sha256(tus.get(url).body) == sha256(data)

    def test_rs_910_04_concat_final(self, env):
        """6 kills while a final concatenation is assembled at creation."""
        tus, area, rnd = env.tus('/files/'), env.area_dir(AREA), random.Random(SEED + 3)
        parts = [make_data(3 * 1024 * 1024 + k, seed=SEED + 30 + k) for k in range(3)]
        urls = []
        for d in parts:
            u = tus.create(length=len(d), concat='partial')
            tus.upload_rest(u, d, 0)
            urls.append(u)
        value = 'final;' + ' '.join(split_url(u)[0] for u in urls)
        h = dict(tus.base_headers)
        h['Upload-Concat'] = value
        for _ in range(6):
            s = env.client.send_partial('POST', '/files/', h, b'', 0)
            time.sleep(rnd.choice([0, 0.001, 0.003, 0.008]))
            kill_serving(env, s)
            for u, d in zip(urls, parts):    # partials stay intact
                assert check_disk(env, tus, u, d, area) == len(d)
        final = tus.create(concat=value)
        assert sha256(tus.get(final).body) == sha256(b''.join(parts))

    def test_rs_910_05_concat_by_last_partial(self, env):
        """5 kills while the last partial's PATCH composes a waiting final:
        after a random delay, or (odd rounds) as soon as the final's data
        file shows that its materialisation is under way."""
        tus, area, rnd = env.tus('/files/'), env.area_dir(AREA), random.Random(SEED + 4)
        for i in range(5):
            a = make_data(2 * 1024 * 1024, seed=SEED + 40 + i)
            b = make_data(1024 * 1024 + i, seed=SEED + 50 + i)
            ua = tus.create(length=len(a), concat='partial')
            tus.upload_rest(ua, a, 0)
            ub = tus.create(length=len(b), concat='partial')
            final = tus.create(concat=f'final;{split_url(ua)[0]} {split_url(ub)[0]}',
                               headers={'Tus-Resumable': '1.0.0'})
            s = env.client.send_partial('PATCH', ub, patch_headers(tus, 0), b'', len(b))
            pid = serving_child(env, s)
            if i % 2:
                assembly_started = wait_for_file(env, area, upload_id(final))
                s.sendall(b)
                assembly_started()
            else:
                s.sendall(b)
                time.sleep(rnd.choice([0, 0.002, 0.005, 0.01, 0.02]))
            kill_serving(env, s, pid=pid)
            resume(env, tus, ub, b, area, download=False)
            deadline = time.time() + 15
            while time.time() < deadline:
                r = head_retry(tus, final)
                if r.status == 200 and r.headers.get('Upload-Offset') == str(len(a) + len(b)):
                    break
                time.sleep(0.2)
            assert r.status == 200 and r.headers.get('Upload-Offset') == str(len(a) + len(b)), \
                (f'kill {i}: final not assembled after the kill: {r}\n'
                 + ctl(env, 'show', upload_id(ub)) + ctl(env, 'show', upload_id(final)))
            assert sha256(tus.get(final).body) == sha256(a + b)

    def test_rs_910_12_materialise(self, env):
        """4 kills of the child materialising a composed final after its
        201 went out (as soon as its data file grows, or at once): the final
        is read from its partials meanwhile (deleting one of them publishes
        it first, or is refused), and the sweep (interval 1 s) publishes
        it; verify stays clean."""
        tus, area = env.tus('/files/'), env.area_dir(AREA)
        for i in range(4):
            parts = [make_data(4 * 1024 * 1024 + k, seed=SEED + 80 + 3 * i + k)
                     for k in range(3)]
            whole = b''.join(parts)
            urls = []
            for d in parts:
                u = tus.create(length=len(d), concat='partial')
                tus.upload_rest(u, d, 0)
                urls.append(u)
            h = dict(tus.base_headers)
            h['Upload-Concat'] = 'final;' + ' '.join(split_url(u)[0] for u in urls)
            s = env.client.send_partial('POST', '/files/', h, b'', 0)
            pid = serving_child(env, s)
            head = b''
            deadline = time.time() + 15
            while b'\r\n\r\n' not in head and time.time() < deadline:
                head += s.recv(4096)
            assert head.startswith(b'HTTP/1.1 201'), head
            loc = [ln.split(b':', 1)[1].strip().decode() for ln in head.split(b'\r\n')
                   if ln.lower().startswith(b'location:')][0]
            if i % 2:
                wait_for_file(env, area, upload_id(loc))()
            kill_serving(env, s, pid=pid)
            r = tus.get(loc)
            assert r.status == 200 and sha256(r.body) == sha256(whole), r
            # a partial of it is not removed before it is published (423),
            # or it is published first (issue 11: it was removed, GET 500)
            r = tus.delete(urls[i % 3])
            assert r.status in (204, 423), r
            r = tus.get(loc)
            assert r.status == 200 and sha256(r.body) == sha256(whole), r
            f = published(area / upload_id(loc))
            assert f.exists(), 'not materialised:\n' + ctl(env, 'show', upload_id(loc))
            assert sha256(f.read_bytes()) == sha256(whole)
            assert sha256(tus.get(loc).body) == sha256(whole)
        ctl_verify(env)

    def test_rs_910_06_verify(self, env):
        """The database agrees with the data files after all kills
        (resumablectl verify, read-only while httpd runs)."""
        out = ctl_verify(env)
        assert 'verify:' in out and ' 0 problems' in out, out


# ---- chunk protocols and the offset protocol --------------------------------
CAREA = 'kill-chunks'
CP = '/c/'
CS = 32 * 1024              # chunk size of the chunk protocols


def retry_423(fn, timeout=15):
    """fn() until it is not refused as locked (a killed writer's lock)."""
    deadline = time.time() + timeout
    for _ in range(int(timeout / 0.1) + 1):
        r = fn()
        if r.status != 423 or time.time() > deadline:
            return r
        time.sleep(0.1)
    return r


def post_kill(env, headers, body, rnd, lo=0):
    """POST with a random prefix (from lo) of body, then SIGKILL the child."""
    n = rnd.randrange(lo, len(body) + 1)
    s = env.client.send_partial('POST', CP, headers, body[:n], len(body))
    time.sleep(rnd.choice([0, 0, 0.002, 0.01, 0.03]))
    kill_serving(env, s)


def mp(parts, boundary='KillB0undary'):
    out = b''
    for name, value in parts:
        out += b'--' + boundary.encode() + b'\r\n'
        if isinstance(value, tuple):
            out += (f'Content-Disposition: form-data; name="{name}"; '
                    f'filename="{value[0]}"\r\nContent-Type: '
                    f'application/octet-stream\r\n\r\n').encode() + value[1]
        else:
            out += (f'Content-Disposition: form-data; name="{name}"\r\n\r\n'
                    f'{value}').encode()
        out += b'\r\n'
    return ({'Content-Type': f'multipart/form-data; boundary={boundary}'},
            out + b'--' + boundary.encode() + b'--\r\n')


def record_of(env, name):
    """(id, offset) of the active upload named `name` (resumablectl list)."""
    for line in ctl(env, 'list').splitlines():
        f = line.split(None, 4)
        if len(f) == 5 and f[4] == name and f[1] == 'active':
            return f[0], int(f[2].split('/')[0])
    return None, 0


def md5hex(b):
    import hashlib
    return hashlib.md5(b).hexdigest()


@pytest.mark.slow
class TestKillChunks:
    """SIGKILL during chunk POSTs (slice, md5, flow, with the assembly that
    the last chunk or a merge starts) and offset-protocol POSTs: what the
    server reports (offset, chunks it has) is never ahead of the disk, and
    every upload then completes to a sha256-identical file."""
    CONF = own_db([RsArea(CP, dir=CAREA,
                          directives=['ResumableExpire 1h',
                                      'ResumableLockWait 5',
                                      'ResumableStallTime 2'])])
    ALLOW_ERRORS = ALLOW

    def test_rs_910_07_offset(self, env):
        """10 kills in X-File-Id POSTs; status never ahead of the disk."""
        area, rnd = env.area_dir(CAREA), random.Random(SEED + 7)
        for i in range(2):
            data = make_data(rnd.randrange(128 * 1024, 512 * 1024),
                             seed=SEED + 70 + i)
            name = f'off{i}.bin'
            fid = f'{name}-{len(data)}-1700000000000'
            h = {'X-File-Id': fid, 'X-File-Size': str(len(data))}
            for _ in range(5):
                st = retry_423(lambda: env.client.get(CP, {'X-File-Id': fid}))
                assert st.status == 200, st
                off = int(st.body)
                uid, rec = record_of(env, name)
                if off:
                    f = env.staged_data_file(area, uid)
                    disk = f.read_bytes()
                    # the record may lag (bytes a killed writer left are
                    # counted from the disk, and saved by the next writer)
                    assert rec <= off <= len(disk), (rec, off, len(disk))
                    assert disk[:off] == data[:off]
                post_kill(env, dict(h, **{'X-Start-Byte': str(off)}),
                          data[off:], rnd)
            off = int(retry_423(lambda: env.client.get(
                CP, {'X-File-Id': fid})).body)
            r = retry_423(lambda: env.client.request('POST', CP, dict(
                h, **{'X-Start-Byte': str(off)}), data[off:]))
            assert r.status == 200 and r.body == b'Success %d' % len(data), r
            assert env.sha256_file(area / name) == sha256(data)

    def test_rs_910_08_slice(self, env):
        """8 kills in slice chunk POSTs, 4 during the merge (assembly)."""
        area, rnd = env.area_dir(CAREA), random.Random(SEED + 8)
        for i in range(2):
            data = make_data(24 * CS + 7 + i, seed=SEED + 80 + i)
            name = f'slice{i}.bin'
            pieces = [data[k:k + CS] for k in range(0, len(data), CS)]

            def chunk(k):
                return mp([('chunk', ('blob', pieces[k])), ('index', k),
                           ('name', name)])
            for _ in range(4):
                post_kill(env, *chunk(rnd.randrange(len(pieces))), rnd)
            for k in range(len(pieces)):
                r = retry_423(lambda: env.client.request('POST', CP, *chunk(k)))
                assert r.status == 200, r
            merge = ({'Content-Type': 'text/plain'},
                     json.dumps({'name': name, 'size': CS}).encode())
            for _ in range(2):
                post_kill(env, *merge, rnd, lo=len(merge[1]))
                assert not (area / name).exists() \
                    or env.sha256_file(area / name) == sha256(data)
            if not (area / name).exists():
                r = retry_423(lambda: env.client.request('POST', CP, *merge))
                assert r.status == 200, r
            assert env.sha256_file(published(area / name)) == sha256(data)

    def test_rs_910_09_md5(self, env):
        """10 kills in md5 chunk POSTs (the last chunk assembles); the
        chunks the handshake no longer asks for are the client's."""
        area, rnd = env.area_dir(CAREA), random.Random(SEED + 9)
        for i in range(2):
            data = make_data(16 * CS + 3 + i, seed=SEED + 90 + i)
            pieces = [data[k:k + CS] for k in range(0, len(data), CS)]
            fid = md5hex(data)
            ids = [md5hex(c) + str(k) for k, c in enumerate(pieces)]
            hs = ({'Content-Type': 'application/json'}, json.dumps(
                {'fileId': fid, 'ext': '.bin', 'chunkIds': ids}).encode())

            def chunk(k):
                return mp([('file', ('blob', pieces[k])), ('chunkId', ids[k]),
                           ('fileId', fid)])
            need = ids
            for _ in range(5):
                r = retry_423(lambda: env.client.request('POST', CP, *hs))
                assert r.status == 200, r
                need = json.loads(r.body)['data']
                if isinstance(need, str):
                    break
                # send all but one needed chunk, kill in that one (the last
                # one needed starts the assembly)
                for cid in need[1:]:
                    r = retry_423(lambda: env.client.request(
                        'POST', CP, *chunk(ids.index(cid))))
                    assert r.status == 200, r
                post_kill(env, *chunk(ids.index(need[0])), rnd)
            r = retry_423(lambda: env.client.request('POST', CP, *hs))
            need = json.loads(r.body)['data']
            for cid in ([] if isinstance(need, str) else need):
                r = retry_423(lambda: env.client.request(
                    'POST', CP, *chunk(ids.index(cid))))
                assert r.status == 200, r
            deadline = time.time() + 15
            while not (area / f'{fid}.bin').exists() and time.time() < deadline:
                time.sleep(0.1)
            assert env.sha256_file(area / f'{fid}.bin') == sha256(data)

    def test_rs_910_10_flow(self, env):
        """10 kills in flow chunk POSTs; a chunk the test GET reports as
        there is the client's (the file comes out identical)."""
        area, rnd = env.area_dir(CAREA), random.Random(SEED + 10)
        for i in range(2):
            data = make_data(20 * CS + 11 + i, seed=SEED + 100 + i)
            name = f'flow{i}.bin'
            n = len(data) // CS

            def params(k):
                a, b = (k - 1) * CS, (len(data) if k == n else k * CS)
                return {'flowChunkNumber': k, 'flowChunkSize': CS,
                        'flowCurrentChunkSize': b - a,
                        'flowTotalSize': len(data),
                        'flowIdentifier': f'{len(data)}-{name}',
                        'flowFilename': name, 'flowRelativePath': name,
                        'flowTotalChunks': n}, data[a:b]

            def chunk(k):
                p, body = params(k)
                return mp(list(p.items()) + [('file', (name, body))])

            def have(k):
                from urllib.parse import urlencode
                r = retry_423(lambda: env.client.get(
                    CP + '?' + urlencode(params(k)[0])))
                assert r.status in (200, 204), r
                return r.status == 200
            for _ in range(5):
                missing = [k for k in range(1, n + 1) if not have(k)]
                if not missing:
                    break
                for k in missing[1:]:
                    r = retry_423(lambda: env.client.request('POST', CP,
                                                             *chunk(k)))
                    assert r.status == 200, r
                post_kill(env, *chunk(missing[0]), rnd)
            for k in range(1, n + 1):
                if not (area / name).exists() and not have(k):
                    r = retry_423(lambda: env.client.request('POST', CP,
                                                             *chunk(k)))
                    assert r.status == 200, r
            assert env.sha256_file(published(area / name)) == sha256(data)

    def test_rs_910_11_verify(self, env):
        """At least 38 more kill points, and the database agrees with the
        data files (resumablectl verify)."""
        assert KILLS['count'] >= 38, KILLS
        out = ctl_verify(env)
        assert 'verify:' in out and ' 0 problems' in out, out
