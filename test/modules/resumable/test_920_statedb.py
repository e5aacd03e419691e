"""92x: the state database missing, unreadable or corrupted under a running
server: clear answers and log lines, no crash; and the documented recovery
(tools/resumablectl.c, "Recovery"): stop httpd, set the broken
database aside, `resumablectl rebuild AREA_DIR`, start httpd: uploads whose
data files survived resume (as uploads of deferred length). Then readers
(HEAD, which do not take the global mutex) beside writers (POST, PATCH,
DELETE) and resumablectl's reading commands: no error, no torn record
(`rebuild` is offline only, see test_rs_920_01).

Each class uses its own database, so breaking it affects no other test."""
import os
import random
import re
import threading
import time

from pyrs.client import make_data, sha256, upload_id
from pyrs.ctl import resumablectl
from pyrs.env import RsArea

AREA = 'db920'


def db_path(env):
    return env.gen / 'state920' / 'state'


def db_files(env):
    return [db_path(env).with_suffix('.pag'), db_path(env).with_suffix('.dir')]


def conf(env):
    env.mkdir_www(db_path(env).parent)
    return dict(areas=[RsArea('/files/', dir=AREA,
                              directives=['ResumableExpire 1h'])],
                statedb=str(db_path(env)))


def ctl(env, *args):
    return resumablectl(env, db_path(env), *args)


def half_upload(env, tus, seed):
    data = make_data(300 * 1024, seed=seed)
    url = tus.create(length=len(data))
    r = tus.patch(url, 0, data[:100 * 1024])
    assert r.status == 204, r
    return url, data


def recover(env):
    """The documented recovery: stop, set the database aside, rebuild."""
    env.stop()
    for f in db_files(env):
        if f.exists():
            f.rename(f.with_name(f.name + '.broken'))
    rc, out = ctl(env, 'rebuild', str(env.area_dir(AREA)))
    assert rc == 0, out
    for f in db_files(env):
        env.chown_www(f)
    env.start()
    return out


def resume_deferred(env, tus, url, data):
    """A rebuilt upload has a deferred length: the client declares it with
    its next PATCH and finishes."""
    r = tus.head(url)
    assert r.status == 200, r
    assert r.headers.get('Upload-Defer-Length') == '1', r
    off = int(r.headers['Upload-Offset'])
    assert off == 100 * 1024, off
    r = tus.patch(url, off, data[off:], headers={'Upload-Length': str(len(data))})
    assert r.status == 204, r
    assert sha256(tus.get(url).body) == sha256(data)


class TestStateDB:
    CONF = conf
    # state database errors: open, fetch, engine, 5xx answer
    ALLOW_ERRORS = dict(tags=['RS03009', 'RS03002', 'RS01002', 'RS04020',
                              'RS03012'])

    def test_rs_920_01_missing(self, env):
        """Database files removed while running: known uploads are 404,
        new uploads work (the database is created again); rebuild brings
        the lost upload back."""
        tus = env.tus('/files/')
        url, data = half_upload(env, tus, 9201)
        for f in db_files(env):
            f.unlink()
        assert tus.head(url).status == 404
        other = tus.create(length=3, body=b'abc')
        assert sha256(tus.get(other).body) == sha256(b'abc')
        out = recover(env)
        assert f'{upload_id(url)}: adopted' in out, out
        resume_deferred(env, tus, url, data)

    def test_rs_920_02_unreadable(self, env):
        """Database not readable by the child user: 500 with a log line
        naming the database, no crash; readable again: all is back."""
        tus = env.tus('/files/')
        url, data = half_upload(env, tus, 9202)
        mark = env.log_mark()
        for f in db_files(env):
            os.chown(f, 0, 0)
            os.chmod(f, 0o600)
        try:
            assert tus.head(url).status == 500
            assert tus.create_resp(length=10).status == 500
        finally:
            for f in db_files(env):
                env.chown_www(f)
                os.chmod(f, 0o640)
        log = '\n'.join(env.log_lines(mark))
        assert 'Permission denied' in log and str(db_path(env)) in log, log
        r = tus.patch(url, 100 * 1024, data[100 * 1024:])
        assert r.status == 204, r
        assert sha256(tus.get(url).body) == sha256(data)

    def test_rs_920_03_corrupted(self, env):
        """Database files overwritten with garbage: no crash (the server
        keeps answering, no child dies), then the recovery resumes the
        upload from its data file."""
        tus = env.tus('/files/')
        url, data = half_upload(env, tus, 9203)
        rnd = random.Random(9203)
        kids = set(env.children())
        for f in db_files(env):
            size = max(f.stat().st_size, 4096)
            f.write_bytes(rnd.randbytes(size))
        # resumablectl detects it (a full pass over the database)
        rc, out = ctl(env, 'verify')
        assert rc == 2 and 'cannot read the state database' in out, (rc, out)
        for _ in range(20):
            assert tus.head(url).status in (200, 404, 500)
            assert tus.create_resp(length=10).status in (201, 500)
        assert env.is_live()
        assert kids <= set(env.children()), 'a child died'
        recover(env)
        resume_deferred(env, tus, url, data)


# ---- readers beside writers ------------------------------------------------

CAREA = 'db921'
CHUNK = 8 * 1024
CLEN = 32 * CHUNK
# a record of several store segments (> 460 bytes): a torn read would be
# a corrupt record (500) or metadata from another generation
NOTE = 'n' * 1500


def cdb_path(env):
    return env.gen / 'state921' / 'state'


def cconf(env):
    env.mkdir_www(cdb_path(env).parent)
    return dict(areas=[RsArea('/files921/', dir=CAREA,
                              directives=['ResumableExpire 1h'])],
                statedb=str(cdb_path(env)))


class Run:
    """Shared state of one concurrency run: errors found by the threads."""

    def __init__(self, seconds):
        self.deadline = time.time() + seconds
        self.writers_done = threading.Event()
        self.errors = []
        self.heads = 0
        self.lock = threading.Lock()

    def error(self, what):
        with self.lock:
            self.errors.append(what)

    def live(self):
        return time.time() < self.deadline


def meta_of(i):
    return {'filename': f'c{i}.bin', 'note': f'{i}{NOTE}'}


def writer(run, tus, url, data):
    try:
        for off in range(0, len(data), CHUNK):
            r = tus.patch(url, off, data[off:off + CHUNK])
            if r.status != 204:
                run.error(f'PATCH {url} @{off}: {r.status}')
                return
    except Exception as ex:     # reported by the test
        run.error(f'PATCH {url}: {ex!r}')


def reader(run, tus, uploads, seed):
    """HEAD the uploads round robin until the writers are done: always 200,
    the metadata of its creation, an offset on a chunk border that never
    goes back."""
    rnd = random.Random(seed)
    last = {}
    while run.live() and not run.writers_done.is_set():
        url, meta = rnd.choice(uploads)
        try:
            r = tus.head(url)
        except Exception as ex:     # reported by the test
            run.error(f'HEAD {url}: {ex!r}')
            return
        off = int(r.headers.get('Upload-Offset', -1)) if r.status == 200 else -1
        if (r.status != 200 or r.headers.get('Upload-Metadata') != meta
                or off % CHUNK or off > CLEN or off < last.get(url, 0)):
            run.error(f'HEAD {url}: {r.status} offset {off} after '
                      f'{last.get(url, 0)}')
            return
        last[url] = off
        with run.lock:
            run.heads += 1


def churn(run, tus, rounds):
    """Create, read back and delete uploads while the others run."""
    for i in range(rounds):
        try:
            url = tus.create(length=10, metadata=meta_of(100 + i))
            r = tus.head(url)
            ok = r.status == 200 and 'Upload-Metadata' in r.headers
            ok = ok and tus.delete(url).status == 204
            ok = ok and tus.head(url).status in (404, 410)
        except Exception as ex:     # reported by the test
            run.error(f'churn {i}: {ex!r}')
            return
        if not ok:
            run.error(f'churn {i}: create/head/delete failed')
            return


class TestStateDBConcurrent:
    CONF = cconf

    def test_rs_920_04_readers_beside_writers(self, env):
        """4 PATCH writers, a create/delete churn and resumablectl list run
        while 6 HEAD readers (in parallel under sdbm's shared lock, spread
        over the children) check every answer; all uploads end intact."""
        tus = env.tus('/files921/')
        uploads, datas = [], []
        for i in range(4):
            meta = meta_of(i)
            url = tus.create(length=CLEN, metadata=meta)
            uploads.append((url, tus.head(url).headers['Upload-Metadata']))
            datas.append(make_data(CLEN, seed=9210 + i))
        run = Run(90)
        writers = [threading.Thread(target=writer, args=(run, tus, u, d))
                   for (u, _m), d in zip(uploads, datas)]
        writers.append(threading.Thread(target=churn, args=(run, tus, 12)))
        readers = [threading.Thread(target=reader, args=(run, tus, uploads, k))
                   for k in range(6)]
        for t in writers + readers:
            t.start()
        ctl_rcs = []
        for _ in range(3):
            ctl_rcs.append(resumablectl(env, cdb_path(env), 'list')[0])
        for t in writers:
            t.join(timeout=max(1, run.deadline - time.time()))
        run.writers_done.set()
        for t in readers:
            t.join(timeout=30)
        assert not any(t.is_alive() for t in writers + readers), 'hung'
        assert not run.errors, run.errors[:5]
        assert ctl_rcs == [0, 0, 0], ctl_rcs
        assert run.heads >= 50, run.heads
        for (url, _m), data in zip(uploads, datas):
            assert sha256(tus.get(url).body) == sha256(data)
        rc, out = resumablectl(env, cdb_path(env), 'verify')
        assert rc == 0, out
        pids = set(re.findall(r'"HEAD /files921/\S+ HTTP/1.1" 200 .* pid=(\d+)',
                              env.access_log.read_text()))
        assert len(pids) >= 2, pids
