"""0xx: the server runs with the module; the harness itself works."""
import re
import shutil
import subprocess

import pytest

from pyrs.client import make_data, sha256
from pyrs.env import RsArea, RsEnv

ID_RE = re.compile(r'^[A-Za-z0-9_-]{22}$')


@pytest.mark.usefixtures('rs_default')
class TestAlive:

    def test_rs_000_01_static(self, env):
        r = env.client.get('/')
        assert r.status == 200
        assert b'mod_resumable test' in r.body
        r = env.client.get('/static.txt')
        assert r.status == 200 and r.body == b'static text\n'

    def test_rs_000_02_module_answers(self, env):
        r = env.client.options('/files/')
        assert r.status in (200, 204), r
        assert r.headers.get('Tus-Version') == '1.0.0'

    def test_rs_000_03_several_children(self, env):
        assert env.pid()
        assert len(env.children()) >= 2, env.children()

    def test_rs_000_04_configtest(self, env):
        rc, out = env.configtest()
        assert rc == 0, out
        assert 'Syntax OK' in out

    def test_rs_000_05_roundtrip(self, env, tus):
        data = make_data(100000, seed=5)
        url = tus.upload(data, chunk_size=30000)
        uid = url.rsplit('/', 1)[1]
        assert ID_RE.match(uid), url
        r = tus.get(url)
        assert r.status == 200 and sha256(r.body) == sha256(data)
        on_disk = env.area_dir('files') / uid
        assert env.sha256_file(on_disk) == sha256(data)

    def test_rs_000_06_restart_graceful(self, env, tus):
        data = make_data(1000, seed=6)
        url = tus.upload(data)
        old = env.children()
        env.restart()
        assert env.pid()
        assert set(env.children()) != set(old)
        assert tus.get(url).body == data
        env.graceful()
        assert env.client.options('/files/').status in (200, 204)
        assert tus.get(url).body == data


class TestHarness:
    """The harness against a plain httpd without the module."""

    def test_rs_000_10_error_log_check(self, env):
        text = '\n'.join([
            '[Sat Nov 21 14:00:00.000000 2026] [core:notice] [pid 1:tid 1] AH00094: Command line',
            '[Sat Nov 21 14:00:00.000000 2026] [resumable:debug] [pid 1:tid 1] RS01001: fine',
            '[Sat Nov 21 14:00:00.000000 2026] [resumable:warn] [pid 1:tid 1] RS05001: not fine',
            '[Sat Nov 21 14:00:00.000000 2026] [core:error] [pid 1:tid 1] AH00128: File does not exist',
            '[Sat Nov 21 14:00:00.000000 2026] [core:notice] [pid 1:tid 1] AH00052: child pid 7 exit signal Segmentation fault (11)',
            '[Sat Nov 21 14:00:00.000000 2026] [core:notice] [pid 1:tid 1] AH00558: benign',
            '[Sat Nov 21 14:00:00.000000 2026] [core:warn] [pid 1:tid 1] AH00558: benign',
            'free(): invalid pointer',
        ])
        bad = RsEnv.bad_lines(text)
        assert len(bad) == 4, bad
        bad = RsEnv.bad_lines(text, tags=['RS05001', 'AH00128'],
                              patterns=['exit signal', r'^free\(\)'])
        assert bad == []

    def test_rs_000_11_plain_httpd(self, env):
        conf = env.gen / 'conf' / 'plain.conf'
        env.install(load_module=False, conf_path=conf)
        rc, out = env.configtest(conf)
        assert rc == 0, out
        conf.write_text(conf.read_text() + 'NoSuchDirective 1\n')
        rc, out = env.configtest(conf)
        assert rc != 0 and 'NoSuchDirective' in out

    def test_rs_000_12_log_mark(self, env):
        mark = env.log_mark()
        assert env.log_lines(mark) == []


@pytest.mark.h2
@pytest.mark.skipif(not shutil.which('curl'), reason='no curl')
class TestH2c:
    CONF = dict(areas=[RsArea('/files/', dir='h2files')], h2=True)

    def test_rs_000_20_upload_over_h2c(self, env):
        v = subprocess.run(['curl', '-V'], capture_output=True, text=True).stdout
        if 'HTTP2' not in v:
            pytest.skip('curl without HTTP/2')
        data = make_data(300000, seed=20)
        src = env.gen / 'h2c-src.bin'
        src.write_bytes(data)
        common = ['curl', '-s', '--http2-prior-knowledge', '--max-time', '20',
                  '-H', 'Tus-Resumable: 1.0.0']
        r = subprocess.run(common + ['-X', 'POST', '-H', f'Upload-Length: {len(data)}',
                                     '-o', '/dev/null', '-D', '-', '-w', 'proto=%{http_version}\n',
                                     f'{env.url}/files/'],
                           capture_output=True, text=True, timeout=30)
        assert 'proto=2' in r.stdout, r.stdout + r.stderr
        assert re.search(r'^HTTP/2 201', r.stdout, re.M), r.stdout
        loc = re.search(r'^location: (\S+)', r.stdout, re.M | re.I).group(1)
        r = subprocess.run(common + ['-X', 'PATCH', '-H', 'Upload-Offset: 0',
                                     '-H', 'Content-Type: application/offset+octet-stream',
                                     '--data-binary', f'@{src}', '-o', '/dev/null',
                                     '-D', '-', loc],
                           capture_output=True, text=True, timeout=30)
        assert re.search(r'^HTTP/2 204', r.stdout, re.M), r.stdout + r.stderr
        assert re.search(rf'^upload-offset: {len(data)}\r?$', r.stdout, re.M | re.I), r.stdout
        r = env.client.get(loc)
        assert r.status == 200 and sha256(r.body) == sha256(data)



def libs_conf(env):
    from pyrs.env import MODULES_DIR
    return dict(areas=[RsArea('/files/', dir='libs')], extra='\n'.join([
        f'LoadModule ssl_module "{MODULES_DIR}/mod_ssl.so"',
        f'LoadModule socache_shmcb_module "{MODULES_DIR}/mod_socache_shmcb.so"',
        f'SSLSessionCache "shmcb:{env.gen}/libs-scache(512000)"']))


class TestLibrariesConsistent:
    """The install step leaves a consistent system: every module of the
    installed httpd runs on the library versions it was built against (a
    mod_ssl built for a newer libssl3 than the machine's warns AH01882 at
    every start; tools/sync-libs.sh upgrades such libraries)."""
    CONF = libs_conf

    def test_rs_000_30_mod_ssl_matches_libssl(self, env):
        lines = env.log_lines()
        assert not [l for l in lines if 'AH01882' in l], lines
        assert env.client.options('/files/').status in (200, 204)
