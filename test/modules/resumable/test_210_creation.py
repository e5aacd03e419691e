"""21x: creation, creation-with-upload, creation-defer-length, metadata."""
import re
import time
from email.utils import parsedate_to_datetime

import pytest

from pyrs.client import b64, make_data, sha256, upload_id


def loc_re(env, host=None, area='/files/'):
    base = f'http://{host}' if host else env.url
    return re.compile(rf'^{re.escape(base)}{re.escape(area)}[A-Za-z0-9_-]{{22}}$')


@pytest.mark.usefixtures('rs_default')
class TestCreation:

    def test_rs_210_01_create(self, env, tus):
        r = tus.create_resp(length=100)
        assert r.status == 201, r
        assert loc_re(env).match(r.headers.get('Location', '')), r
        assert r.headers.get('Tus-Resumable') == '1.0.0'
        exp = parsedate_to_datetime(r.headers['Upload-Expires']).timestamp()
        now = time.time()
        # ResumableExpire 1h in the default area
        assert now < exp <= now + 3600 + 60, r.headers['Upload-Expires']

    def test_rs_210_02_ids_unique(self, env, tus):
        ids = {upload_id(tus.create(length=1)) for _ in range(20)}
        assert len(ids) == 20

    def test_rs_210_03_location_from_host(self, env, tus):
        r = tus.create_resp(length=10, headers={'Host': 'example.test:8080'})
        assert r.status == 201, r
        assert loc_re(env, 'example.test:8080').match(r.headers['Location']), r
        r = tus.create_resp(length=10, headers={'Host': 'upload.example'})
        assert loc_re(env, 'upload.example').match(r.headers['Location']), r

    def test_rs_210_04_defer(self, env, tus):
        r = tus.create_resp(defer=True)
        assert r.status == 201, r
        r = tus.head(r.headers['Location'])
        assert r.status == 200
        assert r.headers.get('Upload-Defer-Length') == '1'
        assert 'Upload-Length' not in r.headers
        assert r.headers.get('Upload-Offset') == '0'

    @pytest.mark.parametrize('headers', [
        {'Upload-Length': '10', 'Upload-Defer-Length': '1'},
        {},
        {'Upload-Defer-Length': '0'},
        {'Upload-Defer-Length': '2'},
        {'Upload-Defer-Length': 'yes'},
    ], ids=['both', 'neither', 'defer0', 'defer2', 'deferyes'])
    def test_rs_210_05_length_headers(self, env, tus, headers):
        r = tus.request('POST', '/files/', headers)
        assert r.status == 400, r
        assert 'Location' not in r.headers

    # ' 12' cannot be sent: httpd strips the OWS around header values;
    # '1 2' and '+12' stand for "digits with decoration".
    @pytest.mark.parametrize('value', ['abc', '-1', '1.5', '1 2', '+12', '12abc',
                                       '0x10', '', '99999999999999999999'])
    def test_rs_210_06_bad_length(self, env, tus, value):
        r = tus.request('POST', '/files/', {'Upload-Length': value})
        assert r.status == 400, r

    def test_rs_210_07_zero_length(self, env, tus):
        url = tus.create(length=0)
        r = tus.head(url)
        assert r.status == 200
        assert r.headers.get('Upload-Offset') == '0' and r.headers.get('Upload-Length') == '0'
        r = tus.get(url)
        assert r.status == 200 and r.body == b'', r
        assert r.headers.get('Content-Length') == '0'

    @pytest.mark.parametrize('meta', [
        'filename !!!notbase64', 'filename YS5=eHQ', 'a YQ==,a Yg==', 'a  YQ==',
        'a YQ== b',
    ], ids=['badb64', 'badpadding', 'dupkey', 'doublespace', 'three-parts'])
    def test_rs_210_08_bad_metadata(self, env, tus, meta):
        r = tus.request('POST', '/files/', {'Upload-Length': '10', 'Upload-Metadata': meta})
        assert r.status == 400, r

    @pytest.mark.parametrize('meta', [
        f'filename {b64("report.pdf")},filetype {b64("application/pdf")}',
        'is_confidential',
        f'filename {b64("résumé ✓.pdf")},is_confidential',
        f'a {b64("x")},b {b64("y" * 500)}',
        # far beyond sdbm's ~1 KiB key/value limit: the record is segmented
        f'filename {b64("big.bin")},note {b64("z" * 5000)}',
    ], ids=['two', 'novalue', 'utf8', 'long', 'beyond-sdbm-pair-limit'])
    def test_rs_210_09_metadata_echo(self, env, tus, meta):
        url = tus.create(length=5, metadata=meta)
        r = tus.head(url)
        assert r.status == 200
        assert r.headers.get('Upload-Metadata') == meta, r

    def test_rs_210_10_no_metadata_no_header(self, env, tus):
        r = tus.head(tus.create(length=5))
        assert 'Upload-Metadata' not in r.headers

    def test_rs_210_11_creation_with_upload(self, env, tus):
        data = make_data(50000, seed=11)
        r = tus.create_resp(length=len(data), body=data[:20000])
        assert r.status == 201, r
        assert r.headers.get('Upload-Offset') == '20000', r
        url = r.headers['Location']
        assert tus.offset(url) == 20000
        tus.upload_rest(url, data, 20000)
        assert sha256(tus.get(url).body) == sha256(data)

    def test_rs_210_12_creation_with_whole_upload(self, env, tus):
        data = make_data(3000, seed=12)
        r = tus.create_resp(length=len(data), body=data)
        assert r.status == 201 and r.headers.get('Upload-Offset') == '3000', r
        url = r.headers['Location']
        assert tus.get(url).body == data
        assert env.sha256_file(env.area_dir('files') / upload_id(url)) == sha256(data)

    def test_rs_210_13_creation_with_upload_deferred(self, env, tus):
        r = tus.create_resp(defer=True, body=b'hello ')
        assert r.status == 201 and r.headers.get('Upload-Offset') == '6', r
        url = r.headers['Location']
        r = tus.patch(url, 6, b'world', headers={'Upload-Length': '11'})
        assert r.status == 204, r
        assert tus.get(url).body == b'hello world'

    @pytest.mark.parametrize('ctype', ['text/plain', 'application/octet-stream',
                                       'multipart/form-data; boundary=x'])
    def test_rs_210_14_creation_body_wrong_type(self, env, tus, ctype):
        r = tus.create_resp(length=10, body=b'0123456789', content_type=ctype)
        assert r.status == 415, r
        assert 'Location' not in r.headers

    def test_rs_210_15_creation_body_without_type(self, env, tus):
        r = tus.create_resp(length=10, body=b'0123456789', content_type=None)
        assert r.status == 415, r

    def test_rs_210_16_creation_body_too_large(self, env, tus):
        r = tus.create_resp(length=10, body=b'0123456789A')
        assert r.status == 413, r

    def test_rs_210_17_defer_then_length(self, env, tus):
        data = make_data(30000, seed=17)
        url = tus.create(defer=True)
        assert tus.patch(url, 0, data[:10000]).status == 204
        assert tus.patch(url, 10000, data[10000:20000]).status == 204
        r = tus.head(url)
        assert r.headers.get('Upload-Defer-Length') == '1' and r.headers['Upload-Offset'] == '20000'
        r = tus.patch(url, 20000, data[20000:25000], headers={'Upload-Length': str(len(data))})
        assert r.status == 204, r
        r = tus.head(url)
        assert 'Upload-Defer-Length' not in r.headers, r
        assert r.headers.get('Upload-Length') == str(len(data))
        r = tus.patch(url, 25000, data[25000:], headers={'Upload-Length': '99999'})
        assert r.status == 400, r
        assert tus.offset(url) == 25000
        assert tus.patch(url, 25000, data[25000:]).status == 204
        assert sha256(tus.get(url).body) == sha256(data)

    def test_rs_210_18_defer_length_on_empty_patch(self, env, tus):
        url = tus.create(defer=True)
        assert tus.patch(url, 0, b'abc').status == 204
        r = tus.patch(url, 3, b'', headers={'Upload-Length': '3'})
        assert r.status == 204, r
        assert tus.get(url).body == b'abc'

    def test_rs_210_19_defer_length_below_offset(self, env, tus):
        url = tus.create(defer=True)
        assert tus.patch(url, 0, b'abcdef').status == 204
        r = tus.patch(url, 6, b'', headers={'Upload-Length': '4'})
        assert r.status == 400, r
        r = tus.head(url)
        assert r.headers.get('Upload-Defer-Length') == '1', r

    def test_rs_210_20_length_beyond_defer_patch(self, env, tus):
        """Data beyond the length set in the same PATCH: 413, nothing moves."""
        url = tus.create(defer=True)
        r = tus.patch(url, 0, b'abcdef', headers={'Upload-Length': '4'})
        assert r.status in (400, 413), r
        assert tus.offset(url) == 0
