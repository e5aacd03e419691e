"""264: the sdbm state database kept open across transactions (issue 15,
rs_store.c "KEPT OPEN"): each httpd child keeps its handles, and still
sees every other child's writes at once; a database replaced under the
running server (an older copy renamed over it) is what the next request
reads, not the kept files; a graceful restart keeps everything."""
import http.client
import shutil

from pyrs.client import make_data
from pyrs.env import RsArea

AREA = 'db264'
TUS = {'Tus-Resumable': '1.0.0'}
OCTET = {'Content-Type': 'application/offset+octet-stream'}


def db_path(env):
    return env.gen / 'state264' / 'state'


def db_files(env):
    return [db_path(env).with_suffix('.dir'), db_path(env).with_suffix('.pag')]


def conf(env):
    env.mkdir_www(db_path(env).parent)
    return dict(areas=[RsArea('/files/', dir=AREA,
                              directives=['ResumableExpire 1h'])],
                statedb=str(db_path(env)))


class Conn:
    """A keep-alive connection and the httpd child serving it."""

    def __init__(self, env):
        self.c = http.client.HTTPConnection(env.host, env.port, timeout=20)
        self.req('OPTIONS', '/files/')          # a child has accepted it
        self.child = env.child_for_connection(self.c.sock)

    def req(self, method, path, headers=None, body=None):
        self.c.request(method, path, body=body, headers=dict(TUS, **(headers or {})))
        r = self.c.getresponse()
        r.read()
        return r

    def close(self):
        self.c.close()


def two_children(env, tries=40):
    """Two connections served by different children (bounded tries)."""
    conns, found = [], None
    try:
        for _ in range(tries):
            c = Conn(env)
            conns.append(c)
            others = [o for o in conns[:-1] if o.child and o.child != c.child]
            if c.child and others:
                found = (others[0], c)
                break
    finally:
        for c in conns:
            if not found or c not in found:
                c.close()
    assert found, 'no two children served the connections'
    return found


def offset(conn, path):
    r = conn.req('HEAD', path)
    assert r.status == 200, r.status
    return int(r.getheader('Upload-Offset'))


class TestKeptOpen:
    CONF = conf

    def test_rs_264_01_children_see_each_others_writes(self, env):
        a, b = two_children(env)
        data = make_data(8 * 1000, seed=264)
        try:
            r = a.req('POST', '/files/', {'Upload-Length': str(len(data))})
            assert r.status == 201, r.status
            path = '/' + r.getheader('Location').split('://', 1)[1].split('/', 1)[1]
            for i in range(8):                  # turns: a, b, a, b ...
                w, o = (a, b) if i % 2 == 0 else (b, a)
                assert offset(o, path) == i * 1000
                r = w.req('PATCH', path, dict(OCTET, **{
                    'Upload-Offset': str(i * 1000)}), data[i * 1000:(i + 1) * 1000])
                assert r.status == 204, (i, r.status)
                assert offset(o, path) == (i + 1) * 1000, i
            assert a.req('GET', path).status == 200
        finally:
            a.close()
            b.close()

    def test_rs_264_02_database_replaced_under_the_server(self, env):
        tus = env.tus('/files/')
        kept = tus.create(length=10)            # every child has the files open
        for f in db_files(env):
            shutil.copy2(f, str(f) + '.old')
        a, b = two_children(env)
        try:
            r = a.req('POST', '/files/', {'Upload-Length': '5'})
            assert r.status == 201
            path = '/' + r.getheader('Location').split('://', 1)[1].split('/', 1)[1]
            assert b.req('HEAD', path).status == 200
            # an older copy renamed over the files (as a restore would):
            # the upload made since is not in it
            for f in db_files(env):
                env.chown_www(str(f) + '.old')
                (f.parent / (f.name + '.old')).rename(f)
            assert a.req('HEAD', path).status == 404
            assert b.req('HEAD', path).status == 404
            r = b.req('PATCH', path, dict(OCTET, **{'Upload-Offset': '0'}), b'12345')
            assert r.status == 404, r.status
            assert tus.head(kept).status == 200  # the copy has that one
            # and writes go to the new files
            r = b.req('POST', '/files/', {'Upload-Length': '3'})
            assert r.status == 201
            p2 = '/' + r.getheader('Location').split('://', 1)[1].split('/', 1)[1]
            assert a.req('HEAD', p2).status == 200
        finally:
            a.close()
            b.close()

    def test_rs_264_03_graceful_restart(self, env):
        tus = env.tus('/files/')
        data = make_data(3000, seed=2643)
        url = tus.create(length=len(data))
        assert tus.patch(url, 0, data[:1000]).status == 204
        env.graceful()
        assert int(tus.head(url).headers['Upload-Offset']) == 1000
        assert tus.patch(url, 1000, data[1000:]).status == 204
        assert tus.get(url).body == data
