"""92x: the state database missing, unreadable or corrupted under a running
server: clear answers and log lines, no crash; and the documented recovery
(tools/resumablectl.c, "Recovery"): stop httpd, set the broken
database aside, `resumablectl rebuild AREA_DIR`, start httpd: uploads whose
data files survived resume (as uploads of deferred length).

The class uses its own database, so breaking it affects no other test."""
import os
import random

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
