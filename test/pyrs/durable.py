"""DurableCheck: what the cluster tiers check after every case.

- `resumablectl verify` on the state database is clean;
- for every upload of the database not yet seen complete: HEAD through
  each node (tus areas) answers the same offset, no more than the bytes of
  its data file as the test process's own view of the shared directory
  shows them ("durable": written and fdatasync'ed by a node, read through
  another client);
- those bytes equal the source: the upload's length and prefix match data
  the case made with make_data() (recorded by DurableCheck.make_data, which
  the fixture puts in the test module's place). Chunked and composed
  uploads (no single prefix) are checked by HEAD and verify only.

The committed bytes are the upload's one data file, or with the writer
leases its per-epoch segment files as the record lays them out.
"""
import re
import time
from pathlib import Path

from .client import RsClient, make_data
from .ctl import resumablectl

TUS_HEADERS = {'Tus-Resumable': '1.0.0'}
FLAG_COMPOSED = 0x40                # show's flags; chunked: a 'chunks:' line
FLAG_UNINDEXED = 0x20


class DurableCheck:

    def __init__(self, cluster, tus_areas=('files', 'short')):
        self.c = cluster
        self.db = 'dbd:' + cluster.pg_params
        self.tus_areas = tus_areas
        self.sources = {}           # length -> [data, ...]
        self.complete = set()       # ids checked complete (not again)
        self.checked = 0
        self.reported = set()       # verify's problem lines seen before

    def make_data(self, n, seed=0):
        data = make_data(n, seed)
        self.sources.setdefault(len(data), []).append(data)
        return data

    def ctl(self, *args):
        rc, out = resumablectl(self.c.env, self.db, *args)
        return rc, out

    def ids(self):
        rc, out = self.ctl('list')
        assert rc == 0, f'resumablectl list:\n{out}'
        return [line.split()[0] for line in out.splitlines()[1:]
                if line.strip()]

    def show(self, uid):
        """`resumablectl show` as a dict (None: no such upload); the
        'segment' lines of a cluster record, if any, as a list."""
        rc, out = self.ctl('show', uid)
        if rc != 0:
            return None             # removed meanwhile (expiry, delete)
        fields = {'segment': []}
        for line in out.splitlines():
            m = re.match(r'^(\S+):\s+(.*)$', line)
            if m and m.group(1) == 'segment':
                fields['segment'].append(m.group(2).strip())
            elif m:
                fields[m.group(1)] = m.group(2).strip()
        return fields

    def settled(self, uid, timeout=15):
        """show() once the upload's own after-work is done (its content
        indexed: flag 0x20 cleared) and two reads 0.5 s apart agree."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            f = self.show(uid)
            if f == last and f and not int(f['flags'], 16) & FLAG_UNINDEXED:
                return f
            last = f
            time.sleep(0.5)
        raise AssertionError(f'the record of {uid} does not settle: {last}')

    def durable_bytes(self, area, uid, fields):
        """The upload's committed bytes as this client sees them: its
        segments' (cluster records, RsCluster.durable_bytes where the
        writer leases are), else its one data file; None when unknown."""
        if fields['segment']:
            get = getattr(self.c, 'durable_bytes', None)
            return get(area, uid) if get else None
        node = self.c.nodes[0]
        files = [p for p in node.staged_files(area, uid)
                 if not re.search(r'\.(info|json|meta|lock)$', p.name)]
        if len(files) > 1:
            return None
        return files[0].read_bytes() if files else b''

    def head_offsets(self, area, uid):
        """Per node: HEAD's offset (int) or its status ('404', ...)."""
        out = []
        for n in self.c.nodes:
            r = RsClient(n.url).head(f'/{area}/{uid}', TUS_HEADERS)
            out.append(int(r.headers['Upload-Offset'])
                       if r.status == 200 else str(r.status))
        return out

    def check(self):
        """Fails on problems not reported before (a broken upload fails
        the case that broke it, not every case after it)."""
        rc, out = self.ctl('verify')
        probs = {line for line in out.splitlines()
                 if line.strip() and not line.startswith('verify: ')}
        new = probs - self.reported
        self.reported |= probs
        assert rc == 0 or not new, f'resumablectl verify:\n{out}'
        for uid in self.ids():
            if uid not in self.complete:
                try:
                    self.check_one(uid)
                except AssertionError:
                    self.complete.add(uid)      # reported once
                    raise

    def check_one(self, uid):
        f = self.show(uid)
        if f is None:
            return
        self.checked += 1
        off_s, _, len_s = f['offset/length'].partition('/')
        acked = int(off_s)
        length = None if len_s == '?' else int(len_s)
        area = Path(f['dir'])
        if area.name in self.tus_areas:
            heads = self.head_offsets(area.name, uid)
            if all(h in ('404', '410') for h in heads):
                return              # gone meanwhile (expiry, delete)
            assert len(set(heads)) == 1, (uid, 'nodes disagree', heads)
            assert isinstance(heads[0], int) and heads[0] <= acked, \
                (uid, f'HEAD {heads[0]} beyond the record {acked}')
            acked = heads[0]
        if f['state'] == 'complete':
            self.complete.add(uid)
        chunked = 'chunks' in f or int(f['flags'], 16) & FLAG_COMPOSED
        if chunked or f['state'] != 'active':
            return
        durable = self.durable_bytes(area, uid, f)
        if durable is None:
            return
        assert acked <= len(durable), \
            (uid, f'offset {acked} > {len(durable)} durable bytes')
        if length is None:
            return
        cands = self.sources.get(length, [])
        assert any(s[:acked] == durable[:acked] for s in cands), \
            (uid, f'the {acked} durable bytes differ from every source of '
                  f'length {length} ({len(cands)} candidates)')
