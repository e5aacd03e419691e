"""1030: a node cut from PostgreSQL by a network partition.

Node B's httpd runs in a network namespace this test makes (pyrs/netns.py):
one veth pair carries the front's (and the test's) requests to B, another
carries B's connections to PostgreSQL, which listens on 127.0.0.1 and on
the host end of that pair. Node A and the front run in the root namespace
as in test_1000. ResumableLeaseTime is 2 s.

B receives a PATCH; its first part is checkpointed; then B's PostgreSQL
link goes down (no FIN, no RST) while B's client keeps sending (bytes that
are not the source's: a writer that committed them would show). Then:

- requests that reach B answer 503 (ERR_STATE_UNAVAILABLE, tagged log
  line), never a crash;
- the upload is resumed and finished through node A once B's lease has
  run out (it cannot be handed over: B's client never goes idle), and its
  bytes equal the source;
- after the link comes back, B's old writer is fenced (RS09831) or has
  stopped on its own (RS09832): the published file and every field of
  `resumablectl show` are unchanged.

Needs the writer leases of the cluster design (issue 12): without them
node A gets 423 for as long as B's client keeps sending. Skipped with the
reason where PostgreSQL or network namespaces are not available.
"""
import hashlib
import re
import threading
import time

import pytest

from pyrs.client import OCTET, RsClient, Tus, abort_socket, read_response, \
    set_default_base, sha256, upload_id
from pyrs.cluster import RsCluster
from pyrs.ctl import resumablectl
from pyrs.env import _free_port, wait_for
from pyrs.faults import check_heads_durable, verify_clean
from pyrs.netns import NetNs, NsEnv, netns_unavailable
from pyrs.pg import PgCluster, pg_available

WHY = pg_available() or netns_unavailable()
pytestmark = pytest.mark.skipif(WHY is not None, reason=WHY or '')

LEASE = 2
ALLOW = dict(tags=['RS09801', 'RS09802', 'RS01002', 'RS09831', 'RS09832',
                   'AH00629', 'AH00630', 'AH00632', 'AH00633'],
             patterns=[r'\[dbd:error\]', r'\[resumable:warn\]',
                       r'\[proxy(_http|_balancer)?:error\]', r'ERR_BODY_READ',
                       r'RS04020: \w+ /files/\S*: 503 ERR_STATE_UNAVAILABLE',
                       # the writer leases' own lines (RS0983x): a lease
                       # lost, not renewed, taken over
                       r'RS0983\d'])


@pytest.fixture(scope='module')
def netns():
    ns = NetNs(f'1030x{__import__("os").getpid() % 100000}')
    try:
        ns.create()
        yield ns
    finally:
        ns.remove()


@pytest.fixture(scope='module')
def pg(env, netns):
    """Listens on 127.0.0.1 and on the host end of B's PostgreSQL pair."""
    c = PgCluster(env.gen / 'pg-1030', _free_port()).init()
    with open(c.data / 'postgresql.conf', 'a') as f:
        f.write(f"listen_addresses = '127.0.0.1,{netns.pg_host}'\n")
    with open(c.data / 'pg_hba.conf', 'a') as f:
        f.write(f'host all all {netns.net}.4/30 trust\n')
    c.start()
    yield c
    c.stop()


@pytest.fixture(scope='module')
def cluster(env, pg, netns):
    env.stop()
    c = RsCluster(env, pg.dbd_params())
    b = NsEnv(netns, c.base / 'node1')
    # B reaches PostgreSQL over its own pair; a dead peer is noticed within
    # seconds (libpq keepalives and TCP user timeout), not after TCP's
    # default quarter of an hour
    b.pg_params = (f'host={netns.pg_host} port={pg.port} user=rs dbname=rs '
                   'connect_timeout=2 keepalives_idle=1 keepalives_interval=1 '
                   'keepalives_count=2 tcp_user_timeout=2000')
    c.nodes[1] = b
    set_default_base(env.url)
    c.setup()
    c.start(server_extra=f'ResumableLeaseTime {LEASE}s\n',
            areas=c.areas(extra=['ResumableLockWait 1']))
    yield c
    c.stop_checked()


@pytest.fixture(autouse=True)
def _cluster_logs(cluster):
    yield from cluster.log_window()


def show(c, pg, uid):
    rc, out = resumablectl(c.env, 'dbd:' + pg.params(), 'show', uid)
    assert rc == 0, out
    return out


def settled_show(c, pg, uid, timeout=15):
    """`show` once the finished upload's own after-work is done (the
    content digest indexed: RS_UF_UNINDEXED 0x20 cleared) and two reads
    0.5 s apart agree."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        out = show(c, pg, uid)
        m = re.search(r'^flags:\s+0x([0-9a-f]+)', out, re.M)
        if out == last and not (m and int(m.group(1), 16) & 0x20):
            return out
        last = out
        time.sleep(0.5)
    raise AssertionError(f'the record of {uid} does not settle:\n{last}')


class Trickle:
    """Keeps B's client busy: a few bytes that are NOT the source's every
    0.2 s on the open PATCH, so B never sees an idle client (no hand-over)
    and a writer that committed them would corrupt the upload."""

    def __init__(self, sock, limit):
        self.sock = sock
        self.left = limit
        self.stop = threading.Event()
        self.sent = 0
        self.error = None
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        for _ in range(600):                     # <= 120 s
            if self.stop.wait(0.2) or self.left <= 0:
                return
            n = min(2048, self.left)
            try:
                self.sock.sendall(b'\xee' * n)
            except OSError as e:
                self.error = e
                return
            self.sent += n
            self.left -= n

    def end(self):
        self.stop.set()
        self.t.join(10)


class TestClusterPartition:

    def test_rs_1030_01_node_cut_from_postgresql(self, cluster, pg, netns):
        c = cluster
        c.allow_errors(**ALLOW)
        a, b = c.nodes
        ta, tb = Tus(RsClient(a.url), '/files/'), Tus(RsClient(b.url), '/files/')
        size = 1024 * 1024 + 4321
        data = hashlib.sha256(b'1030').digest() * (size // 32 + 1)
        data = bytes(x ^ (i & 0xff) for i, x in enumerate(data[:size]))
        name = f'partition-{netns.name}.bin'
        url = ta.create(length=size, metadata={'filename': name})
        uid = upload_id(url)
        area = c.shared / 'files'

        # B receives the PATCH; its first part reaches the record
        first = 256 * 1024
        h = dict(tb.base_headers)
        h.update({'Upload-Offset': '0', 'Content-Type': OCTET})
        s = tb.client.send_partial('PATCH', url, h, data[:first], size,
                                   timeout=30)
        try:
            assert wait_for(lambda: ta.offset(url) == first, 10, 0.1), \
                f'the first {first} bytes never committed: {ta.offset(url)}'
            check_heads_durable(c, area, url, data)

            # the partition: B loses PostgreSQL, its client keeps sending
            netns.cut()
            trickle = Trickle(s, size - first)
            try:
                t0 = time.monotonic()
                r = tb.head(url, timeout=30)
                assert r.status == 503, r
                r = tb.create_resp(length=10, timeout=30)
                assert r.status == 503, r
                assert wait_for(lambda: re.search(
                    r'RS\d{5}: (HEAD|POST) /files/\S*: 503 '
                    r'ERR_STATE_UNAVAILABLE',
                    b.error_log.read_text(errors='replace')), 5), \
                    'no tagged line for the 503s of B'
                # through the front: A answers, B says 503, nothing else
                tf = Tus(c.client, '/files/')
                fronts = [tf.head(url, timeout=30).status for _ in range(2)]
                assert set(fronts) <= {200, 503}, fronts
                print(f'[test_1030] B answered 503 within '
                      f'{time.monotonic() - t0:.1f}s; through the front: '
                      f'{fronts}')

                # A finishes the upload once B's lease has run out
                done = None
                deadline = time.monotonic() + 8 * LEASE + 10
                seen = []
                while time.monotonic() < deadline:
                    r = ta.head(url)
                    assert r.status == 200, r
                    off = int(r.headers['Upload-Offset'])
                    assert first <= off <= size, off   # nothing of B's lost
                    check_heads_durable(c, area, url, data, nodes=[0])
                    r = ta.patch(url, off, data[off:], timeout=30)
                    seen.append(r.status)
                    if r.status == 204:
                        done = int(r.headers['Upload-Offset'])
                        break
                    assert r.status in (409, 423), r
                    time.sleep(0.3)
                assert done == size, (
                    f'node A could not take the upload over from the '
                    f'partitioned node B within {8 * LEASE + 10}s '
                    f'(answers {sorted(set(seen))}; B still writing: '
                    f'{trickle.error is None})')
                print(f'[test_1030] A took over after '
                      f'{time.monotonic() - t0:.1f}s ({len(seen)} tries)')
                got = ta.get(url)
                assert got.status == 200 and sha256(got.body) == sha256(data)
                published = area / name
                assert wait_for(published.exists, 10), 'not published'
                before = (published.read_bytes(), settled_show(c, pg, uid))
                assert sha256(before[0]) == sha256(data)
            finally:
                healed_at = None
                try:
                    netns.heal()
                    healed_at = time.monotonic()
                    # B's old writer, if still there, gets the chance to
                    # checkpoint after the link is back (it would at least
                    # every lease/3) while its client still sends
                    time.sleep(LEASE + 0.5)
                finally:
                    trickle.end()
            assert healed_at is not None
            # B's PATCH: 409 (fenced), 503 (stopped), a 4xx: never a crash
            resp = None
            try:
                resp = read_response(s, 'PATCH', timeout=3)
            except OSError:
                pass        # closed, or still waiting for its body
            print(f'[test_1030] the PATCH to B: {resp!r} (its client sent '
                  f'{trickle.sent} bytes after the cut; {trickle.error})')
            if resp is not None:
                assert resp.status < 500 or resp.status == 503, resp
        finally:
            abort_socket(s)

        assert wait_for(lambda: tb.head(url).status == 200, 15), \
            'B does not serve again after the link came back'
        time.sleep(LEASE)       # a zombie's last checkpoint would land now
        after = (published.read_bytes(), show(c, pg, uid))
        assert after[0] == before[0], 'the published file changed'
        assert after[1] == before[1], ('the record changed:\n'
                                       f'{before[1]}\n---\n{after[1]}')
        for t in (ta, tb):
            r = t.head(url)
            assert r.status == 200 and int(r.headers['Upload-Offset']) == size
        blog = b.error_log.read_text(errors='replace')
        assert 'RS09831' in blog or 'RS09832' in blog, \
            'B logged neither fencing (RS09831) nor stopping (RS09832)'
        verify_clean(c)
