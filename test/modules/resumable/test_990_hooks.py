"""990: application hooks (ResumableHook): blocking pre-create/pre-finish
for every protocol and every target kind (absolute URL to a loopback
server, a local path behind ProxyPass, a CGI script), refusals in each
protocol's form, fail-closed/fail-open, isolation, no header injection."""
import json
import os
import shutil
import subprocess
import time

import pytest

from pyrs.client import encode_metadata, make_data
from pyrs.ctl import resumablectl
from pyrs.env import BASE_MODULES, RsArea, wait_for
from pyrs.hookrx import CGI_SCRIPT, Receiver, free_port
from pyrs.seeds import post_form, seeds_conf
from test_900_tusjs import node_bin  # noqa: F401 (fixture)
from test_860_seed_pages import pages, run_page  # noqa: F401 (fixture)

RX = Receiver()
LATER = Receiver()          # started by a test: down until then
DEAD = free_port()          # nothing listens there
BLOCKING = ('pre-create', 'pre-finish')
NOTIFY = ('post-create', 'post-finish', 'post-terminate')

ALICE = ('alice', 'alice-pw')
BOB = ('bob', 'bob-pw')
ALLOW = dict(tags=['RS09701', 'RS09703', 'RS09704', 'RS04020'])


def hooks(target, events=BLOCKING + NOTIFY, opts=''):
    return [f'ResumableHook {e} {target} {opts}'.strip() for e in events]


def cgi_setup(env):
    d = env.gen / 'cgi'
    d.mkdir(exist_ok=True)
    shutil.copy(os.path.join(os.path.dirname(__file__), '..', '..', 'pyrs',
                             'hookrx.py'), d / 'hookrx.py')
    log = env.gen / 'cgi' / 'events.log'
    log.touch()
    env.chown_www(log)
    script = d / 'hook.py'
    script.write_text(CGI_SCRIPT % dict(pyrs=str(d), log=str(log)))
    script.chmod(0o755)
    return d


def conf(env):
    if RX.srv is None:
        RX.start()
    f = env.gen / 'conf' / 'htpasswd'
    subprocess.run(['htpasswd', '-bcB', str(f), 'alice', 'alice-pw'],
                   check=True, capture_output=True)
    subprocess.run(['htpasswd', '-bB', str(f), 'bob', 'bob-pw'], check=True,
                   capture_output=True)
    cgi = cgi_setup(env)
    auth = ['AuthType Basic', 'AuthName "uploads"', f'AuthUserFile "{f}"',
            'Require valid-user']
    base = seeds_conf(env, 'hooks-seeds', server_extra='\n'.join(
        hooks(RX.url + '/seeds')))
    base['areas'] = [
        RsArea('/abs/', dir='hooks-abs', directives=hooks(RX.url + '/hook')),
        RsArea('/app/', dir='hooks-app', directives=hooks('/_hooks/app')),
        RsArea('/cgi/', dir='hooks-cgi', directives=hooks('/_hooks/cgi')),
        RsArea('/private/', dir='hooks-private', section=auth,
               directives=hooks(RX.url + '/private')),
        RsArea('/closed/', dir='hooks-closed',
               directives=hooks(f'http://127.0.0.1:{DEAD}/x', BLOCKING,
                                'timeout=2')),
        RsArea('/open/', dir='hooks-open',
               directives=hooks(f'http://127.0.0.1:{DEAD}/x', BLOCKING,
                                'timeout=2 failopen=on')),
        RsArea('/slow/', dir='hooks-slow',
               directives=hooks(RX.url + '/slow', BLOCKING, 'timeout=1')),
        RsArea('/slowopen/', dir='hooks-slowopen',
               directives=hooks(RX.url + '/slow', BLOCKING,
                                'timeout=1 failopen=on')),
        RsArea('/finlater/', dir='hooks-finlater',
               directives=hooks(LATER.url + '/later', ('pre-finish',),
                                'timeout=2')),
        RsArea('/plain/', dir='hooks-plain',
               directives=hooks('none', BLOCKING + NOTIFY)),
    ]
    base['modules'] = BASE_MODULES + ['alias', 'proxy', 'proxy_http', 'cgid']
    base['extra'] += f'''
ProxyPass "/_hooks/app" "{RX.url}/app"
ScriptAlias "/_hooks/cgi" "{cgi}/hook.py"
<Location "/_hooks/">
    Require local
</Location>
<Directory "{cgi}">
    Require all granted
</Directory>
'''
    return base


def tus_upload(env, area, data, name, auth=None):
    tus = env.tus(area, auth=auth)
    r = tus.create_resp(length=len(data), metadata={'filename': name})
    if r.status != 201:
        return tus, None, r
    url = r.headers['Location']
    return tus, url, tus.patch(url, 0, data)


def published(area_dir, name, timeout=10):
    p = area_dir / name
    end = time.monotonic() + timeout
    while not p.exists() and time.monotonic() < end:
        time.sleep(0.05)
    return p.exists()


class TestHooks:
    CONF = staticmethod(conf)
    ALLOW_ERRORS = ALLOW

    @pytest.mark.parametrize('area', ['/abs/', '/app/', '/cgi/'])
    def test_rs_990_01_tus_accept(self, env, area):
        RX.clear()
        data = make_data(3000, seed=9901)
        tus, url, r = tus_upload(env, area, data, 'ok.bin')
        assert r.status == 204, r
        assert tus.get(url).body == data
        if area != '/cgi/':
            pre = RX.of('pre-create')
            assert len(pre) == 1
            p = pre[0][2]
            assert p['upload']['protocol'] == 'tus'
            assert p['upload']['size'] == 3000
            assert p['upload']['metadata'] == {'filename': 'ok.bin'}
            assert p['request']['method'] == 'POST'
            fin = RX.of('pre-finish')[0][2]
            assert fin['upload']['offset'] == 3000
            assert fin['upload']['data_path'].endswith('.data')
            assert fin['upload']['path'] is None      # not published yet

    @pytest.mark.parametrize('area', ['/abs/', '/app/', '/cgi/'])
    def test_rs_990_02_tus_reject_by_metadata(self, env, area):
        tus = env.tus(area)
        r = tus.create_resp(length=10, metadata={'filename': 'reject.txt'})
        assert r.status == 403, r
        assert r.body == b'name refused\n', r
        assert 'X-Injected' not in r.headers and 'Set-Cookie' not in r.headers
        assert 'Location' not in r.headers
        d = env.area_dir('hooks-' + area.strip('/'))
        assert 'reject.txt' not in env.visible_files(d)
        assert not list(env.staging_dir(d).glob('*.data'))

    def test_rs_990_03_reject_by_user(self, env):
        RX.clear()
        tus, url, r = tus_upload(env, '/private/', b'x' * 10, 'a.txt', auth=BOB)
        assert r.status == 403 and r.body == b'bob may not upload\n', r
        tus, url, r = tus_upload(env, '/private/', b'x' * 10, 'a.txt',
                                 auth=ALICE)
        assert r.status == 204, r
        users = {e[2]['request']['user'] for e in RX.events
                 if e[0] in BLOCKING}
        assert users == {'alice', 'bob'}
        # every payload (blocking and notifications) is about the request's
        # own user and upload: alice's never names bob, and no credentials
        alice_id = url.rsplit('/', 1)[1]
        assert RX.wait_for(lambda evs: any(
            e[0] == 'post-finish' and e[2]['upload']['id'] == alice_id
            for e in evs), timeout=15)
        for ev, _id, p in RX.events:
            text = json.dumps(p)
            assert 'Authorization' not in p['request']['headers']
            assert 'alice-pw' not in text and 'bob-pw' not in text
            if p['request']['user'] == 'alice':
                assert p['upload']['owner'] == 'alice' and 'bob' not in text
            else:
                assert 'alice' not in text and alice_id not in text

    @pytest.mark.parametrize('area', ['/abs/', '/app/', '/cgi/'])
    def test_rs_990_04_pre_create_changes_metadata(self, env, area):
        data = b'hello world'
        tus, url, r = tus_upload(env, area, data, 'rename-me.txt')
        assert r.status == 204, r
        assert 'X-Injected' not in r.headers
        h = tus.head(url)
        meta = h.headers['Upload-Metadata']
        assert encode_metadata({'approved': 'yes'}) in meta, meta
        d = {'/abs/': 'hooks-abs', '/app/': 'hooks-app',
             '/cgi/': 'hooks-cgi'}[area]
        assert published(env.area_dir(d), 'renamed.txt')

    @pytest.mark.parametrize('area', ['/abs/', '/app/', '/cgi/'])
    def test_rs_990_05_pre_finish_rejects_by_content(self, env, area):
        data = b'clean start ' + b'VIRUS' + b' end' * 100
        tus, url, r = tus_upload(env, area, data, 'infected.bin')
        assert r.status == 422, r
        assert r.body == b'infected\n'
        d = {'/abs/': 'hooks-abs', '/app/': 'hooks-app',
             '/cgi/': 'hooks-cgi'}[area]
        assert not (env.area_dir(d) / 'infected.bin').exists()
        # every later look says it failed: never a success
        h = tus.head(url)
        assert h.status == 403 and 'Upload-Offset' not in h.headers, h
        assert tus.get(url).status == 403
        assert tus.patch(url, len(data), b'').status == 403
        assert not (env.area_dir(d) / 'infected.bin').exists()
        # its data is gone on purpose: not a problem for resumablectl
        rc, out = resumablectl(env, env.statedb, 'verify')
        assert url.rstrip('/').rsplit('/', 1)[-1] not in out, out

    def test_rs_990_12_concat(self, env):
        """tus concatenation: the final is asked at pre-create (its
        metadata) and at pre-finish (the partials' files, data_parts)."""
        tus = env.tus('/abs/')
        parts = []
        for piece in (b'clean ', b'VIRUS'):
            url = tus.create(length=len(piece), concat='partial')
            assert tus.patch(url, 0, piece).status == 204
            parts.append(url.split('//', 1)[-1].split('/', 1)[1])
        concat = 'final;' + ' '.join('/' + p for p in parts)
        r = tus.create_resp(concat=concat, metadata={'filename': 'reject.f'})
        assert r.status == 403 and r.body == b'name refused\n', r
        r = tus.create_resp(concat=concat, metadata={'filename': 'f.bin'})
        assert r.status == 422 and r.body == b'infected\n', r
        assert not (env.area_dir('hooks-abs') / 'f.bin').exists()
        # the refused final holds its partials no more: they can go
        assert tus.delete('/' + parts[1]).status == 204
        r = tus.create_resp(concat='final;/' + parts[0],
                            metadata={'filename': 'g.bin'})
        assert r.status == 201, r
        assert published(env.area_dir('hooks-abs'), 'g.bin')

    def test_rs_990_06_size_limit(self, env):
        tus = env.tus('/abs/')
        r = tus.create_resp(length=11, metadata={'filename': 'limit.bin'})
        assert r.status == 413, r
        r = tus.create_resp(length=10, metadata={'filename': 'limit.bin'})
        assert r.status == 201, r
        r = tus.create_resp(defer=True, metadata={'filename': 'limit.bin'})
        assert r.status == 413, r

    def test_rs_990_07_fail_closed(self, env):
        env.allow_errors(tags=['RS09701'])
        tus = env.tus('/closed/')
        r = tus.create_resp(length=10, metadata={'filename': 'a.txt'})
        assert r.status == 503, r
        tus = env.tus('/slow/')
        t0 = time.monotonic()
        r = tus.create_resp(length=10, metadata={'filename': 'slow.txt'})
        assert r.status == 503, r
        assert time.monotonic() - t0 < 2.5
        log = '\n'.join(env.log_lines())
        assert 'RS09701' in log and 'timed out' in log

    def test_rs_990_08_fail_open(self, env):
        env.allow_errors(tags=['RS09701'])
        for area in ('/open/', '/slowopen/'):
            tus, url, r = tus_upload(env, area, b'0123456789', 'slow.txt')
            assert r.status == 204, (area, r)
            assert tus.get(url).body == b'0123456789'

    def test_rs_990_11_pre_finish_unreachable(self, env):
        """pre-finish cannot be asked: 503, and the upload never looks
        finished (a HEAD asks again), until the application is back."""
        env.allow_errors(tags=['RS09701', 'RS04020'])
        RX.clear()
        data = b'all bytes are in'
        tus, url, r = tus_upload(env, '/finlater/', data, 'later.txt')
        assert r.status == 503, r
        # the area sets pre-finish only: pre-create is the server's
        assert [(e[0], path) for e, path in zip(RX.events, RX.paths)
                if e[0] == 'pre-create'] == [('pre-create', '/seeds')]
        for _ in range(2):
            h = tus.head(url)
            assert h.status == 503, h        # never offset == length
        assert not (env.area_dir('hooks-finlater') / 'later.txt').exists()
        LATER.start()
        try:
            h = tus.head(url)
            assert h.status == 200 and h.headers['Upload-Offset'] == \
                str(len(data)), h
            assert tus.get(url).body == data
            assert published(env.area_dir('hooks-finlater'), 'later.txt')
            assert len(LATER.of('pre-finish')) == 1
        finally:
            LATER.stop()

    def test_rs_990_09_no_hook(self, env):
        RX.clear()
        tus, url, r = tus_upload(env, '/plain/', b'abc', 'reject.txt')
        assert r.status == 204, r
        time.sleep(1.5)
        uid = url.rsplit('/', 1)[1]
        assert [e for e in RX.events if e[2]['upload']['id'] == uid] == []

    def test_rs_990_10_ietf(self, env):
        h = {'Upload-Draft-Interop-Version': '6', 'Upload-Complete': '?1',
             'Content-Type': 'application/octet-stream'}
        r = env.client.request('POST', '/abs/', h, b'VIRUS inside')
        assert r.status == 422, r
        assert r.headers['Content-Type'] == 'application/problem+json'
        j = json.loads(r.body)
        assert j['status'] == 422 and j['detail'] == 'infected', j
        r = env.client.request('POST', '/abs/', h, b'fine content')
        assert r.status in (200, 201), r
        RX.clear()
        r = env.client.request('POST', '/private/', dict(h, Authorization=(
            'Basic Ym9iOmJvYi1wdw==')), b'fine')
        assert r.status == 403, r
        assert json.loads(r.body)['detail'] == 'bob may not upload'
        assert 'X-Injected' not in r.headers


class TestSeedHooks:
    """The seed protocols (offset, slice, md5, flow) on conf/seeds.conf
    with server-wide hooks: the same events, each in its own error form."""
    CONF = staticmethod(conf)
    ALLOW_ERRORS = ALLOW

    def test_rs_990_20_offset(self, env):
        RX.clear()
        h = {'X-File-Id': 'reject.bin-5-1', 'X-Start-Byte': '0',
             'X-File-Size': '5', 'Content-Type': 'video/mp4'}
        r = env.client.request('POST', '/upload', h, b'12345')
        assert r.status == 403 and b'name refused' in r.body, r
        h['X-File-Id'] = 'v.bin-11-1'
        h['X-File-Size'] = '11'
        r = env.client.request('POST', '/upload', h, b'VIRUS 12345')
        assert r.status == 422 and b'infected' in r.body, r
        assert 'X-Injected' not in r.headers
        evs = [e[0] for e in RX.events]
        assert 'pre-create' in evs and 'pre-finish' in evs
        assert all(e[2]['upload']['protocol'] == 'offset' for e in RX.events
                   if e[0] in BLOCKING)

    def test_rs_990_21_md5(self, env):
        import hashlib
        data = b'VIRUS in a chunk'
        fmd5 = hashlib.md5(data).hexdigest()
        cid = hashlib.md5(data).hexdigest() + '0'
        r = env.client.request('POST', '/api/upload/handshake',
                               {'Content-Type': 'application/json'},
                               json.dumps({'fileId': fmd5, 'ext': '.bin',
                                           'chunkIds': [cid]}).encode())
        assert r.status == 200, r
        r = post_form(env, '/api/upload', [
            ('file', ('blob', data, 'application/octet-stream')),
            ('chunkId', cid), ('fileId', fmd5)])
        j = json.loads(r.body)
        assert j['code'] == 422 and j['msg'] == 'infected', (r, j)
        assert 'X-Injected' not in r.headers

    def test_rs_990_22_slice(self, env):
        RX.clear()
        r = post_form(env, '/sliceUpload', [
            ('chunk', ('blob', b'VIRUS!', 'application/octet-stream')),
            ('index', 0), ('name', 'sl.bin')])
        assert r.status == 200, r
        r = env.client.request('POST', '/sliceMerge',
                               {'Content-Type': 'text/plain;charset=UTF-8'},
                               json.dumps({'name': 'sl.bin',
                                           'size': 6}).encode())
        # a composed merge: the hook reads the chunk files (data_parts)
        assert r.status == 422 and b'infected' in r.body, r
        fin = [e[2] for e in RX.events if e[0] == 'pre-finish']
        assert fin and fin[0]['upload']['protocol'] == 'slice'
        assert fin[0]['upload']['data_parts'][0]['length'] == 6
        assert not (env.area_dir('hooks-seeds') / 'sl.bin').exists()
        r = env.client.request('POST', '/sliceMerge',
                               {'Content-Type': 'text/plain;charset=UTF-8'},
                               json.dumps({'name': 'sl.bin',
                                           'size': 6}).encode())
        assert r.status != 200, r            # failed, never a success
        # the refused upload does not hold its name: clean bytes go through
        r = post_form(env, '/sliceUpload', [
            ('chunk', ('blob', b'clean!', 'application/octet-stream')),
            ('index', 0), ('name', 'sl.bin')])
        assert r.status == 200, r
        r = env.client.request('POST', '/sliceMerge',
                               {'Content-Type': 'text/plain;charset=UTF-8'},
                               json.dumps({'name': 'sl.bin',
                                           'size': 6}).encode())
        assert r.status == 200, r
        assert published(env.area_dir('hooks-seeds'), 'sl.bin')
        r = post_form(env, '/sliceUpload', [
            ('chunk', ('blob', b'x', 'application/octet-stream')),
            ('index', 0), ('name', 'reject.bin')])
        assert r.status == 403 and b'name refused' in r.body, r

    def test_rs_990_23_flow(self, env):
        from urllib.parse import urlencode
        p = {'flowChunkNumber': 1, 'flowChunkSize': 1048576,
             'flowCurrentChunkSize': 6, 'flowTotalSize': 6,
             'flowIdentifier': '6-reject.bin', 'flowFilename': 'reject.bin',
             'flowRelativePath': 'reject.bin', 'flowTotalChunks': 1}
        parts = list(p.items()) + [('file', ('reject.bin', b'abcdef',
                                             'application/octet-stream'))]
        r = post_form(env, '/flow', parts)
        assert r.status == 403 and b'name refused' in r.body, r
        assert 'X-Injected' not in r.headers


class TestHookConfig:
    @pytest.mark.parametrize('line,msg', [
        ('ResumableHook pre-upload /x', 'unknown event'),
        ('ResumableHook pre-create ftp://x/', 'bad target'),
        ('ResumableHook pre-create http://h:99999/', 'bad target'),
        ('ResumableHook pre-create /x timeout=0', 'timeout'),
        ('ResumableHook pre-create /x timeout=9999', 'timeout'),
        ('ResumableHook pre-create /x failopen=maybe', 'unknown option'),
        ('ResumableHook pre-create', 'expected EVENT TARGET'),
        ('ResumableHook pre-create /x\n    ResumableHook pre-create /y',
         'set twice'),
    ])
    def test_rs_990_30_configtest(self, env, line, msg):
        env.install(areas=[RsArea('/files/', directives=[line])])
        rc, out = env.configtest()
        assert rc != 0 and msg in out, out

    def test_rs_990_31_configtest_ok(self, env):
        env.install(areas=[RsArea('/files/', directives=[
            'ResumableHook pre-create /hooks/x timeout=5s failopen=on',
            'ResumableHook post-finish http://127.0.0.1:9/y',
            'ResumableHook post-expire none'])])
        rc, out = env.configtest()
        assert rc == 0, out


class TestHookClients:
    """tus-js-client (test/js/tus_client.mjs, as test_900) on an area whose
    pre-finish hook refuses infected content: the client reports failure,
    never success, and nothing is published (tus/tus-js-client#557)."""
    CONF = staticmethod(conf)
    ALLOW_ERRORS = ALLOW

    @pytest.mark.parametrize('protocol,chunk', [
        ('tus-v1', None), ('tus-v1', 4096), ('ietf-draft-05', None)])
    def test_rs_990_40_tusjs_pre_finish_refused(self, env, node_bin,
                                                 protocol, chunk):
        from test_900_tusjs import run_client
        path = env.gen / f'infected-{protocol}-{chunk}.bin'
        path.write_bytes(b'header ' + b'x' * 10000 + b'VIRUS' + b'y' * 100)
        res = run_client(node_bin, env.url + '/abs/', path, 'plain',
                         chunk_size=chunk, protocol=protocol,
                         metadata={'filename': path.name})
        assert res['ok'] is False and res['_exit'] == 1, res
        assert '422' in str(res['error']) or 'infected' in str(res['error']), res
        assert not (env.area_dir('hooks-abs') / path.name).exists()
        ok = env.gen / f'clean-{protocol}-{chunk}.bin'
        ok.write_bytes(b'z' * 10000)
        res = run_client(node_bin, env.url + '/abs/', ok, 'plain',
                         chunk_size=chunk, protocol=protocol,
                         metadata={'filename': ok.name})
        assert res['ok'] is True, res
        assert published(env.area_dir('hooks-abs'), ok.name)


class TestHookSeedPages:
    """The seed 001 page (offset protocol) in headless Chromium, as
    test_860: a file the application refuses shows "error", never
    "success". (The seed's own client never declares the file size, so its
    uploads stay open and are never finished: pre-create is the hook that
    decides for it.)"""
    CONF = staticmethod(conf)
    ALLOW_ERRORS = ALLOW

    def test_rs_990_45_seed_page_refused(self, env, pages):
        path = env.gen / 'reject-page.bin'
        path.write_bytes(b'p' * 200000)
        out = run_page(env, 'offset-refused', path)
        assert out['log'] == 'error', out
        assert [r['status'] for r in out['requests']
                if r['method'] == 'POST'] == [403], out['requests']
        assert not list(env.area_dir('hooks-seeds').glob('reject-page*'))
        ok = env.gen / 'fine-page.bin'
        ok.write_bytes(b'q' * 200000)
        out = run_page(env, 'offset-refused', ok)
        assert out['log'] == 'success', out


class TestHookLatency:
    """What a pre-create hook adds to a creation, per target kind (medians
    of 30 tus creations; printed with pytest -s as "LATENCY ...")."""
    CONF = staticmethod(conf)
    ALLOW_ERRORS = ALLOW

    def test_rs_990_50_latency(self, env):
        import statistics
        out = {}
        for area in ('/plain/', '/abs/', '/app/', '/cgi/'):
            tus = env.tus(area)
            times = []
            for i in range(30):
                t0 = time.perf_counter()
                r = tus.create_resp(length=10, metadata={'filename': 'l.txt'})
                times.append(time.perf_counter() - t0)
                assert r.status == 201, r
            out[area] = statistics.median(times) * 1000
        print('\nLATENCY creation median ms: ' + ', '.join(
            f'{k.strip("/")}={v:.2f}' for k, v in out.items()))
        for area in ('/abs/', '/app/', '/cgi/'):
            assert out[area] < 1000, out
        # the post-create notifications to the CGI go out in the
        # background: let them land before the server stops (a request to
        # mod_cgid while its daemon exits waits for it for seconds)
        assert wait_for(lambda: '/_hooks/cgi' not in resumablectl(
            env, env.statedb, 'events')[1], 30, 0.2), 'CGI events pending'
