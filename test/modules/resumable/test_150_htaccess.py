"""1xx: areas made by .htaccess files; .htaccess may only lower the size
limit of the server, and may not set ResumableDir."""
from pyrs.client import make_data, sha256
from pyrs.env import RsArea


class TestHtaccess:
    CONF = dict(
        server_extra='ResumableMaxSize 1M',
        areas=[
            RsArea('/ht1k/', kind='htaccess', directives=['ResumableMaxSize 1K']),
            RsArea('/ht10m/', kind='htaccess', directives=['ResumableMaxSize 10M']),
            RsArea('/htplain/', kind='htaccess', directives=[]),
            RsArea('/htdir/', kind='htaccess',
                   htaccess='SetHandler resumable\nResumableDir /tmp\n'),
            RsArea('/htpub/', kind='htaccess',
                   htaccess='SetHandler resumable\nResumablePublish Public\n',
                   files={'up.html': '<script>1</script>'}),
        ])
    ALLOW_ERRORS = dict(patterns=[r'\.htaccess: .*ResumableDir',
                                  r'ResumableDir.*not allowed',
                                  r'\.htaccess: .*ResumablePublish'])

    def test_rs_150_01_lowered_limit(self, env):
        tus = env.tus('/ht1k/')
        r = tus.options()
        assert r.headers.get('Tus-Max-Size') == '1024', r
        assert tus.create_resp(length=2048).status == 413
        data = make_data(1000, seed=1)
        url = tus.upload(data)
        assert url.startswith(f'{env.url}/ht1k/')
        assert tus.get(url).body == data
        uid = url.rsplit('/', 1)[1]
        assert env.sha256_file(env.docroot / 'ht1k' / uid) == sha256(data)

    def test_rs_150_02_cannot_raise_limit(self, env):
        tus = env.tus('/ht10m/')
        r = tus.options()
        assert r.headers.get('Tus-Max-Size') == str(1024 * 1024), r
        assert tus.create_resp(length=2 * 1024 * 1024).status == 413
        assert tus.create_resp(length=1024 * 1024 + 1).status == 413
        assert tus.create_resp(length=512 * 1024).status == 201

    def test_rs_150_03_server_limit_inherited(self, env):
        tus = env.tus('/htplain/')
        assert tus.options().headers.get('Tus-Max-Size') == str(1024 * 1024)
        assert tus.create_resp(length=1024 * 1024 + 1).status == 413
        data = make_data(3000, seed=3)
        url = tus.upload(data)
        assert tus.get(url).body == data

    def test_rs_150_04_resumabledir_not_allowed(self, env):
        r = env.tus('/htdir/').create_resp(length=10)
        assert r.status == 500, r
        r = env.client.options('/htdir/')
        assert r.status == 500, r

    def test_rs_150_05_publish_not_from_htaccess(self, env):
        # only the admin makes an area's files public: .htaccess can not
        r = env.client.get('/htpub/up.html')
        assert r.status == 500 and b'script' not in r.body, r
        r = env.tus('/htpub/').create_resp(length=10)
        assert r.status == 500, r
