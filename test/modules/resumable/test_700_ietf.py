"""70x: the IETF resumable-upload draft, raw protocol, interop versions 3-8.

Every test runs against each interop version it concerns; the differences
(field names, media types, problem types, limits) are asserted per version.
"""
import base64
import hashlib
import json
import re
import socket
import time

import pytest

from pyrs.client import abort_socket, make_data, read_response, sha256, split_url
from pyrs.env import RsArea

VERSIONS = [3, 4, 5, 6, 7, 8]
PARTIAL = 'application/partial-upload'
PROBLEM_NS = 'https://iana.org/assignments/http-problem-types#'
MAX_SIZE = 64 * 1024 * 1024
MAX_APPEND = 8 * 1024 * 1024


def complete_field(v):
    return 'Upload-Incomplete' if v == 3 else 'Upload-Complete'


def hdrs(v, complete=None, offset=None, length=None, extra=None, patch=False):
    """Request headers of interop version v; complete True/False/None."""
    h = {'Upload-Draft-Interop-Version': str(v)}
    if complete is not None:
        flag = (not complete) if v == 3 else complete
        h[complete_field(v)] = '?1' if flag else '?0'
    if offset is not None:
        h['Upload-Offset'] = str(offset)
    if length is not None:
        h['Upload-Length'] = str(length)
    if patch and v >= 6:
        h['Content-Type'] = PARTIAL
    h.update(extra or {})
    return h


def is_complete(v, r):
    """The completion state a response reports (None: not reported)."""
    if v == 3:
        val = r.headers.get('Upload-Incomplete')
        return None if val is None else val == '?0'
    val = r.headers.get('Upload-Complete')
    return None if val is None else val == '?1'


def limits(r):
    out = {}
    for part in (r.headers.get('Upload-Limit') or '').split(','):
        if '=' in part:
            k, v = part.strip().split('=', 1)
            out[k] = int(v)
    return out


def problem(r):
    assert r.headers.get('Content-Type', '').startswith('application/problem+json'), r
    return json.loads(r.body)


def ireq(env, method, url, headers=None, body=b'', chunked=False, timeout=10):
    """One request with the whole body sent (RsClient.request stops sending
    when the server answers early, and a 104 is such an answer)."""
    c = env.client
    h = dict(headers or {})
    if chunked:
        h['Transfer-Encoding'] = 'chunked'
        data = b''.join(b'%x\r\n' % len(body[i:i + 16384]) + body[i:i + 16384]
                        + b'\r\n' for i in range(0, len(body), 16384)) + b'0\r\n\r\n'
    else:
        h['Content-Length'] = str(len(body))
        data = body
    s = c.connect(timeout)
    try:
        try:
            s.sendall(c._head_bytes(method, url, h, None) + data)
        except (BrokenPipeError, ConnectionResetError):
            pass                    # answered early (413): read that answer
        return read_response(s, method, timeout)
    finally:
        s.close()


def read_all(sock, method='POST', timeout=10):
    """Interim responses (status, headers) and the final Resp of a socket."""
    sock.settimeout(timeout)
    f = sock.makefile('rb')
    interims = []
    for _ in range(10):
        line = f.readline(65537).decode('latin-1').rstrip('\r\n')
        status = int(line.split(' ', 2)[1])
        h = {}
        for _ in range(100):
            hl = f.readline(65537).decode('latin-1').rstrip('\r\n')
            if not hl:
                break
            k, _, val = hl.partition(':')
            h[k.strip().lower()] = val.strip()
        if status >= 200:
            n = int(h.get('content-length', '0'))
            body = f.read(n) if method != 'HEAD' else b''
            return interims, (status, h, body)
        interims.append((status, h))
    raise AssertionError(f'too many interim responses: {interims}')


class IetfBase:

    def create(self, env, v, body=b'', complete=False, length=None, extra=None,
               method='POST', expect=201):
        r = ireq(env, method, '/files/', hdrs(v, complete, length=length,
                                                  extra=extra), body=body)
        assert r.status == expect, r
        return r

    def url_of(self, r):
        loc = r.headers.get('Location')
        assert loc and loc.startswith('http://'), r
        return loc

    def head(self, env, v, url, extra=None):
        return ireq(env, 'HEAD', url, hdrs(v, extra=extra))

    def patch(self, env, v, url, offset, data, complete, extra=None, **kw):
        return ireq(env, 'PATCH', url, hdrs(v, complete, offset,
                                                     extra=extra, patch=True),
                                  body=data, **kw)

    def download(self, env, url):
        r = env.client.get(url)
        assert r.status == 200, r
        return r


class TestIetf(IetfBase):
    CONF = dict(areas=[RsArea('/files/', dir='ietf', directives=[
        'ResumableExpire 1h', f'ResumableMaxSize {MAX_SIZE}',
        f'LimitRequestBody {MAX_APPEND}'])])

    @pytest.mark.parametrize('v', VERSIONS)
    def test_rs_700_01_create_resume_complete(self, env, v):
        """creation ?0 with a first part, HEAD, append ?1, download"""
        data = make_data(300000, seed=v)
        r = self.create(env, v, data[:100000], complete=False, length=len(data))
        url = self.url_of(r)
        assert is_complete(v, r) is False
        assert r.headers.get('Upload-Offset') == '100000'
        assert r.headers.get('Upload-Draft-Interop-Version') == str(v)
        assert ('Upload-Limit' in r.headers) == (v >= 6), r
        h = self.head(env, v, url)
        assert h.status == 204, h
        assert h.headers.get('Upload-Offset') == '100000'
        assert is_complete(v, h) is False
        assert h.headers.get('Upload-Length') == str(len(data))
        assert h.headers.get('Cache-Control') == 'no-store'
        r = self.patch(env, v, url, 100000, data[100000:200000], False)
        assert r.status == 204, r
        assert r.headers.get('Upload-Offset') == '200000'
        assert is_complete(v, r) is False
        r = self.patch(env, v, url, 200000, data[200000:], True)
        assert r.status == 200, r
        assert is_complete(v, r) is True
        assert r.headers.get('Upload-Offset') == str(len(data))
        assert sha256(self.download(env, url).body) == sha256(data)
        h = self.head(env, v, url)
        assert is_complete(v, h) is True and h.headers.get('Upload-Offset') == str(len(data))

    @pytest.mark.parametrize('v', VERSIONS)
    def test_rs_700_02_interrupt_resume(self, env, v):
        """the creation body is cut off; HEAD tells the offset; resume"""
        data = make_data(400000, seed=10 + v)
        env.allow_errors(patterns=[r'ERR_BODY_READ'])
        h = hdrs(v, True)
        s = env.client.send_partial('POST', '/files/', h, data[:150000], len(data))
        try:
            interims, _ = [], None
            s.settimeout(10)
            f = s.makefile('rb')
            line = f.readline().decode('latin-1')
            assert ' 104 ' in line, line
            loc = None
            for _ in range(50):
                hl = f.readline().decode('latin-1').rstrip('\r\n')
                if not hl:
                    break
                if hl.lower().startswith('location:'):
                    loc = hl.split(':', 1)[1].strip()
            assert loc, 'no Location in the 104'
            time.sleep(0.3)
        finally:
            abort_socket(s)
        offset = None
        for _ in range(50):                      # bounded: 10 s
            r = self.head(env, v, loc)
            assert r.status == 204, r
            offset = int(r.headers['Upload-Offset'])
            if offset == 150000:
                break
            time.sleep(0.2)
        assert offset == 150000, offset
        assert is_complete(v, r) is False
        r = self.patch(env, v, loc, offset, data[offset:], True)
        assert r.status == 200, r
        assert sha256(self.download(env, loc).body) == sha256(data)

    @pytest.mark.parametrize('v', VERSIONS)
    def test_rs_700_03_delete(self, env, v):
        r = self.create(env, v, b'abc', complete=False)
        url = self.url_of(r)
        r = ireq(env, 'DELETE', url, hdrs(v))
        assert r.status == 204, r
        r = self.head(env, v, url)
        assert r.status == (404 if v <= 6 else 410), r

    @pytest.mark.parametrize('v', VERSIONS)
    def test_rs_700_04_mismatching_offset(self, env, v):
        r = self.create(env, v, b'0123456789', complete=False)
        url = self.url_of(r)
        r = self.patch(env, v, url, 4, b'xyz', False)
        assert r.status == 409, r
        assert r.headers.get('Upload-Offset') == '10'
        assert is_complete(v, r) is False
        if v >= 6:
            p = problem(r)
            assert p['type'] == PROBLEM_NS + 'mismatching-upload-offset'
            assert p['expected-offset'] == 10 and p['provided-offset'] == 4
        else:
            assert not r.headers.get('Content-Type', '').startswith('application/problem')
        assert self.head(env, v, url).headers['Upload-Offset'] == '10'

    @pytest.mark.parametrize('v', VERSIONS)
    def test_rs_700_05_completed_upload(self, env, v):
        """a completed upload takes no more data; a repeated finish is ok"""
        r = self.create(env, v, b'hello', complete=True)
        url = self.url_of(r)
        assert is_complete(v, r) is True
        r = self.patch(env, v, url, 5, b'more', False)
        assert r.status == 400, r
        if v == 8:
            assert problem(r)['type'] == PROBLEM_NS + 'inconsistent-upload-length'
        elif v >= 6:
            assert problem(r)['type'] == PROBLEM_NS + 'completed-upload'
        r = self.patch(env, v, url, 5, b'', False)
        if v == 8:
            assert r.status == 410, r
            assert problem(r)['type'] == PROBLEM_NS + 'completed-upload'
        else:
            assert r.status == 400, r
        r = self.patch(env, v, url, 5, b'', True)
        assert r.status == 200 and is_complete(v, r) is True, r
        assert self.download(env, url).body == b'hello'

    @pytest.mark.parametrize('v', VERSIONS)
    def test_rs_700_06_inconsistent_length(self, env, v):
        r = self.create(env, v, b'0123456789', complete=True, length=20, expect=400)
        if v >= 7:
            assert problem(r)['type'] == PROBLEM_NS + 'inconsistent-upload-length'
        assert 'Location' not in r.headers
        r = self.create(env, v, b'0123', complete=False, length=10)
        url = self.url_of(r)
        r = self.patch(env, v, url, 4, b'0123456789', False)     # beyond 10
        assert r.status == 400, r
        r = self.patch(env, v, url, 4, b'01', True)              # ends early
        assert r.status == 400, r
        r = self.patch(env, v, url, 4, b'45', False, extra={'Upload-Length': '11'})
        assert r.status == 400, r
        assert self.head(env, v, url).headers['Upload-Offset'] == '4'

    @pytest.mark.parametrize('v', VERSIONS)
    def test_rs_700_07_append_media_type(self, env, v):
        r = self.create(env, v, b'', complete=False)
        url = self.url_of(r)
        h = hdrs(v, False, 0, extra={'Content-Type': 'application/octet-stream'})
        r = ireq(env, 'PATCH', url, h, body=b'abc')
        if v >= 6:
            assert r.status == 415, r
            assert r.headers.get('Accept-Patch') == PARTIAL
        else:
            assert r.status == 204, r

    @pytest.mark.parametrize('value', ['9', '2', '0', 'abc', '6.0', '?1', '3, 4'])
    def test_rs_700_08_unknown_version(self, env, value):
        r = ireq(env, 'POST', '/files/', {
            'Upload-Draft-Interop-Version': value, 'Upload-Complete': '?1',
            'Upload-Length': '3'}, body=b'abc')
        assert r.status == 400, r
        assert '3, 4, 5, 6, 7, 8' in r.text, r
        assert 'Tus-Version' not in r.headers

    @pytest.mark.parametrize('v', VERSIONS)
    def test_rs_700_09_options(self, env, v):
        r = env.client.options('/files/', hdrs(v))
        assert r.status == 200, r
        if v >= 6:
            lim = limits(r)
            age = 'expires' if v == 6 else 'max-age'
            assert lim == {'max-size': MAX_SIZE, 'min-size': 0,
                           'max-append-size': MAX_APPEND, age: 3600}, r
            assert r.headers.get('Accept-Patch') == PARTIAL
        else:
            assert 'Upload-Limit' not in r.headers

    @pytest.mark.parametrize('v', [6, 7, 8])
    def test_rs_700_10_limits_enforced(self, env, v):
        """max-size and max-append-size are real"""
        r = self.create(env, v, b'', complete=False, length=MAX_SIZE + 1, expect=413)
        r = self.create(env, v, b'', complete=False)
        url = self.url_of(r)
        lim = limits(self.head(env, v, url))
        assert 3500 < lim['max-age' if v > 6 else 'expires'] <= 3600
        r = self.patch(env, v, url, 0, b'x' * (MAX_APPEND + 1), False)
        assert r.status == 413, r
        env.allow_errors(patterns=[r' 413 ERR_BODY_READ'])

    @pytest.mark.parametrize('v', VERSIONS)
    @pytest.mark.parametrize('method', ['POST', 'PUT', 'PATCH'])
    def test_rs_700_11_empty_creations(self, env, v, method):
        r = self.create(env, v, b'', complete=True, method=method)
        url = self.url_of(r)
        assert is_complete(v, r) is True
        assert self.download(env, url).body == b''
        r = self.create(env, v, b'', complete=False, method=method)
        url = self.url_of(r)
        assert is_complete(v, r) is False and r.headers['Upload-Offset'] == '0'
        assert env.client.get(url).status == 409

    @pytest.mark.parametrize('v', VERSIONS)
    def test_rs_700_12_unknown_length(self, env, v):
        """no length until Upload-Complete: ?1; chunked bodies"""
        data = make_data(70000, seed=20 + v)
        h = hdrs(v, False)
        r = ireq(env, 'POST', '/files/', h, body=data[:30000], chunked=True)
        assert r.status == 201, r
        url = self.url_of(r)
        assert 'Upload-Length' not in self.head(env, v, url).headers
        h = hdrs(v, True, 30000, patch=True)
        r = ireq(env, 'PATCH', url, h, body=data[30000:], chunked=True)
        assert r.status == 200, r
        h = self.head(env, v, url)
        assert h.headers['Upload-Length'] == str(len(data))
        assert self.download(env, url).body == data

    @pytest.mark.parametrize('v', VERSIONS)
    def test_rs_700_13_representation_metadata(self, env, v, tmp_path):
        name = 'Bericht ü 2026.pdf'
        enc = ''.join(c if (c.isascii() and c.isalnum()) or c in '.-' else
                      ''.join(f'%{b:02X}' for b in c.encode()) for c in name)
        r = self.create(env, v, b'%PDF-1.7 x', complete=True, extra={
            'Content-Type': 'application/pdf; charset=binary',
            'Content-Disposition': f'inline; filename="report.pdf"; '
                                   f"filename*=UTF-8''{enc}"})
        url = self.url_of(r)
        d = self.download(env, url)
        assert d.headers.get('Content-Type') == 'application/pdf'
        assert enc.lower() in d.headers['Content-Disposition'].lower()
        assert name in env.visible_files(env.area_dir('ietf'))[0] or \
            any(f.startswith('Bericht') for f in env.visible_files(env.area_dir('ietf')))

    def test_rs_700_14_cross_protocol(self, env, tus):
        """an IETF request on a tus upload is refused, not served"""
        url = tus.create(length=10)
        for v in (3, 8):
            r = self.head(env, v, url)
            assert r.status == 400, r
            r = self.patch(env, v, url, 0, b'0123456789', True)
            assert r.status == 400 and 'tus protocol' in r.text, r
        assert tus.offset(url) == 0

    @pytest.mark.parametrize('v', VERSIONS)
    def test_rs_700_15_expect_100_then_104(self, env, v):
        """Expect: 100-continue: the client sees 100, then 104, then 201"""
        data = make_data(5000, seed=30 + v)
        h = hdrs(v, True)
        h['Expect'] = '100-continue'
        s = env.client.send_partial('POST', '/files/', h, b'', len(data))
        try:
            s.settimeout(10)
            f = s.makefile('rb')
            seen = []
            for _ in range(2):
                line = f.readline().decode('latin-1')
                seen.append(int(line.split()[1]))
                hs = {}
                for _ in range(50):
                    hl = f.readline().decode('latin-1').rstrip('\r\n')
                    if not hl:
                        break
                    k, _, val = hl.partition(':')
                    hs[k.strip().lower()] = val.strip()
                if seen[-1] == 104:
                    assert hs.get('upload-draft-interop-version') == str(v)
                    assert hs.get('location', '').startswith('http://'), hs
                    loc = hs['location']
                    assert ('upload-limit' in hs) == (v >= 6), hs
            assert seen == [100, 104], seen
            s.sendall(data)
            r = read_response(s, 'POST')
            assert r.status == 201, r
            assert r.headers['Location'] == loc
        finally:
            s.close()
        assert self.download(env, loc).body == data

    @pytest.mark.parametrize('v', [5, 8])
    def test_rs_700_16_content_digest(self, env, v):
        data = b'0123456789' * 100
        good = base64.b64encode(hashlib.sha256(data[500:]).digest()).decode()
        bad = base64.b64encode(hashlib.sha256(b'other').digest()).decode()
        r = self.create(env, v, data[:500], complete=False, length=len(data))
        url = self.url_of(r)
        r = self.patch(env, v, url, 500, data[500:], True,
                       extra={'Content-Digest': f'sha-256=:{bad}:'})
        assert r.status == 400, r
        assert self.head(env, v, url).headers['Upload-Offset'] == '500'
        r = self.patch(env, v, url, 500, data[500:], True,
                       extra={'Content-Digest': f'sha-256=:{good}:'})
        assert r.status == 200, r
        url = self.url_of(self.create(env, v, b'', complete=False))
        r = self.patch(env, v, url, 0, b'abc', True,
                       extra={'Content-Digest': 'sha-256=:notbase64!:'})
        assert r.status == 400, r
        r = self.patch(env, v, url, 0, b'abc', True,
                       extra={'Content-Digest': 'sha-256=:' + bad[:20] + ':'})
        assert r.status == 400, r
        assert self.head(env, v, url).headers['Upload-Offset'] == '0'

    @pytest.mark.parametrize('v', [3, 6, 8])
    @pytest.mark.parametrize('alg', ['sha256', 'sha512'])
    def test_rs_700_17_repr_digest(self, env, v, alg):
        """Repr-Digest from the creation, verified when the resumed upload
        completes; the download carries it"""
        data = make_data(200000, seed=40 + v)
        name = 'sha-256' if alg == 'sha256' else 'sha-512'
        rd = f'{name}=:{base64.b64encode(hashlib.new(alg, data).digest()).decode()}:'
        r = self.create(env, v, data[:50000], complete=False, length=len(data),
                        extra={'Repr-Digest': rd})
        url = self.url_of(r)
        r = self.patch(env, v, url, 50000, data[50000:], True)
        assert r.status == 200, r
        assert r.headers.get('Repr-Digest') == rd
        assert self.head(env, v, url).headers.get('Repr-Digest') == rd
        assert self.download(env, url).headers.get('Repr-Digest') == rd
        # a wrong one: the upload fails and is cancelled
        r = self.create(env, v, data[:50000], complete=False, length=len(data),
                        extra={'Repr-Digest': 'sha-256=:' + base64.b64encode(
                            b'\0' * 32).decode() + ':'})
        url = self.url_of(r)
        r = self.patch(env, v, url, 50000, data[50000:], True)
        assert r.status == 400, r
        assert self.head(env, v, url).status in (404, 410)

    @pytest.mark.parametrize('v', [4, 7])
    def test_rs_700_18_want_repr_digest(self, env, v):
        data = make_data(30000, seed=50 + v)
        r = self.create(env, v, data, complete=True,
                        extra={'Want-Repr-Digest': 'sha-512=3, sha-256=10'})
        want = 'sha-256=:' + base64.b64encode(hashlib.sha256(data).digest()).decode() + ':'
        assert r.headers.get('Repr-Digest') == want, r
        # no wish, but the whole upload streamed through one request: free
        r = self.create(env, v, data, complete=True)
        assert self.download(env, self.url_of(r)).headers.get('Repr-Digest') == want

    @pytest.mark.parametrize('v', VERSIONS)
    def test_rs_700_19_upload_fields_on_head(self, env, v):
        r = self.create(env, v, b'abc', complete=False)
        url = self.url_of(r)
        r = self.head(env, v, url, extra={'Upload-Offset': '3'})
        assert r.status == (400 if v <= 6 else 204), r
        r = ireq(env, 'DELETE', url, hdrs(v, extra={'Upload-Offset': '3'}))
        assert r.status == (400 if v <= 6 else 204), r

    @pytest.mark.parametrize('v', VERSIONS)
    def test_rs_700_20_malformed_fields(self, env, v):
        for bad in ({complete_field(v): 'true'}, {complete_field(v): '1'},
                    {'Upload-Length': '-5'}, {'Upload-Length': '1234567890123456'}):
            h = hdrs(v, extra=bad)
            h.setdefault(complete_field(v), '?0')
            r = ireq(env, 'POST', '/files/', h)
            assert r.status == 400, (bad, r)
        r = ireq(env, 'POST', '/files/', hdrs(v))       # no completion field
        assert r.status == 400, r
        r = self.create(env, v, b'', complete=False)
        url = self.url_of(r)
        r = ireq(env, 'PATCH', url, hdrs(v, False, patch=True), body=b'x')
        assert r.status == 400, r                                 # no Upload-Offset
        r = ireq(env, 'PATCH', url, hdrs(v, None, 0, patch=True), body=b'x')
        if v >= 7:
            assert r.status == 400, r                             # no Upload-Complete
        else:
            assert r.status == 200 and is_complete(v, r), r       # absent = last part

    def test_rs_700_21_v3_field_name(self, env):
        """interop 3 speaks Upload-Incomplete, not Upload-Complete"""
        r = ireq(env, 'POST', '/files/', {
            'Upload-Draft-Interop-Version': '3', 'Upload-Complete': '?0'}, body=b'ab')
        assert r.status == 400, r
        r = ireq(env, 'POST', '/files/', {
            'Upload-Draft-Interop-Version': '3', 'Upload-Incomplete': '?1'}, body=b'ab')
        assert r.status == 201 and r.headers.get('Upload-Incomplete') == '?1', r
        assert 'Upload-Complete' not in r.headers

    def test_rs_700_22_tus_unaffected(self, env, tus):
        """plain tus on the same area and URLs still works"""
        data = make_data(1000)
        url = tus.upload(data)
        assert env.client.get(url).body == data
        r = env.client.options('/files/')
        assert r.headers.get('Tus-Version') == '1.0.0'


def curl(env, args, timeout=30):
    import subprocess
    p = subprocess.run(['curl', '-s', '-v', '--max-time', str(timeout - 5)] + args,
                       capture_output=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr.decode('utf-8', 'replace')


@pytest.mark.h2
class TestIetfH2(IetfBase):
    """The same protocol over h2c (mod_http2): 104 and the final response."""
    CONF = dict(h2=True, areas=[RsArea('/files/', dir='ietf-h2', directives=[
        'ResumableExpire 1h', f'ResumableMaxSize {MAX_SIZE}'])])

    @pytest.mark.parametrize('v', VERSIONS)
    def test_rs_700_30_h2c_create_resume(self, env, v, tmp_path):
        data = make_data(250000, seed=60 + v)
        src = tmp_path / 'part1.bin'
        src.write_bytes(data[:100000])
        h = hdrs(v, False, length=len(data))
        args = ['--http2-prior-knowledge', '-X', 'POST', '--data-binary', f'@{src}']
        for k, val in h.items():
            args += ['-H', f'{k}: {val}']
        rc, out, err = curl(env, args + [f'{env.url}/files/'])
        assert rc == 0, err
        assert '< HTTP/2 104' in err, err
        assert '< HTTP/2 201' in err, err
        m = re.search(r'^< location: (\S+)', err, re.M | re.I)
        assert m, err
        url = m.group(1)
        assert err.lower().count(f'< location: {url.lower()}') == 2, err
        src.write_bytes(data[100000:])
        h = hdrs(v, True, offset=100000, patch=True)
        args = ['--http2-prior-knowledge', '-X', 'PATCH', '--data-binary', f'@{src}']
        for k, val in h.items():
            args += ['-H', f'{k}: {val}']
        rc, out, err = curl(env, args + [url])
        assert rc == 0 and '< HTTP/2 200' in err, err
        rc, out, err = curl(env, ['--http2-prior-knowledge', url])
        assert rc == 0 and sha256(out) == sha256(data), err

    def test_rs_700_31_h2c_expect_100(self, env, tmp_path):
        """Expect: 100-continue over h2: 100, 104, 201"""
        src = tmp_path / 'body.bin'
        src.write_bytes(make_data(20000, seed=70))
        args = ['--http2-prior-knowledge', '-X', 'POST', '--data-binary', f'@{src}',
                '-H', 'Expect: 100-continue', '-H', 'Upload-Draft-Interop-Version: 8',
                '-H', 'Upload-Complete: ?1', f'{env.url}/files/']
        rc, out, err = curl(env, args)
        assert rc == 0, err
        statuses = re.findall(r'^< HTTP/2 (\d+)', err, re.M)
        assert statuses == ['100', '104', '201'], err

    def h2(self, env, method, url, headers, body_file=None, extra=()):
        args = ['--http2-prior-knowledge', '-X', method]
        if method == 'HEAD':
            args = ['--http2-prior-knowledge', '-I']
        if body_file is not None:
            args += ['--data-binary', f'@{body_file}']
        for k, val in headers.items():
            args += ['-H', f'{k}: {val}']
        rc, out, err = curl(env, args + list(extra) + [url])
        m = re.findall(r'^< HTTP/2 (\d+)', err, re.M)
        hs = dict((k.lower(), val.strip()) for k, val in
                  re.findall(r'^< ([\w-]+): (.*)$', err, re.M))
        return rc, [int(s) for s in m], hs, out, err

    @pytest.mark.parametrize('v', VERSIONS)
    def test_rs_700_32_h2c_interrupt_problems_delete(self, env, v, tmp_path):
        """h2c: a creation cut off mid-body, HEAD, the problem answers, resume,
        complete, cancel"""
        env.allow_errors(patterns=[r'ERR_BODY_READ', r'ERR_TIMEOUT'])
        data = make_data(3 * 1024 * 1024, seed=80 + v)
        src = tmp_path / 'all.bin'
        src.write_bytes(data)
        rc, st, hs, _, err = self.h2(env, 'POST', f'{env.url}/files/',
                                     hdrs(v, True), src,
                                     ['--limit-rate', '400k', '--max-time', '2'])
        assert rc == 28 and st == [104], (rc, err)       # cut off by --max-time
        url = hs['location']
        offset = -1
        for _ in range(50):                              # bounded: ~10 s
            rc, st, hs, _, err = self.h2(env, 'HEAD', url, hdrs(v))
            assert st == [204], err
            if int(hs['upload-offset']) == offset:
                break
            offset = int(hs['upload-offset'])
            time.sleep(0.2)
        assert 0 < offset < len(data), offset
        assert is_complete(v, Resp(hs)) is False
        rest = tmp_path / 'rest.bin'
        rest.write_bytes(data[offset:])
        # empty bodies for the refused requests: curl 7.88 drops an h2
        # response that arrives before it has sent the whole body (httpd
        # answers early and resets the stream; curl/curl#22984 and kin)
        tiny = tmp_path / 'empty.bin'
        tiny.write_bytes(b'')
        rc, st, hs, out, err = self.h2(env, 'PATCH', url,
                                       hdrs(v, True, offset + 1, patch=True), tiny)
        assert st == [409] and hs['upload-offset'] == str(offset), err
        if v >= 6:
            assert json.loads(out)['type'] == PROBLEM_NS + 'mismatching-upload-offset'
        rc, st, hs, out, err = self.h2(env, 'PATCH', url,
                                       hdrs(v, True, offset, patch=True), rest)
        assert st[-1] == 200 and is_complete(v, Resp(hs)) is True, err
        rc, st, hs, out, err = self.h2(env, 'PATCH', url,
                                       hdrs(v, False, len(data), patch=True), tiny)
        assert st == [410 if v == 8 else 400], err
        if v >= 6:
            assert json.loads(out)['type'] == PROBLEM_NS + 'completed-upload'
        rc, out, err = curl(env, ['--http2-prior-knowledge', url])
        assert sha256(out) == sha256(data)
        rc, st, hs, _, err = self.h2(env, 'DELETE', url, hdrs(v))
        assert st == [204], err
        rc, st, hs, _, err = self.h2(env, 'HEAD', url, hdrs(v))
        assert st == [404 if v <= 6 else 410], err


class Resp:
    """Just the headers of a curl answer, for is_complete()."""

    def __init__(self, headers):
        self.headers = {k.title(): val for k, val in headers.items()}
