"""1020: real clients through the balancer while a whole node is killed.

Two httpd nodes (ResumableStateDB dbd:, one private PostgreSQL, one shared
directory) behind mod_proxy_balancer without stickiness (pyrs/cluster.py).
In each case one node is SIGKILLed whole (parent and children) at a
random point of an upload, then started again:

- tus-js-client (Node, test/js/tus_client.mjs) in tus 1.0.0 and in its
  IETF mode, with a chunkSize giving many PATCHes and retryDelays, so it
  resumes from HEAD on its own;
- the seed protocols' chunked uploads (slice, flow, md5 in parallel, the
  offset protocol in sequence, as pyrs/seeds.py sends them), the failed
  chunks re-sent, the merge done.

After each case: HEAD's offset through either node is backed by durable
bytes equal to the source, the finished file's sha256 is the source's,
`resumablectl verify` is clean, and 5xx came only while the node was down.

The random points come from one seed, printed (RS_FAULT_SEED=N repeats a
run). Skipped with the reason when PostgreSQL or the apr_dbd pgsql driver
is not installed.
"""
import hashlib
import json
import os
import random
import re
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import pytest

from pyrs.client import sha256
from pyrs.cluster import RsCluster
from pyrs.env import _free_port, wait_for
from pyrs.faults import (NodeKill, access_5xx, check_heads_durable, log_size,
                         outside, verify_clean)
from pyrs.pg import PgCluster, pg_available
from pyrs.seeds import form_body
from test_900_tusjs import node_bin  # noqa: F401  (fixture)

WHY = pg_available()
pytestmark = pytest.mark.skipif(WHY is not None, reason=WHY or '')

SEED = int(os.environ.get('RS_FAULT_SEED') or random.SystemRandom().randrange(1 << 30))
MiB = 1024 * 1024
CLIENT = os.path.join(os.path.dirname(__file__), '..', '..', 'js', 'tus_client.mjs')
CLIENT_TIMEOUT = 60
LEASE = 3       # ResumableLeaseTime (writer leases): a dead writer's lease
                # is taken at once on its own kernel, else after this
IETF_HEAD = {'Tus-Resumable': None, 'Upload-Draft-Interop-Version': '6'}

# a killed node: its children's exits, the front's failed connections to
# it, the survivor's warnings about bodies cut off mid-way
KILL_ALLOW = dict(tags=['AH01102', 'AH00898', 'AH01084', 'AH00940', 'AH00941',
                        'AH01114', 'AH02429', 'AH01097', 'AH01110'],
                  patterns=[r'exit signal Killed', r'\[resumable:warn\]',
                            r'\[proxy(_http|_balancer)?:error\]',
                            r'ERR_BODY_READ'])


def rnd(name):
    """A random source for one case, derived from the printed seed."""
    r = random.Random(f'{SEED}:{name}')
    print(f'[test_1020] {name}: RS_FAULT_SEED={SEED}')
    return r


@pytest.fixture(scope='module')
def pg(env):
    """This file's own PostgreSQL: verify judges only these uploads."""
    c = PgCluster(env.gen / 'pg-1020', _free_port()).init().start()
    yield c
    c.stop()


@pytest.fixture(scope='module')
def cluster(env, pg):
    env.stop()                  # the session server is not part of it
    c = RsCluster(env, pg.dbd_params()).setup()
    seeds = env.repo / 'conf' / 'seeds.conf'
    c.start(extra=(f'Define RS_SEEDS_DIR "{c.area_dir("seeds")}"\n'
                   f'Include "{seeds}"\n'),
            server_extra=f'ResumableLeaseTime {LEASE}s\n',
            modules_extra=['alias'])
    yield c
    c.stop_checked()


@pytest.fixture(autouse=True)
def _cluster_logs(cluster):
    yield from cluster.log_window()


class Fault:
    """One case's kill of a whole node: the logs' marks before, the 5xx
    check after."""

    def __init__(self, c, r):
        self.c = c
        self.kill = NodeKill(c, r.choice([0, 1]))
        self.marks = [log_size(e.access_log) for e in [c.front] + c.nodes]
        c.allow_errors(**KILL_ALLOW)
        print(f'[test_1020] node{self.kill.i} is killed')

    def check_5xx(self):
        """5xx through the front only while the node was down; never
        from a node itself."""
        w = self.kill.window()
        envs = [self.c.front] + self.c.nodes
        front = access_5xx(envs[0].access_log, self.marks[0])
        assert not outside(front, w), (f'5xx outside the down window {w}',
                                       outside(front, w))
        for e, m in zip(envs[1:], self.marks[1:]):
            assert not access_5xx(e.access_log, m), (e.gen.name,
                                                     access_5xx(e.access_log, m))
        print(f'[test_1020] 5xx through the front while node{self.kill.i} '
              f'was down: {[(e[1][:30], e[2]) for e in front]}')
        return front


# ---- tus-js-client ----------------------------------------------------------

class JsClient:
    """test/js/tus_client.mjs running in the background (--verbose): its
    stderr tells the upload URL and the bytes accepted so far."""

    def __init__(self, node, endpoint, path, chunk_size, protocol):
        cmd = [node, CLIENT, '--endpoint', endpoint, '--file', str(path),
               '--mode', 'plain', '--timeout', str(CLIENT_TIMEOUT),
               '--chunk-size', str(chunk_size), '--protocol', protocol,
               '--verbose']
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.url = None
        self.accepted = 0
        self.err = []
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stderr:
            self.err.append(line)
            m = re.search(r'accepted (\d+)/', line)
            if m:
                self.accepted = int(m.group(1))
            m = re.search(r'(?:POST|PATCH|HEAD) (\S+/files/\S+) -> ', line)
            if m and self.url is None:
                self.url = m.group(1)

    def result(self):
        try:
            out, _ = self.p.communicate(timeout=CLIENT_TIMEOUT + 30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.communicate(timeout=10)
            pytest.fail('tus_client.mjs hung past its own timeout')
        self.t.join(10)
        lines = [ln for ln in out.splitlines() if ln.strip()]
        assert lines, f'no output (exit {self.p.returncode}): {"".join(self.err)[-3000:]}'
        res = json.loads(lines[-1])
        assert res['ok'] is True and self.p.returncode == 0, \
            (res, ''.join(self.err)[-4000:])
        return res


def js_case(c, node, tmp_path, name, protocol, headers=None):
    r = rnd(name)
    size = r.randrange(8 * MiB, 16 * MiB)
    data = r.randbytes(size)
    path = tmp_path / f'{name}.bin'
    path.write_bytes(data)
    fault = Fault(c, r)
    at = int(size * r.uniform(0.15, 0.7))
    print(f'[test_1020] {name}: {size} bytes, node{fault.kill.i} killed '
          f'once {at} are accepted')
    area = c.shared / 'files'
    js = JsClient(node, f'{c.url}/files/', path, 256 * 1024, protocol)
    try:
        assert wait_for(lambda: js.accepted >= at or js.p.poll() is not None,
                        CLIENT_TIMEOUT, 0.005), 'client made no progress'
        assert js.p.poll() is None, 'the upload ended before the kill'
        fault.kill.kill()
        # the survivor's HEAD is backed by durable bytes
        assert wait_for(lambda: js.url, 5), 'no upload URL seen'
        offs = check_heads_durable(c, area, js.url, data,
                                   nodes=[1 - fault.kill.i], headers=headers)
        print(f'[test_1020] {name}: HEAD after the kill: {offs}')
        time.sleep(r.uniform(0.3, 1.5))
        assert fault.kill.revive(), f'node{fault.kill.i} not back'
        res = js.result()
    finally:
        if js.p.poll() is None:
            js.p.kill()
            js.p.wait(10)
    url = res['uploadUrl']
    assert url == js.url, (url, js.url)
    for cl in [c.client] + c.node_clients():
        got = cl.get(url)
        assert got.status == 200 and sha256(got.body) == sha256(data), \
            (cl.base, got.status)
    # finished: HEAD says so on both nodes, the published file is intact
    assert check_heads_durable(c, area, url, data, headers=headers) \
        == [size, size]
    assert sha256((area / path.name).read_bytes()) == sha256(data)
    verify_clean(c)
    fault.check_5xx()


class TestClusterClients:

    def test_rs_1020_01_tusjs_node_killed(self, cluster, node_bin, tmp_path):
        js_case(cluster, node_bin, tmp_path, 'tusjs', 'tus-v1')

    def test_rs_1020_02_tusjs_ietf_node_killed(self, cluster, node_bin,
                                               tmp_path):
        js_case(cluster, node_bin, tmp_path, 'ietf', 'ietf-draft-05',
                headers=IETF_HEAD)


# ---- the seed protocols -----------------------------------------------------

def post(cl, path, parts):
    ctype, body = form_body(parts)
    try:
        return cl.request('POST', path, {'Content-Type': ctype}, body,
                          timeout=20)
    except OSError:
        return None


def spray(c, r, fault, sends, ok, workers=4):
    """Run the chunk senders `sends` through the front, `workers` at once;
    the node dies once a random number of them has been answered and is
    started again at the end. Then the failed ones are re-sent (bounded).
    ok(resp) says whether a chunk is stored. Returns every response."""
    kill_after = r.randrange(1, max(2, len(sends) * 2 // 3))
    done = []
    lock = threading.Lock()

    def one(i):
        resp = sends[i]()
        with lock:
            done.append(i)
        return resp
    order = list(range(len(sends)))
    r.shuffle(order)
    with ThreadPoolExecutor(max_workers=workers) as ex:
        futs = {i: ex.submit(one, i) for i in order}
        assert wait_for(lambda: len(done) >= kill_after, 60, 0.002)
        fault.kill.kill()
        results = {i: f.result(timeout=60) for i, f in futs.items()}
    failed = [i for i, x in results.items() if not ok(x)]
    for i in failed:        # what failed failed for the kill only
        x = results[i]
        assert x is None or x.status >= 500 or x.status in (409, 423), (i, x)
    print(f'[test_1020] killed after {kill_after} answers; '
          f'{len(failed)} of {len(sends)} chunks failed')
    time.sleep(r.uniform(0.2, 0.8))
    assert fault.kill.revive(), f'node{fault.kill.i} not back'
    deadline = time.monotonic() + 3 * LEASE + 5
    while failed and time.monotonic() < deadline:
        again = []
        for i in failed:
            x = sends[i]()
            if not ok(x):
                assert x is None or x.status >= 500 \
                    or x.status in (409, 423), (i, x)
                again.append(i)
        failed = again
        if failed:
            time.sleep(0.5)
    assert not failed, f'chunks {failed} not accepted after the node came back'
    return results


def published(path, data):
    assert wait_for(path.exists, 20), f'{path} not published'
    assert wait_for(lambda: sha256(path.read_bytes()) == sha256(data), 5), \
        f'{path}: content differs from the source'


class TestClusterSeeds:

    def test_rs_1020_03_slice_sprayed_node_killed(self, cluster):
        c = cluster
        r = rnd('slice')
        fault = Fault(c, r)
        cs = 64 * 1024
        data = r.randbytes(40 * cs + 333)
        pieces = [data[i:i + cs] for i in range(0, len(data), cs)]
        name = f'slice-{SEED}.bin'
        sends = [lambda i=i: post(c.client, '/sliceUpload', [
            ('chunk', ('blob', pieces[i], 'application/octet-stream')),
            ('index', i), ('name', name)]) for i in range(len(pieces))]
        spray(c, r, fault, sends, lambda x: x is not None and x.status == 200)
        resp = c.client.request('POST', '/sliceMerge',
                                {'Content-Type': 'text/plain;charset=UTF-8'},
                                json.dumps({'name': name, 'size': cs}).encode())
        assert resp.status == 200, resp
        published(c.shared / 'seeds' / name, data)
        verify_clean(c)
        fault.check_5xx()

    def test_rs_1020_04_flow_sprayed_node_killed(self, cluster):
        c = cluster
        r = rnd('flow')
        fault = Fault(c, r)
        cs = 64 * 1024
        data = r.randbytes(40 * cs + 999)
        name = f'flow-{SEED}.bin'
        n = len(data) // cs

        def params(k):
            a, b = (k - 1) * cs, (len(data) if k == n else k * cs)
            return {'flowChunkNumber': k, 'flowChunkSize': cs,
                    'flowCurrentChunkSize': b - a, 'flowTotalSize': len(data),
                    'flowIdentifier': f'{len(data)}-{name}',
                    'flowFilename': name, 'flowRelativePath': name,
                    'flowTotalChunks': n}, data[a:b]

        def send(k):
            p, body = params(k)
            try:       # as Flow.js: a test GET first
                t = c.client.get('/flow?' + urlencode(p), timeout=20)
            except OSError:
                return None
            if t.status == 200:
                return t
            return post(c.client, '/flow', list(p.items())
                        + [('file', (name, body, 'application/octet-stream'))])
        sends = [lambda k=k: send(k) for k in range(1, n + 1)]
        spray(c, r, fault, sends, lambda x: x is not None and x.status == 200)
        published(c.shared / 'seeds' / name, data)
        verify_clean(c)
        fault.check_5xx()

    def test_rs_1020_05_md5_sprayed_node_killed(self, cluster):
        c = cluster
        r = rnd('md5')
        fault = Fault(c, r)
        cs = 64 * 1024
        data = r.randbytes(30 * cs + 77)
        chunks = [data[i:i + cs] for i in range(0, len(data), cs)]
        ids = [hashlib.md5(p).hexdigest() + str(i) for i, p in enumerate(chunks)]
        fid = hashlib.md5(data).hexdigest()
        body = json.dumps({'fileId': fid, 'ext': '.bin',
                           'chunkIds': ids}).encode()
        h = c.client.request('POST', '/api/upload/handshake',
                             {'Content-Type': 'application/json'}, body)
        assert h.status == 200 and json.loads(h.body)['data'] == ids, h

        def ok(x):
            return x is not None and x.status == 200 \
                and json.loads(x.body).get('code') == 0
        sends = [lambda i=i: post(c.client, '/api/upload', [
            ('file', ('blob', chunks[i], 'application/octet-stream')),
            ('chunkId', ids[i]), ('fileId', fid)]) for i in range(len(chunks))]
        spray(c, r, fault, sends, ok)
        h = c.client.request('POST', '/api/upload/handshake',
                             {'Content-Type': 'application/json'}, body)
        j = json.loads(h.body)
        assert h.status == 200 and isinstance(j['data'], str), j
        published(c.shared / 'seeds' / f'{fid}.bin', data)
        verify_clean(c)
        fault.check_5xx()

    def test_rs_1020_06_offset_protocol_node_killed(self, cluster):
        """Seed 001 sends in sequence (X-Start-Byte); after a failed chunk
        it asks /status (whichever node answers) where to go on."""
        c = cluster
        r = rnd('offset')
        fault = Fault(c, r)
        cs = 128 * 1024
        data = r.randbytes(40 * cs + 5)
        fid = f'clip{SEED}.mp4-{len(data)}-1700000000777'
        kill_at = r.randrange(2, 30) * cs
        off = 0
        fails = 0
        for _ in range(len(data) // cs + 40):
            if off >= len(data):
                break
            if fault.kill.down_at is None and off >= kill_at:
                fault.kill.kill()
            try:
                x = c.client.request('POST', '/upload', {
                    'X-File-Id': fid, 'X-Start-Byte': str(off),
                    'X-File-Size': str(len(data)),
                    'Content-Type': 'video/mp4'}, data[off:off + cs],
                    timeout=20)
            except OSError:
                x = None
            if x is not None and x.status == 200:
                off += len(data[off:off + cs])
                continue
            assert x is None or x.status >= 500 or x.status in (409, 423), x
            fails += 1
            st = c.client.get('/status', {'X-File-Id': fid}, timeout=20)
            if st.status == 200:
                off = int(st.body.decode())
                assert 0 <= off <= len(data)
            if fault.kill.up_at is None and fails >= 1:
                time.sleep(r.uniform(0.2, 0.8))
                assert fault.kill.revive()
        assert off == len(data), off
        if fault.kill.up_at is None:
            assert fault.kill.revive()
        published(c.shared / 'seeds' / f'clip{SEED}.mp4', data)
        for cl in c.node_clients():
            st = cl.get('/status', {'X-File-Id': fid})
            assert st.status in (200, 404), st
        verify_clean(c)
        fault.check_5xx()
