"""1xx: areas made by <Directory> sections (no ResumableDir: the area is
the directory itself) and what falls through to httpd there."""
import re

from pyrs.client import make_data, sha256
from pyrs.env import RsArea


class TestDirectoryArea:
    CONF = dict(areas=[
        RsArea('/up/', kind='directory', directives=['ResumableExpire 1h'],
               files={'hello.txt': 'hello static\n'}),
        RsArea('/files/', dir='files-beside'),
        RsArea('/pub/', kind='directory', directives=['ResumablePublish Public'],
               files={'hello.txt': 'hello static\n',
                      'page.html': '<script>alert(1)</script>\n'}),
    ])

    def test_rs_120_01_options(self, env):
        r = env.tus('/up/').options()
        assert r.status in (200, 204) and r.headers.get('Tus-Version') == '1.0.0', r

    def test_rs_120_02_upload_lands_in_directory(self, env):
        tus = env.tus('/up/')
        data = make_data(12345, seed=2)
        url = tus.upload(data)
        assert re.match(rf'^{re.escape(env.url)}/up/[A-Za-z0-9_-]{{22}}$', url), url
        uid = url.rsplit('/', 1)[1]
        assert sha256(tus.get(url).body) == sha256(data)
        assert env.sha256_file(env.docroot / 'up' / uid) == sha256(data)

    def test_rs_120_03_static_file_falls_through(self, env):
        # the area's directory is not served by name (ResumablePublish
        # Private, the default): a file there is a 404 like a missing one
        r = env.client.get('/up/hello.txt')
        assert r.status == 404 and b'hello' not in r.body, r
        # ResumablePublish Public: httpd serves it, never as active content
        r = env.client.get('/pub/hello.txt')
        assert r.status == 200 and r.body == b'hello static\n', r
        assert r.headers.get('X-Content-Type-Options') == 'nosniff', r
        assert 'sandbox' in r.headers.get('Content-Security-Policy', ''), r
        assert r.headers.get('Content-Disposition') == 'inline', r
        r = env.client.get('/pub/page.html')
        assert r.status == 200 and r.body.startswith(b'<script>'), r
        assert r.headers.get('Content-Disposition') == 'attachment', r
        assert r.headers.get('X-Content-Type-Options') == 'nosniff', r
        assert 'sandbox' in r.headers.get('Content-Security-Policy', ''), r

    def test_rs_120_04_missing_file_404(self, env):
        assert env.client.get('/up/nothing-here.txt').status == 404
        # valid id syntax, unknown upload: 404 as well
        assert env.client.get('/up/' + 'A' * 22).status == 404

    def test_rs_120_05_not_an_id_in_location(self, env):
        r = env.client.get('/files/nonexistent-not-an-id')
        assert r.status == 404, r
        r = env.tus('/files/').head('/files/nonexistent-not-an-id')
        assert r.status == 404 and 'Upload-Offset' not in r.headers, r
