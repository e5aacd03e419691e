"""95x: the cross-user matrix. In every kind of area (<Location> whose
ResumableDir lies in the DocumentRoot, <Directory>, .htaccess), behind
Basic authentication: alice finishes one upload with every protocol, with
names and types a browser would run (.html, .svg); bob and anonymous try
each of them by its upload URL, by its published name (also through the
DocumentRoot URL of the <Location> area's directory), with GET, HEAD,
GET with Range, DELETE and PATCH. All are refused without telling an
existing file from a missing one, nothing is removed, and alice still
gets her bytes at the upload URL, never as active content. The staging
folder is no one's to read, however the path is spelled."""
import hashlib
import json
import time
from urllib.parse import urlencode

import pytest

from pyrs.client import make_data, sha256, split_url
from pyrs.env import RsArea
from pyrs.hostile import basic, jbody, mp_type, multipart, send_whole

ALICE = ('alice', 'alice-pw')
BOB = ('bob', 'bob-pw')
IETF = {'Upload-Draft-Interop-Version': '8'}
TUS = {'Tus-Resumable': '1.0.0'}
CS = 1000
AREAS = ['/loc/', '/dir/', '/ht/']
PROTOS = ['tus', 'ietf', 'offset', 'slice', 'md5', 'flow']
# what each protocol's file is called and typed: all active content
KINDS = {'tus': ('x-tus.html', 'text/html'),
         'ietf': ('x-ietf.svg', 'image/svg+xml'),
         'offset': ('x-off.html', None), 'slice': ('x-slice.html', None),
         'md5': (None, None), 'flow': ('x-flow.svg', None)}


def auth_lines(env):
    import subprocess
    f = env.gen / 'conf' / 'htpasswd-951'
    f.parent.mkdir(parents=True, exist_ok=True)
    for i, (u, pw) in enumerate([ALICE, BOB]):
        subprocess.run(['htpasswd', '-bB' + ('c' if i == 0 else ''), str(f),
                        u, pw], check=True, capture_output=True, timeout=30)
    return ['AuthType Basic', 'AuthName "uploads"', f'AuthUserFile "{f}"',
            'Require valid-user']


def conf(env):
    sec = auth_lines(env)
    store = env.mkdir_www(env.docroot / 'locstore')
    # the state database inside the DocumentRoot too (a careless layout)
    env.mkdir_www(env.docroot / 'statedir')
    return dict(statedb=str(env.docroot / 'statedir' / 'state'), areas=[
        RsArea('/loc/', dir=str(store), section=sec),
        RsArea('/dir/', kind='directory', section=sec),
        RsArea('/ht/', kind='htaccess', section=sec)])


def area_dir(env, area):
    return env.docroot / ('locstore' if area == '/loc/' else area.strip('/'))


def req(env, user, method, path, headers=None, body=b''):
    h = {'Authorization': basic(user)} if user else {}
    h.update(headers or {})
    return send_whole(env.client, method, path, h, body)


def data_of(area, proto):
    seed = 9510 + AREAS.index(area) * 10 + PROTOS.index(proto)
    return make_data(3 * CS, seed=seed)


# ---- alice's uploads, one per protocol: -> upload URL path or None ----------

def up_tus(env, area, data):
    name, typ = KINDS['tus']
    meta = f'filename {__import__("base64").b64encode(name.encode()).decode()}'
    meta += f',filetype {__import__("base64").b64encode(typ.encode()).decode()}'
    r = req(env, ALICE, 'POST', area, TUS | {
        'Upload-Length': str(len(data)), 'Upload-Metadata': meta,
        'Content-Type': 'application/offset+octet-stream'}, data)
    assert r.status == 201 and r.headers.get('Upload-Offset') == str(len(data)), r
    return split_url(r.headers['Location'])[0]


def up_ietf(env, area, data):
    name, typ = KINDS['ietf']
    r = req(env, ALICE, 'POST', area, IETF | {
        'Upload-Complete': '?1', 'Content-Type': typ,
        'Content-Disposition': f'attachment; filename="{name}"'}, data)
    assert r.status in (200, 201), r
    return split_url(r.headers['Location'])[0]


def up_offset(env, area, data):
    r = req(env, ALICE, 'POST', area, {
        'X-File-Id': KINDS['offset'][0] + '-3000-1', 'X-Start-Byte': '0',
        'X-File-Size': str(len(data))}, data)
    assert r.status == 200, r


def up_slice(env, area, data):
    for i in range(3):
        body = multipart([('chunk', ('blob', data[i * CS:(i + 1) * CS],
                                     'application/octet-stream')),
                          ('index', str(i)), ('name', KINDS['slice'][0])])
        r = req(env, ALICE, 'POST', area, {'Content-Type': mp_type()}, body)
        assert r.status == 200, r
    r = req(env, ALICE, 'POST', area, {'Content-Type': 'text/plain'},
            jbody({'name': KINDS['slice'][0], 'size': CS}))
    assert r.status == 200, r


def up_md5(env, area, data):
    fid = hashlib.md5(data).hexdigest()
    pieces = [data[i:i + CS] for i in range(0, len(data), CS)]
    ids = [hashlib.md5(c).hexdigest() + str(i) for i, c in enumerate(pieces)]
    r = req(env, ALICE, 'POST', area, {'Content-Type': 'application/json'},
            jbody({'fileId': fid, 'ext': '.html', 'chunkIds': ids}))
    assert r.status == 200, r
    for i, c in enumerate(pieces):
        body = multipart([('file', ('blob', c, 'application/octet-stream')),
                          ('chunkId', ids[i]), ('fileId', fid)])
        r = req(env, ALICE, 'POST', area, {'Content-Type': mp_type()}, body)
        assert r.status == 200 and json.loads(r.body)['code'] == 0, r


def up_flow(env, area, data):
    name = KINDS['flow'][0]
    for n in (1, 2, 3):
        p = {'flowChunkNumber': n, 'flowChunkSize': CS,
             'flowCurrentChunkSize': CS, 'flowTotalSize': len(data),
             'flowIdentifier': f'{len(data)}-{name}', 'flowFilename': name,
             'flowRelativePath': name, 'flowTotalChunks': 3}
        parts = list(p.items())
        parts.append(('file', (name, data[(n - 1) * CS:n * CS],
                               'application/octet-stream')))
        r = req(env, ALICE, 'POST', area, {'Content-Type': mp_type()},
                multipart(parts))
        assert r.status == 200, r


UPLOADERS = {'tus': up_tus, 'ietf': up_ietf, 'offset': up_offset,
             'slice': up_slice, 'md5': up_md5, 'flow': up_flow}


def published(env, area, data, timeout=20):
    """Name of the finished file holding data (composed uploads are
    published after their answer went out)."""
    want = sha256(data)
    end = time.monotonic() + timeout
    while True:
        for n in env.visible_files(area_dir(env, area)):
            if env.sha256_file(area_dir(env, area) / n) == want:
                return n
        assert time.monotonic() < end, f'no published file in {area}'
        time.sleep(0.05)


_made = {}


def upload(env, area, proto):
    """alice's upload of proto in area, made once: (url path, name, data)."""
    key = (env.running_conf, area, proto)
    if key not in _made:
        data = data_of(area, proto)
        url = UPLOADERS[proto](env, area, data)
        _made[key] = (url, published(env, area, data), data)
    return _made[key]


# ---- the attempts -------------------------------------------------------------

def attempts(path):
    """(method, headers, body) of every way to read, probe, change or
    remove what path names."""
    return [('GET', {}, b''), ('HEAD', {}, b''),
            ('GET', {'Range': 'bytes=0-9'}, b''),
            ('GET', TUS, b''), ('HEAD', TUS, b''), ('HEAD', IETF, b''),
            ('DELETE', {}, b''), ('DELETE', TUS, b''), ('DELETE', IETF, b''),
            ('PATCH', TUS | {'Upload-Offset': '0', 'Content-Type':
                             'application/offset+octet-stream'}, b'EVIL'),
            ('PATCH', IETF | {'Upload-Offset': '0', 'Upload-Complete': '?1',
                              'Content-Type': 'application/partial-upload'},
             b'EVIL')]


def leaks(r, data):
    return (data[:64] in r.body or 'Upload-Offset' in r.headers
            or 'Content-Range' in r.headers or 'ETag' in r.headers
            or 'Last-Modified' in r.headers)


def missing_twin(path):
    """A path like `path` that names nothing."""
    head, tail = path.rsplit('/', 1)
    if '.' in tail:
        return f'{head}/nothing-{tail}'
    return f'{head}/{"Q" * len(tail)}' if len(tail) == 22 else f'{head}/zz{tail}'


class TestCrossUser:
    CONF = staticmethod(conf)
    ALLOW_ERRORS = dict(patterns=[r'\[resumable:warn\]'], tags=['AH01797', 'AH01630'])

    @pytest.mark.parametrize('area', AREAS)
    @pytest.mark.parametrize('proto', PROTOS)
    def test_rs_951_01_others_refused(self, env, area, proto):
        url, name, data = upload(env, area, proto)
        paths = [area + name] + ([url] if url else [])
        if area == '/loc/':
            paths.append('/locstore/' + name)  # the DocumentRoot's URL of it
        for path in paths:
            for who in (BOB, None):
                for method, h, body in attempts(path):
                    r = req(env, who, method, path, h, body)
                    twin = req(env, who, method, missing_twin(path), h, body)
                    what = f'{who and who[0]} {method} {path} {h}'
                    assert not leaks(r, data), f'{what}: {r}'
                    # no telling an existing file from a missing one
                    assert r.status == twin.status, f'{what}: {r} / {twin}'
                    if who is None and not path.startswith('/locstore/'):
                        assert r.status == 401, f'{what}: {r}'
                    elif path.startswith('/loc/') and method not in (
                            'GET', 'HEAD'):
                        # a <Location> area's URL names no file there:
                        # a request no front end takes gets httpd's answer
                        # for a missing file, 405 for DELETE
                        assert r.status in (404, 405), f'{what}: {r}'
                    else:
                        assert r.status == 404, f'{what}: {r}'
        # nothing changed; alice has her bytes at the upload URL only
        d = area_dir(env, area)
        assert env.sha256_file(d / name) == sha256(data)
        for method in ('GET', 'HEAD'):
            r = req(env, ALICE, method, area + name)
            assert r.status == 404 and not leaks(r, data), r
        if url:
            r = req(env, ALICE, 'GET', url)
            assert r.status == 200 and r.body == data, r
            r = req(env, ALICE, 'GET', url, {'Range': 'bytes=10-19'})
            assert r.status == 206 and r.body == data[10:20], r

    @pytest.mark.parametrize('area', AREAS)
    @pytest.mark.parametrize('proto', ['tus', 'ietf'])
    def test_rs_951_02_owner_gets_attachment(self, env, area, proto):
        url, name, data = upload(env, area, proto)
        for h in ({}, {'Range': 'bytes=0-99'}):
            r = req(env, ALICE, 'GET', url, h)
            assert r.status in (200, 206), r
            cd = r.headers.get('Content-Disposition', '')
            assert cd.startswith('attachment;') and name in cd, r
            assert r.headers.get('X-Content-Type-Options') == 'nosniff', r
            csp = r.headers.get('Content-Security-Policy', '')
            assert 'sandbox' in csp and "default-src 'none'" in csp, r

    @pytest.mark.parametrize('area', AREAS)
    def test_rs_951_03_staging_never_served(self, env, area):
        data = make_data(2000, seed=9513)
        r = req(env, ALICE, 'POST', area, TUS | {
            'Upload-Length': str(2 * len(data)),
            'Content-Type': 'application/offset+octet-stream'}, data)
        assert r.status == 201, r
        uid = r.headers['Location'].rsplit('/', 1)[1]
        d = area_dir(env, area)
        assert (d / '.resumable' / f'{uid}.data').exists()
        # an in-flight deferred creation's body (test_268) is staged too
        orphan = d / '.resumable' / f'{"N" * len(uid)}.new'
        orphan.write_bytes(data)
        tops = [area] + (['/locstore/'] if area == '/loc/' else [])
        for top in tops:
            base = top.rstrip('/')
            spellings = [
                f'{base}/.resumable/{uid}.data', f'{base}/.resumable/',
                f'{base}/.resumable', f'{base}/%2eresumable/{uid}.data',
                f'{base}/%2Eresumable/{uid}%2edata',
                f'{base}/x/../.resumable/{uid}.data',
                f'{base}/x/%2e%2e/.resumable/{uid}.data',
                f'{base}/./.resumable/./{uid}.data',
                f'{base}//.resumable//{uid}.data',
                f'{base}/.resumable/{uid}.data/',
                f'{base}/.resumable/{uid}.data/x',
                f'{base}/.resumable%2f{uid}.data',
                f'{base}/.RESUMABLE/{uid}.data', f'{base}/.resumable./{uid}.data',
                f'{base}/.resumable/{uid}.DATA', f'{base}/.resumable/{uid}.data.',
                f'{base}/.resumable/{uid}.data%00', f'{base}/.resumable/{uid}.lock',
                f'{base}/.resumable/{uid}.data?x=1',
                f'{base}/.resumable/{orphan.name}',
                f'{base}/.htaccess', f'{base}/',
            ]
            for path in spellings:
                for who in (ALICE, BOB, None):
                    for method in ('GET', 'HEAD'):
                        r = req(env, who, method, path)
                        what = f'{who and who[0]} {method} {path}'
                        assert r.status in (400, 401, 403, 404), f'{what}: {r}'
                        assert data[:64] not in r.body, what
                        assert uid.encode() not in r.body, what
        orphan.unlink()     # (the sweep leaves alone what it cannot open)
        # no upload is made in the staging folder (it would have been its
        # own area: published files inside .resumable/, served by name)
        # (in the <Location> area, /loc/.resumable/ is only a URL of the area:
        # its uploads go to ResumableDir as any other)
        posts = [] if area == '/loc/' else ['.resumable/', '.resumable/x/']
        for path in [area + p for p in posts]:
            r = req(env, ALICE, 'POST', path, TUS | {
                'Upload-Length': '10', 'Upload-Metadata': 'filename eC5odG1s',
                'Content-Type': 'application/offset+octet-stream'}, b'0123456789')
            assert r.status in (404, 405) and 'Location' not in r.headers, r
        assert not (d / '.resumable' / '.resumable').exists()
        assert not (d / '.resumable' / 'x.html').exists()
        # the upload itself is untouched and resumes
        r = req(env, ALICE, 'HEAD', area + uid, TUS)
        assert r.headers.get('Upload-Offset') == str(len(data)), r

    def test_rs_951_04_state_database_never_served(self, env):
        upload(env, '/dir/', 'tus')             # the database has records
        names = sorted(p.name for p in (env.docroot / 'statedir').iterdir())
        assert 'state.pag' in names and 'state.dir' in names, names
        for n in names + ['state', 'state.lock']:
            for path in (f'/statedir/{n}', f'/statedir/./{n}',
                         f'/x/../statedir/{n}', f'/statedir/%73tate.pag'):
                for who in (ALICE, None):
                    r = req(env, who, 'GET', path)
                    assert r.status == 404, f'{path}: {r}'
        r = req(env, None, 'GET', '/statedir/')  # the directory around it
        assert r.status in (403, 404) or b'state.pag' not in r.body, r

    @pytest.mark.parametrize('area', AREAS)
    def test_rs_951_05_chunk_protocol_queries(self, env, area):
        """The chunk protocols' own ways to ask about an upload (offset's
        status, flow's test GET, md5's handshake, slice's merge) show bob
        nothing of alice's finished uploads, and anonymous gets 401."""
        for proto in ('offset', 'slice', 'md5', 'flow'):
            upload(env, area, proto)
        before = env.visible_files(area_dir(env, area))
        fid = KINDS['offset'][0] + '-3000-1'
        data = data_of(area, 'md5')
        md5 = hashlib.md5(data).hexdigest()
        ids = [hashlib.md5(data[i:i + CS]).hexdigest() + str(i // CS)
               for i in range(0, len(data), CS)]
        flow = {'flowChunkNumber': 1, 'flowChunkSize': CS,
                'flowCurrentChunkSize': CS, 'flowTotalSize': 3 * CS,
                'flowIdentifier': f'{3 * CS}-{KINDS["flow"][0]}',
                'flowFilename': KINDS['flow'][0],
                'flowRelativePath': KINDS['flow'][0], 'flowTotalChunks': 3}
        for who in (BOB, None):
            rs = [req(env, who, 'GET', area, {'X-File-Id': fid}),
                  req(env, who, 'GET', area + '?' + urlencode(flow)),
                  req(env, who, 'POST', area,
                      {'Content-Type': 'application/json'},
                      jbody({'fileId': md5, 'ext': '.html', 'chunkIds': ids})),
                  req(env, who, 'POST', area, {'Content-Type': 'text/plain'},
                      jbody({'name': KINDS['slice'][0], 'size': CS}))]
            if who is None:
                assert [r.status for r in rs] == [401] * 4, rs
                continue
            assert rs[0].status == 200 and rs[0].body == b'0', rs[0]
            assert rs[1].status == 204, rs[1]          # no chunk of his
            j = json.loads(rs[2].body)
            assert rs[2].status == 200 and j['data'] == ids, rs[2]
            assert 400 <= rs[3].status < 500, rs[3]
        assert env.visible_files(area_dir(env, area)) == before
