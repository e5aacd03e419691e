"""Fault helpers for the cluster client tests (test_1020, test_1030).

- NodeKill: SIGKILL every process of one cluster node (parent and
  children), then bring it back, remembering the wall-clock window in
  which it was down (5xx through the front are excused only there);
- durable_prefix_ok: the bytes an upload's HEAD offset promises are on the
  shared disk and equal the source, whatever the staging layout (one data
  file, or per-epoch segment files `<id>.e<N>` of the lease design: each
  segment is located in the source by its own first bytes);
- front_5xx: 5xx answers in an access log (the `rs` LogFormat of
  pyrs/env.py) with their times, to compare with the down window;
- verify_clean: `resumablectl -d dbd:... verify` of the cluster's database.

Every wait is bounded.
"""
import os
import re
import signal
import time
from datetime import datetime

from .client import RsClient, Tus, upload_id
from .ctl import resumablectl

RE_ACCESS = re.compile(r'\[(\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\] '
                       r'"([^"]*)" (\d{3}) ')


class NodeKill:
    """Kill node `i` of cluster `c` whole, later start it again."""

    def __init__(self, c, i):
        self.c = c
        self.i = i
        self.node = c.nodes[i]
        self.down_at = None
        self.up_at = None

    def kill(self):
        pids = [self.node.pid()] + self.node.children()
        self.down_at = time.time()
        for p in pids:
            if p:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        return [p for p in pids if p]

    def revive(self):
        self.node.pid_file.unlink(missing_ok=True)
        self.node.start()
        ok = self.c.wait_balanced(15)
        self.up_at = time.time()
        return ok

    def window(self, slack=1.5):
        """(from, to) in epoch seconds: while the node was down (+ the
        balancer's retry=1 s and the log's one-second resolution)."""
        return (self.down_at - slack,
                (self.up_at or time.time()) + slack)


def access_5xx(path, since=0):
    """[(epoch seconds, request line, status)] of 5xx answers in an
    access log past byte offset `since`."""
    try:
        with open(path, 'rb') as f:
            f.seek(since)
            text = f.read().decode(errors='replace')
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        m = RE_ACCESS.search(line)
        if m and m.group(3).startswith('5'):
            t = datetime.strptime(m.group(1), '%d/%b/%Y:%H:%M:%S %z')
            out.append((t.timestamp(), m.group(2), int(m.group(3))))
    return out


def log_size(path):
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def outside(entries, window):
    lo, hi = window
    return [e for e in entries if not lo <= e[0] <= hi]


def staged_data_files(area_dir, uid):
    """Data files of an upload in <area>/.resumable (no info/lock files)."""
    d = os.path.join(area_dir, '.resumable')
    out = []
    for root, _dirs, files in os.walk(d):
        for f in files:
            if uid in f and not re.search(r'\.(info|json|meta|lock|stop)$',
                                          f):
                out.append(os.path.join(root, f))
    return sorted(out)


def _match_len(a, b):
    """Length of the common prefix of two byte strings."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i:i + 65536] == b[i:i + 65536]:
        i += 65536
    i = min(i, n)
    while i < n and a[i] == b[i]:
        i += 1
    return i


def durable_prefix_ok(area_dir, uid, data, off):
    """None when the staged bytes cover [0, off) with the source's bytes;
    else the reason. Layout-agnostic: one data file, or one segment file
    per writer epoch; a segment is placed where its first bytes are in the
    source, and only its part equal to the source there counts (a writer
    that lost its lease may have left other bytes past what it committed:
    nobody reads them)."""
    if off == 0:
        return None
    files = staged_data_files(area_dir, uid)
    if not files:
        return f'no staged data file of {uid}'
    spans = []
    for f in files:
        with open(f, 'rb') as fh:
            b = fh.read()
        if not b:
            continue
        start = 0 if len(files) == 1 else data.find(b[:4096])
        if start < 0:
            continue
        spans.append((start, start + _match_len(b, data[start:]), f))
    reach = 0
    for a, z, _f in sorted(spans):
        if a > reach:
            break
        reach = max(reach, z)
    if reach < off:
        return (f'the source bytes are on disk for [0, {reach}) only, '
                f'< offset {off} (files {[(a, z) for a, z, _ in spans]})')
    return None


def head_offsets(c, url, nodes=None, headers=None):
    """Upload-Offset HEAD reports through each node in `nodes` (index
    list, default all); None where the node does not answer 200."""
    out = []
    for i in (range(len(c.nodes)) if nodes is None else nodes):
        r = Tus(RsClient(c.nodes[i].url), '/files/').head(url, headers)
        out.append(int(r.headers['Upload-Offset']) if r.status in (200, 204)
                   and 'Upload-Offset' in r.headers else None)
    return out


def check_heads_durable(c, area_dir, url, data, nodes=None, headers=None):
    """HEAD's offset through every node (that answers) is backed by
    durable bytes equal to the source; returns the offsets. (A finished
    upload has left the staging folder: the caller checks its published
    file.)"""
    offs = head_offsets(c, url, nodes, headers)
    for off in offs:
        if off is None or off == len(data):
            continue
        assert 0 <= off <= len(data), (url, offs)
        why = durable_prefix_ok(area_dir, upload_id(url), data, off)
        assert why is None, f'{url}: HEAD offset {off}: {why}'
    return offs


def verify_clean(c):
    rc, out = resumablectl(c.env, 'dbd:' + c.pg_params, 'verify')
    assert rc == 0, f'resumablectl verify:\n{out}'
    return out
