"""1xx: what the directives do at run time."""
import pytest

from pyrs.client import make_data, sha256
from pyrs.env import RsArea

EXTENSIONS = {'creation', 'creation-with-upload', 'creation-defer-length',
              'expiration', 'checksum', 'checksum-trailer', 'termination',
              'concatenation', 'concatenation-unfinished'}


def ext_set(r):
    return {e.strip() for e in r.headers.get('Tus-Extension', '').split(',') if e.strip()}


class TestAreaDirectives:
    CONF = dict(
        server_extra='ResumableWriteBuffer 4K',
        areas=[
            RsArea('/p-tus/', dir='p-tus', directives=['ResumableProtocols tus']),
            RsArea('/p-all/', dir='p-all', directives=['ResumableProtocols all']),
            RsArea('/max1k/', dir='max1k', directives=['ResumableMaxSize 1K']),
            RsArea('/max5m/', dir='max5m', directives=['ResumableMaxSize 5M']),
            RsArea('/noexp/', dir='noexp', directives=['ResumableExpire Off']),
            RsArea('/exp1h/', dir='exp1h', directives=['ResumableExpire 1h']),
            RsArea('/sync/', dir='sync', directives=['ResumableSync On']),
        ])

    @pytest.mark.parametrize('area', ['/p-tus/', '/p-all/'])
    def test_rs_110_01_protocols(self, env, area):
        tus = env.tus(area)
        r = tus.options()
        assert r.status in (200, 204), r
        assert r.headers.get('Tus-Version') == '1.0.0'
        data = make_data(2000, seed=1)
        url = tus.upload(data)
        assert url.startswith(f'{env.url}{area}')
        assert tus.get(url).body == data

    @pytest.mark.parametrize('area,limit', [('/max1k/', 1024), ('/max5m/', 5 * 1024 * 1024)])
    def test_rs_110_02_max_size(self, env, area, limit):
        tus = env.tus(area)
        r = tus.options()
        assert r.headers.get('Tus-Max-Size') == str(limit), r
        assert tus.create_resp(length=limit + 1).status == 413
        assert tus.create_resp(length=limit).status == 201

    def test_rs_110_03_max_size_deferred(self, env):
        """A deferred upload cannot grow beyond the limit either."""
        tus = env.tus('/max1k/')
        url = tus.create(defer=True)
        r = tus.patch(url, 0, make_data(1025, seed=3))
        assert r.status == 413, r
        assert tus.offset(url) == 0
        r = tus.patch(url, 0, make_data(1000, seed=3))
        assert r.status == 204, r
        r = tus.patch(url, 1000, b'x' * 100, headers={'Upload-Length': '1100'})
        assert r.status == 413, r

    def test_rs_110_04_expire_off(self, env):
        tus = env.tus('/noexp/')
        assert ext_set(tus.options()) == EXTENSIONS - {'expiration'}
        r = tus.create_resp(length=10)
        assert r.status == 201 and 'Upload-Expires' not in r.headers, r
        r = tus.patch(r.headers['Location'], 0, b'01234')
        assert r.status == 204 and 'Upload-Expires' not in r.headers, r

    def test_rs_110_05_expire_on(self, env):
        tus = env.tus('/exp1h/')
        assert ext_set(tus.options()) == EXTENSIONS
        r = tus.create_resp(length=10)
        assert r.status == 201 and 'Upload-Expires' in r.headers, r

    def test_rs_110_06_sync_and_small_write_buffer(self, env):
        tus = env.tus('/sync/')
        data = make_data(1000003, seed=6)
        url = tus.upload(data, chunk_size=333331)
        assert sha256(tus.get(url).body) == sha256(data)
        uid = url.rsplit('/', 1)[1]
        assert env.sha256_file(env.area_dir('sync') / uid) == sha256(data)

    def test_rs_110_07_odd_chunks_with_small_write_buffer(self, env):
        tus = env.tus('/p-tus/')
        data = make_data(70001, seed=7)
        url = tus.create(length=len(data))
        off = 0
        for n in (1, 4095, 4097, 1, 8192, 20000):
            assert tus.patch(url, off, data[off:off + n]).status == 204
            off += n
        tus.upload_rest(url, data, off)
        assert sha256(tus.get(url).body) == sha256(data)
