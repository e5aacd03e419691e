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
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from pyrs.client import OCTET, RsClient, Tus, abort_socket, make_data, \
    sha256, upload_id
from pyrs.cluster import RsCluster
from pyrs.env import _free_port
from pyrs.pg import PgCluster, pg_available
from pyrs.seeds import form_body

WHY = pg_available()
pytestmark = pytest.mark.skipif(WHY is not None, reason=WHY or '')

KILL_ALLOW = [r'exit signal Killed', r'\[resumable:warn\]']


@pytest.fixture(scope='module')
def pg(env):
    """The suite's PostgreSQL (RS_STATE=pgsql) or a private one."""
    if env.pg_params:
        yield env.pg_params
        return
    c = PgCluster(env.gen / 'pg-cluster', _free_port()).init().start()
    yield c.params()
    c.stop()


@pytest.fixture(scope='module')
def cluster(env, pg):
    env.stop()                  # the session server is not part of it
    c = RsCluster(env, pg).setup()
    seeds = env.repo / 'conf' / 'seeds.conf'
    c.start(extra=(f'Define RS_SEEDS_DIR "{c.area_dir("seeds")}"\n'
                   f'Include "{seeds}"\n'),
            modules_extra=['alias'])
    yield c
    c.stop()
    bad = []
    for e in c.nodes + [c.front]:
        bad += e.check_log(include_test=False)
    assert not bad, 'error log at cluster stop:\n' + '\n'.join(bad)


@pytest.fixture(autouse=True)
def _cluster_logs(cluster):
    cluster.begin_test()
    yield
    bad = cluster.end_test()
    assert not bad, 'cluster error logs:\n' + '\n'.join(bad)


def front_tus(c):
    return Tus(c.client, '/files/')


def node_tus(c, i):
    return Tus(RsClient(c.nodes[i].url), '/files/')


def get_body(client, url):
    r = client.get(url)
    assert r.status == 200, r
    return r.body


def wait_for(pred, timeout, step=0.1):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


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
        c.allow_errors(patterns=KILL_ALLOW, tags=['AH01102', 'AH00898'])
        node = c.nodes[0]
        data = make_data(600000, seed=1007)
        ntus = node_tus(c, 0)
        url = ntus.create(length=len(data))
        h = dict(ntus.base_headers)
        h.update({'Upload-Offset': '0', 'Content-Type': OCTET})
        s = ntus.client.send_partial('PATCH', url, h, data[:300000],
                                     len(data))
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
