"""965: an area's directory is not served by name (ResumablePublish
Private) through any path that reaches it, not only the configured
spelling: an Alias (or DocumentRoot) through a symlink to the directory,
or to a symlinked parent of it, gets 404 for the finished files, the
staging folder and the state database, like the direct path."""
import os
import time

from pyrs.env import BASE_MODULES, RsArea


def links(env):
    d = env.gen / 'links965'
    d.mkdir(parents=True, exist_ok=True)
    real = env.area_dir('pub965')
    for name, target in (('l965', real), ('parent965', real.parent),
                         ('db965', env.statedb.parent)):
        p = d / name
        if not p.is_symlink():
            os.symlink(target, p)
    return d


def conf(env):
    d = links(env)
    extra = f'''
Alias "/vialink/" "{d}/l965/"
Alias "/viaparent/" "{d}/parent965/"
Alias "/direct/" "{env.area_dir('pub965')}/"
Alias "/viadb/" "{d}/db965/"
<Directory "{d}">
    Options FollowSymLinks
    Require all granted
</Directory>
<Directory "{env.area_dir('pub965')}">
    Options FollowSymLinks
    Require all granted
</Directory>
'''
    return dict(areas=[RsArea('/files/', dir='pub965',
                              directives=['ResumableExpire 1h'])],
                extra=extra, modules=BASE_MODULES + ['alias'])


def published(path, timeout=10):
    end = time.time() + timeout
    while not path.exists() and time.time() < end:
        time.sleep(0.05)
    return path.exists()


class TestStoreAliases:
    CONF = staticmethod(conf)

    def test_rs_965_01_symlinked_paths(self, env):
        tus = env.tus('/files/')
        secret = b'alice secret 965'
        url = tus.create(length=len(secret),
                         metadata={'filename': 'secret965.txt'})
        tus.patch(url, 0, secret)
        area = env.area_dir('pub965')
        assert published(area / 'secret965.txt')
        staged = [n for n in os.listdir(area / '.resumable')]
        paths = ['/direct/secret965.txt', '/vialink/secret965.txt',
                 '/viaparent/pub965/secret965.txt', '/vialink/',
                 '/vialink/.resumable/', '/viaparent/pub965/.resumable/']
        for path in paths + [f'/vialink/.resumable/{n}' for n in staged]:
            r = env.client.get(path)
            assert r.status == 404, (path, r.status, r.body[:100])
            assert secret not in r.body, path

    def test_rs_965_02_statedb_through_symlink(self, env):
        """The state database (every upload's id, owner and name) through
        an Alias on a symlink to its directory: 404 for each of its files."""
        env.tus('/files/').upload(b'x', metadata={'filename': 'db965.txt'})
        db = env.statedb
        names = [n for n in os.listdir(db.parent) if n.startswith(db.name)]
        assert any(n.endswith('.pag') for n in names), names
        for n in names:
            r = env.client.get(f'/viadb/{n}')
            assert r.status == 404, (n, r.status)
