"""822: invalid md5 requests answer in the md5 protocol's own envelope
(issue 11, part 6): the seed client reads only {code, msg, data}, so
every request that is recognisably md5's -- sent to the seed's handshake
path, to an area where md5 is the only protocol (seeds.conf's
/api/upload), or a JSON object / form with md5's fields -- gets a 4xx with
a JSON body {code: <status>, msg: <reason>, data: null} and a tagged
error-log line (RS04020), never text/plain, never a fall-through to httpd.
Each failure leaves no file behind."""
import hashlib
import json

import pytest

from pyrs.env import RsArea
from pyrs.hostile import multipart, mp_type, send_whole
from pyrs.seeds import seeds_conf, seeds_dir

AREA = 'seeds-822'
ALL = '/all/'
ALLOW = dict(patterns=[r'\[resumable:warn\]'])
JSON_T = {'Content-Type': 'application/json'}
TEXT_T = {'Content-Type': 'text/plain;charset=UTF-8'}
MP_T = {'Content-Type': mp_type()}


def md5(b):
    return hashlib.md5(b).hexdigest()


FID = md5(b'822')
CID = md5(b'abc') + '0'


def j(obj):
    return json.dumps(obj).encode()


def chunk_form(*parts, data=b'abc', file_field='file'):
    fields = [(file_field, ('blob', data, 'application/octet-stream'))] \
        if file_field else []
    return multipart(fields + list(parts))


# (id, method, path suffix ('' chunk endpoint, 'handshake'), headers, body)
HANDSHAKES = [
    ('no-fileId', JSON_T, j({'ext': '.a', 'chunkIds': [CID]})),
    ('no-chunkIds', JSON_T, j({'fileId': FID, 'ext': '.a'})),
    ('no-ext', JSON_T, j({'fileId': FID, 'chunkIds': [CID]})),
    ('empty-object', JSON_T, b'{}'),
    ('fileId-number', JSON_T, j({'fileId': 7, 'ext': '.a', 'chunkIds': [CID]})),
    ('fileId-null', JSON_T, j({'fileId': None, 'ext': '.a', 'chunkIds': [CID]})),
    ('fileId-upper', JSON_T, j({'fileId': FID.upper(), 'ext': '.a',
                                'chunkIds': [CID]})),
    ('fileId-huge', JSON_T, j({'fileId': 'a' * 100000, 'ext': '.a',
                               'chunkIds': [CID]})),
    ('ext-array', JSON_T, j({'fileId': FID, 'ext': ['.a'], 'chunkIds': [CID]})),
    ('ext-huge', JSON_T, j({'fileId': FID, 'ext': '.' + 'e' * 5000,
                            'chunkIds': [CID]})),
    ('ext-path', JSON_T, j({'fileId': FID, 'ext': '/../x', 'chunkIds': [CID]})),
    ('ids-string', JSON_T, j({'fileId': FID, 'ext': '.a', 'chunkIds': CID})),
    ('ids-object', JSON_T, j({'fileId': FID, 'ext': '.a',
                              'chunkIds': {'0': CID}})),
    ('ids-numbers', JSON_T, j({'fileId': FID, 'ext': '.a', 'chunkIds': [1]})),
    ('ids-empty', JSON_T, j({'fileId': FID, 'ext': '.a', 'chunkIds': []})),
    ('ids-too-many', JSON_T, j({'fileId': FID, 'ext': '.a', 'chunkIds':
                                [md5(b'x') + str(i) for i in range(10001)]})),
    ('ids-huge-index', JSON_T, j({'fileId': FID, 'ext': '.a',
                                  'chunkIds': [md5(b'x') + '9' * 40]})),
    ('ids-order', JSON_T, j({'fileId': FID, 'ext': '.a',
                             'chunkIds': [md5(b'x') + '1']})),
    ('bad-json', JSON_T, b'{"fileId": "' + FID.encode() + b'", '),
    ('not-json', JSON_T, b'hello'),
    ('json-array', JSON_T, j([FID, '.a', [CID]])),
    ('json-string', JSON_T, j('handshake')),
    ('json-deep', JSON_T, b'[' * 20 + b']' * 20),
    ('json-dup-key', JSON_T, b'{"fileId": "' + FID.encode() + b'", "fileId": "'
     + FID.encode() + b'", "ext": ".a", "chunkIds": ["' + CID.encode() + b'"]}'),
    ('json-too-large', JSON_T, j({'fileId': FID, 'pad': 'x' * 300000})),
    ('text-plain', TEXT_T, j({'ext': '.a'})),
    ('empty-body', JSON_T, b''),
    ('octet-stream', {'Content-Type': 'application/octet-stream'}, b'abc'),
    ('no-type', {}, b'abc'),
]
CHUNKS = [
    ('chunk-no-file', MP_T, chunk_form(('chunkId', CID), ('fileId', FID),
                                       file_field=None)),
    ('chunk-file-data', MP_T, chunk_form(('chunkId', CID), ('fileId', FID),
                                         file_field='data')),
    ('chunk-no-fileId', MP_T, chunk_form(('chunkId', CID))),
    ('chunk-no-chunkId', MP_T, chunk_form(('fileId', FID))),
    ('chunk-bad-fileId', MP_T, chunk_form(('chunkId', CID), ('fileId', 'x'))),
    ('chunk-bad-chunkId', MP_T, chunk_form(('chunkId', 'x' * 4000),
                                           ('fileId', FID))),
    ('chunk-unknown-file', MP_T, chunk_form(('chunkId', CID), ('fileId', FID))),
    ('chunk-broken-multipart', MP_T, b'--nope\r\n\r\n'),
    ('chunk-no-boundary', {'Content-Type': 'multipart/form-data'}, b'abc'),
    ('chunk-no-parts', MP_T, multipart([])),
    ('chunk-fields-only', MP_T, multipart([('chunkId', CID)])),
]
METHODS = ['GET', 'HEAD', 'PUT', 'PATCH', 'DELETE']


def check_envelope(env, r, case):
    assert 400 <= r.status < 500, (case, r)
    assert r.headers.get('Content-Type', '').startswith('application/json'), \
        (case, r)
    if r.body or 'HEAD' not in case:
        e = json.loads(r.body)
        assert e['code'] == r.status and e['data'] is None, (case, e)
        assert isinstance(e['msg'], str) and e['msg'], (case, e)


def run_cases(env, path_of, cases, area_dir):
    before = sorted(p.name for p in area_dir.iterdir()
                    if not p.name.startswith('.'))
    for case, headers, body in cases:
        mark = env.log_mark()
        r = send_whole(env.client, 'POST', path_of(case), headers, body)
        check_envelope(env, r, case)
        lines = env.log_lines(mark)
        assert any('RS04020' in x and f' {r.status} ' in x for x in lines), \
            (case, lines)
    after = sorted(p.name for p in area_dir.iterdir()
                   if not p.name.startswith('.'))
    assert after == before


class TestEnvelopeSeeds:
    """seeds.conf: /api/upload/handshake and /api/upload, md5 only."""
    CONF = staticmethod(lambda env: seeds_conf(env, AREA))
    ALLOW_ERRORS = ALLOW

    def test_rs_822_01_handshakes(self, env):
        run_cases(env, lambda c: '/api/upload/handshake', HANDSHAKES,
                  seeds_dir(env, AREA))

    def test_rs_822_02_chunks(self, env):
        run_cases(env, lambda c: '/api/upload', CHUNKS + HANDSHAKES,
                  seeds_dir(env, AREA))

    @pytest.mark.parametrize('method', METHODS)
    def test_rs_822_03_methods(self, env, method):
        mark = env.log_mark()
        r = send_whole(env.client, method, '/api/upload/handshake', JSON_T,
                       j({'fileId': FID, 'ext': '.a', 'chunkIds': [CID]})
                       if method in ('PUT', 'PATCH') else b'')
        check_envelope(env, r, method)
        assert r.status == 405 and r.headers.get('Allow') == 'POST', r
        assert any('RS04020' in x for x in env.log_lines(mark))

    def test_rs_822_04_valid_still_work(self, env):
        """The seed's own requests are unchanged; a GET next to the area
        that is no upload still falls through to httpd."""
        r = send_whole(env.client, 'POST', '/api/upload/handshake', JSON_T,
                       j({'fileId': FID, 'ext': '.a', 'chunkIds': [CID]}))
        assert r.status == 200 and json.loads(r.body)['data'] == [CID], r
        r = send_whole(env.client, 'GET', '/api/upload/other.html', {}, b'')
        assert r.status == 404 and 'json' not in r.headers.get(
            'Content-Type', ''), r


class TestEnvelopeAllProtocols:
    """One area with every protocol: the handshake path, or md5's fields."""
    CONF = staticmethod(lambda env: dict(areas=[RsArea(ALL, dir='md5-all')]))
    ALLOW_ERRORS = ALLOW

    def test_rs_822_10_handshake_path(self, env):
        run_cases(env, lambda c: ALL + 'handshake', HANDSHAKES + CHUNKS,
                  env.area_dir('md5-all'))

    def test_rs_822_11_md5_fields_anywhere(self, env):
        """At the area's own URL, md5's fields make the request md5's."""
        cases = [c for c in HANDSHAKES if c[0] in (
            'no-fileId', 'no-ext', 'no-chunkIds', 'fileId-number',
            'ids-string', 'fileId-huge')] + \
            [c for c in CHUNKS if c[0] in (
                'chunk-no-file', 'chunk-file-data', 'chunk-no-fileId',
                'chunk-no-chunkId', 'chunk-bad-fileId', 'chunk-unknown-file')]
        run_cases(env, lambda c: ALL, cases, env.area_dir('md5-all'))

    @pytest.mark.parametrize('method', METHODS)
    def test_rs_822_12_methods(self, env, method):
        r = send_whole(env.client, method, ALL + 'handshake', {}, b'')
        check_envelope(env, r, method)
        assert r.status == 405, r

    def test_rs_822_13_others_unchanged(self, env):
        """Requests of no protocol at the area's URL keep the shared
        text/plain answer; a slice merge is still slice's."""
        r = send_whole(env.client, 'POST', ALL, JSON_T, j({'x': 1}))
        assert r.status == 400 and r.headers['Content-Type'].startswith(
            'text/plain'), r
        r = send_whole(env.client, 'POST', ALL, TEXT_T,
                       j({'name': 'nothing.bin', 'size': 3}))
        assert 400 <= r.status < 500 and r.headers['Content-Type'].startswith(
            'text/plain'), r
