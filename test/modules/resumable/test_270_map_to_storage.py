"""270: ResumableMapToStorage Off (issue 15): the upload URLs of a
<Location> area with SetHandler resumable and its own ResumableDir skip
httpd's directory walk (no stat of each component of DocumentRoot + URI),
as mod_proxy's URLs do. Access control of <Location> still applies, areas
made by <Directory> sections or .htaccess still walk, the state-db guard
still refuses, and the directive is refused where it could never apply
(<Directory>, <Files>, .htaccess). Each skip is logged at trace1 as
RS09970: the tests that check that something still works also check that
the walk was skipped for that request."""
import shutil

from pyrs.client import make_data, sha256, upload_id
from pyrs.env import RsArea
from test_269_syscalls import OPEN, STAT, traced

SKIP_TAG = 'RS09970'


def conf(env):
    env.mkdir_www(env.docroot / 'dir270')
    dirsec = env.area_dir('m270_dirsec')
    extra = (f'<Directory "{env.docroot}/dir270">\n'
             f'    ResumableDir "{dirsec}"\n'
             f'</Directory>\n')
    return dict(
        server_extra='ResumableMapToStorage Off',
        loglevel='warn resumable:trace1',
        extra=extra,
        areas=[
            RsArea('/off/', dir='m270_off', directives=['ResumableExpire 1h']),
            RsArea('/on/', dir='m270_on',
                   directives=['ResumableMapToStorage On']),
            RsArea('/deny270/', dir='m270_deny',
                   section=['Require ip 10.0.0.1']),
            RsArea('/ht270/', kind='htaccess',
                   directives=['ResumableMaxSize 1K']),
            RsArea('/htbad270/', kind='htaccess',
                   htaccess='SetHandler resumable\n'
                            'ResumableMapToStorage Off\n'),
            # SetHandler here, ResumableDir from the <Directory> above
            RsArea('/dir270/', resumable_dir=False),
        ])


def skipped(env, mark, path):
    """Did the requests since mark skip the walk for URL path `path`?"""
    return [ln for ln in env.log_lines(mark)
            if SKIP_TAG in ln and f' {path}' in ln]


def walk_paths(env, lines, area):
    """strace lines that name the DocumentRoot or a path of the area's URLs
    in it (stat, open): what core's directory walk of those URLs touches
    (not the sweep thread, which visits the areas of other tests' uploads
    in the DocumentRoot)."""
    root = str(env.docroot)
    under = f'{root}/{area.strip("/")}'
    return [ln for ln in lines
            for m in (STAT.search(ln), OPEN.search(ln))
            if m and (m.group(1).rstrip('/') in (root, under)
                      or m.group(1).startswith(under + '/'))]


class TestMapToStorage:
    CONF = staticmethod(conf)
    ALLOW_ERRORS = dict(patterns=[r'ResumableMapToStorage not allowed here'])

    def requests(self, env, area, data):
        """creation-with-upload, PATCH, HEAD, GET download: statuses."""
        tus = env.tus(area)
        res = []
        r = tus.create_resp(length=len(data), body=data[:1000])
        res.append(r.status)
        url = r.headers['Location']
        res.append(tus.patch(url, 1000, data[1000:]).status)
        res.append(tus.head(url).status)
        g = env.client.get(url)
        res.append(g.status)
        assert g.body == data
        return res

    def test_rs_270_01_no_docroot_stat(self, env):
        """Off: POST, PATCH, HEAD and GET of the area touch no path of the
        DocumentRoot; the same requests of an area with On walk it."""
        assert shutil.which('strace'), 'strace is needed (tools/test.sh)'
        data = make_data(3000, seed=270)
        res = []
        lines = traced(env, lambda: res.extend(self.requests(env, '/off/',
                                                             data)),
                       env.gen / 'strace270off.txt')
        assert res == [201, 204, 200, 200], res
        walked = walk_paths(env, lines, '/off/')
        assert not walked, '\n'.join(walked)
        lines = traced(env, lambda: res.extend(self.requests(env, '/on/',
                                                             data)),
                       env.gen / 'strace270on.txt')
        assert walk_paths(env, lines, '/on/'), 'On: no directory walk seen'

    def test_rs_270_02_round_trip(self, env):
        """tus create, PATCH, HEAD, download (whole and Range), DELETE."""
        tus = env.tus('/off/')
        data = make_data(200000, seed=2702)
        mark = env.log_mark()
        url = tus.create(length=len(data), metadata={'filename': 'a.bin'})
        assert tus.patch(url, 0, data[:70000]).status == 204
        assert tus.offset(url) == 70000
        assert tus.patch(url, 70000, data[70000:]).status == 204
        r = env.client.get(url)
        assert r.status == 200 and sha256(r.body) == sha256(data), r.status
        assert r.headers.get('Content-Length') == str(len(data))
        etag = r.headers.get('ETag')
        r = env.client.get(url, {'Range': 'bytes=100-199'})
        assert r.status == 206 and r.body == data[100:200], r
        assert r.headers.get('Content-Range') == f'bytes 100-199/{len(data)}'
        r = env.client.get(url, {'Range': 'bytes=150000-', 'If-Range': etag})
        assert r.status == 206 and r.body == data[150000:], r.status
        r = env.client.head(url)
        assert r.status == 200, r
        assert r.headers.get('Content-Length') == str(len(data))
        assert (env.area_dir('m270_off') / 'a.bin').exists()
        assert tus.delete(url).status == 204
        assert tus.head(url).status in (404, 410)
        path = f'/off/{upload_id(url)}'
        assert len(skipped(env, mark, path)) >= 9, env.log_lines(mark)

    def test_rs_270_03_location_access_control(self, env):
        """Require of the <Location> still applies after the skip."""
        env.allow_errors(tags=['AH01630'])     # client denied
        mark = env.log_mark()
        tus = env.tus('/deny270/')
        assert tus.create_resp(length=10).status == 403
        assert tus.head('/deny270/abc').status == 403
        assert env.client.get('/deny270/abc').status == 403
        assert skipped(env, mark, '/deny270/'), env.log_lines(mark)
        assert skipped(env, mark, '/deny270/abc'), env.log_lines(mark)

    def test_rs_270_04_htaccess_area_walks(self, env):
        """An area made by .htaccess (ResumableMapToStorage Off in the
        server config) still walks: its .htaccess limit applies."""
        mark = env.log_mark()
        tus = env.tus('/ht270/')
        assert tus.create_resp(length=2048).status == 413
        data = make_data(1000, seed=2704)
        url = tus.upload(data)
        assert env.client.get(url).body == data
        assert (env.docroot / 'ht270' / upload_id(url)).exists()
        assert not skipped(env, mark, '/ht270/'), env.log_lines(mark)

    def test_rs_270_05_htaccess_refused(self, env):
        r = env.tus('/htbad270/').create_resp(length=10)
        assert r.status == 500, r
        assert any('ResumableMapToStorage not allowed here' in ln
                   for ln in env.log_lines())

    def test_rs_270_06_directory_resumabledir_walks(self, env):
        """ResumableDir from a <Directory>: not skipped, the upload lands in
        that directory."""
        mark = env.log_mark()
        data = make_data(1500, seed=2706)
        url = env.tus('/dir270/').upload(data)
        assert env.client.get(url).body == data
        assert (env.area_dir('m270_dirsec') / upload_id(url)).exists()
        assert not skipped(env, mark, '/dir270/'), env.log_lines(mark)

    def test_rs_270_07_trace_answered_by_core(self, env):
        """TRACE keeps core's map_to_storage (it answers TRACE there)."""
        mark = env.log_mark()
        r = env.client.request('TRACE', '/off/x270')
        assert r.status == 200, r
        assert r.headers.get('Content-Type', '').startswith('message/http')
        assert not skipped(env, mark, '/off/x270'), env.log_lines(mark)


def conf_statedb(env):
    env.mkdir_www(env.docroot / 'statedir270')
    return dict(statedb=str(env.docroot / 'statedir270' / 'state'),
                loglevel='warn resumable:trace1',
                areas=[RsArea('/statedir270/', dir='m270_state',
                              directives=['ResumableMapToStorage Off'])])


class TestMapToStorageStateDb:
    CONF = staticmethod(conf_statedb)

    def test_rs_270_10_statedb_guard(self, env):
        """An Off area whose URLs map (DocumentRoot + URI) onto the state
        database: its files are still refused (404), after the skip."""
        env.tus('/statedir270/').upload(b'x270', metadata={'filename':
                                                           'db270.txt'})
        names = sorted(p.name for p in (env.docroot / 'statedir270').iterdir())
        assert any(n.endswith('.pag') for n in names), names
        mark = env.log_mark()
        for n in names + ['state']:
            r = env.client.get(f'/statedir270/{n}')
            assert r.status == 404, (n, r.status)
            assert b'db270' not in r.body, n
            assert skipped(env, mark, f'/statedir270/{n}'), n


def conf_srvdir(env):
    env.mkdir_www(env.docroot / 'dir271')
    srv, sec = env.area_dir('m271_srv'), env.area_dir('m271_dirsec')
    return dict(server_extra=f'ResumableDir "{srv}"\n'
                             'ResumableMapToStorage Off',
                loglevel='warn resumable:trace1',
                extra=f'<Directory "{env.docroot}/dir271">\n'
                      f'    ResumableDir "{sec}"\n</Directory>\n',
                areas=[RsArea('/dir271/', resumable_dir=False)])


class TestMapToStorageServerDir:
    CONF = staticmethod(conf_srvdir)

    def test_rs_270_15_directory_overrides_server_dir(self, env):
        """ResumableDir of the server config, another one in the
        <Directory> the URL maps to: no skip (the <Directory>'s applies, as
        with On), only a <Location>'s ResumableDir lets an area skip."""
        mark = env.log_mark()
        data = make_data(1200, seed=2715)
        url = env.tus('/dir271/').upload(data)
        assert (env.area_dir('m271_dirsec') / upload_id(url)).exists()
        assert not (env.area_dir('m271_srv') / upload_id(url)).exists()
        assert not skipped(env, mark, '/dir271/'), env.log_lines(mark)


def test_rs_270_20_refused_in_directory(env):
    """<Directory>, <Files>: refused at configtest, with a reason."""
    for section in (f'<Directory "{env.docroot}/x270">',
                    '<Files "x270">'):
        end = '</' + section[1:].split()[0] + '>'
        conf_path = env.gen / 'conf' / 'check270.conf'
        env.install(areas=[RsArea('/files/', dir='cfg270')],
                    extra=f'{section}\n    ResumableMapToStorage Off\n'
                          f'{end}\n', conf_path=conf_path)
        rc, out = env.configtest(conf_path)
        assert rc != 0, out
        assert 'ResumableMapToStorage cannot occur within' in out, out
        assert '<Location> or the server config' in out, out


def test_rs_270_21_accepted_in_location_and_server(env):
    conf_path = env.gen / 'conf' / 'check270.conf'
    env.install(areas=[RsArea('/files/', dir='cfg270',
                              directives=['ResumableMapToStorage Off'])],
                server_extra='ResumableMapToStorage On', conf_path=conf_path)
    rc, out = env.configtest(conf_path)
    assert rc == 0, out
    env.install(areas=[RsArea('/files/', dir='cfg270',
                              directives=['ResumableMapToStorage maybe'])],
                conf_path=conf_path)
    rc, out = env.configtest(conf_path)
    assert rc != 0 and 'ResumableMapToStorage' in out, out
