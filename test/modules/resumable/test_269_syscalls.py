"""269: system calls of one request (issue 15), seen by strace attached to
every thread of the running children. A PATCH takes the upload's writer
lock by opening the staging folder's lock file at once: the folder is
made only when that open finds it missing, not stat'ed before every
request (a newfstatat of "<area>/.resumable" per PATCH before)."""
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
    return dict(areas=[RsArea('/files/', dir='sys269_files',
                              directives=['ResumableExpire 1h'])])


def traced(env, fn, out):
    """Run fn() with strace -f attached to every child (all threads);
    returns strace's output lines. Bounded waits throughout."""
    argv = ['strace', '-f', '-y', '-o', str(out), '-e',
            'trace=%stat,%lstat,%fstat,openat']
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
