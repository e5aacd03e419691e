"""3xx: downloads of finished uploads and the files they leave on disk."""
import re
import time
from email.utils import parsedate_to_datetime
from urllib.parse import unquote

import pytest

from pyrs.client import make_data, sha256, split_url, upload_id
from pyrs.env import RsArea

AREA = 'downloads'


def disposition(r):
    cd = r.headers.get('Content-Disposition', '')
    kind = cd.split(';', 1)[0].strip().lower()
    m = re.search(r"filename\*=UTF-8''([^;\s]+)", cd, re.I)
    star = unquote(m.group(1), encoding='utf-8') if m else None
    m = re.search(r'filename="((?:[^"\\]|\\.)*)"', cd)
    plain = m.group(1) if m else None
    return kind, plain, star, cd


def parse_multipart(r):
    ctype = r.headers['Content-Type']
    assert ctype.startswith('multipart/byteranges'), ctype
    boundary = re.search(r'boundary="?([^";]+)"?', ctype).group(1).encode()
    parts = []
    for chunk in r.body.split(b'--' + boundary)[1:]:
        if chunk.startswith(b'--'):
            break
        head, _, body = chunk.lstrip(b'\r\n').partition(b'\r\n\r\n')
        crange = re.search(rb'Content-Range:\s*bytes (\d+)-(\d+)/(\d+)', head, re.I)
        assert crange, head
        parts.append((int(crange.group(1)), int(crange.group(2)), body[:-2] if body.endswith(b'\r\n') else body))
    return parts


class TestDownload:
    CONF = dict(areas=[RsArea('/files/', dir=AREA)])

    def up(self, env, data, meta=None):
        return env.tus('/files/').upload(data, metadata=meta)

    def area(self, env):
        return env.area_dir(AREA)

    def test_rs_300_01_get(self, env):
        data = make_data(123457, seed=1)
        t0 = time.time()
        url = self.up(env, data)
        r = env.client.get(url)            # plain GET, no tus headers
        assert r.status == 200, r
        assert sha256(r.body) == sha256(data)
        assert r.headers.get('Content-Length') == str(len(data))
        assert r.headers.get('Accept-Ranges') == 'bytes'
        assert r.headers.get('ETag'), r
        assert env.client.get(url).headers.get('ETag') == r.headers['ETag']
        lm = parsedate_to_datetime(r.headers['Last-Modified']).timestamp()
        assert t0 - 2 <= lm <= time.time() + 1
        assert r.headers.get('Content-Type') == 'application/octet-stream'
        assert env.sha256_file(self.area(env) / upload_id(url)) == sha256(data)

    @pytest.mark.parametrize('ftype', ['image/png', 'application/pdf', 'text/csv'])
    def test_rs_300_02_content_type(self, env, ftype):
        url = self.up(env, b'data', {'filetype': ftype})
        r = env.client.get(url)
        assert r.status == 200
        assert r.headers.get('Content-Type', '').split(';')[0].strip() == ftype, r

    def test_rs_300_03_utf8_filename(self, env):
        name = 'résumé ✓.pdf'
        url = self.up(env, b'%PDF-1.4 fake', {'filename': name})
        r = env.client.get(url)
        kind, plain, star, cd = disposition(r)
        assert kind == 'attachment', cd
        assert star == name, cd
        assert "filename*=UTF-8''r%C3%A9sum%C3%A9%20%E2%9C%93.pdf" in cd, cd
        assert plain is not None, cd
        assert all(32 <= ord(c) < 127 for c in plain), cd
        assert cd.isascii()

    def test_rs_300_04_ascii_filename(self, env):
        url = self.up(env, b'x,y\n', {'filename': 'table.csv', 'filetype': 'text/csv'})
        kind, plain, star, cd = disposition(env.client.get(url))
        assert plain == 'table.csv' and star == 'table.csv', cd

    def test_rs_300_05_quote_in_filename(self, env):
        url = self.up(env, b'hi', {'filename': 'say "hi".txt'})
        kind, plain, star, cd = disposition(env.client.get(url))
        # one well-formed header: quoted filename (quotes escaped or
        # replaced) and a percent-encoded filename*
        assert re.fullmatch(r'attachment; filename="(?:[^"\\]|\\.)*"; '
                            r"filename\*=UTF-8''[A-Za-z0-9!#$&+.^_`|~%-]+", cd), cd
        assert star is not None and star.endswith('.txt'), cd

    @pytest.mark.parametrize('ftype,kind', [
        ('image/png', 'inline'), ('text/plain', 'inline'),
        ('text/html', 'attachment'), ('image/svg+xml', 'attachment'),
        ('application/octet-stream', 'attachment'),
    ])
    def test_rs_300_06_inline(self, env, ftype, kind):
        url = self.up(env, b'content', {'filename': 'f.bin', 'filetype': ftype})
        got, _p, _s, cd = disposition(env.client.get(url))
        assert got == kind, cd

    def test_rs_300_07_range(self, env):
        data = make_data(1000, seed=7)
        url = self.up(env, data)
        r = env.client.get(url, {'Range': 'bytes=0-9'})
        assert r.status == 206, r
        assert r.body == data[:10]
        assert r.headers.get('Content-Range') == 'bytes 0-9/1000'
        r = env.client.get(url, {'Range': 'bytes=-10'})
        assert r.status == 206 and r.body == data[-10:]
        r = env.client.get(url, {'Range': 'bytes=990-'})
        assert r.status == 206 and r.body == data[990:]

    def test_rs_300_08_multi_range(self, env):
        data = make_data(1000, seed=8)
        url = self.up(env, data)
        r = env.client.get(url, {'Range': 'bytes=0-9,500-509'})
        assert r.status == 206, r
        parts = parse_multipart(r)
        assert [(a, b) for a, b, _ in parts] == [(0, 9), (500, 509)]
        assert parts[0][2] == data[0:10] and parts[1][2] == data[500:510]

    def test_rs_300_09_if_range(self, env):
        data = make_data(1000, seed=9)
        url = self.up(env, data)
        etag = env.client.get(url).headers['ETag']
        r = env.client.get(url, {'Range': 'bytes=0-9', 'If-Range': '"not-the-etag"'})
        assert r.status == 200 and r.body == data, r.status
        if not etag.startswith('W/'):
            r = env.client.get(url, {'Range': 'bytes=0-9', 'If-Range': etag})
            assert r.status == 206 and r.body == data[:10]

    def test_rs_300_10_head_plain(self, env):
        data = make_data(4321, seed=10)
        url = self.up(env, data)
        r = env.client.head(url)           # no Tus-Resumable
        assert r.status == 200, r
        assert r.headers.get('Content-Length') == '4321'
        assert r.body == b''

    def test_rs_300_11_incomplete(self, env):
        tus = env.tus('/files/')
        url = tus.create(length=10)
        assert tus.patch(url, 0, b'01234').status == 204
        assert env.client.get(url).status == 409
        assert tus.get(url).status == 409

    def test_rs_300_12_unknown(self, env):
        assert env.client.get('/files/' + 'u' * 22).status == 404
        assert env.client.get('/files/nonexistent-not-an-id').status == 404

    @pytest.mark.parametrize('name,expect', [
        ('../../etc/x.txt', 'x.txt'),
        ('/abs/path/abs.txt', 'abs.txt'),
    ])
    def test_rs_300_13_sanitized_name(self, env, name, expect):
        area = self.area(env)
        data = make_data(100, seed=13)
        self.up(env, data, {'filename': name})
        assert (area / expect).is_file(), env.visible_files(area)
        assert (area / expect).read_bytes() == data
        assert not (area.parent / expect).exists()
        assert not (area.parent.parent / 'etc').exists()

    def test_rs_300_14_dot_name(self, env):
        area = self.area(env)
        before = set(env.visible_files(area))
        data = b'Require all denied\n'
        url = self.up(env, data, {'filename': '.htaccess'})
        assert not (area / '.htaccess').exists()
        new = set(env.visible_files(area)) - before
        assert len(new) == 1, new
        name = new.pop()
        assert not name.startswith('.')
        assert (area / name).read_bytes() == data
        assert env.client.get(url).body == data

    def test_rs_300_15_no_overwrite(self, env):
        area = self.area(env)
        a, b, c = b'first', b'second', b'third'
        self.up(env, a, {'filename': 'dup.txt'})
        self.up(env, b, {'filename': 'dup.txt'})
        assert (area / 'dup.txt').read_bytes() == a
        assert (area / 'dup (1).txt').read_bytes() == b
        before = set(env.visible_files(area))
        self.up(env, c, {'filename': 'dup.txt'})
        new = set(env.visible_files(area)) - before
        assert len(new) == 1 and (area / new.pop()).read_bytes() == c
        assert (area / 'dup.txt').read_bytes() == a
        assert (area / 'dup (1).txt').read_bytes() == b

    def test_rs_300_16_name_without_extension(self, env):
        area = self.area(env)
        self.up(env, b'1', {'filename': 'README'})
        self.up(env, b'2', {'filename': 'README'})
        assert (area / 'README').read_bytes() == b'1'
        assert (area / 'README (1)').read_bytes() == b'2'

    def test_rs_300_17_named_after_id(self, env):
        data = make_data(77, seed=17)
        url = self.up(env, data, {'filetype': 'text/plain'})
        assert (self.area(env) / upload_id(url)).read_bytes() == data

    def test_rs_300_18_download_keeps_working_after_rename(self, env):
        """The upload URL serves the data, whatever the file on disk is named."""
        data = make_data(2048, seed=18)
        url = self.up(env, data, {'filename': 'served.bin'})
        assert env.client.get(url).body == data
        assert split_url(url)[0].startswith('/files/')
