"""265: disk-bound work of a request (issue 15), seen in the system calls of
the server (strace attached to the running httpd):

- the md5 front end's last chunk syncs the data file once, as a middle
  chunk does (it synced it twice: after merging itself, then again after
  sizing the file -- on a disk the second fdatasync is one more cache
  flush), and the file is still complete and durable when it answers;
- a body of several MiB starts the disk's writeback as it arrives
  (sync_file_range every 1 MiB), so the fdatasync that acknowledges it
  finds little left to write: a 5 MiB PATCH started none with the former
  8 MiB step; so do a slice's spool and the merge's copy of the slices.
"""
import os
import re
import shutil
import subprocess
import time

import pytest

from pyrs.client import make_data, sha256
from pyrs.env import RsArea
from pyrs.seeds import seeds_conf, seeds_dir

from test_820_md5 import begin, send

AREA = 'seeds-sync265'
CHUNK = 64 * 1024

pytestmark = pytest.mark.skipif(not shutil.which('strace'),
                                reason='strace is needed (tools/test.sh installs it)')


def traced(pid):
    """Every thread of pid has a tracer (strace -p attaches to all)."""
    try:
        tids = os.listdir(f'/proc/{pid}/task')
    except FileNotFoundError:
        return True                         # gone: nothing to wait for
    for tid in tids:
        try:
            with open(f'/proc/{pid}/task/{tid}/status') as f:
                if re.search(r'^TracerPid:\s+0$', f.read(), re.M):
                    return False
        except FileNotFoundError:
            continue
    return True


class Traced:
    """strace -f of httpd (parent and children) while the block runs;
    .lines: strace's output, .count(): calls on a path."""

    def __init__(self, env, calls):
        self.env, self.calls, self.out = env, calls, env.gen / 'strace265.out'

    def __enter__(self):
        # the parent too: a child it forks meanwhile is traced as well
        pids = [self.env.pid()] + self.env.children()
        assert len(pids) > 1, 'no httpd children'
        self.out.unlink(missing_ok=True)
        argv = ['strace', '-f', '-qq', '-y', '-o', str(self.out),
                '-e', f'trace={self.calls}']
        for pid in pids:
            argv += ['-p', str(pid)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        # attached once every child (and its threads) names a tracer
        end = time.monotonic() + 20
        while not all(traced(pid) for pid in pids):
            assert time.monotonic() < end and self.proc.poll() is None, \
                self.proc.stderr.read() if self.proc.poll() is not None else 'slow'
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        time.sleep(0.5)                   # the work after the answer
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.lines = self.out.read_text().splitlines() if self.out.exists() else []
        return False

    def count(self, call, path_part):
        """Completed calls named call on a descriptor whose path has path_part."""
        return sum(1 for ln in self.lines
                   for m in [re.search(rf'\b{call}\(\d+<([^>]*)>', ln)]
                   if m and path_part in m.group(1))


class TestDiskSync:
    CONF = staticmethod(lambda env: seeds_conf(env, AREA))

    def test_rs_265_01_md5_last_chunk_syncs_once(self, env):
        data = make_data(4 * CHUNK + 123, seed=2651)
        fid, chunks = begin(env, data, CHUNK, 2)
        with Traced(env, 'fdatasync') as mid:
            r, j = send(env, fid, *chunks[-2])
            assert r.status == 200 and j['code'] == 0, j
        with Traced(env, 'fdatasync') as last:
            r, j = send(env, fid, *chunks[-1])
            assert r.status == 200 and j['data'] == [], j
        assert env.sha256_file(seeds_dir(env, AREA) / f'{fid}.bin') == sha256(data)
        # the upload's data file (its id is not the fileId); the chunk's
        # spool ("form-*") is synced once by each chunk as before
        assert mid.count('fdatasync', '.data') == 1, mid.lines
        assert last.count('fdatasync', '.data') == 1, last.lines
        assert last.count('fdatasync', '/form-') == 1, last.lines



class TestDiskWriteback:
    CONF = dict(areas=[RsArea('/files/', dir='sync265')])

    def test_rs_265_02_writeback_while_a_body_arrives(self, env):
        """A 5 MiB tus PATCH: writeback starts per MiB before its sync."""
        tus = env.tus('/files/')
        data = make_data(5 * 1024 * 1024, seed=2652)
        url = tus.create(length=len(data))
        with Traced(env, 'sync_file_range,fdatasync') as t:
            r = tus.patch(url, 0, data)
            assert r.status == 204, r
        assert sha256(tus.get(url).body) == sha256(data)
        uid = url.rsplit('/', 1)[-1]
        assert t.count('sync_file_range', uid) >= 3, t.lines
        assert t.count('fdatasync', uid) == 1, t.lines


class TestSliceWriteback:
    """Seed 000: each multipart slice's spool and the merge's copy of the
    slices into the published file start writeback before their syncs."""
    CONF = staticmethod(lambda env: seeds_conf(env, 'seeds-slice265'))

    def test_rs_265_03_slices_and_merge(self, env):
        from test_810_slice import chunks_of, merge, published, send_chunk
        size = 2 * 1024 * 1024
        data = make_data(4 * size, seed=2653)
        pieces = chunks_of(data, size)
        with Traced(env, 'sync_file_range,fdatasync') as t:
            for i, piece in enumerate(pieces):
                r = send_chunk(env, 'wb265.bin', i, piece)
                assert r.status == 200, r
            r = merge(env, 'wb265.bin', size)
            assert r.status == 200 and r.body == b'ok', r
            path = published(seeds_dir(env, 'seeds-slice265') / 'wb265.bin')
        assert env.sha256_file(path) == sha256(data)
        # each 2 MiB spool: writeback started, then its own sync
        assert t.count('sync_file_range', '/form-') >= 4, t.lines
        assert t.count('fdatasync', '/form-') == 4, t.lines
        # the copy into the data file: writeback per slice, one sync
        assert t.count('sync_file_range', '.data') >= 4, t.lines
        assert t.count('fdatasync', '.data') == 1, t.lines
