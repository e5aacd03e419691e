"""1040: writer leases and fencing across two nodes.

Two httpd nodes share a private PostgreSQL and one directory behind a
mod_proxy_balancer front (pyrs.cluster), with a short lease
(ResumableLeaseTime 2s) and small checkpoints (ResumableCheckpoint 64K):

- a writer frozen with SIGSTOP past its lease: the upload is taken over
  and finished on the other node; after SIGCONT the old writer is fenced
  (409, RS09831) and no committed byte or record field changes;
- the child holding the lease, found from the lease owner that
  `resumablectl show` prints, is SIGKILLed: the other node takes the
  lease of the dead process at once and continues in a new segment;
- a stalled holder asked to yield hands over cleanly: one segment;
- HEAD's offset never exceeds the durable (committed, segment) bytes, and
  those bytes are the client's.
After every case `resumablectl verify` is clean.
"""
import os
import signal
import time

import pytest

from pyrs.client import RsClient, Tus, abort_socket, make_data, \
    read_response, sha256, upload_id
from pyrs.cluster import RsCluster, private_pg, start_patch
from pyrs.env import wait_for
from pyrs.pg import pg_available

WHY = pg_available()
pytestmark = pytest.mark.skipif(WHY is not None, reason=WHY or '')

LEASE = 2.0


@pytest.fixture(scope='module')
def pg(env):
    yield from private_pg(env, 'pg-fencing')


@pytest.fixture(scope='module')
def cluster(env, pg):
    env.stop()
    c = RsCluster(env, pg.dbd_params() if pg else env.pg_params).setup()
    c.start(areas=c.areas(extra=['ResumableLockWait 1s',
                                 'ResumableStallTime 1s']),
            extra='ResumableLeaseTime 2s\nResumableCheckpoint 64K\n')
    yield c
    c.stop_checked()


@pytest.fixture(autouse=True)
def _cluster_logs(cluster):
    yield from cluster.log_window()
    cluster.verify()


def node_tus(c, i):
    return Tus(RsClient(c.nodes[i].url), '/files/')


def committed(c, url, at_least, timeout=10):
    """Wait until HEAD (through node 1) reports at least at_least bytes."""
    tus = node_tus(c, 1)
    return wait_for(lambda: (lambda o: o if o >= at_least else None)(
        tus.offset(url)), timeout, 0.05)


def check_durable(c, url, data, nodes=(0, 1)):
    """HEAD's offset through either node <= the durable bytes, which are
    the client's. (Not through a node with a frozen child: a new
    connection may wait in that child's accept queue.)"""
    uid = upload_id(url)
    offs = {node_tus(c, n).offset(url) for n in nodes}
    assert len(offs) == 1, offs
    off = offs.pop()
    durable = c.durable_bytes(c.shared / 'files', uid)
    assert off <= len(durable), (off, len(durable))
    assert durable == data[:len(durable)]
    return off


def finish_on(c, node, url, data, tries=40):
    """PATCH the rest through node until it completes (423 while a lease
    runs; 409 when the offset moved)."""
    tus = node_tus(c, node)
    r = None
    for _ in range(tries):
        off = tus.offset(url)
        r = tus.patch(url, off, data[off:], timeout=30)
        if r.status == 204:
            break
        assert r.status in (409, 423), r
        time.sleep(0.2)
    assert r.status == 204 and int(r.headers['Upload-Offset']) == len(data), r
    return r


class TestFencing:

    def test_rs_1040_01_frozen_writer_fenced_after_takeover(self, cluster):
        c = cluster
        c.allow_errors(patterns=[r'\[resumable:warn\]'], tags=['RS09831'])
        data = make_data(1200000, seed=1041)
        url, s = start_patch(c, 0, data, 400000)
        uid = upload_id(url)
        try:
            assert committed(c, url, 256 * 1024), 'no checkpoint seen'
            info = c.show(uid)
            pid = info['lease_pid']
            assert pid and pid in c.nodes[0].children(), info
            os.kill(pid, signal.SIGSTOP)
            off = check_durable(c, url, data, nodes=(1,))
            assert 256 * 1024 <= off <= 400000, off
            # node 1 may not write before the lease passed ...
            t0 = time.monotonic()
            finish_on(c, 1, url, data)
            assert time.monotonic() - t0 >= 0.5     # it had to wait
            assert [ln for ln in c.log_lines('RS09830') if uid in ln
                    and 'the lease expired' in ln]
            info = c.show(uid)
            assert info['state'] == 'complete', info
            epochs = [seg[0] for seg in info['segments']]
            assert len(epochs) == 2 and epochs[0] < epochs[1], info
            before = c.show(uid)['raw']
            published = get(c, url)
            assert sha256(published) == sha256(data)
        finally:
            os.kill(pid, signal.SIGCONT)
        # the old writer wakes up and goes on receiving: its next
        # checkpoint is refused and it stops (409)
        try:
            s.sendall(data[400000:600000])
            resp = read_response(s, 'PATCH', timeout=15)
            assert resp.status == 409, resp
            assert b'ERR_FENCED' in resp.body or resp.status == 409
        except (ConnectionError, OSError):
            pass                # it may close the connection instead
        finally:
            abort_socket(s)
        assert wait_for(lambda: c.log_lines('RS09831'), 10), \
            'the old writer was not fenced'
        # no committed byte, no record field changed
        assert c.show(uid)['raw'] == before
        for cl in [c.client] + c.node_clients():
            assert sha256(cl.get(url).body) == sha256(data)

    def test_rs_1040_02_lease_holder_killed_found_by_owner(self, cluster):
        c = cluster
        c.allow_errors(patterns=[r'exit signal Killed',
                                 r'\[resumable:warn\]'],
                       tags=['AH01102', 'AH00898'])
        data = make_data(900000, seed=1042)
        url, s = start_patch(c, 0, data, 300000)
        uid = upload_id(url)
        assert committed(c, url, 128 * 1024), 'no checkpoint seen'
        pid = c.show(uid)['lease_pid']
        assert pid in c.nodes[0].children()
        os.kill(pid, signal.SIGKILL)
        abort_socket(s)
        check_durable(c, url, data)
        # the holder is dead on this kernel: no need to wait for expiry
        finish_on(c, 1, url, data)
        info = c.show(uid)
        assert len(info['segments']) == 2, info     # taken over: new file
        # at once: the holder's process is gone (not after its lease)
        assert [ln for ln in c.log_lines('RS09830') if uid in ln
                and 'the process is gone' in ln], c.log_lines('RS09830')
        for cl in [c.client] + c.node_clients():
            assert sha256(cl.get(url).body) == sha256(data)

    def test_rs_1040_03_stalled_holder_hands_over_cleanly(self, cluster):
        c = cluster
        c.allow_errors(patterns=[r'\[resumable:warn\]'])
        data = make_data(500000, seed=1043)
        url, s = start_patch(c, 0, data, 200000)
        uid = upload_id(url)
        try:
            assert committed(c, url, 200000), 'idle bytes not checkpointed'
            # the client stalls; node 1's PATCH asks the holder to yield
            finish_on(c, 1, url, data)
        finally:
            abort_socket(s)
        info = c.show(uid)
        assert len(info['segments']) == 1, info     # continued, no takeover
        assert not [ln for ln in c.log_lines('taken over') if uid in ln], \
            'clean hand-over expected'
        for cl in c.node_clients():
            assert sha256(cl.get(url).body) == sha256(data)

    def test_rs_1040_04_head_never_above_durable(self, cluster):
        """While a PATCH streams in pieces, every HEAD through either node
        reports at most the durable bytes, and they are the client's."""
        c = cluster
        data = make_data(800000, seed=1044)
        url, s = start_patch(c, 0, data, 0)
        try:
            sent = 0
            for i in range(7):
                s.sendall(data[sent:sent + 100000])
                sent += 100000
                time.sleep(0.15)
                off = check_durable(c, url, data)
                assert off <= sent, (off, sent)
            s.sendall(data[sent:])
            resp = read_response(s, 'PATCH', timeout=15)
            assert resp.status == 204, resp
        finally:
            abort_socket(s)
        assert node_tus(c, 1).offset(url) == len(data)

    def test_rs_1040_05_delete_fenced_by_epoch(self, cluster):
        """DELETE takes the lease too: while a live writer holds it the
        DELETE waits and gets 423; once the writer is gone it removes the
        upload and every segment file."""
        c = cluster
        c.allow_errors(patterns=[r'\[resumable:warn\]'])
        data = make_data(300000, seed=1045)
        url, s = start_patch(c, 0, data, 150000)
        uid = upload_id(url)
        try:
            assert committed(c, url, 150000), 'no checkpoint'
            s.sendall(data[150000:160000])      # busy: does not yield
            r = node_tus(c, 1).delete(url)
            assert r.status in (204, 423), r
        finally:
            abort_socket(s)
        r = None
        for _ in range(20):
            r = node_tus(c, 1).delete(url)
            if r.status in (204, 404, 410):
                break
            time.sleep(0.2)
        assert r.status in (204, 404, 410), r
        left = [p.name for p in (c.shared / 'files' / '.resumable').iterdir()
                if p.name.startswith(uid)]
        assert not left, left

    def test_rs_1040_06_kill_during_composition(self, cluster):
        """A final concatenation of partials written on both nodes is
        composed at once and materialised after the answer; node 0's
        children are SIGKILLed right after the 201 (mid-copy or before):
        the final is served intact from its parts by either node, and the
        sweep (taking the dead child's lease at once) publishes it."""
        c = cluster
        c.allow_errors(patterns=[r'exit signal Killed',
                                 r'\[resumable:warn\]'],
                       tags=['AH01102', 'AH00898'])
        parts = [make_data(12 * 1024 * 1024 + i, seed=1060 + i)
                 for i in range(2)]
        urls = []
        for i, p in enumerate(parts):
            t = node_tus(c, i)
            u = t.create(length=len(p), concat='partial')
            r = t.patch(u, 0, p, timeout=60)
            assert r.status == 204, r
            urls.append(u)
        before = set(c.nodes[0].children())
        final = node_tus(c, 0).create(concat='final;' + ' '.join(urls))
        for pid in before:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        want = sha256(b''.join(parts))
        r = RsClient(c.nodes[1].url).get(final, timeout=60)
        assert r.status == 200 and sha256(r.body) == want, r
        assert wait_for(c.nodes[0].is_live, 15), 'node 0 did not come back'
        files = c.shared / 'files'

        def published():
            info = c.show(upload_id(final))
            return 'path' in info and info['flags'] and \
                (int(info['flags'], 16) & 0x10) and info['path']
        path = wait_for(published, 30, 0.2)
        assert path, c.show(upload_id(final))['raw']
        assert sha256((files / os.path.basename(path)).read_bytes()) == want
        for cl in c.node_clients():
            assert sha256(cl.get(final, timeout=60).body) == want


def get(c, url):
    r = c.client.get(url)
    assert r.status == 200, r
    return r.body
