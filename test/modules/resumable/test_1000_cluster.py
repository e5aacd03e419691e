"""1000: two httpd nodes, one PostgreSQL state database, one directory.

Two nodes (ResumableStateDB dbd:, mod_dbd with DBDriver pgsql) share a
private PostgreSQL 15 cluster (initdb by the suite, pyrs/pg.py) and the
upload directory, behind a third httpd with mod_proxy_balancer
(byrequests, no stickiness): consecutive requests through the front land
on different nodes. An upload whose PATCHes alternate nodes, HEAD through
either node, concatenation of partials made on different nodes, slice
chunks sprayed over both nodes, md5 dedup across nodes, expiry with both
nodes sweeping, and a SIGKILL of a node's child mid-PATCH followed by a
resume through the balancer. Skipped with the reason when PostgreSQL or
the apr_dbd pgsql driver is not installed.
"""
import json
import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from pyrs.client import RsClient, Tus, abort_socket, make_data, \
    read_response, sha256, upload_id
from pyrs.cluster import RsCluster, private_pg, start_patch
from pyrs.durable import DurableCheck
from pyrs.env import wait_for
from pyrs.pg import pg_available
from pyrs.seeds import form_body

WHY = pg_available()
pytestmark = pytest.mark.skipif(WHY is not None, reason=WHY or '')

KILL_ALLOW = [r'exit signal Killed', r'\[resumable:warn\]']


@pytest.fixture(scope='module')
def pg(env):
    """A private PostgreSQL (the suite's own under RS_STATE=pgsql: then
    None, and the test restarting PostgreSQL is skipped)."""
    yield from private_pg(env, 'pg-cluster')


@pytest.fixture(scope='module')
def cluster(env, pg):
    env.stop()                  # the session server is not part of it
    c = RsCluster(env, pg.dbd_params() if pg else env.pg_params).setup()
    seeds = env.repo / 'conf' / 'seeds.conf'
    c.start(extra=(f'Define RS_SEEDS_DIR "{c.area_dir("seeds")}"\n'
                   f'Include "{seeds}"\n'),
            modules_extra=['alias'])
    yield c
    c.stop_checked()


@pytest.fixture(scope='module')
def durable(cluster):
    """After every case (pyrs/durable.py): HEAD through each node <= the
    durable bytes, which equal the source; resumablectl verify clean."""
    yield DurableCheck(cluster)


@pytest.fixture(autouse=True)
def _cluster_logs(cluster, durable, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], 'make_data', durable.make_data)
    yield from cluster.log_window(durable.check)


def front_tus(c):
    return Tus(c.client, '/files/')


def node_tus(c, i):
    return Tus(RsClient(c.nodes[i].url), '/files/')


def get_body(client, url):
    r = client.get(url)
    assert r.status == 200, r
    return r.body




class TestCluster:

    def test_rs_1000_01_patches_alternate_nodes(self, cluster):
        c = cluster
        data = make_data(8 * 65536 + 123, seed=1001)
        tus = front_tus(c)
        marks = c.marks()
        url = tus.create(length=len(data))
        assert url.startswith(c.url), url       # X-Forwarded-Host trusted
        off = 0
        for i in range(9):
            piece = data[off:off + 65536]
            r = tus.patch(url, off, piece)
            assert r.status == 204, r
            off = int(r.headers['Upload-Offset'])
            # every node reports the same offset at every step
            assert [node_tus(c, n).offset(url) for n in (0, 1)] == [off, off]
            if off == len(data):
                break
        assert off == len(data)
        patches = c.served_by('PATCH', marks)
        assert min(patches) >= 3, patches       # both nodes wrote parts
        for cl in [c.client] + c.node_clients():
            assert sha256(get_body(cl, url)) == sha256(data)

    def test_rs_1000_02_head_through_either_node(self, cluster):
        c = cluster
        data = make_data(3000, seed=1002)
        url = node_tus(c, 0).create(length=len(data))
        r = node_tus(c, 1).patch(url, 0, data[:1000])
        assert r.status == 204, r
        heads = [node_tus(c, n).head(url) for n in (0, 1)]
        assert [h.status for h in heads] == [200, 200], heads
        assert {h.headers['Upload-Offset'] for h in heads} == {'1000'}
        assert {h.headers['Upload-Length'] for h in heads} == {'3000'}
        r = node_tus(c, 0).patch(url, 0, data[:10])
        assert r.status == 409, r                # the offset is shared
        r = node_tus(c, 0).delete(url)
        assert r.status == 204, r
        for n in (0, 1):
            assert node_tus(c, n).head(url).status in (404, 410)

    def test_rs_1000_03_concat_of_partials_from_both_nodes(self, cluster):
        c = cluster
        parts = [make_data(70000 + i, seed=1030 + i) for i in range(4)]
        urls = []
        for i, p in enumerate(parts):
            t = node_tus(c, i % 2)
            u = t.create(length=len(p), concat='partial')
            r = t.patch(u, 0, p)
            assert r.status == 204, r
            urls.append(u)
        final = front_tus(c).create(concat='final;' + ' '.join(urls))
        want = sha256(b''.join(parts))
        for cl in c.node_clients():
            got = wait_for(lambda: (lambda r: r.status == 200
                                    and sha256(r.body) == want)(cl.get(final)),
                           20)
            assert got, f'final {final} not served intact by {cl.base}'

    def test_rs_1000_04_slice_chunks_sprayed(self, cluster):
        c = cluster
        data = make_data(12 * 20000 + 77, seed=1004)
        pieces = [data[i:i + 20000] for i in range(0, len(data), 20000)]
        name = 'sprayed.bin'
        marks = c.marks()

        def send(i):
            ctype, body = form_body([
                ('chunk', ('blob', pieces[i], 'application/octet-stream')),
                ('index', i), ('name', name)])
            return c.client.request('POST', '/sliceUpload',
                                    {'Content-Type': ctype}, body)
        with ThreadPoolExecutor(max_workers=6) as ex:
            rs = list(ex.map(send, range(len(pieces))))
        assert all(r.status == 200 for r in rs), rs
        assert min(c.served_by('POST', marks)) >= 3
        r = c.client.request('POST', '/sliceMerge',
                             {'Content-Type': 'text/plain;charset=UTF-8'},
                             json.dumps({'name': name,
                                         'size': 20000}).encode())
        assert r.status == 200, r
        path = c.shared / 'seeds' / name
        assert wait_for(path.exists, 20), 'merged file not published'
        assert wait_for(lambda: sha256(path.read_bytes()) == sha256(data), 5)

    def test_rs_1000_05_md5_dedup_across_nodes(self, cluster):
        import hashlib
        c = cluster
        data = make_data(3 * 65536 + 9, seed=1005)
        chunks = [data[i:i + 65536] for i in range(0, len(data), 65536)]
        ids = [hashlib.md5(p).hexdigest() + str(i)
               for i, p in enumerate(chunks)]
        fid = hashlib.md5(data).hexdigest()
        n0, n1 = c.node_clients()

        def handshake(cl):
            body = json.dumps({'fileId': fid, 'ext': '.bin',
                               'chunkIds': ids}).encode()
            r = cl.request('POST', '/api/upload/handshake',
                           {'Content-Type': 'application/json'}, body)
            assert r.status == 200, r
            return json.loads(r.body)
        j = handshake(n0)
        assert j['data'] == ids, j
        for i, (cid, p) in enumerate(zip(ids, chunks)):
            ctype, body = form_body([
                ('file', ('blob', p, 'application/octet-stream')),
                ('chunkId', cid), ('fileId', fid)])
            r = (n0, n1)[i % 2].request('POST', '/api/upload',
                                        {'Content-Type': ctype}, body)
            assert r.status == 200 and json.loads(r.body)['code'] == 0, r
        j = handshake(n1)          # the other node knows the content
        assert isinstance(j['data'], str) and j['data'].endswith(
            f'/upload/{fid}.bin'), j
        assert sha256((c.shared / 'seeds' / f'{fid}.bin').read_bytes()) \
            == sha256(data)

    @pytest.mark.slow
    def test_rs_1000_06_expiry_swept_once(self, cluster):
        c = cluster
        urls = [Tus(c.client, '/short/').create(length=100)
                for _ in range(6)]
        ids = [upload_id(u) for u in urls]

        def gone():
            return all(node_tus(c, n).head(u).status in (404, 410)
                       for u in urls for n in (0, 1))
        assert wait_for(gone, 30, step=0.5), 'expired uploads not swept'
        removed = c.log_lines('expired, removed')
        for uid in ids:
            hits = [line for line in removed if f'upload {uid}:' in line]
            assert len(hits) == 1, (uid, hits)
        staging = c.shared / 'short' / '.resumable'
        left = [p.name for p in staging.iterdir()
                if any(p.name.startswith(i) for i in ids)] \
            if staging.exists() else []
        assert not left, left

    def test_rs_1000_07_kill_child_mid_patch_resume_via_front(self, cluster):
        c = cluster
        # the front's pooled connection to the killed child: its retry may
        # fail reading the answer (AH01102) or passing the body (AH01084/97)
        c.allow_errors(patterns=KILL_ALLOW + [r'\[proxy(_http)?:error\]'],
                       tags=['AH01102', 'AH00898'])
        node = c.nodes[0]
        data = make_data(600000, seed=1007)
        url, s = start_patch(c, 0, data, 300000)
        time.sleep(0.3)
        pid = wait_for(lambda: node.child_for_connection(s), 10, 0.01)
        assert pid, 'no child holds the PATCH'
        os.kill(pid, signal.SIGKILL)
        abort_socket(s)
        assert wait_for(node.is_live, 15), 'node 0 does not answer again'
        ftus = front_tus(c)
        r = wait_for(lambda: (lambda r: r if r.status == 200 else None)(
            ftus.head(url)), 15)
        assert r, 'HEAD through the front failed'
        off = int(r.headers['Upload-Offset'])
        assert 0 <= off <= 300000, off
        f = node.staged_data_file(c.shared / 'files', upload_id(url))
        assert f is not None and f.read_bytes()[:off] == data[:off]
        for attempt in range(20):
            r = ftus.patch(url, off, data[off:])
            if r.status == 204:
                break
            # 502: the front reused a connection of the killed child
            assert r.status in (409, 423, 502), r
            time.sleep(0.3)
            off = ftus.offset(url)
        assert r.status == 204 and int(r.headers['Upload-Offset']) == len(data)
        for cl in c.node_clients():
            assert sha256(get_body(cl, url)) == sha256(data)

    def resume_via_front(self, c, url, data, tries=40, live=(0, 1)):
        """HEAD through the front until it answers, check the durable
        prefix, PATCH the rest (retrying what a client retries)."""
        ftus = front_tus(c)
        r = None
        for _ in range(tries):
            r = ftus.head(url)
            if r.status == 200:
                break
            assert r.status in (423, 502, 503), r
            time.sleep(0.25)
        assert r.status == 200, r
        off = int(r.headers['Upload-Offset'])
        assert 0 <= off <= len(data), off
        f = c.nodes[0].staged_data_file(c.shared / 'files', upload_id(url))
        if off < len(data):     # the durable prefix is the client's
            assert f is not None and f.read_bytes()[:off] == data[:off]
        for _ in range(tries):
            if off == len(data):
                break
            r = ftus.patch(url, off, data[off:])
            if r.status == 204:
                break
            assert r.status in (409, 423, 502, 503), r
            time.sleep(0.25)
            r2 = ftus.head(url)
            if r2.status == 200:
                off = int(r2.headers['Upload-Offset'])
        assert off == len(data) or (r.status == 204 and int(
            r.headers['Upload-Offset']) == len(data)), r
        clients = c.node_clients()
        for cl in [c.client] + [clients[i] for i in live]:
            assert sha256(get_body(cl, url)) == sha256(data)

    def test_rs_1000_08_whole_node_killed_mid_patch(self, cluster):
        """SIGKILL of every process of node 0 while it receives a PATCH;
        the upload is finished through the front, i.e. on node 1."""
        c = cluster
        c.allow_errors(patterns=KILL_ALLOW + [r'\[proxy(_http|_balancer)?:'
                                              r'error\]'])
        node = c.nodes[0]
        data = make_data(500000, seed=1008)
        url, s = start_patch(c, 0, data, 250000)
        time.sleep(0.3)
        pids = [node.pid()] + node.children()
        for p in pids:
            os.kill(p, signal.SIGKILL)
        abort_socket(s)
        try:
            self.resume_via_front(c, url, data, live=(1,))
        finally:
            node.pid_file.unlink(missing_ok=True)
            node.start()
            assert c.wait_balanced(), 'node 0 not back in the balancer'


    def test_rs_1000_09_postgresql_restart_mid_patch(self, cluster, pg):
        if pg is None:
            pytest.skip('the suite-wide PostgreSQL is not restarted')
        c = cluster
        c.allow_errors(tags=['RS09801', 'RS09802', 'RS01002', 'RS04020',
                             'AH00630', 'AH00629', 'AH00633', 'AH00632'],
                       patterns=[r'\[dbd:error\]', r'\[resumable:warn\]'])
        data = make_data(400000, seed=1009)
        url, s = start_patch(c, 1, data, 200000)
        pg.restart()
        s.sendall(data[200000:])
        r = read_response(s, 'PATCH')
        s.close()
        assert r.status in (204, 503), r    # the end wrote to the new server
        self.resume_via_front(c, url, data)

    def test_rs_1000_10_many_uploads_both_nodes_at_once(self, cluster):
        """Writers of both nodes serialised by PostgreSQL: 24 uploads in
        parallel through the front, two PATCHes each, all intact."""
        c = cluster
        datas = [make_data(30000 + 97 * i, seed=1100 + i) for i in range(24)]

        def one(d):
            t = front_tus(c)
            u = t.create(length=len(d))
            t.upload_rest(u, d, 0, chunk_size=len(d) // 2 + 1)
            return u
        with ThreadPoolExecutor(max_workers=8) as ex:
            urls = list(ex.map(one, datas))
        assert len(set(urls)) == len(urls)
        n0, n1 = c.node_clients()
        for u, d in zip(urls, datas):
            assert sha256(get_body((n0, n1)[len(d) % 2], u)) == sha256(d)

    def test_rs_1000_11_offset_protocol_chunks_alternate(self, cluster):
        """Seed 001 (X-File-Id): the upload is found by its client key on
        whichever node a chunk lands; /status agrees on both nodes."""
        c = cluster
        data = make_data(6 * 40000 + 11, seed=1011)
        fid = f'clip.mp4-{len(data)}-1700000000999'
        marks = c.marks()
        off = 0
        n0, n1 = c.node_clients()
        while off < len(data):
            piece = data[off:off + 40000]
            r = c.client.request('POST', '/upload', {
                'X-File-Id': fid, 'X-Start-Byte': str(off),
                'X-File-Size': str(len(data)), 'Content-Type': 'video/mp4'},
                piece)
            assert r.status == 200, r
            off += len(piece)
            st = [int(cl.get('/status', {'X-File-Id': fid}).body.decode())
                  for cl in (n0, n1)]
            assert st == [off, off] or off == len(data), (st, off)
        assert min(c.served_by('POST', marks)) >= 3
        path = c.shared / 'seeds' / 'clip.mp4'
        assert wait_for(path.exists, 20), 'file not published'
        assert sha256(path.read_bytes()) == sha256(data)

    def test_rs_1000_12_same_client_key_on_both_nodes_at_once(self, cluster):
        """Two first chunks with one X-File-Id, one per node, at once: the
        creations are serialised by PostgreSQL, so there is one upload."""
        from pyrs.ctl import resumablectl
        c = cluster
        c.allow_errors(patterns=[r'\[resumable:warn\]'])
        data = make_data(200000, seed=1012)
        fid = f'twin.bin-{len(data)}-1700000001234'
        db = 'dbd:' + c.pg_params

        def uploads():
            rc, out = resumablectl(c.env, db, 'list')
            assert rc == 0, out
            return len(out.strip().splitlines())
        before = uploads()

        def first(cl):
            return cl.request('POST', '/upload', {
                'X-File-Id': fid, 'X-Start-Byte': '0',
                'X-File-Size': str(len(data)),
                'Content-Type': 'application/octet-stream'}, data)
        with ThreadPoolExecutor(max_workers=2) as ex:
            rs = list(ex.map(first, c.node_clients()))
        assert any(r.status == 200 for r in rs), rs
        assert all(r.status in (200, 400, 409, 423) for r in rs), \
            [(r.status, r.body) for r in rs]
        assert uploads() == before + 1
        path = c.shared / 'seeds' / 'twin.bin'
        assert wait_for(path.exists, 20), 'file not published'
        assert sha256(path.read_bytes()) == sha256(data)

    def test_rs_1000_13_frozen_writer_within_its_lease(self, cluster):
        """A frozen writer (SIGSTOP) whose lease (ResumableLeaseTime, 10 s
        here) has not passed yet: the other node may not take the upload
        over (423 after ResumableLockWait) and no byte changes; after
        SIGCONT the upload resumes through the front and completes intact.
        (Past the lease the other node takes over and the frozen writer
        is fenced: test_1040_01.)"""
        c = cluster
        c.allow_errors(patterns=[r'\[resumable:warn\]'])
        node = c.nodes[0]
        data = make_data(400000, seed=1013)
        url, s = start_patch(c, 0, data, 150000)
        pid = wait_for(lambda: node.child_for_connection(s), 10, 0.01)
        assert pid, 'no child holds the PATCH'
        f = None
        try:
            time.sleep(0.3)
            os.kill(pid, signal.SIGSTOP)
            f = node.staged_data_file(c.shared / 'files', upload_id(url))
            before = f.read_bytes() if f else b''
            off = node_tus(c, 1).offset(url)
            r = node_tus(c, 1).patch(url, off, data[off:], timeout=20)
            assert r.status == 423, r       # held by the frozen writer
            after = f.read_bytes() if f else b''
            assert after == before          # nothing written meanwhile
        finally:
            os.kill(pid, signal.SIGCONT)
        abort_socket(s)
        self.resume_via_front(c, url, data)
