"""95x: isolation between authenticated users for the ietf, offset, slice,
md5 and flow front ends (tus: test_600): with httpd Basic authentication
on, one user can not see, resume, download, delete or merge another
user's upload, even knowing its URL, id, file name or chunk ids; the same
client key used by two users makes two independent uploads, and neither
finished file overwrites the other."""
import hashlib
import json
import time
from urllib.parse import urlencode

from pyrs.client import make_data, sha256, split_url
from pyrs.hostile import basic, flow_parts, jbody, mp_type, multipart, \
    send_whole, users_conf

P = '/priv/'
AREA = 'isolation'
ALICE = ('alice', 'alice-pw')
BOB = ('bob', 'bob-pw')
IETF = {'Upload-Draft-Interop-Version': '8'}
PARTIAL = 'application/partial-upload'
ALLOW = dict(patterns=[r'\[resumable:warn\]'])


def md5(b):
    return hashlib.md5(b).hexdigest()


def req(env, user, method, path, headers=None, body=b''):
    h = {'Authorization': basic(user)}
    h.update(headers or {})
    return send_whole(env.client, method, path, h, body)


def area(env):
    return env.area_dir(AREA)


def visible(env, prefix, n, timeout=20):
    """The finished files named prefix*, once there are n: a merged chunk
    upload is published after its response went out (test_235)."""
    end = time.monotonic() + timeout
    while True:
        names = [f for f in env.visible_files(area(env)) if f.startswith(prefix)]
        if len(names) >= n or time.monotonic() > end:
            return names
        time.sleep(0.05)


class TestIsolation:
    CONF = staticmethod(lambda env: users_conf(env, P, AREA, [ALICE, BOB]))
    ALLOW_ERRORS = ALLOW

    def test_rs_950_01_auth_required(self, env):
        for h, body in [(IETF | {'Upload-Complete': '?1'}, b'x'),
                        ({'X-File-Id': 'a', 'X-Start-Byte': '0'}, b'x'),
                        ({'Content-Type': 'application/json'},
                         jbody({'name': 'a', 'size': 1}))]:
            r = send_whole(env.client, 'POST', P, h, body)
            assert r.status == 401, r
        assert env.visible_files(area(env)) == []

    def test_rs_950_02_ietf(self, env):
        data = make_data(3000, seed=9502)
        r = req(env, ALICE, 'POST', P, IETF | {
            'Upload-Complete': '?0', 'Upload-Length': str(len(data))},
            data[:1000])
        assert r.status == 201, r
        url = split_url(r.headers['Location'])[0]
        bob = [req(env, BOB, 'HEAD', url, IETF),
               req(env, BOB, 'PATCH', url, IETF | {
                   'Upload-Complete': '?1', 'Upload-Offset': '1000',
                   'Content-Type': PARTIAL}, data[1000:]),
               req(env, BOB, 'GET', url, IETF),
               req(env, BOB, 'DELETE', url, IETF)]
        for r in bob:
            assert r.status == 404 and 'Upload-Offset' not in r.headers, r
        r = req(env, ALICE, 'HEAD', url, IETF)
        assert r.headers.get('Upload-Offset') == '1000', r
        r = req(env, ALICE, 'PATCH', url, IETF | {
            'Upload-Complete': '?1', 'Upload-Offset': '1000',
            'Content-Type': PARTIAL}, data[1000:])
        assert r.status in (200, 204), r
        assert req(env, BOB, 'GET', url).status == 404
        assert req(env, BOB, 'DELETE', url, IETF).status == 404
        r = req(env, ALICE, 'GET', url)
        assert r.status == 200 and r.body == data, r

    def test_rs_950_03_offset(self, env):
        fid = 'shared-name.bin-3000-1700000000000'
        a = make_data(3000, seed=95031)
        b = make_data(3000, seed=95032)
        hdr = {'X-File-Id': fid, 'X-File-Size': '3000'}
        r = req(env, ALICE, 'POST', P, hdr | {'X-Start-Byte': '0'}, a[:1000])
        assert r.status == 200, r
        # bob knows the id: he sees nothing of alice's and can not resume it
        r = req(env, BOB, 'GET', P, {'X-File-Id': fid})
        assert r.status == 200 and r.body == b'0', r
        r = req(env, BOB, 'POST', P, hdr | {'X-Start-Byte': '1000'}, b[1000:])
        assert r.status == 400 and r.body == b'0', r
        # his own upload under the same id is a different upload
        r = req(env, BOB, 'POST', P, hdr | {'X-Start-Byte': '0'}, b)
        assert r.status == 200 and r.body == b'Success 3000', r
        r = req(env, ALICE, 'GET', P, {'X-File-Id': fid})
        assert r.body == b'1000', r
        r = req(env, ALICE, 'POST', P, hdr | {'X-Start-Byte': '1000'}, a[1000:])
        assert r.status == 200 and r.body == b'Success 3000', r
        sums = sorted(env.sha256_file(area(env) / n)
                      for n in env.visible_files(area(env))
                      if n.startswith('shared-name'))
        assert sums == sorted([sha256(a), sha256(b)]), sums

    def test_rs_950_04_slice(self, env):
        a = make_data(3 * 1000, seed=95041)
        b = make_data(3 * 1000, seed=95042)

        def chunk(user, i, data):
            body = multipart([('chunk', ('blob', data[i * 1000:(i + 1) * 1000],
                                         'application/octet-stream')),
                              ('index', str(i)), ('name', 'same.bin')])
            return req(env, user, 'POST', P, {'Content-Type': mp_type()}, body)

        def merge(user):
            return req(env, user, 'POST', P, {'Content-Type': 'text/plain'},
                       jbody({'name': 'same.bin', 'size': 1000}))

        assert chunk(ALICE, 0, a).status == 200
        assert chunk(ALICE, 1, a).status == 200
        # bob can not merge alice's chunks, and his chunk is not hers
        r = merge(BOB)
        assert 400 <= r.status < 500, r
        assert chunk(BOB, 2, b).status == 200
        r = merge(BOB)
        assert 400 <= r.status < 500, r          # he has only chunk 2
        assert not [n for n in env.visible_files(area(env))
                    if n.startswith('same')]
        assert chunk(ALICE, 2, a).status == 200
        r = merge(ALICE)
        assert r.status == 200, r
        assert visible(env, 'same', 1) == ['same.bin']
        assert env.sha256_file(area(env) / 'same.bin') == sha256(a)
        # bob completes his own: a new file, alice's is untouched
        assert chunk(BOB, 0, b).status == 200
        assert chunk(BOB, 1, b).status == 200
        assert merge(BOB).status == 200
        names = visible(env, 'same', 2)
        assert len(names) == 2, names
        assert env.sha256_file(area(env) / 'same.bin') == sha256(a)
        assert sha256(b) in {env.sha256_file(area(env) / n) for n in names}

    def test_rs_950_05_md5(self, env):
        data = make_data(3 * 1000, seed=9505)
        pieces = [data[i:i + 1000] for i in range(0, len(data), 1000)]
        fid = md5(data)
        ids = [md5(c) + str(i) for i, c in enumerate(pieces)]

        def hs(user):
            r = req(env, user, 'POST', P, {'Content-Type': 'application/json'},
                    jbody({'fileId': fid, 'ext': '.dat', 'chunkIds': ids}))
            assert r.status == 200, r
            return json.loads(r.body)['data']

        def send(user, i):
            body = multipart([('file', ('blob', pieces[i],
                                        'application/octet-stream')),
                              ('chunkId', ids[i]), ('fileId', fid)])
            r = req(env, user, 'POST', P, {'Content-Type': mp_type()}, body)
            return r.status, json.loads(r.body)['data']

        assert hs(ALICE) == ids
        assert send(ALICE, 0) == (200, ids[1:])
        # bob's handshake does not show alice's progress; his chunk is his
        assert hs(BOB) == ids
        assert send(BOB, 1) == (200, [ids[0], ids[2]])
        assert hs(ALICE) == ids[1:]
        assert send(ALICE, 1)[0] == 200
        assert send(ALICE, 2)[0] == 200
        assert env.sha256_file(area(env) / f'{fid}.dat') == sha256(data)
        # alice's finished content is no instant upload for bob (the content
        # index is per user): he is asked for the chunks he has not sent
        assert isinstance(hs(ALICE), str)
        assert hs(BOB) == [ids[0], ids[2]]

    def test_rs_950_06_flow(self, env):
        cs = 1000
        a = make_data(3 * cs, seed=95061)
        b = make_data(3 * cs, seed=95062)
        ident = '3000-flowsame.bin'

        def p(n, data):
            return {'flowChunkNumber': n, 'flowChunkSize': cs,
                    'flowCurrentChunkSize': cs, 'flowTotalSize': len(data),
                    'flowIdentifier': ident, 'flowFilename': 'flowsame.bin',
                    'flowRelativePath': 'flowsame.bin', 'flowTotalChunks': 3}

        def probe(user, n, data):
            return req(env, user, 'GET', P + '?' + urlencode(p(n, data))).status

        def post(user, n, data):
            parts = list(p(n, data).items())
            parts.append(('file', ('flowsame.bin', data[(n - 1) * cs:n * cs],
                                   'application/octet-stream')))
            return req(env, user, 'POST', P, {'Content-Type': mp_type()},
                       multipart(parts)).status

        assert post(ALICE, 1, a) == 200
        assert probe(ALICE, 1, a) == 200
        assert probe(BOB, 1, b) == 204          # alice's chunk is not his
        assert post(BOB, 2, b) == 200
        assert probe(ALICE, 2, a) == 204        # nor his hers
        assert post(ALICE, 2, a) == 200
        assert post(ALICE, 3, a) == 200
        assert visible(env, 'flowsame', 1) == ['flowsame.bin']
        assert env.sha256_file(area(env) / 'flowsame.bin') == sha256(a)
        assert post(BOB, 1, b) == 200
        assert post(BOB, 3, b) == 200
        names = visible(env, 'flowsame', 2)
        assert len(names) == 2, names
        assert env.sha256_file(area(env) / 'flowsame.bin') == sha256(a)
        assert sha256(b) in {env.sha256_file(area(env) / n) for n in names}
