"""93x: resumablectl against state made by a real httpd: list, show,
verify, repair, expire (rebuild: test_920). Reading commands run while
httpd runs; writing ones with httpd stopped, as documented."""
import os
import time

from pyrs.client import make_data, sha256, upload_id
from pyrs.ctl import resumablectl
from pyrs.env import RsArea


def db_path(env):
    return env.gen / 'state930' / 'state'


def conf(env):
    env.mkdir_www(db_path(env).parent)
    return dict(areas=[RsArea('/files/', dir='ctl930',
                              directives=['ResumableExpire 1h']),
                       RsArea('/short/', dir='ctl930s',
                              directives=['ResumableExpire 2'])],
                statedb=str(db_path(env)), sweep=None)


def ctl(env, *args):
    return resumablectl(env, db_path(env), *args)


class TestCtl:
    CONF = conf

    def test_rs_930_01_usage(self, env):
        assert ctl(env)[0] == 2
        assert ctl(env, 'frobnicate')[0] == 2
        assert ctl(env, 'show')[0] == 2
        assert ctl(env, 'list', 'extra')[0] == 2
        rc, out = resumablectl(env, env.gen / 'nonexistent' / 'db', 'list')
        assert rc == 2 and 'no state database' in out, out

    def test_rs_930_02_list_show_verify(self, env):
        tus = env.tus('/files/')
        done = make_data(5000, seed=9302)
        u1 = tus.upload(done, metadata={'filename': 'done.txt'})
        half = make_data(8000, seed=9303)
        u2 = tus.create(length=len(half), metadata={'filename': 'half.bin'})
        assert tus.patch(u2, 0, half[:3000]).status == 204
        rc, out = ctl(env, 'list')
        assert rc == 0, out
        lines = {ln.split()[0]: ln.split() for ln in out.splitlines()[1:]}
        assert lines[upload_id(u1)][1:3] == ['complete', '5000/5000']
        assert int(lines[upload_id(u1)][3]) >= 0
        assert lines[upload_id(u1)][-1] == 'done.txt'
        assert lines[upload_id(u2)][1:3] == ['active', '3000/8000']
        rc, out = ctl(env, 'show', upload_id(u2))
        assert rc == 0, out
        assert 'filename:     half.bin' in out and 'data file:    3000' in out, out
        assert str(env.area_dir('ctl930')) in out
        assert ctl(env, 'show', 'A' * 22)[0] == 2
        rc, out = ctl(env, 'verify')
        assert rc == 0 and ' 0 problems' in out, out

    def test_rs_930_03_verify_repair(self, env):
        """Damage made with httpd stopped: verify names it, repair fixes it,
        the server then agrees (offset lowered, removed uploads 410)."""
        tus = env.tus('/files/')
        area = env.area_dir('ctl930')
        data = make_data(10000, seed=9304)
        ahead = tus.create(length=len(data))
        assert tus.patch(ahead, 0, data[:6000]).status == 204
        nodata = tus.create(length=100)
        assert tus.patch(nodata, 0, b'x' * 50).status == 204
        pub = tus.upload(b'published', metadata={'filename': 'pub930.txt'})
        env.stop()
        with open(env.staged_data_file(area, upload_id(ahead)), 'r+b') as f:
            f.truncate(2500)
        os.unlink(env.staged_data_file(area, upload_id(nodata)))
        os.unlink(area / 'pub930.txt')
        rc, out = ctl(env, 'verify')
        assert rc == 1, out
        assert f'{upload_id(ahead)}: offset 6000 is ahead of the data file (2500 bytes)' in out
        assert f'{upload_id(nodata)}: data file is missing' in out
        assert f'{upload_id(pub)}: published file is missing' in out
        rc, out = ctl(env, 'repair')
        assert rc == 0 and '3 problems, 3 repaired' in out, out
        rc, out = ctl(env, 'verify')
        assert rc == 0 and ' 0 problems' in out, out
        env.start()
        assert tus.offset(ahead) == 2500
        assert tus.patch(ahead, 2500, data[2500:]).status == 204
        assert sha256(tus.get(ahead).body) == sha256(data)
        assert tus.head(nodata).status == 410
        assert tus.head(pub).status == 410

    def test_rs_930_04_expire(self, env):
        """expire removes uploads whose expiry passed (httpd stopped, no
        sweep of its own in this class) and leaves a tombstone (410)."""
        tus = env.tus('/short/')
        keep = env.tus('/files/').create(length=10)
        url = tus.create(length=10)
        assert tus.patch(url, 0, b'abc').status == 204
        env.stop()
        time.sleep(3)
        rc, out = ctl(env, 'expire')
        assert rc == 0 and 'expire: 1 uploads removed' in out, out
        assert env.staged_data_file(env.area_dir('ctl930s'), upload_id(url)) is None
        rc, out = ctl(env, 'list')
        assert upload_id(url) not in out and upload_id(keep) in out, out
        env.start()
        assert tus.head(url).status == 410
        assert env.tus('/files/').head(keep).status == 200
