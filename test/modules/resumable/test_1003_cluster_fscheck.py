"""1003: the start-up self-test of the shared directories in cluster mode.

With ResumableStateDB dbd: every distinct ResumableDir and its staging
folder (.resumable/) is probed at start, as the httpd User: an exclusive
create (a second one fails with EEXIST), write + fdatasync, a hard link (a
second link() fails with EEXIST), link count 2 and one inode, rename,
unlink. A normal directory and a tmpfs start and leave no probe file; a
regular file, a directory or staging folder the User cannot write and a
read-only bind mount are refused with RS09820 naming the directory, the
operation and errno's text.
"""
import os
import pwd
import shutil
import stat
import subprocess

import pytest

from pyrs.client import make_data, sha256
from pyrs.env import MODULES_DIR, RsArea, _free_port
from pyrs.pg import PgCluster, pg_available

WHY = pg_available()
pytestmark = pytest.mark.skipif(WHY is not None, reason=WHY or '')

REQUIREMENTS = 'cluster mode needs a POSIX shared file system'


@pytest.fixture(scope='module')
def pg(env):
    c = PgCluster(env.gen / 'pg-fscheck', _free_port()).init().start()
    yield c
    c.stop()


def install(env, pg, *dirs):
    areas = [RsArea(f'/f{i}/', dir=str(d), directives=['ResumableExpire 1h'])
             for i, d in enumerate(dirs)]
    return env.install(
        areas=areas,
        server_extra='\n'.join([
            f'LoadModule dbd_module "{MODULES_DIR}/mod_dbd.so"',
            'DBDriver pgsql', f'DBDParams "{pg.dbd_params()}"']),
        statedb='dbd:')


def fresh(env, name):
    d = env.gen / 'areas' / name
    if d.exists() or d.is_symlink():
        if d.is_dir():
            shutil.rmtree(d)
        else:
            d.unlink()
    return d


def probes(d):
    return [p for p in os.listdir(d) if p.startswith('.rs-fscheck-')]


def refused(env):
    assert env.apache_fail() != 0, 'httpd started'
    return env.last_fail_output


def upload_ok(env, area):
    data = make_data(3000, seed=10031)
    tus = env.tus(area)
    url = tus.upload(data, chunk_size=1000)
    assert sha256(tus.get(url).body) == sha256(data)


def try_mount(argv):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    return None if r.returncode == 0 else (r.stderr or r.stdout).strip()


def umount(path):
    subprocess.run(['umount', str(path)], capture_output=True, timeout=30)


needs_root = pytest.mark.skipif(os.geteuid() != 0,
                                reason='needs root (User/Group, mount)')


class TestClusterFscheck:

    def test_rs_1003_01_normal_dir_starts_clean(self, env, pg):
        d = env.mkdir_www(fresh(env, 'fsc-ok'))
        install(env, pg, d, d)              # one directory, probed once
        env.start()
        try:
            staging = d / '.resumable'
            assert staging.is_dir()
            if os.geteuid() == 0:           # made by the probe as the User
                assert staging.stat().st_uid == \
                    pwd.getpwnam(env.www_user).pw_uid
            assert probes(d) == [] and probes(staging) == []
            upload_ok(env, '/f0/')
            upload_ok(env, '/f1/')
        finally:
            env.stop()
        assert probes(d) == [] and probes(d / '.resumable') == []

    def test_rs_1003_02_regular_file_refused(self, env, pg):
        ok = env.mkdir_www(fresh(env, 'fsc-ok2'))
        f = fresh(env, 'fsc-file')
        f.write_bytes(b'not a directory')
        install(env, pg, ok, f)
        out = refused(env)
        assert 'RS09820' in out and f'ResumableDir {f}:' in out, out
        assert 'is not a directory (stat: Not a directory)' in out, out
        assert REQUIREMENTS in out, out
        assert probes(ok) == [] and probes(ok / '.resumable') == []

    @needs_root
    def test_rs_1003_03_not_writable_by_user_refused(self, env, pg):
        d = fresh(env, 'fsc-root')
        d.mkdir()
        os.chmod(d, 0o755)                  # root's: www-data cannot write
        install(env, pg, d)
        out = refused(env)
        assert 'RS09820' in out and f'ResumableDir {d}:' in out, out
        assert 'is not writable by the httpd User (open O_CREAT|O_EXCL: ' \
               'Permission denied)' in out, out
        assert probes(d) == []

    @needs_root
    def test_rs_1003_04_staging_not_writable_refused(self, env, pg):
        d = env.mkdir_www(fresh(env, 'fsc-stage'))
        (d / '.resumable').mkdir()
        os.chmod(d / '.resumable', 0o755)   # root's
        install(env, pg, d)
        out = refused(env)
        assert f'ResumableDir {d}, staging folder {d}/.resumable: is not ' \
               'writable by the httpd User' in out, out
        assert probes(d) == [] and probes(d / '.resumable') == []

    @needs_root
    def test_rs_1003_05_tmpfs_starts(self, env, pg):
        d = env.mkdir_www(fresh(env, 'fsc-tmpfs'))
        err = try_mount(['mount', '-t', 'tmpfs', '-o', 'size=8m', 'tmpfs',
                         str(d)])
        if err:
            pytest.skip(f'mount -t tmpfs not permitted here: {err}')
        try:
            env.chown_www(d)
            install(env, pg, d)
            env.start()
            try:
                upload_ok(env, '/f0/')
            finally:
                env.stop()
            assert probes(d) == [] and probes(d / '.resumable') == []
        finally:
            umount(d)

    @needs_root
    def test_rs_1003_06_read_only_mount_refused(self, env, pg):
        src = env.mkdir_www(fresh(env, 'fsc-ro-src'))
        d = env.mkdir_www(fresh(env, 'fsc-ro'))
        err = try_mount(['mount', '--bind', '-o', 'ro', str(src), str(d)])
        if err:
            pytest.skip(f'mount --bind -o ro not permitted here: {err}')
        try:
            if os.access(d, os.W_OK) and not (
                    os.statvfs(d).f_flag & os.ST_RDONLY):
                pytest.skip('the bind mount did not become read-only')
            install(env, pg, d)
            out = refused(env)
            assert 'RS09820' in out and f'ResumableDir {d}:' in out, out
            assert 'is on a read-only file system (open O_CREAT|O_EXCL: ' \
                   'Read-only file system)' in out, out
        finally:
            umount(d)
        assert probes(src) == []
