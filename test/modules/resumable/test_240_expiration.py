"""24x: expiration (ResumableExpire 2, ResumableSweepInterval 1)."""
import time
from email.utils import parsedate_to_datetime

import pytest

from pyrs.client import make_data, sha256, upload_id
from pyrs.env import RsArea, wait_for




@pytest.mark.slow
class TestExpiration:
    CONF = dict(areas=[
        RsArea('/files/', dir='expiring', directives=['ResumableExpire 2']),
        RsArea('/keep/', dir='keep', directives=['ResumableExpire Off']),
    ])

    def test_rs_240_01_sweep_removes_untouched(self, env):
        tus = env.tus('/files/')
        area = env.area_dir('expiring')
        url = tus.create(length=100000)
        assert tus.patch(url, 0, make_data(30000, seed=1)).status == 204
        uid = upload_id(url)
        assert env.staged_files(area, uid)
        # nobody touches the upload: the periodic sweep must remove its data
        assert wait_for(lambda: not env.staged_files(area, uid), timeout=10), \
            f'still staged: {env.staged_files(area, uid)}'
        r = tus.head(url)
        assert r.status == 410, r
        r = tus.patch(url, 30000, b'more')
        assert r.status == 410, r

    def test_rs_240_02_head_polling_expires(self, env):
        tus = env.tus('/files/')
        url = tus.create(length=10)
        t0 = time.time()
        assert wait_for(lambda: tus.head(url).status == 410, timeout=10, step=0.5)
        assert time.time() - t0 >= 1.0     # not before its time (1 s granularity)

    def test_rs_240_03_expires_header(self, env):
        tus = env.tus('/files/')
        r = tus.create_resp(length=10)
        now = time.time()
        exp = parsedate_to_datetime(r.headers['Upload-Expires']).timestamp()
        assert now - 1 <= exp <= now + 2 + 2, r.headers['Upload-Expires']
        r2 = tus.patch(r.headers['Location'], 0, b'abc')
        assert r2.status == 204 and 'Upload-Expires' in r2.headers, r2

    def test_rs_240_04_complete_does_not_expire(self, env):
        tus = env.tus('/files/')
        data = make_data(5000, seed=4)
        url = tus.upload(data)
        time.sleep(4.5)
        r = tus.head(url)
        assert r.status == 200, r
        assert r.headers.get('Upload-Offset') == str(len(data))
        r = tus.get(url)
        assert r.status == 200 and sha256(r.body) == sha256(data)
        assert env.sha256_file(env.area_dir('expiring') / upload_id(url)) == sha256(data)

    def test_rs_240_05_expire_off_keeps(self, env):
        tus = env.tus('/keep/')
        url = tus.create(length=100)
        assert tus.patch(url, 0, b'x' * 10).status == 204
        time.sleep(4)
        assert tus.offset(url) == 10
        assert env.staged_files(env.area_dir('keep'), upload_id(url))
