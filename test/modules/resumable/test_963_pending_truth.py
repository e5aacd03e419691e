"""963: ResumableMaxPending's counts stay equal to the truth across the
features that create and remove uploads: refusals (the limit itself, a
pre-create hook, a pre-finish hook), DELETE, md5 handshakes that start
over, concatenation, expiry, concurrent create/delete, and children
killed with SIGKILL. After every scenario `resumablectl verify` (which
recounts the uploads that hold no data, rs_ctl_pending) finds no problem
and a user can again create exactly the limit. A count a kill left wrong
is found by verify and corrected by repair."""
import os
import re
import shutil
import signal
import subprocess
import threading
import time

from pyrs.client import split_url
from pyrs.ctl import resumablectl
from pyrs.env import RsArea
from pyrs.hookrx import Receiver
from test_960_crossproto import Paths, md5, md5_handshake

RX = Receiver()
LIMIT = 3
ALLOW = dict(tags=['RS09701', 'RS09703', 'RS09704', 'AH00052'],
             patterns=[r'\[resumable:warn\]'])


def conf(env):
    if RX.srv is None:
        RX.start()
    hooks = [f'ResumableHook {e} {RX.url}/h963' for e in ('pre-create',
                                                           'pre-finish')]
    lim = [f'ResumableMaxPending {LIMIT} 50']
    # a state database of its own: verify must judge only what these tests
    # did, not what earlier suites of the session left on purpose
    return dict(statedb=f'"{statedb(env)}"', areas=[
        RsArea('/pt/', dir='pend963', directives=['ResumableExpire 1h']
               + lim + hooks),
        RsArea('/px/', dir='pend963x', directives=['ResumableExpire 2']
               + lim),
        RsArea('/pk/', dir='pend963k', directives=['ResumableExpire 1h']
               + lim)])


def children(env):
    """pids of httpd's children (their parent is the main process)."""
    main, out = env.pid(), []
    for d in os.listdir('/proc'):
        try:
            with open(f'/proc/{d}/stat') as f:
                st = f.read().rsplit(')', 1)[1].split()
        except (OSError, IndexError):
            continue
        if d.isdigit() and st[1] == str(main) and st[0] not in 'ZX':
            out.append(int(d))
    return out


def statedb(env):
    return env.state_dir / 'pending963'


def verify(env):
    rc, out = resumablectl(env, statedb(env), 'verify')
    assert rc == 0 and ' 0 problems' in out, out
    return out


def capacity(env, area):
    """Exactly LIMIT new uploads fit, the next is refused; removed again."""
    tus = env.tus(area)
    urls = []
    for _ in range(LIMIT):
        r = tus.create_resp(length=10)
        assert r.status == 201, r
        urls.append(r.headers['Location'])
    assert tus.create_resp(length=10).status == 429
    for u in urls:
        assert tus.delete(u).status == 204
    verify(env)


class TestPendingTruth:
    CONF = staticmethod(conf)
    ALLOW_ERRORS = ALLOW

    def test_rs_963_01_refusals(self, env):
        """Refused creations (limit, pre-create) take no count; an upload
        refused at pre-finish holds data (counted out) and its removal
        counts nothing twice."""
        tus = env.tus('/pt/')
        urls = [tus.create(length=10) for _ in range(LIMIT)]
        for _ in range(5):
            assert tus.create_resp(length=10).status == 429
        verify(env)
        for u in urls:
            assert tus.delete(u).status == 204
        for _ in range(5):
            r = tus.create_resp(length=10, metadata={'filename': 'reject.bin'})
            assert r.status == 403, r
        verify(env)
        r = tus.create_resp(length=5, metadata={'filename': 'v.bin'})
        assert r.status == 201, r
        url = r.headers['Location']
        r = tus.patch(url, 0, b'VIRUS')
        assert r.status == 422, r
        verify(env)
        assert tus.delete(url).status in (204, 403, 404)
        verify(env)
        capacity(env, '/pt/')

    def test_rs_963_02_md5_start_over(self, env):
        """A handshake that cuts the file differently removes the old
        upload and creates a new one: one count, not one per handshake."""
        P = Paths('/pt/')
        fid = md5(b'963 md5 content')
        for i in range(2 * LIMIT + 2):
            ids = [md5(b'%d' % i) + '0', md5(b'%d' % (i + 1)) + '1']
            r = md5_handshake(env, P, fid, ids)
            assert r.status == 200, r
        verify(env)
        tus = env.tus('/pt/')
        urls = [tus.create(length=10) for _ in range(LIMIT - 1)]
        assert tus.create_resp(length=10).status == 429
        for u in urls:
            assert tus.delete(u).status == 204
        # the md5 upload still counts until it is removed or gets data
        ids = [md5(b'x') + '0']
        assert md5_handshake(env, P, md5(b'other'), ids).status == 200
        verify(env)

    def test_rs_963_03_concat(self, env):
        """Partials count until they hold data; a final counts never; a
        partial kept (423) for a final and removed later counts once."""
        tus = env.tus('/pk/')
        parts = []
        for _ in range(2):
            r = tus.create_resp(length=3, concat='partial')
            assert r.status == 201, r
            parts.append(r.headers['Location'])
        paths = ' '.join(split_url(u)[0] for u in parts)
        r = tus.create_resp(concat='final;' + paths)
        assert r.status == 201, r
        final = r.headers['Location']
        verify(env)
        for u in parts:
            assert tus.patch(u, 0, b'abc').status == 204
        verify(env)
        assert tus.get(final).body == b'abcabc'
        for u in parts:
            assert tus.delete(u).status in (204, 423)
        verify(env)
        capacity(env, '/pk/')

    def test_rs_963_04_expiry(self, env):
        """Pending uploads that expire give their count back."""
        tus = env.tus('/px/')
        for _ in range(LIMIT):
            assert tus.create_resp(length=10).status == 201
        assert tus.create_resp(length=10).status == 429
        end = time.time() + 15
        while time.time() < end:
            time.sleep(0.5)
            r = tus.create_resp(length=10)
            if r.status == 201:
                assert tus.delete(r.headers['Location']).status == 204
                break
        assert time.time() < end, 'expired uploads still counted'
        verify(env)

    def test_rs_963_05_races(self, env):
        """Four clients create, write and delete at once (bounded)."""
        errors = []

        def worker(n):
            tus = env.tus('/pk/')
            for i in range(15):
                r = tus.create_resp(length=10)
                if r.status == 429:
                    continue
                if r.status != 201:
                    errors.append(r)
                    continue
                url = r.headers['Location']
                if (n + i) % 3 == 0:
                    tus.patch(url, 0, b'12')
                if (n + i) % 2 == 0:
                    tus.delete(url)
                else:
                    threading.Thread(target=tus.delete, args=(url,)).start()
        ts = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        assert not errors, errors[:3]
        time.sleep(1)
        verify(env)
        capacity(env, '/pk/')

    def test_rs_963_06_kills(self, env):
        """Children killed while uploads are created, written and removed:
        a kill between two writes may leave a count low (one more upload
        fits until it returns to 0), never high (a user refused for good)
        nor an entry of a removed upload. repair (httpd stopped) makes the
        counts true again and the limit is whole."""
        stop = time.time() + 6
        rc, out = resumablectl(env, statedb(env), 'repair')
        assert rc == 0, out

        def churn(n):
            tus = env.tus('/pk/')
            i = 0
            while time.time() < stop:
                i += 1
                try:
                    r = tus.create_resp(length=10)
                    if r.status == 201 and (i + n) % 4 == 0:
                        tus.patch(r.headers['Location'], 0, b'ab')
                    if r.status == 201:
                        tus.delete(r.headers['Location'])
                except Exception:           # the child was killed
                    pass
        ts = [threading.Thread(target=churn, args=(n,)) for n in range(4)]
        for t in ts:
            t.start()
        kills = 0
        while time.time() < stop and kills < 40:
            time.sleep(0.1)
            for pid in children(env)[:1]:
                try:
                    os.kill(pid, signal.SIGKILL)
                    kills += 1
                except OSError:
                    pass
        for t in ts:
            t.join(30)
        assert env.wait_live(10)
        env.stop()
        rc, out = resumablectl(env, statedb(env), 'verify')
        print(f'{kills} kills; verify: {out}')
        assert 'pending entry' not in out, out
        for m in re.finditer(r'pending count \S+ is (\d+), (\d+) uploads',
                             out):
            assert int(m.group(1)) <= int(m.group(2)), out
        rc, out = resumablectl(env, statedb(env), 'repair')
        assert rc == 0, out
        verify(env)
        env.start()
        capacity_after_kills(env)


def capacity_after_kills(env):
    """Uploads a kill left (created, answer lost) still count, truly: the
    area's count equals what verify agrees with; new ones fit up to the
    limit once those expire or are deleted. Delete them through the list."""
    rc, out = resumablectl(env, statedb(env), 'list')
    assert rc == 0, out
    tus = env.tus('/pk/')
    for line in out.splitlines()[1:]:
        f = line.split()
        if len(f) > 2 and f[1] == 'active' and f[2].startswith('0/'):
            tus.delete(f'/pk/{f[0]}')
    verify(env)
    capacity(env, '/pk/')


def run_unit_path(env):
    r = subprocess.run(['make', '-C', str(env.repo), 'test/unit/run_unit'],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return env.repo / 'test' / 'unit' / 'run_unit'


class TestPendingKillPoints:
    """The engine's pending writes (test/unit/test_ctl.c pending_writes:
    two creations, a first byte, a termination, a refusal) killed at every
    write of the state database in turn (strace's fault injection: SIGKILL
    at the n-th write): no kill point loses an acknowledged upload's record
    or leaves a count high or an entry of a removed upload. Before the
    fixes: a kill in the middle of an sdbm page split lost every key that
    moved to the new page (the records of uploads created before, answered
    201), and a kill after a record's removal left its "q:" entry and a
    count one high that refused the user for good."""

    def test_rs_963_07_every_write(self, env):
        assert shutil.which('strace'), 'strace is needed (tools/test.sh ' \
            'installs it)'
        unit = run_unit_path(env)
        d = env.gen / 'pend963kill'
        completed, points = False, 0
        for k in range(1, 200):
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
            db = d / 'state'
            r = subprocess.run([
                'strace', '-f', '-qq', '-o', '/dev/null',
                '-P', f'{db}.pag', '-P', f'{db}.dir',
                '-e', 'trace=write,pwrite64,writev',
                '-e', f'inject=write,pwrite64,writev:signal=SIGKILL:when={k}',
                str(unit), 'ctl'], env=dict(os.environ,
                                            RS_UNIT_PENDING_DIR=str(d)),
                capture_output=True, text=True, timeout=60)
            rc, out = resumablectl(env, db, 'list')
            listed = {ln.split()[0] for ln in out.splitlines()[1:] if ln}
            done = re.findall(r'^created (\S+)$', r.stdout, re.M)
            gone = re.findall(r'^removing (\S+)$', r.stdout, re.M)
            lost = [i for i in done if i not in gone and i not in listed]
            assert not lost, f'kill at write {k}: acknowledged uploads ' \
                f'lost: {lost}\n{out}'
            rc, out = resumablectl(env, db, 'verify')
            assert 'pending entry' not in out, f'kill at write {k}:\n{out}'
            for m in re.finditer(r'pending count \S+ is (\d+), (\d+) uploads',
                                 out):
                assert int(m.group(1)) <= int(m.group(2)), \
                    f'kill at write {k}: a count too high:\n{out}'
            rc, out = resumablectl(env, db, 'repair')
            assert rc == 0, out
            verify_db(env, db)
            if r.returncode == 0:
                completed = True
                break
            assert r.returncode in (-9, 137), (k, r.returncode, r.stdout,
                                                r.stderr)
            points += 1
        assert completed and points >= 5, (completed, points)


def verify_db(env, db):
    rc, out = resumablectl(env, db, 'verify')
    assert rc == 0 and ' 0 problems' in out, out
