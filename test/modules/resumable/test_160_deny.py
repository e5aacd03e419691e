"""160: finished files never keep an extension the server could execute
(ResumableDenyExtensions; default php, cgi, shtml, phar, ...)."""
import pytest

from pyrs.client import encode_metadata, make_data, sha256
from pyrs.env import RsArea


def upload(env, area, name, data):
    tus = env.tus(area)
    url = tus.create(length=len(data), metadata=encode_metadata({'filename': name}))
    r = tus.patch(url, 0, data)
    assert r.status == 204, r
    return tus, url


class TestDeny:
    CONF = staticmethod(lambda env: dict(areas=[
        RsArea('/files/', dir=env.area_dir('deny-default')),
        RsArea('/none/', dir=env.area_dir('deny-none'),
               directives=['ResumableDenyExtensions None']),
        RsArea('/exe/', dir=env.area_dir('deny-exe'),
               directives=['ResumableDenyExtensions exe .bat']),
    ]))

    @pytest.mark.parametrize('name,stored', [
        ('shell.php', 'shell_php'), ('a.PHP.jpg', 'a_PHP.jpg'),
        ('run.cgi', 'run_cgi'), ('page.shtml', 'page_shtml'),
        ('lib.phar', 'lib_phar'), ('photo.jpg', 'photo.jpg'),
        ('x.tar.gz', 'x.tar.gz'),
    ])
    def test_rs_160_01_default(self, env, name, stored):
        data = make_data(1000, seed=1601)
        tus, url = upload(env, '/files/', name, data)
        area = env.area_dir('deny-default')
        assert (area / stored).is_file(), env.visible_files(area)
        assert env.sha256_file(area / stored) == sha256(data)
        if stored != name:
            assert not (area / name).exists()
        r = tus.get(url)        # the download still carries the original name
        assert r.status == 200 and name in r.headers['Content-Disposition'], r

    def test_rs_160_02_none(self, env):
        upload(env, '/none/', 'shell.php', b'<?php ?>')
        assert (env.area_dir('deny-none') / 'shell.php').is_file()

    def test_rs_160_03_own_list(self, env):
        upload(env, '/exe/', 'setup.exe', b'MZ')
        upload(env, '/exe/', 'run.bat', b'@echo')
        upload(env, '/exe/', 'page.php', b'<?php ?>')
        assert sorted(env.visible_files(env.area_dir('deny-exe'))) == \
            ['page.php', 'run_bat', 'setup_exe']
