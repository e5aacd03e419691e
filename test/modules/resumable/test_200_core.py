"""2xx: tus 1.0.0 core protocol (OPTIONS, HEAD, PATCH, versions, errors)."""
import random
import string

import pytest

from pyrs.client import OCTET, make_data, read_response, sha256, upload_id

EXTENSIONS = {'creation', 'creation-with-upload', 'creation-defer-length',
              'expiration', 'checksum', 'checksum-trailer', 'termination',
              'concatenation', 'concatenation-unfinished'}


def csv_set(value):
    return {v.strip() for v in (value or '').split(',') if v.strip()}


def random_id():
    return ''.join(random.choice(string.ascii_letters + string.digits + '_-')
                   for _ in range(22))


def assert_error_body(r):
    """4xx with a short text/plain body naming the error."""
    assert 400 <= r.status < 500, r
    assert r.headers.get('Content-Type', '').startswith('text/plain'), r
    assert b'ERR_' in r.body and len(r.body) < 1024, r


@pytest.mark.usefixtures('rs_default')
class TestCore:

    def test_rs_200_01_options(self, env):
        r = env.client.options('/files/')        # no Tus-Resumable needed
        assert r.status in (200, 204), r
        assert r.headers.get('Tus-Version') == '1.0.0'
        assert r.headers.get('Tus-Resumable') == '1.0.0'
        assert csv_set(r.headers.get('Tus-Extension')) == EXTENSIONS
        assert csv_set(r.headers.get('Tus-Checksum-Algorithm')) == \
            {'md5', 'sha1', 'sha256', 'sha512'}

    def test_rs_200_02_tus_resumable_everywhere(self, env, tus):
        r = tus.create_resp(length=10)
        assert r.status == 201 and r.headers.get('Tus-Resumable') == '1.0.0', r
        url = r.headers['Location']
        r = tus.head(url)
        assert r.status == 200 and r.headers.get('Tus-Resumable') == '1.0.0', r
        assert r.headers.get('Cache-Control') == 'no-store', r
        r = tus.patch(url, 0, b'0123456789')
        assert r.status == 204 and r.headers.get('Tus-Resumable') == '1.0.0', r
        r = tus.patch(url, 3, b'x')
        assert r.status == 409 and r.headers.get('Tus-Resumable') == '1.0.0', r
        r = tus.delete(url)
        assert r.status == 204 and r.headers.get('Tus-Resumable') == '1.0.0', r
        r = tus.head(url)
        assert r.status == 410 and r.headers.get('Tus-Resumable') == '1.0.0', r
        assert r.headers.get('Cache-Control') == 'no-store', r

    @pytest.mark.parametrize('hdr,value', [
        ('Upload-Length', '10'), ('Upload-Defer-Length', '1'),
        ('Upload-Metadata', 'filename YS50eHQ='), ('Upload-Concat', 'partial'),
    ])
    @pytest.mark.parametrize('version', [None, '0.2.2', '1.0', '2.0.0'])
    def test_rs_200_03_precondition(self, env, hdr, value, version):
        staging = env.staging_dir(env.area_dir('files'))
        before = sorted(staging.rglob('*')) if staging.exists() else []
        h = {hdr: value}
        if hdr != 'Upload-Length':
            h['Upload-Length'] = '10'
        if hdr == 'Upload-Defer-Length':
            del h['Upload-Length']
        if version:
            h['Tus-Resumable'] = version
        r = env.client.request('POST', '/files/', h)
        assert r.status == 412, r
        assert r.headers.get('Tus-Version') == '1.0.0', r
        assert 'Location' not in r.headers
        after = sorted(staging.rglob('*')) if staging.exists() else []
        assert after == before

    def test_rs_200_04_precondition_patch(self, env, tus):
        url = tus.create(length=10)
        r = env.client.request('PATCH', url, {'Upload-Offset': '0', 'Content-Type': OCTET},
                               body=b'01234')
        assert r.status == 412 and r.headers.get('Tus-Version') == '1.0.0', r
        r = env.client.request('PATCH', url, {'Upload-Offset': '0', 'Content-Type': OCTET,
                                              'Tus-Resumable': '0.2.2'}, body=b'01234')
        assert r.status == 412, r
        assert tus.offset(url) == 0

    def test_rs_200_05_plain_post_is_not_tus(self, env):
        r = env.client.request('POST', '/files/', {}, body=b'a=b',)
        assert r.status in (403, 404, 405), r
        r = env.client.request('POST', '/files/', {'Content-Type': 'application/x-www-form-urlencoded'},
                               body=b'a=b')
        assert r.status in (403, 404, 405), r

    def test_rs_200_06_head_fresh(self, env, tus):
        url = tus.create(length=1234, metadata={'filename': 'x.bin', 'flag': None})
        r = tus.head(url)
        assert r.status == 200, r
        assert r.headers.get('Upload-Offset') == '0'
        assert r.headers.get('Upload-Length') == '1234'
        assert 'Upload-Defer-Length' not in r.headers
        assert r.headers.get('Cache-Control') == 'no-store'
        assert r.body == b''

    def test_rs_200_07_head_unknown(self, env, tus):
        r = tus.head('/files/' + random_id())
        assert r.status == 404, r
        assert 'Upload-Offset' not in r.headers

    def test_rs_200_08_patch_chunks(self, env, tus):
        data = make_data(300000, seed=8)
        url = tus.create(length=len(data))
        off = 0
        for n in (100000, 1, 99999, 100000):
            r = tus.patch(url, off, data[off:off + n])
            assert r.status == 204, r
            off += n
            assert r.headers.get('Upload-Offset') == str(off)
            assert r.headers.get('Tus-Resumable') == '1.0.0'
            if off < len(data):     # a complete upload does not expire
                assert 'Upload-Expires' in r.headers, r
            assert r.body == b''
        r = tus.head(url)
        assert r.headers.get('Upload-Offset') == r.headers.get('Upload-Length') == str(len(data))
        r = tus.get(url)
        assert r.status == 200 and sha256(r.body) == sha256(data)
        assert env.sha256_file(env.area_dir('files') / upload_id(url)) == sha256(data)

    @pytest.mark.parametrize('ctype', [None, 'application/octet-stream', 'text/plain',
                                       'application/offset+octet-stream-x'])
    def test_rs_200_09_patch_content_type(self, env, tus, ctype):
        url = tus.create(length=10)
        r = tus.patch(url, 0, b'0123456789', content_type=ctype)
        assert r.status == 415, r
        assert tus.offset(url) == 0

    @pytest.mark.parametrize('offset', [None, '', 'abc', '-1', '1.0', '0x0', '99999999999999999999'])
    def test_rs_200_10_patch_bad_offset(self, env, tus, offset):
        url = tus.create(length=10)
        # a None value leaves the header out
        r = tus.request('PATCH', url, {'Upload-Offset': offset, 'Content-Type': OCTET},
                        body=b'01234')
        assert r.status == 400, r
        assert tus.offset(url) == 0

    def test_rs_200_11_patch_offset_conflict(self, env, tus):
        url = tus.create(length=20)
        assert tus.patch(url, 5, b'abc').status == 409
        assert tus.patch(url, 0, b'0123456789').status == 204
        assert tus.patch(url, 0, b'0123456789').status == 409
        assert tus.patch(url, 11, b'x').status == 409
        assert tus.patch(url, 9, b'x').status == 409
        assert tus.offset(url) == 10

    def test_rs_200_12_patch_too_large(self, env, tus):
        url = tus.create(length=10)
        r = tus.patch(url, 0, b'01234567890')
        assert r.status == 413, r
        assert tus.offset(url) == 0
        assert tus.patch(url, 0, b'01234').status == 204
        r = tus.patch(url, 5, b'567890')
        assert r.status == 413, r
        assert tus.offset(url) == 5
        assert tus.patch(url, 5, b'56789').status == 204
        assert tus.get(url).body == b'0123456789'

    def test_rs_200_13_patch_complete_noop(self, env, tus):
        url = tus.upload(b'0123456789')
        r = tus.patch(url, 10, b'')
        assert r.status == 204 and r.headers.get('Upload-Offset') == '10', r
        r = tus.patch(url, 10, b'x')
        assert r.status == 413, r
        assert tus.get(url).body == b'0123456789'

    def test_rs_200_14_empty_patch_midway(self, env, tus):
        url = tus.create(length=10)
        r = tus.patch(url, 0, b'')
        assert r.status == 204 and r.headers.get('Upload-Offset') == '0', r

    def test_rs_200_15_patch_unknown(self, env, tus):
        r = tus.patch('/files/' + random_id(), 0, b'abc')
        assert r.status == 404, r

    def test_rs_200_16_method_override_patch(self, env, tus):
        url = tus.create(length=10)
        r = tus.request('POST', url, {'X-HTTP-Method-Override': 'PATCH',
                                      'Upload-Offset': '0', 'Content-Type': OCTET},
                        body=b'01234')
        assert r.status == 204 and r.headers.get('Upload-Offset') == '5', r
        r = tus.request('POST', url, {'X-HTTP-Method-Override': 'HEAD'})
        assert r.status == 200 and r.headers.get('Upload-Offset') == '5', r
        assert r.headers.get('Upload-Length') == '10'
        r = tus.request('POST', url, {'X-HTTP-Method-Override': 'DELETE'})
        assert r.status == 204, r
        assert tus.head(url).status == 410

    def test_rs_200_17_large_upload(self, env, tus):
        data = make_data(8 * 1024 * 1024 + 17, seed=17)
        url = tus.upload(data, chunk_size=3 * 1024 * 1024)
        r = tus.get(url)
        assert r.status == 200 and sha256(r.body) == sha256(data)
        assert env.sha256_file(env.area_dir('files') / upload_id(url)) == sha256(data)

    def test_rs_200_18_patch_whole_in_one(self, env, tus):
        data = make_data(65536 * 3 + 5, seed=18)
        url = tus.upload(data)
        assert sha256(tus.get(url).body) == sha256(data)

    def test_rs_200_19_patch_chunked_body(self, env, tus):
        data = make_data(200001, seed=19)
        url = tus.create(length=len(data))
        r = tus.patch(url, 0, data, chunked=True, chunk_size=7000)
        assert r.status == 204 and r.headers.get('Upload-Offset') == str(len(data)), r
        assert sha256(tus.get(url).body) == sha256(data)

    def test_rs_200_20_error_bodies(self, env, tus):
        url = tus.create(length=10)
        assert_error_body(tus.create_resp(length='abc'))                      # 400
        assert_error_body(tus.patch(url, 3, b'abc'))                          # 409
        assert_error_body(tus.patch(url, 0, b'abc', content_type='text/plain'))  # 415
        assert_error_body(tus.patch(url, 0, b'x' * 11))                       # 413
        assert_error_body(tus.patch('/files/' + random_id(), 0, b'x'))       # 404
        assert_error_body(tus.delete('/files/' + random_id()))                # 404
        assert_error_body(tus.get(url))                                       # 409
        r = env.client.request('POST', '/files/', {'Upload-Length': '5'})
        assert_error_body(r)                                                  # 412

    @pytest.mark.parametrize('raw', [
        b'PATCH /files/%s HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n'
        b'Content-Type: application/offset+octet-stream\r\nContent-Length: 3\r\n'
        b'Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
        b'PATCH /files/%s HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n'
        b'Upload-Offset: 3\r\nContent-Type: application/offset+octet-stream\r\n'
        b'Content-Length: 3\r\nConnection: close\r\n\r\nabc',
        b'PATCH /files/%s HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n'
        b'Content-Type: application/offset+octet-stream\r\nContent-Length: -3\r\n'
        b'Connection: close\r\n\r\nabc',
    ], ids=['cl-and-te', 'two-offsets', 'negative-cl'])
    def test_rs_200_21_odd_requests_no_5xx(self, env, tus, raw):
        url = tus.create(length=10)
        s = env.client.connect()
        try:
            s.sendall(raw.replace(b'%s', upload_id(url).encode()))
            r = read_response(s, 'PATCH')
        finally:
            s.close()
        assert 400 <= r.status < 500 or r.status == 204, r
        assert tus.head(url).status == 200

    def test_rs_200_22_odd_header_values_no_5xx(self, env, tus):
        """Odd values in every tus header never make the server fail."""
        url = tus.create(length=100)
        values = ['', '0', '-0', '1e3', '18446744073709551616', '9' * 200, 'x' * 4000,
                  '\u00e9\u00e9', 'final;' + '/files/' * 300, ';;;', ',', 'sha1 ' + 'A' * 3000]
        headers = ['Upload-Length', 'Upload-Offset', 'Upload-Defer-Length',
                   'Upload-Metadata', 'Upload-Concat', 'Upload-Checksum']
        bad = []
        for hdr in headers:
            for v in values:
                for method, target in (('POST', '/files/'), ('PATCH', url), ('HEAD', url)):
                    h = {hdr: v, 'Content-Type': OCTET}
                    if method == 'PATCH' and hdr != 'Upload-Offset':
                        h['Upload-Offset'] = '0'
                    r = tus.request(method, target, h, body=b'' if method == 'HEAD' else b'ab')
                    if r.status >= 500:
                        bad.append((method, hdr, v[:40], r.status))
        assert bad == []
        assert tus.head(url).status == 200
