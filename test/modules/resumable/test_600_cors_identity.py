"""6xx: CORS, forwarded headers, per-user identity."""
import re
import subprocess

import pytest

from pyrs.client import make_data, split_url, upload_id
from pyrs.env import RsArea

ORIGIN = 'https://app.example'
ALLOW_METHODS = {'POST', 'HEAD', 'PATCH', 'DELETE', 'OPTIONS'}
ALLOW_HEADERS = {'tus-resumable', 'upload-length', 'upload-offset', 'upload-metadata',
                 'upload-defer-length', 'upload-concat', 'upload-checksum', 'content-type',
                 'x-http-method-override'}
EXPOSE_HEADERS = {'location', 'upload-offset', 'upload-length', 'tus-version',
                  'tus-resumable', 'tus-max-size', 'tus-extension', 'upload-metadata',
                  'upload-defer-length', 'upload-concat', 'upload-expires'}


def hset(value, lower=True):
    return {v.strip().lower() if lower else v.strip() for v in (value or '').split(',') if v.strip()}


def preflight(env, path, origin=ORIGIN, method='PATCH',
              req_headers='tus-resumable,upload-offset,content-type'):
    return env.client.options(path, {'Origin': origin,
                                      'Access-Control-Request-Method': method,
                                      'Access-Control-Request-Headers': req_headers})


class TestCors:
    CONF = dict(areas=[
        RsArea('/files/', dir='cors', directives=[f'ResumableCORSOrigins {ORIGIN}',
                                                  'ResumableMaxSize 1G']),
        RsArea('/any/', dir='cors-any', directives=['ResumableCORSOrigins *']),
        RsArea('/nocors/', dir='cors-none'),
    ])

    @pytest.mark.parametrize('method', ['PATCH', 'POST', 'DELETE', 'HEAD'])
    def test_rs_600_01_preflight(self, env, method):
        r = preflight(env, '/files/', method=method)
        assert r.status in (200, 204), r
        assert r.headers.get('Access-Control-Allow-Origin') == ORIGIN, r
        assert ALLOW_METHODS <= hset(r.headers.get('Access-Control-Allow-Methods'), False), r
        assert ALLOW_HEADERS <= hset(r.headers.get('Access-Control-Allow-Headers')), r

    def test_rs_600_02_preflight_upload_url(self, env):
        url = env.tus('/files/').create(length=10)
        r = preflight(env, split_url(url)[0])
        assert r.status in (200, 204), r
        assert r.headers.get('Access-Control-Allow-Origin') == ORIGIN, r
        assert 'PATCH' in hset(r.headers.get('Access-Control-Allow-Methods'), False)

    def test_rs_600_03_simple_responses(self, env):
        tus = env.tus('/files/', headers={'Origin': ORIGIN})
        r = tus.create_resp(length=10)
        assert r.status == 201
        url = r.headers['Location']
        checks = [r, tus.head(url), tus.patch(url, 0, b'0123456789'), tus.get(url),
                  tus.patch(url, 3, b'x')]
        for r in checks:
            assert r.headers.get('Access-Control-Allow-Origin') == ORIGIN, r
            assert EXPOSE_HEADERS <= hset(r.headers.get('Access-Control-Expose-Headers')), r
        r = tus.delete(url)
        assert r.headers.get('Access-Control-Allow-Origin') == ORIGIN, r

    def test_rs_600_04_other_origin(self, env):
        r = preflight(env, '/files/', origin='https://evil.example')
        assert 'Access-Control-Allow-Origin' not in r.headers, r
        tus = env.tus('/files/', headers={'Origin': 'https://evil.example'})
        r = tus.create_resp(length=10)
        assert 'Access-Control-Allow-Origin' not in r.headers, r
        r = tus.head(r.headers['Location'])
        assert 'Access-Control-Allow-Origin' not in r.headers, r

    @pytest.mark.parametrize('origin', ['https://app.example.evil', 'http://app.example',
                                        'https://app.example:8443', 'null'])
    def test_rs_600_05_near_origins(self, env, origin):
        r = preflight(env, '/files/', origin=origin)
        assert 'Access-Control-Allow-Origin' not in r.headers, r

    def test_rs_600_06_no_origin(self, env):
        r = env.tus('/files/').create_resp(length=10)
        assert 'Access-Control-Allow-Origin' not in r.headers, r

    def test_rs_600_07_wildcard(self, env):
        for origin in ('https://a.example', 'http://b.example:8080'):
            r = preflight(env, '/any/', origin=origin)
            assert r.headers.get('Access-Control-Allow-Origin') in ('*', origin), r
            r = env.tus('/any/', headers={'Origin': origin}).create_resp(length=3)
            assert r.headers.get('Access-Control-Allow-Origin') in ('*', origin), r

    def test_rs_600_08_not_configured(self, env):
        r = preflight(env, '/nocors/')
        assert 'Access-Control-Allow-Origin' not in r.headers, r

    def test_rs_600_09_resume_download(self, env):
        """A page on another origin resumes a download: it may send Range
        and If-Range, and read ETag (for If-Range), Last-Modified,
        Accept-Ranges, Content-Range and Content-Disposition."""
        r = preflight(env, '/files/', method='GET', req_headers='range,if-range')
        assert r.status in (200, 204), r
        assert {'range', 'if-range'} <= hset(
            r.headers.get('Access-Control-Allow-Headers')), r
        data = make_data(5000, seed=609)
        tus = env.tus('/files/', headers={'Origin': ORIGIN})
        url = tus.upload(data, metadata={'filename': 'r.bin'})
        r = tus.get(url)
        assert r.status == 200 and r.body == data, r
        need = {'etag', 'last-modified', 'accept-ranges', 'content-range',
                'content-disposition'}
        assert need <= hset(r.headers.get('Access-Control-Expose-Headers')), r
        etag = r.headers['ETag']
        r = tus.get(url, {'Range': 'bytes=1000-', 'If-Range': etag})
        assert r.status == 206 and r.body == data[1000:], r
        assert r.headers.get('Access-Control-Allow-Origin') == ORIGIN, r
        assert need <= hset(r.headers.get('Access-Control-Expose-Headers')), r


FWD = {'X-Forwarded-Proto': 'https', 'X-Forwarded-Host': 'up.example'}


class TestForwarded:
    CONF = dict(areas=[
        RsArea('/files/', dir='fwd-off'),
        RsArea('/trusted/', dir='fwd-on', directives=['ResumableTrustForwarded On']),
    ])

    def test_rs_600_10_ignored_by_default(self, env):
        r = env.tus('/files/').create_resp(length=10, headers=FWD)
        assert r.status == 201
        assert re.match(rf'^{re.escape(env.url)}/files/[A-Za-z0-9_-]{{22}}$',
                        r.headers['Location']), r

    def test_rs_600_11_trusted(self, env):
        tus = env.tus('/trusted/')
        r = tus.create_resp(length=5, headers=FWD)
        assert r.status == 201
        loc = r.headers['Location']
        assert re.match(r'^https://up\.example/trusted/[A-Za-z0-9_-]{22}$', loc), r
        # the upload is reachable through its path
        path = split_url(loc)[0]
        assert tus.patch(path, 0, b'hello').status == 204
        assert env.client.get(path).body == b'hello'

    def test_rs_600_12_trusted_final_concat_urls(self, env):
        """Absolute URLs in Upload-Concat as the client was told them."""
        tus = env.tus('/trusted/', headers=FWD)
        a = tus.create(length=2, concat='partial')
        b = tus.create(length=2, concat='partial')
        assert a.startswith('https://up.example/')
        assert tus.patch(split_url(a)[0], 0, b'ab').status == 204
        assert tus.patch(split_url(b)[0], 0, b'cd').status == 204
        final = tus.create(concat=f'final;{a} {b}')
        assert env.client.get(split_url(final)[0]).body == b'abcd'


def make_users(env):
    f = env.gen / 'conf' / 'htpasswd'
    subprocess.run(['htpasswd', '-bcB', str(f), 'alice', 'alice-pw'], check=True,
                   capture_output=True)
    subprocess.run(['htpasswd', '-bB', str(f), 'bob', 'bob-pw'], check=True,
                   capture_output=True)
    return dict(areas=[RsArea('/private/', dir='private', section=[
        'AuthType Basic', 'AuthName "uploads"', f'AuthUserFile "{f}"', 'Require valid-user'])])


ALICE = ('alice', 'alice-pw')
BOB = ('bob', 'bob-pw')


class TestIdentity:
    CONF = make_users

    def test_rs_600_20_auth_required(self, env):
        r = env.tus('/private/').create_resp(length=10)
        assert r.status == 401, r

    def test_rs_600_21_other_user_sees_nothing(self, env):
        alice = env.tus('/private/', auth=ALICE)
        bob = env.tus('/private/', auth=BOB)
        data = make_data(1000, seed=21)
        url = alice.create(length=len(data))
        assert alice.patch(url, 0, data[:500]).status == 204
        r = bob.head(url)
        assert r.status == 404 and 'Upload-Offset' not in r.headers, r
        assert bob.patch(url, 500, data[500:]).status == 404
        assert bob.delete(url).status == 404
        assert bob.get(url).status == 404
        assert alice.offset(url) == 500
        assert alice.patch(url, 500, data[500:]).status == 204
        assert bob.get(url).status == 404
        assert bob.head(url).status == 404
        r = alice.get(url)
        assert r.status == 200 and r.body == data

    def test_rs_600_22_concat_of_other_users_partial(self, env):
        alice = env.tus('/private/', auth=ALICE)
        bob = env.tus('/private/', auth=BOB)
        pa = alice.create(length=3, concat='partial')
        assert alice.patch(pa, 0, b'abc').status == 204
        pb = bob.create(length=3, concat='partial')
        assert bob.patch(pb, 0, b'def').status == 204
        r = bob.create_resp(concat=f'final;{split_url(pb)[0]} {split_url(pa)[0]}')
        # alice's partial must look exactly like an unknown upload to bob
        unknown = bob.create_resp(concat=f'final;{split_url(pb)[0]} /private/{"N" * 22}')
        assert r.status in (400, 404), r
        assert r.status == unknown.status, (r, unknown)
        assert 'Location' not in r.headers
        final = alice.create(concat=f'final;{split_url(pa)[0]}')
        assert alice.get(final).body == b'abc'
        assert bob.get(final).status == 404

    def test_rs_600_23_same_user_full_access(self, env):
        alice = env.tus('/private/', auth=ALICE)
        url = alice.upload(b'mine')
        assert alice.get(url).body == b'mine'
        assert alice.delete(url).status == 204
        assert upload_id(url)
