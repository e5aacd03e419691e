"""972: HTTP-level mutation fuzzer (test/pyrs/fuzz.py) against one area
with every protocol on. Seeded and bounded: RS_FUZZ_COUNT requests
(default 4000) within RS_FUZZ_SECONDS (default 50), seed RS_FUZZ_SEED
(default fixed; 'random' picks one) printed in every failure so a run can
be replayed:

    RS_FUZZ_SEED=<seed> python3 -m pytest test/modules/resumable/test_972_fuzz.py

Mutations of valid requests of tus, IETF, offset, slice, md5 and flow and
of downloads (header values, methods, URLs, bodies, chunked framing and
trailers, truncated bodies). Every answer must be well-formed and not a
5xx (each of these is a client's fault); no child may crash (AH00052 in
the error log) and, under `make asan-test`, no sanitizer report may
appear (the harness fails the test on either). Three areas: no limits;
limits, CORS and forwarded headers; hooks (a receiver that refuses by
name and content), ResumableMaxPending and a private directory with a
static file also reached by an Alias. After the run resumablectl verify
finds no problem (records, files, pending counts)."""
import base64
import hashlib
import os
import random
import re
import time

import pytest

from pyrs import fuzz
from pyrs.client import split_url
from pyrs.ctl import resumablectl
from pyrs.env import BASE_MODULES, RsArea
from pyrs.fuzz import Template
from pyrs.hookrx import Receiver
from pyrs.hostile import flow_query, send_whole

P = '/fz/'
P2 = '/fz2/'
P3 = '/fz3/'                     # hooks, ResumableMaxPending, static file
AREA = 'fuzz'
RX = Receiver()
TUS = {'Tus-Resumable': '1.0.0'}
IETF = {'Upload-Draft-Interop-Version': '8'}
OCTET = 'application/offset+octet-stream'
MP = 'multipart/form-data; boundary=FuzzB0undary'
RE_ACCESS = re.compile(r'"(.*)" (\d{3}) \S+ \d+ pid=\d+$')
BATCH = 250                      # requests per set of fresh uploads
SEED = os.environ.get('RS_FUZZ_SEED', '972011')
COUNT = int(os.environ.get('RS_FUZZ_COUNT', '4000'))
SECONDS = float(os.environ.get('RS_FUZZ_SECONDS', '50'))
# a refused request may be worth a warning, never an error; httpd's core
# logs some hostile input itself at warn or above
# (AH00135 invalid method, AH10244 invalid URI path, AH00127 a path too
# long for the file system)
ALLOW = dict(tags=['AH00135', 'AH10244', 'AH00127'],
             patterns=[r'\[resumable:warn\]'])


def md5(b):
    return hashlib.md5(b).hexdigest()


def b64(b):
    return base64.b64encode(b).decode()


def uploads(env, n):
    """Fresh uploads of every protocol for one batch; -> placeholders."""
    c, tus = {}, env.tus(P)
    c['TUS'] = split_url(tus.create(length=100))[0]
    tus.patch(c['TUS'], 0, b'abc')
    c['TUS2'] = split_url(tus.create(length=10))[0]
    c['DONE'] = split_url(tus.upload(b'finished upload %d' % n))[0]
    parts = []
    for d in (b'abc', b'defg'):
        r = tus.create_resp(length=len(d), concat='partial')
        parts.append(split_url(r.headers['Location'])[0])
        tus.patch(parts[-1], 0, d)
    c['PARTS'] = ' '.join(parts)
    big = []                     # lengths whose sum passes 2^63
    for _ in range(2):
        r = tus.create_resp(length=2 ** 63 - 1, concat='partial')
        big.append(split_url(r.headers['Location'])[0])
    c['BIGPARTS'] = ' '.join(big)
    r = send_whole(env.client, 'POST', P, dict(IETF, **{
        'Upload-Complete': '?0', 'Upload-Length': '100'}), b'abcd')
    c['IETF'] = split_url(r.headers['Location'])[0]
    c['FID'] = f'fz-{n}'
    c['MD5D'] = b'0123456789'
    c['MD5FID'] = md5(c['MD5D'])
    c['MD5CID'] = md5(c['MD5D']) + '0'
    r = env.client.request('POST', P, {'Content-Type': 'application/json'},
                           ('{"fileId":"%s","ext":".bin","chunkIds":["%s"]}'
                            % (c['MD5FID'], c['MD5CID'])).encode())
    return c


def templates(c):
    T = Template
    flow = dict(flowChunkNumber=1, flowChunkSize=1024, flowCurrentChunkSize=10,
                flowTotalSize=10, flowIdentifier=f'10-{c["FID"]}',
                flowFilename='h.bin', flowRelativePath='h.bin',
                flowTotalChunks=1)
    return [
        T('tus-create', 'POST', P, dict(TUS, **{
            'Upload-Length': '10', 'Upload-Metadata': 'filename YS50eHQ='})),
        T('tus-create-upload', 'POST', P, dict(TUS, **{
            'Upload-Length': '10', 'Content-Type': OCTET,
            'Upload-Checksum': 'sha1 ' + b64(hashlib.sha1(b'abc').digest())}),
          b'abc'),
        T('tus-create-defer', 'POST', P, dict(TUS, **{
            'Upload-Defer-Length': '1'})),
        T('tus-patch', 'PATCH', c['TUS'], dict(TUS, **{
            'Upload-Offset': '3', 'Content-Type': OCTET}), b'xyz'),
        T('tus-patch-ck', 'PATCH', c['TUS'], dict(TUS, **{
            'Upload-Offset': '3', 'Content-Type': OCTET,
            'Upload-Checksum': 'md5 ' + b64(hashlib.md5(b'xyz').digest())}),
          b'xyz'),
        T('tus-patch-len', 'PATCH', c['TUS2'], dict(TUS, **{
            'Upload-Offset': '0', 'Content-Type': OCTET,
            'Upload-Length': '10'}), b'0123456789'),
        T('tus-patch-trailer', 'PATCH', c['TUS'], dict(TUS, **{
            'Upload-Offset': '3', 'Content-Type': OCTET,
            'Trailer': 'Upload-Checksum'}), b'xyz',
          trailer=b'Upload-Checksum: sha1 '
          + b64(hashlib.sha1(b'xyz').digest()).encode() + b'\r\n'),
        T('tus-head', 'HEAD', c['TUS'], TUS),
        T('tus-get', 'GET', c['TUS'], TUS),
        T('tus-delete', 'DELETE', c['TUS2'], TUS),
        T('tus-options', 'OPTIONS', P, TUS),
        T('tus-preflight', 'OPTIONS', c['TUS'], {
            'Origin': 'http://127.0.0.1', 'Access-Control-Request-Method':
            'PATCH'}),
        T('tus-partial', 'POST', P, dict(TUS, **{
            'Upload-Length': '3', 'Upload-Concat': 'partial'})),
        T('tus-final', 'POST', P, dict(TUS, **{
            'Upload-Concat': 'final;' + c['PARTS']})),
        T('tus-final-big', 'POST', P, dict(TUS, **{
            'Upload-Concat': 'final;' + c['BIGPARTS']})),
        T('tus-partial-big', 'POST', P, dict(TUS, **{
            'Upload-Length': str(2 ** 63 - 1), 'Upload-Concat': 'partial'})),
        T('tus-override', 'POST', c['TUS'], dict(TUS, **{
            'X-HTTP-Method-Override': 'HEAD'})),
        T('dl-get', 'GET', c['DONE'], {}),
        T('dl-range', 'GET', c['DONE'], {'Range': 'bytes=2-5',
                                         'If-Range': '"x"'}),
        T('ietf-create', 'POST', P, dict(IETF, **{
            'Upload-Complete': '?1', 'Content-Type': 'text/plain',
            'Content-Disposition': 'attachment; filename="a.txt"',
            'Repr-Digest': 'sha-256=:' + b64(hashlib.sha256(b'hello')
                                             .digest()) + ':'}), b'hello'),
        T('ietf-create-part', 'POST', P, dict(IETF, **{
            'Upload-Complete': '?0', 'Upload-Length': '10'}), b'ab'),
        T('ietf-append', 'PATCH', c['IETF'], dict(IETF, **{
            'Upload-Complete': '?0', 'Upload-Offset': '4',
            'Content-Type': 'application/partial-upload'}), b'efgh'),
        T('ietf-finish', 'PATCH', c['IETF'], dict(IETF, **{
            'Upload-Complete': '?1', 'Upload-Offset': '4',
            'Upload-Length': '100', 'Want-Repr-Digest': 'sha-256=1',
            'Content-Type': 'application/partial-upload'}), b'e' * 96),
        T('ietf-put', 'PUT', P + 'new.txt', dict(IETF, **{
            'Upload-Complete': '?1'}), b'put body'),
        T('ietf-digest-trailer', 'POST', P, dict(IETF, **{
            'Upload-Complete': '?1', 'Trailer': 'Repr-Digest'}), b'hello',
          trailer=b'Repr-Digest: sha-256=:' + b64(hashlib.sha256(
              b'hello').digest()).encode() + b':\r\n'),
        T('ietf-head', 'HEAD', c['IETF'], IETF),
        T('ietf-delete', 'DELETE', c['IETF'], IETF),
        T('ietf-options', 'OPTIONS', P, IETF),
        T('off-post', 'POST', P, {'X-File-Id': c['FID'], 'X-Start-Byte': '0',
                                  'X-File-Size': '10'}, b'01234'),
        T('off-post2', 'POST', P, {'X-File-Id': c['FID'],
                                   'X-Start-Byte': '5',
                                   'X-File-Size': '10'}, b'56789'),
        T('off-status', 'GET', P, {'X-File-Id': c['FID']}),
        T('slice-chunk', 'POST', P, {'Content-Type': MP}, ('mp', [
            ('chunk', ('blob', b'abc')), ('index', '0'),
            ('name', f'{c["FID"]}.bin'), ('total', '2')])),
        T('slice-chunk1', 'POST', P, {'Content-Type': MP}, ('mp', [
            ('chunk', ('blob', b'def')), ('index', '1'),
            ('name', f'{c["FID"]}.bin')])),
        T('slice-merge', 'POST', P, {'Content-Type': 'text/plain'},
          ('json', {'name': f'{c["FID"]}.bin', 'size': 6})),
        T('md5-handshake', 'POST', P, {'Content-Type': 'application/json'},
          ('json', {'fileId': c['MD5FID'], 'ext': '.bin',
                    'chunkIds': [c['MD5CID']]})),
        T('md5-chunk', 'POST', P, {'Content-Type': MP}, ('mp', [
            ('file', ('blob', c['MD5D'])), ('chunkId', c['MD5CID']),
            ('fileId', c['MD5FID'])])),
        T('resumable-test', 'GET', P + '?' + flow_query(
            flowIdentifier=f'10-{c["FID"]}').replace('flow', 'resumable'),
          {}),
        T('md5-handshake2', 'POST', P, {'Content-Type': 'application/json'},
          ('json', {'fileId': md5(b'ab'), 'ext': '.txt',
                    'chunkIds': [md5(b'a') + '0', md5(b'b') + '1']})),
        T('dl-head', 'HEAD', c['DONE'], {'Range': 'bytes=0-1'}),
        T('dl-cors', 'GET', c['DONE'], {'Origin': 'http://127.0.0.1'}),
        T('flow-test', 'GET', P + '?' + flow_query(
            flowIdentifier=f'10-{c["FID"]}'), {}),
        T('flow-chunk', 'POST', P, {'Content-Type': MP}, ('mp', [
            (k, str(v)) for k, v in flow.items()] + [
            ('file', ('h.bin', b'0123456789'))])),
    ]


def both_areas(ts):
    """Each template in P and, once more, in P2 (the limited area) and P3
    (hooks asked and told, few pending uploads allowed)."""
    out = list(ts)
    for t in ts:
        for area, tag in ((P2, '@2'), (P3, '@3')):
            out.append(Template(t.name + tag, t.method,
                                t.path.replace(P, area, 1), t.headers,
                                t.body, t.trailer))
    return out


def paths(c):
    return [P, c['TUS'], c['TUS2'], c['DONE'], c['IETF'], P + 'x', '/fz',
            '/', P + '.resumable/x', P + 'A' * 22, P2, P2, P2,
            c['TUS'].replace(P, P2), c['DONE'].replace(P, P2),
            P3, P3, P3 + 'static972.txt', P3 + '.resumable/',
            P3 + 'api/upload/handshake', c['DONE'].replace(P, P3),
            '/fz3files/static972.txt', '/fz3files/.resumable/']


def statedb(env):
    return env.state_dir / 'fuzz972'


def conf(env):
    """P: no limits; P2: limits, CORS, forwarded headers; P3: blocking
    and notifying hooks to a receiver (refusing by name and content),
    ResumableMaxPending 2 20, a static file in its private directory that
    an Alias (/fz3files/) also reaches."""
    if RX.srv is None:
        RX.start()
    d3 = env.area_dir(AREA + '3')
    (d3 / 'static972.txt').write_bytes(b'private static file')
    hooks = [f'ResumableHook {e} {RX.url}/fz3' for e in (
        'pre-create', 'pre-finish', 'post-create', 'post-finish',
        'post-terminate', 'post-receive')]
    # a state database of its own: the verify after the run judges only
    # what the fuzzer did, not what earlier suites left broken on purpose
    return dict(server_extra='Timeout 5', statedb=f'"{statedb(env)}"', areas=[
        RsArea(P, dir=AREA, directives=['LimitRequestBody 2000000']),
        RsArea(P2, dir=AREA + '2', directives=[
            'ResumableMaxSize 64K', 'ResumableCORSOrigins *',
            'ResumableTrustForwarded On', 'ResumableExpire 1h',
            'ResumableInlineTypes text/plain', 'ResumableSync On',
            'LimitRequestBody 100000']),
        RsArea(P3, dir=AREA + '3', directives=[
            'ResumableMaxPending 2 20', 'ResumableExpire 1h',
            'LimitRequestBody 100000'] + hooks)],
        modules=BASE_MODULES + ['alias'],
        extra=f'Alias "/fz3files/" "{d3}/"\n'
              f'<Directory "{d3}">\n    Require all granted\n</Directory>\n')


class TestFuzz:
    # no ResumableMaxSize: lengths up to 2^63-1 are taken, so the sums of
    # client numbers are reached
    # and a second area with limits, CORS and forwarded headers trusted,
    # that URLs are mutated into (P2)
    CONF = staticmethod(lambda env: conf(env))
    ALLOW_ERRORS = ALLOW

    def test_rs_972_01_mutations(self, env):
        seed = random.randrange(1 << 32) if SEED == 'random' else int(SEED)
        print(f'RS_FUZZ_SEED={seed} RS_FUZZ_COUNT={COUNT}')
        log_pos = env.access_log.stat().st_size
        end = time.time() + SECONDS
        sent, statuses, failures, n = 0, {}, [], 0
        while sent < COUNT and time.time() < end:
            c = uploads(env, n)
            s, st, fl = fuzz.run(env.host, env.port, both_areas(templates(c)),
                                 paths(c),
                                 seed * 1000 + n, min(BATCH, COUNT - sent),
                                 end - time.time())
            sent += s
            failures += fl
            for k, v in st.items():
                statuses[k] = statuses.get(k, 0) + v
            n += 1
        print(f'sent {sent}, statuses {sorted(statuses.items(), key=str)}')
        assert sent >= min(COUNT, 500), f'only {sent} requests sent'
        assert not failures, (f'RS_FUZZ_SEED={seed}: {len(failures)} '
                              f'failures:\n' + '\n'.join(
                                  repr(f) for f in failures[:30]))
        # no 5xx in the access log either (answers the client never read)
        time.sleep(0.5)
        bad = []
        for line in env.access_log.read_bytes()[log_pos:].decode(
                'latin-1').splitlines():
            m = RE_ACCESS.search(line)
            if not m or int(m.group(2)) < 500:
                continue
            method = m.group(1).split(' ', 1)[0]
            if int(m.group(2)) != 501 or method in fuzz.HTTPD_METHODS:
                bad.append(line[:300])
        assert not bad, f'RS_FUZZ_SEED={seed}: 5xx in the access log:\n' \
            + '\n'.join(bad[:20])
        # the state the fuzzer left is consistent: records against files,
        # ResumableMaxPending's counts against the uploads without data
        rc, out = resumablectl(env, statedb(env), 'verify')
        assert rc == 0 and ' 0 problems' in out, \
            f'RS_FUZZ_SEED={seed}: resumablectl verify:\n{out[-3000:]}'
        # the private directory's static file never went out
        for path in ('/fz3files/static972.txt', P3 + 'static972.txt'):
            assert env.client.get(path).status == 404, path
        # the server still serves uploads (every child)
        for _ in range(4):
            url = env.tus(P).upload(b'alive after the fuzzer')
            assert env.client.get(url).body == b'alive after the fuzzer'
