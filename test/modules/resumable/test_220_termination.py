"""22x: termination (DELETE)."""
import pytest

from pyrs.client import make_data, upload_id


@pytest.mark.usefixtures('rs_default')
class TestTermination:

    def test_rs_220_01_delete(self, env, tus):
        data = make_data(50000, seed=1)
        url = tus.create(length=100000)
        assert tus.patch(url, 0, data).status == 204
        uid = upload_id(url)
        area = env.area_dir('files')
        assert env.staged_files(area, uid), 'no staged data file for the upload'
        r = tus.delete(url)
        assert r.status == 204, r
        assert r.headers.get('Tus-Resumable') == '1.0.0'
        assert r.body == b''
        assert tus.head(url).status == 410
        r = tus.patch(url, 50000, data)
        assert r.status == 410, r
        assert env.staged_files(area, uid) == []

    def test_rs_220_02_delete_unknown(self, env, tus):
        r = tus.delete('/files/' + 'Q' * 22)
        assert r.status == 404, r

    def test_rs_220_03_delete_twice(self, env, tus):
        url = tus.create(length=10)
        assert tus.delete(url).status == 204
        assert tus.delete(url).status == 410

    def test_rs_220_04_delete_fresh(self, env, tus):
        url = tus.create(defer=True)
        assert tus.delete(url).status == 204
        assert tus.head(url).status == 410
        assert env.staged_files(env.area_dir('files'), upload_id(url)) == []

    def test_rs_220_05_delete_complete(self, env, tus):
        url = tus.upload(b'complete data')
        assert tus.delete(url).status == 204
        assert tus.head(url).status == 410
        assert tus.get(url).status in (404, 410)

    def test_rs_220_06_delete_needs_version(self, env, tus):
        """DELETE with a wrong Tus-Resumable is refused, nothing deleted."""
        url = tus.create(length=10)
        r = env.client.request('DELETE', url, {'Tus-Resumable': '0.2.2'})
        assert r.status == 412, r
        assert tus.head(url).status == 200
