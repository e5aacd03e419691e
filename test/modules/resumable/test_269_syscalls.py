"""269: system calls of one request (issue 15), seen by strace attached to
every thread of the running children. A PATCH takes the upload's writer
lock by opening the staging folder's lock file at once: the folder is
made only when that open finds it missing, not stat'ed before every
request (a newfstatat of "<area>/.resumable" per PATCH before). A state
transaction reads each sdbm page at most once while it holds the lock,
unless it wrote that page meanwhile (a put read its head's page again
after the segment sweep had read another page)."""
import re
import shutil
import signal
import subprocess
import time

from pyrs.client import make_data
from pyrs.env import RsArea

STAT = re.compile(r'\b(?:newfstatat|fstatat64|statx|stat|lstat|stat64|lstat64)'
                  r'\([^"]*"([^"]*)"')
OPEN = re.compile(r'\bopenat\([^"]*"([^"]*)"')


def conf(env):
    # a database of its own: other tests' records would make the expiry
    # sweep's scan (a reader of every page, in key order) part of the trace
    return dict(statedb=f'"{env.state_dir / "sys269"}"',
                areas=[RsArea('/files/', dir='sys269_files',
                              directives=['ResumableExpire 1h'])])


CALL = re.compile(r'^(\d+)\s+(\w+)\((\d+)<([^>]*)>(.*)$')


def writers(lines, db):
    """Threads that took db's .dir exclusively: the requests that saved
    state (the expiry sweep's scan only reads; it may read a page again
    once its 16-page cache has moved on, and is not what is measured)."""
    return {m.group(1) for ln in lines if (m := CALL.match(ln))
            and m.group(2) == 'flock' and m.group(4) == f'{db}.dir'
            and 'LOCK_EX' in m.group(5)}


def page_rereads(lines, db):
    """Per request thread (writers), between a lock and an unlock of db's
    .dir: pages of db's .pag read (pread64, the guard) a second time
    without a write of theirs (sdbm: lseek + write) or of the .dir (a
    split) in between."""
    bad, state, mine = [], {}, writers(lines, db)
    for ln in lines:
        m = CALL.match(ln)
        if not m:
            continue
        tid, call, path, rest = m.group(1), m.group(2), m.group(4), m.group(5)
        if tid not in mine:
            continue
        st = state.setdefault(tid, {'read': set(), 'at': None, 'in': False})
        if call == 'flock' and path == f'{db}.dir':
            st['in'] = 'LOCK_UN' not in rest
            st['read'] = set()
        elif not st['in']:
            continue
        elif call == 'write' and path == f'{db}.dir':
            st['read'] = set()                  # a split: all may change
        elif call == 'lseek' and path == f'{db}.pag':
            st['at'] = int(rest.split(',')[1])
        elif call == 'write' and path == f'{db}.pag':
            st['read'].discard(st['at'])
        elif call == 'pread64' and path == f'{db}.pag':
            off = int(rest.rsplit(',', 1)[1].split(')')[0])
            if off in st['read']:
                bad.append(ln[:160])
            st['read'].add(off)
    return bad


def traced(env, fn, out, calls='%stat,%lstat,%fstat,openat'):
    """Run fn() with strace -f attached to every child (all threads);
    returns strace's output lines. Bounded waits throughout."""
    argv = ['strace', '-f', '-y', '-o', str(out), '-e', f'trace={calls}']
    kids = env.children()
    assert kids, 'no httpd children'
    for k in kids:
        argv += ['-p', str(k)]
    p = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    try:
        # "Process N attached [with M threads]" once per -p; EOF if strace
        # fails; at most len(kids) lines awaited
        seen = 0
        while seen < len(kids):
            line = p.stderr.readline()
            if not line:
                break
            seen += 'attached' in line
        assert seen == len(kids), f'strace attached {seen}/{len(kids)}'
        time.sleep(0.5)
        fn()
        time.sleep(0.5)
    finally:
        p.send_signal(signal.SIGINT)
        try:
            p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate(timeout=30)
    return out.read_text().splitlines()


class TestSyscalls:
    CONF = staticmethod(conf)

    def test_rs_269_01_patch_does_not_stat_the_staging_folder(self, env):
        assert shutil.which('strace'), 'strace is needed (tools/test.sh ' \
            'installs it)'
        tus = env.tus('/files/')
        data = make_data(3000, seed=269)
        url = tus.create(length=len(data))
        staging = str(env.area_dir('sys269_files') / '.resumable')
        res = []
        lines = traced(env, lambda: res.extend([
            tus.patch(url, 0, data[:1000]).status,
            tus.patch(url, 1000, data[1000:]).status]),
            env.gen / 'strace269.txt')
        assert res == [204, 204], res
        stats = [ln for ln in lines
                 if (m := STAT.search(ln)) and m.group(1).rstrip('/') == staging]
        assert not stats, '\n'.join(stats)
        locks = [ln for ln in lines if (m := OPEN.search(ln))
                 and m.group(1) == staging + '/.writers.lock']
        assert len(locks) == 2, '\n'.join(locks)     # one per PATCH
        assert tus.head(url).headers['Upload-Offset'] == str(len(data))

    def test_rs_269_02_txn_reads_a_page_once(self, env):
        assert shutil.which('strace'), 'strace is needed'
        tus = env.tus('/files/')
        for i in range(48):                     # a database of many pages
            tus.create(length=100 + i)
        data = make_data(3000, seed=2692)
        urls = [tus.create(length=len(data)) for _ in range(3)]
        res = []

        def patches():
            for url in urls:
                res.append(tus.patch(url, 0, data[:1000]).status)
                res.append(tus.patch(url, 1000, data[1000:]).status)
        lines = traced(env, patches, env.gen / 'strace269b.txt',
                       calls='flock,pread64,lseek,write')
        assert res == [204] * 6, res
        db = str(env.state_dir / 'sys269')
        assert any(f'{db}.pag' in ln and 'pread64' in ln for ln in lines), \
            'no page read traced'
        bad = page_rereads(lines, db)
        assert not bad, '\n'.join(bad)
