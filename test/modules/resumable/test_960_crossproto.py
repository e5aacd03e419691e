"""960: the cross-protocol matrix (issue 11 part 1). An upload made by one
front end, addressed through every other front end by its id, its URL and
its client key (raw, and with every protocol's key prefix): each request
gets a 4xx or the other protocol's own answer for an unknown upload (the
offset status "0", a flow test 204, a new upload of that protocol's own),
never a 5xx or a crashed child, and the upload is unchanged (staged bytes,
its own protocol's status) and is then finished by its own protocol with
its own bytes; then the same requests again on the finished upload.
Once in one area with all protocols on (/files/), once in
the seeds' layout (conf/seeds.conf: one directory, one protocol per
location). Before the fix the offset front end found a slice, flow or md5
upload by its prefixed key and crashed the child (file_fd(NULL)), and the
md5 handshake terminated an offset upload whose id was "md5:<hex>"."""
import hashlib
import json
import time
import zlib
from urllib.parse import urlencode

import pytest

from pyrs.client import make_data
from pyrs.env import RsArea
from pyrs.seeds import post_form, seeds_conf, seeds_dir
from test_700_ietf import hdrs, ireq

CS = 4                      # every chunked target: 2 chunks of 4 bytes
SIZE = 8
ZZ = b'ZZZZ'
PREFIXES = ('', 'slice:', 'md5:', 'flow:')


def md5(b):
    return hashlib.md5(b).hexdigest()


class Paths:
    """Where each front end's requests go in a layout."""

    def __init__(self, all_in=None):
        if all_in:
            self.offset_status = self.offset_post = all_in
            self.slice_chunk = self.slice_merge = all_in
            self.md5_hs = self.md5_chunk = self.flow = all_in
            self.tus = all_in
        else:                       # conf/seeds.conf
            self.offset_status, self.offset_post = '/status', '/upload'
            self.slice_chunk, self.slice_merge = '/sliceUpload', '/sliceMerge'
            self.md5_hs, self.md5_chunk = '/api/upload/handshake', '/api/upload'
            self.flow = '/flow'
            self.tus = None


# ---- the front ends' requests --------------------------------------------

def offset_post(env, P, fid, start, body, size=None):
    h = {'X-File-Id': fid, 'X-Start-Byte': str(start),
         'Content-Type': 'application/octet-stream'}
    if size is not None:
        h['X-File-Size'] = str(size)
    return env.client.request('POST', P.offset_post, h, body)


def offset_status(env, P, fid):
    return env.client.get(P.offset_status, {'X-File-Id': fid})


def slice_chunk(env, P, name, index, data):
    return post_form(env, P.slice_chunk, [
        ('chunk', ('blob', data, 'application/octet-stream')),
        ('index', index), ('name', name)])


def slice_merge(env, P, name, size=CS):
    return env.client.request('POST', P.slice_merge,
                              {'Content-Type': 'text/plain;charset=UTF-8'},
                              json.dumps({'name': name, 'size': size}).encode())


def md5_ids(data):
    return [md5(data[i:i + CS]) + str(i // CS) for i in range(0, len(data), CS)]


def md5_handshake(env, P, fid, ids, ext='.bin'):
    return env.client.request('POST', P.md5_hs,
                              {'Content-Type': 'application/json'},
                              json.dumps({'fileId': fid, 'ext': ext,
                                          'chunkIds': ids}).encode())


def md5_chunk(env, P, fid, cid, data):
    return post_form(env, P.md5_chunk, [
        ('file', ('blob', data, 'application/octet-stream')),
        ('chunkId', cid), ('fileId', fid)])


def flow_params(ident, number, name='f.bin'):
    return {'flowChunkNumber': number, 'flowChunkSize': CS,
            'flowCurrentChunkSize': CS, 'flowTotalSize': SIZE,
            'flowIdentifier': ident, 'flowFilename': name,
            'flowRelativePath': name, 'flowTotalChunks': SIZE // CS}


def flow_test(env, P, ident, number):
    return env.client.get(P.flow + '?' + urlencode(flow_params(ident, number)))


def flow_chunk(env, P, ident, number, data, name='f.bin'):
    parts = list(flow_params(ident, number, name).items())
    parts.append(('file', (name, data, 'application/octet-stream')))
    return post_form(env, P.flow, parts)


TUS = {'Tus-Resumable': '1.0.0'}


def ietf_h(complete=None, offset=None, patch=False):
    return hdrs(8, complete, offset, patch=patch)


# ---- targets ----------------------------------------------------------------

class Target:
    """An unfinished upload of one front end: 4 of its 8 bytes stored."""

    def __init__(self, env, P, area, proto, tag):
        self.env, self.P, self.area, self.proto = env, P, area, proto
        self.data = make_data(SIZE, seed=zlib.crc32(f'{area}{proto}{tag}'.encode()))
        self.url = None
        self.keys = []
        getattr(self, 'make_' + proto.split('@')[0])(tag)

    def staging(self):
        return self.env.area_dir(self.area) / '.resumable'

    def new_id(self, before):
        ids = {p.name[:-5] for p in self.staging().glob('*.data')} - before
        assert len(ids) == 1, ids
        return ids.pop()

    def ids_now(self):
        st = self.staging()
        return {p.name[:-5] for p in st.glob('*.data')} if st.exists() else set()

    def key_forms(self, raw):
        return [pre + raw for pre in PREFIXES]

    # -- creation, one per protocol
    def make_tus(self, tag):
        r = self.env.client.request('POST', self.P.tus, dict(
            TUS, **{'Upload-Length': str(SIZE)}))
        assert r.status == 201, r
        self.url = r.headers['Location']
        self.id = self.url.rstrip('/').rsplit('/', 1)[1]
        r = self.env.client.request('PATCH', self.url, dict(
            TUS, **{'Upload-Offset': '0',
                    'Content-Type': 'application/offset+octet-stream'}),
            self.data[:4])
        assert r.status == 204, r

    def make_ietf(self, tag):
        r = ireq(self.env, 'POST', self.P.tus, ietf_h(False), self.data[:4])
        assert r.status == 201, r
        self.url = r.headers['Location']
        self.id = self.url.rstrip('/').rsplit('/', 1)[1]

    def make_offset(self, tag):
        # its id collides with another protocol's key in the old key space
        self.fid = {'md5': 'md5:' + md5(b'offset-key'),
                    'slice': 'slice:o-cross.bin',
                    'flow': 'flow:8-o-cross.bin'}[tag]
        before = self.ids_now()
        r = offset_post(self.env, self.P, self.fid, 0, self.data[:4], SIZE)
        assert r.status == 200, r
        self.id = self.new_id(before)
        raw = self.fid.split(':', 1)[1]
        self.keys = self.key_forms(raw)

    def make_slice(self, tag):
        self.name = 's-cross.bin'
        before = self.ids_now()
        r = slice_chunk(self.env, self.P, self.name, 0, self.data[:4])
        assert r.status == 200, r
        self.id = self.new_id(before)
        self.keys = self.key_forms(self.name)

    def make_md5(self, tag):
        self.fid = md5(self.data)
        ids = md5_ids(self.data)
        before = self.ids_now()
        r = md5_handshake(self.env, self.P, self.fid, ids)
        assert r.status == 200 and json.loads(r.body)['data'] == ids, r
        r = md5_chunk(self.env, self.P, self.fid, ids[0], self.data[:4])
        assert r.status == 200 and json.loads(r.body)['data'] == ids[1:], r
        self.id = self.new_id(before)
        self.keys = self.key_forms(self.fid)

    def make_flow(self, tag):
        self.ident = f'{SIZE}-f-cross.bin'
        before = self.ids_now()
        r = flow_chunk(self.env, self.P, self.ident, 1, self.data[:4])
        assert r.status == 200 and r.body == b'partly_done', r
        self.id = self.new_id(before)
        self.keys = self.key_forms(self.ident)

    # -- what must not change
    def snapshot(self):
        files = {}
        for p in sorted(self.staging().glob(self.id + '.*')):
            if p.name.endswith('.data') or '.c' in p.name[len(self.id):]:
                files[p.name] = hashlib.sha256(p.read_bytes()).hexdigest()
        return files, self.own_status()

    def own_status(self):
        env, P = self.env, self.P
        if self.proto == 'tus':
            r = env.client.request('HEAD', self.url, TUS)
            return r.status, r.headers.get('Upload-Offset'), r.headers.get('Upload-Length')
        if self.proto == 'ietf':
            r = ireq(env, 'HEAD', self.url, ietf_h())
            return r.status, r.headers.get('Upload-Offset')
        if self.proto == 'offset':
            r = offset_status(env, P, self.fid)
            return r.status, r.body
        if self.proto == 'flow':
            return (flow_test(env, P, self.ident, 1).status,
                    flow_test(env, P, self.ident, 2).status)
        if self.proto == 'md5':
            r = md5_handshake(env, P, self.fid, md5_ids(self.data))
            return r.status, r.body
        return None                 # slice has no status query

    # -- finished by its own protocol
    def finish(self):
        env, P, d = self.env, self.P, self.data
        if self.proto == 'tus':
            r = env.client.request('PATCH', self.url, dict(
                TUS, **{'Upload-Offset': '4',
                        'Content-Type': 'application/offset+octet-stream'}), d[4:])
            assert r.status == 204 and r.headers['Upload-Offset'] == '8', r
        elif self.proto == 'ietf':
            r = ireq(env, 'PATCH', self.url, ietf_h(True, 4, patch=True), d[4:])
            assert r.status in (200, 204), r
        elif self.proto == 'offset':
            r = offset_post(env, P, self.fid, 4, d[4:], SIZE)
            assert r.status == 200 and r.body == b'Success 8', r
        elif self.proto == 'slice':
            r = slice_chunk(env, P, self.name, 1, d[4:])
            assert r.status == 200, r
            r = slice_merge(env, P, self.name)
            assert r.status == 200 and r.body == b'ok', r
        elif self.proto == 'md5':
            r = md5_chunk(env, P, self.fid, md5_ids(d)[1], d[4:])
            assert r.status == 200 and json.loads(r.body)['data'] == [], r
        elif self.proto == 'flow':
            r = flow_chunk(env, P, self.ident, 2, d[4:])
            assert r.status == 200 and r.body == b'done', r
        self.assert_published()

    def assert_published(self, timeout=20):
        """Some file of the area holds exactly the upload's bytes (a
        composed upload is published after the answer: bounded wait)."""
        area = self.env.area_dir(self.area)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for p in area.iterdir():
                if p.is_file() and p.stat().st_size == SIZE \
                        and p.read_bytes() == self.data:
                    return
            time.sleep(0.05)
        raise AssertionError(f'{self.proto} upload {self.id}: no published '
                             f'file holds its bytes')


# ---- the attacks: every other front end -----------------------------------

def no_5xx(rs):
    bad = [(what, r) for what, r in rs if r.status >= 500]
    assert not bad, bad


def four(rs):
    bad = [(what, r) for what, r in rs if not 400 <= r.status < 500]
    assert not bad, bad


def by_url(env, t, finished=False):
    """tus and IETF address uploads by URL; the id of any upload in the
    area gives it. A finished upload's URL downloads it (documented, for
    every protocol's upload of the same owner)."""
    url = t.url or f'{env.url}{t.P.tus}{t.id}'
    rs = []
    if t.proto != 'tus':
        rs += [('tus HEAD', env.client.request('HEAD', url, TUS)),
               ('tus PATCH', env.client.request('PATCH', url, dict(
                   TUS, **{'Upload-Offset': '4',
                           'Content-Type': 'application/offset+octet-stream'}), ZZ)),
               ('tus PATCH 0', env.client.request('PATCH', url, dict(
                   TUS, **{'Upload-Offset': '0',
                           'Content-Type': 'application/offset+octet-stream'}), ZZ)),
               ('tus DELETE', env.client.request('DELETE', url, TUS)),
               ('tus POST', env.client.request('POST', url, TUS)),
               ('tus concat', env.client.request('POST', t.P.tus, dict(
                   TUS, **{'Upload-Concat': f'final;{t.P.tus}{t.id}'})))]
    if t.proto != 'ietf':
        rs += [('ietf HEAD', ireq(env, 'HEAD', url, ietf_h())),
               ('ietf PATCH', ireq(env, 'PATCH', url,
                                   ietf_h(False, 4, patch=True), ZZ)),
               ('ietf PATCH complete', ireq(env, 'PATCH', url,
                                            ietf_h(True, 0, patch=True), ZZ)),
               ('ietf DELETE', ireq(env, 'DELETE', url, ietf_h()))]
    four(rs)
    r = env.client.get(url)
    if finished:
        assert r.status == 200 and r.body == t.data, r
    else:
        assert 400 <= r.status < 500, r     # not finished: no download
    return rs


def by_offset(env, t, finished=False):
    """finished: the first round made uploads of the attacker's own under
    these keys; their answers are then the attacker's business (only no
    5xx), t must still be unchanged."""
    rs = []
    for k in t.keys + [t.id]:
        r = offset_status(env, t.P, k)
        assert finished or (r.status == 200 and r.body == b'0'), (k, r)
        rs.append((f'offset status {k}', r))
        r = offset_post(env, t.P, k, 4, ZZ, SIZE)
        assert finished or (r.status == 400 and r.body == b'0'), (k, r)
        rs.append((f'offset POST 4 {k}', r))
        # the issue's crash: start 0 makes an upload of the offset
        # protocol's own (its own key space), never touches t
        rs.append((f'offset POST {k}', offset_post(env, t.P, k, 0, ZZ, 4)))
    no_5xx(rs)
    return rs


def by_slice(env, t, finished=False):
    rs = []
    for k in t.keys + [t.id]:
        r = slice_merge(env, t.P, k)
        assert finished or r.status == 404, (k, r)
        rs.append((f'slice merge {k}', r))
        rs.append((f'slice chunk {k}', slice_chunk(env, t.P, k, 0, ZZ)))
        rs.append((f'slice chunk 1 {k}', slice_chunk(env, t.P, k, 1, ZZ)))
    no_5xx(rs)
    return rs


def by_md5(env, t, finished=False):
    rs = []
    zid = md5(ZZ) + '0'
    for k in t.keys + [t.id]:
        r = md5_chunk(env, t.P, k, zid, ZZ)
        if len(k) != 32:
            assert r.status == 400, (k, r)          # not an MD5
        elif not finished:
            assert r.status == 404, (k, r)          # no handshake of md5's
        rs.append((f'md5 chunk {k}', r))
        # the issue: a handshake on another upload's key terminated it
        rs.append((f'md5 handshake {k}', md5_handshake(env, t.P, k, [zid])))
    no_5xx(rs)
    return rs


def by_flow(env, t, finished=False):
    rs = []
    for k in t.keys + [t.id]:
        for n in (1, 2):
            r = flow_test(env, t.P, k, n)
            assert r.status == (200 if finished and n == 2 else 204), (k, n, r)
        rs.append((f'flow chunk {k}', flow_chunk(env, t.P, k, 2, ZZ)))
    no_5xx(rs)
    return rs


ATTACKS = {'tus': by_url, 'offset': by_offset, 'slice': by_slice,
           'md5': by_md5, 'flow': by_flow}

TARGETS = ['tus', 'ietf', 'offset@md5', 'offset@slice', 'offset@flow',
           'slice', 'md5', 'flow']


def run_matrix(env, P, area, proto_tag, attackers):
    proto, _, tag = proto_tag.partition('@')
    t = Target(env, P, area, proto, tag)
    before = t.snapshot()
    assert before[0], before            # its bytes are staged
    for name in attackers:
        if name == proto and name != 'tus':     # by_url skips its own
            continue
        ATTACKS[name](env, t)
        assert t.snapshot() == before, (name, t.snapshot(), before)
    t.finish()
    # finished: the same requests change nothing either
    done = t.own_status() if t.proto not in ('md5', 'slice') else None
    for name in attackers:
        if name == proto and name != 'tus':
            continue
        ATTACKS[name](env, t, finished=True)
        t.assert_published()
        if done is not None:
            assert t.own_status() == done, (name, t.own_status(), done)


class TestCrossProtocolOneArea:
    """/files/: every front end on, one directory."""
    CONF = staticmethod(lambda env: dict(areas=[RsArea(
        '/files/', dir=env.area_dir('cross'),
        directives=['ResumableExpire 1h'])]))

    @pytest.mark.parametrize('target', TARGETS)
    def test_rs_960_01_matrix(self, env, target):
        run_matrix(env, Paths('/files/'), 'cross', target,
                   ['tus', 'offset', 'slice', 'md5', 'flow'])


class TestCrossProtocolSeeds:
    """conf/seeds.conf: one directory, each front end at its own URLs."""
    CONF = staticmethod(lambda env: seeds_conf(env, 'seeds-cross'))

    @pytest.mark.parametrize('target', [t for t in TARGETS
                                        if t not in ('tus', 'ietf')])
    def test_rs_960_02_matrix(self, env, target):
        run_matrix(env, Paths(), 'seeds-cross', target,
                   ['offset', 'slice', 'md5', 'flow'])

    def test_rs_960_03_issue_repro(self, env):
        """The issue's commands, verbatim: a slice chunk, then the offset
        front end on 'slice:x.bin'."""
        P = Paths()
        r = slice_chunk(env, P, 'x.bin', 0, b'AAAA')
        assert r.status == 200, r
        r = offset_post(env, P, 'slice:x.bin', 0, ZZ)
        assert r.status == 200, r           # a new offset upload of its own
        r = slice_chunk(env, P, 'x.bin', 1, b'BBBB')
        assert r.status == 200, r
        r = slice_merge(env, P, 'x.bin')
        assert r.status == 200 and r.body == b'ok', r
        p = seeds_dir(env, 'seeds-cross') / 'x.bin'
        end = time.monotonic() + 20
        while not p.exists() and time.monotonic() < end:
            time.sleep(0.05)
        assert p.read_bytes() == b'AAAABBBB'
