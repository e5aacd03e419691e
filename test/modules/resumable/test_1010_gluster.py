"""1010: the cluster tier on a real shared file system through FUSE.

Two httpd nodes (ResumableStateDB dbd:, one private PostgreSQL) behind a
mod_proxy_balancer front, as in test_1000, but the upload directory is a
GlusterFS volume (a private glusterd started by the suite, one brick in
the test's temp dir, pyrs/gluster.py) and every node reaches it through
ITS OWN FUSE client: each httpd runs in a private mount namespace with its
own glusterfs client mounted at the common path, and the test reads the
files through a third client. The start-up self-test (rs_fscheck) runs on
each node's mount and accepts it.

Every case of test_1000 runs here unchanged (TestGlusterCluster inherits
them): alternating-node PATCHes, HEAD through either node, concatenation
across nodes, slice chunks sprayed, md5 dedup, expiry, SIGKILL of a child
and of a whole node mid-PATCH with a resume through the balancer and a
sha256 comparison, a PostgreSQL restart, many uploads at once, the frozen
writer of the stage before the writer leases (skipped with the reason where
the module has them: the tier runs with a 3 s lease, test_rs_1010_05). After every case (pyrs/durable.py): `resumablectl verify` is clean,
and for every upload of the state database HEAD's offset through either
node is the same, within the bytes of its data file as a third client sees
them, and those bytes equal the source.

The tier's own cases: one FUSE client per node (01); acknowledged bytes and
sizes visible to the other clients at once (02) and the client coherence
the storage needs (03); a stalled writer taken over across two clients
(04); a node killed together with its FUSE client (06); a frozen holder
fenced after its lease (05, needs the writer leases).

Skipped with the reason when PostgreSQL, FUSE or glusterd is absent or
unusable here.
"""
import os
import re
import signal
import sys
import time

import pytest

import test_1000_cluster as t1000
from test_1000_cluster import get_body, node_tus, pg  # noqa: F401 (fixture)
from pyrs.client import OCTET, RsClient, abort_socket, make_data, \
    read_response, sha256, upload_id
from pyrs.cluster import start_patch
from pyrs.durable import DurableCheck
from pyrs.env import wait_for
from pyrs.gluster import Gluster, GlusterCluster, GlusterUnusable, \
    gluster_available
from pyrs.pg import pg_available

WHY = pg_available() or gluster_available()
pytestmark = pytest.mark.skipif(WHY is not None, reason=WHY or '')


# a short writer lease, so a frozen or cut-off writer's upload is free
# again soon (test_rs_1010_05, _07; the tier's run time)
LEASE = 3
LEASE_CONF = f'ResumableLeaseTime {LEASE}s'


@pytest.fixture(scope='module')
def gluster(env):
    g = Gluster(env.gen / 'gluster')
    try:
        g.start()
    except GlusterUnusable as ex:
        g.stop()
        pytest.skip(f'GlusterFS tier: {ex}')
    except BaseException:
        g.stop()
        raise
    yield g
    g.stop()


@pytest.fixture(scope='module')
def cluster(env, pg, gluster):
    env.stop()                  # the session server is not part of it
    c = GlusterCluster(env, pg.dbd_params() if pg else env.pg_params,
                       gluster).setup()
    seeds = env.repo / 'conf' / 'seeds.conf'
    try:
        c.start(extra=(f'Define RS_SEEDS_DIR "{c.area_dir("seeds")}"\n'
                       f'Include "{seeds}"\n'),
                server_extra=LEASE_CONF, modules_extra=['alias'])
    except BaseException:
        c.stop()
        raise
    yield c
    c.stop_checked()


@pytest.fixture(scope='module')
def durable(cluster):
    d = DurableCheck(cluster)
    yield d
    print(f'DurableCheck: {d.checked} upload checks, {len(d.complete)} '
          f'uploads seen complete')


@pytest.fixture(autouse=True)
def _cluster_logs(cluster, durable, monkeypatch):
    """The error logs, and after every case DurableCheck (pyrs/durable.py):
    the sources the case makes are recorded for it."""
    monkeypatch.setattr(t1000, 'make_data', durable.make_data)
    monkeypatch.setattr(sys.modules[__name__], 'make_data', durable.make_data)
    yield from cluster.log_window(durable.check)


class TestGlusterCluster(t1000.TestCluster):

    def test_rs_1000_13_frozen_writer_within_its_lease(self, cluster):
        pytest.skip(f'the tier runs with ResumableLeaseTime {LEASE}s: its '
                    'frozen writer is taken over (test_rs_1010_05)')

    # ---- the tier's own cases ------------------------------------------------
    def test_rs_1010_01_own_fuse_client_per_node(self, cluster):
        """Every node's httpd sees the shared path through its own FUSE
        client (its own mount namespace), none of them through the test's;
        the start-up self-test accepted each mount and left no probe."""
        c = cluster
        path = str(c.shared)
        devs = {'view': os.stat(path).st_dev}
        for i, node in enumerate(c.nodes):
            pid = node.pid()
            assert pid, f'node {i} not running'
            with open(f'/proc/{pid}/mountinfo') as f:
                mine = [line for line in f if f' {path} ' in line]
            assert mine and ' - fuse.glusterfs ' in mine[-1], mine
            devs[f'node{i}'] = os.stat(f'/proc/{pid}/root{path}').st_dev
            assert len(c.node_client(i)) == 1, c.node_client(i)
        assert len(set(devs.values())) == len(devs), devs
        data = make_data(70000, seed=10101)
        url = node_tus(c, 0).upload(data, chunk_size=30000)
        assert sha256(get_body(RsClient(c.nodes[1].url), url)) == sha256(data)
        for area in ('files', 'short', 'seeds'):
            for d in (c.shared / area, c.shared / area / '.resumable'):
                assert not [p for p in os.listdir(d)
                            if p.startswith('.rs-fscheck-')], d

    def test_rs_1010_02_acked_bytes_visible_to_other_clients(self, cluster):
        """Right after each 204 of a node, the other node's HEAD and the
        test's own client see the acknowledged offset and bytes: no client
        cache shows a stale size or stale data (VOLUME_OPTIONS and
        CLIENT_OPTIONS of pyrs/gluster.py)."""
        c = cluster
        data = make_data(5 * 100003 + 17, seed=10102)
        tus = node_tus(c, 0)
        url = tus.create(length=len(data))
        f = None
        off = 0
        for i in range(6):
            if f is not None:       # the test's client read it before
                f.read_bytes()
            piece = data[off:off + 100003]
            r = node_tus(c, i % 2).patch(url, off, piece)
            assert r.status == 204, r
            off = int(r.headers['Upload-Offset'])
            if off == len(data):
                break
            f = f or c.nodes[0].staged_data_file(c.shared / 'files',
                                                 upload_id(url))
            assert f is not None
            got = f.read_bytes()
            assert len(got) >= off and got[:off] == data[:off], \
                (i, len(got), off)
            assert node_tus(c, (i + 1) % 2).offset(url) == off
        assert off == len(data)

    def test_rs_1010_03_client_coherence(self, cluster):
        """The storage requirement itself, between two FUSE clients of
        the test: after a write + fdatasync on one, the other sees the new
        size and bytes at once, appended and rewritten in place."""
        c = cluster
        other = c.gluster.mount(c.base / 'view2', 'view2')
        try:
            a, b = c.shared / 'coherence.bin', other / 'coherence.bin'
            for i in range(8):
                chunk = make_data(65536 + 1000 * i, seed=10103 + i)
                if b.exists():
                    b.read_bytes()              # cached by the other client
                with open(a, 'ab' if i % 2 == 0 else 'r+b') as f:
                    f.write(chunk)
                    f.flush()
                    os.fdatasync(f.fileno())
                want = a.read_bytes()
                assert os.stat(b).st_size == len(want), i
                assert b.read_bytes() == want, i
        finally:
            a.unlink(missing_ok=True)
            c.gluster.umount(other, 'view2')

    def test_rs_1010_04_stalled_writer_yields_across_clients(self, cluster):
        """A PATCH stalled on node 0 is taken over by node 1 (the request
        to yield and the writer lock go through two FUSE clients); the old
        writer's late bytes change nothing."""
        c = cluster
        c.allow_errors(patterns=[r'\[resumable:warn\]'])
        data = make_data(600000, seed=10104)
        t0 = node_tus(c, 0)
        url = t0.create(length=len(data))
        h = dict(t0.base_headers)
        h.update({'Upload-Offset': '0', 'Content-Type': OCTET})
        s = t0.client.send_partial('PATCH', url, h, data[:250000],
                                   len(data), timeout=30)
        try:
            time.sleep(0.5)
            t1 = node_tus(c, 1)
            for _ in range(10):     # HEAD, PATCH; 409: the holder's last
                off = t1.offset(url)    # checkpoint moved the offset
                assert 0 <= off <= 250000, off
                r = t1.patch(url, off, data[off:], timeout=20)
                if r.status != 409:
                    break
            assert r.status == 204, r
            try:
                s.sendall(b'\0' * 200000)     # the old writer goes on
                r_old = read_response(s, 'PATCH', timeout=10)
                assert r_old.status != 204, r_old
            except OSError:
                pass            # the server closed it: fine
        finally:
            s.close()
        for cl in [c.client] + c.node_clients():
            assert sha256(get_body(cl, url)) == sha256(data)

    def test_rs_1010_06_whole_node_and_its_client_killed(self, cluster):
        """SIGKILL of node 0's FUSE client and every httpd process of it
        mid-PATCH (a node lost with its mount: the brick drops the dead
        client's locks when it notices the disconnect); the upload is
        finished through the front, node 0 comes back with a new client."""
        c = cluster
        c.allow_errors(patterns=t1000.KILL_ALLOW + [
            r'\[proxy(_http|_balancer)?:error\]'])
        node = c.nodes[0]
        data = make_data(500000, seed=10106)
        url, s = start_patch(c, 0, data, 250000)
        time.sleep(0.3)
        pids = c.node_client(0) + [node.pid()] + node.children()
        assert len(pids) >= 3, pids
        for p in pids:
            os.kill(p, signal.SIGKILL)
        abort_socket(s)
        try:
            self.resume_via_front(c, url, data, live=(1,))
        finally:
            node.pid_file.unlink(missing_ok=True)
            node.start()
            assert c.wait_balanced(), 'node 0 not back in the balancer'
        assert len(c.node_client(0)) == 1
        assert sha256(get_body(RsClient(node.url), url)) == sha256(data)

    def test_rs_1010_07_client_cut_from_brick_old_writer_fenced(
            self, cluster, durable):
        """Node 0's FUSE client loses its connection to the brick (a
        network blip) while a PATCH of it holds the upload: node 1 may
        finish the upload, and node 0's writer, its client reconnected,
        goes on with other bytes: they must not land, neither in the data
        nor in the record. Today the brick drops node 0's writer lock at
        once without telling it, node 1 takes over at once, and the old
        writer's bytes land in the published file and its offset in the
        record: needs the writer leases (exclusion and fencing in
        PostgreSQL, segments per epoch)."""
        c = cluster
        c.allow_errors(patterns=[r'\[resumable:(warn|error)\]'])
        data = make_data(600000, seed=10107)
        t0 = node_tus(c, 0)
        url = t0.create(length=len(data))
        h = dict(t0.base_headers)
        h.update({'Upload-Offset': '0', 'Content-Type': OCTET})
        s = t0.client.send_partial('PATCH', url, h, data[:200000],
                                   len(data), timeout=30)
        try:
            assert wait_for(lambda: node_tus(c, 1).offset(url) == 200000,
                            10), 'the sent bytes are not on the brick'
            if not c.gluster.cut_client('node0'):
                pytest.skip('ss -K cannot cut a TCP connection here')
            t1 = node_tus(c, 1)
            off = t1.offset(url)
            assert 0 < off <= 200000, off
            r = t1.patch(url, off, data[off:], timeout=20)
            assert r.status == 204, r
            time.sleep(3.5)             # node 0's client reconnects
            try:
                s.sendall(b'\0' * 200000)       # the old writer goes on
                time.sleep(1)           # (never all of the body: no 204)
            except OSError:
                pass            # closed by the server: fine
        finally:
            abort_socket(s)
        time.sleep(0.5)
        record = durable.show(upload_id(url))
        assert record['state'] == 'complete' and record['offset/length'] \
            == f'{len(data)}/{len(data)}', (record['state'],
                                             record['offset/length'])
        for cl in [c.client] + c.node_clients():
            assert sha256(get_body(cl, url)) == sha256(data)

    def test_rs_1010_05_frozen_holder_fenced_after_lease(self, cluster,
                                                         durable):
        """SIGSTOP of the writer on node 0 past its lease: node 1 takes the
        upload over from the committed offset and finishes it; after
        SIGCONT the old writer is fenced (409, RS09831) and no committed
        byte or record field changes. Needs the writer leases (epoch per
        upload in PostgreSQL, ResumableLeaseTime): today a frozen holder
        keeps the upload (423, test_1000_13). (A holder that finds itself
        past its lease may also stop on its own: RS09832, 503.)"""
        c = cluster
        c.allow_errors(tags=['RS09831', 'RS09832'],
                       patterns=[r'\[resumable:warn\]'])
        def fenced():
            return c.log_lines('RS09831') + c.log_lines('RS09832')
        fenced_before = len(fenced())
        node = c.nodes[0]
        data = make_data(600000, seed=10105)
        t0 = node_tus(c, 0)
        url = t0.create(length=len(data))
        uid = upload_id(url)
        h = dict(t0.base_headers)
        h.update({'Upload-Offset': '0', 'Content-Type': OCTET})
        s = t0.client.send_partial('PATCH', url, h, data[:200000],
                                   len(data), timeout=30)
        pid = None
        try:
            # the idle body is checkpointed: node 1 sees the offset
            assert wait_for(lambda: node_tus(c, 1).offset(url) == 200000,
                            10), 'the sent bytes are not committed'
            pid = holder_pid(durable, uid, node, s)
            assert pid, 'no child holds the PATCH'
            os.kill(pid, signal.SIGSTOP)
            time.sleep(LEASE + 1)               # the lease expires
            t1 = node_tus(c, 1)
            off = t1.offset(url)
            assert off == 200000, off
            r = t1.patch(url, off, data[off:], timeout=20)
            assert r.status == 204, r           # taken over
            record = durable.settled(uid)
            for cl in c.node_clients():
                assert sha256(get_body(cl, url)) == sha256(data)
            os.kill(pid, signal.SIGCONT)
            pid = None
            try:
                s.sendall(b'\0' * 100000)       # the old writer goes on
                r_old = read_response(s, 'PATCH', timeout=10)
                # fenced (409) or stopped by itself (503); or 408 when its
                # body read's Timeout ran out while it was stopped: its
                # save is then fenced all the same (RS09831, below)
                assert r_old.status in (408, 409, 503), r_old
            except OSError:
                pass                # closed by the server: fenced too
        finally:
            if pid:
                os.kill(pid, signal.SIGCONT)
            s.close()
        # fenced at its next checkpoint (RS09831), or it stopped on its
        # own: no checkpoint for most of a lease (RS09832)
        assert wait_for(lambda: len(fenced()) > fenced_before, 5), \
            'not fenced'
        assert durable.settled(uid) == record   # no record field changed
        for cl in [c.client] + c.node_clients():
            assert sha256(get_body(cl, url)) == sha256(data)


def holder_pid(durable, uid, node, sock):
    """The writer's pid: from the lease owner (<boot-id>:<pid>:<start>) in
    resumablectl show, else the child holding the connection."""
    f = durable.show(uid) or {}
    m = re.match(r'^[^:\s]+:(\d+):\d+', f.get('lease', ''))
    if m:
        return int(m.group(1))
    return wait_for(lambda: node.child_for_connection(sock), 10, 0.01)
