"""86x: the seed demo pages (htdocs/seeds/) in headless Chromium, each
driving its seed client unchanged (design documents 000 and 001, and the
npm Flow.js / Resumable.js) against conf/seeds.conf's URL layout: start,
interrupt (the client's pause/stop and a page reload), resume, and compare
what the server stores (or what the page downloaded) by sha256."""
import hashlib
import json
import shutil
import subprocess

import pytest

from pyrs.client import make_data, sha256
from pyrs.seeds import seeds_conf, seeds_dir

# an interrupted upload or download may be worth a warning
ALLOW = dict(patterns=[r'\[resumable:warn\]'])
VENDOR = {'flow.min.js': '@flowjs/flow.js/dist/flow.min.js',
          'resumable.js': 'resumablejs/resumable.js',
          'jquery.min.js': 'jquery/dist/jquery.min.js',
          'spark-md5.min.js': 'spark-md5/spark-md5.min.js'}


def conf(area):
    """seeds.conf plus the seed 000 download URL /test.mp4 (as
    conf/demo.conf.in maps it: the area's file test.mp4)."""
    return lambda env: seeds_conf(
        env, area,
        after=f'Alias "/test.mp4" "{seeds_dir(env, area)}/test.mp4"\n')


@pytest.fixture(scope='module')
def pages(env):
    """The repo's htdocs at the docroot's top (the pages use absolute
    URLs, as tools/run.sh serves them) plus the npm vendor files."""
    node = env.repo / 'node_modules'
    if not all((node / p).is_file() for p in VENDOR.values()):
        subprocess.run(['npm', 'ci', '--no-audit', '--no-fund'], cwd=env.repo,
                       check=True, timeout=300)
    shutil.copytree(env.repo / 'htdocs' / 'seeds', env.docroot / 'seeds',
                    dirs_exist_ok=True)
    shutil.copy(env.repo / 'htdocs' / 'demo.css', env.docroot / 'demo.css')
    (env.docroot / 'vendor').mkdir(exist_ok=True)
    for name, src in VENDOR.items():
        shutil.copy(node / src, env.docroot / 'vendor' / name)
    return env.docroot


def run_page(env, which, file, timeout=260):
    cmd = ['node', str(env.repo / 'test' / 'browser' / 'seed_pages.mjs'),
           '--base', env.url, '--which', which, '--file', str(file),
           '--shot', str(env.gen / f'seed-{which}.png')]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       cwd=env.repo, errors='replace')
    lines = [l for l in r.stdout.splitlines() if l.startswith('{')]
    assert lines, f'no result from {which}: {r.stdout}\n{r.stderr}'
    out = json.loads(lines[-1])
    assert out.get('ok'), out.get('error')
    return out


def source(env, name, size, seed):
    path = env.gen / 'seed-pages' / name
    path.parent.mkdir(exist_ok=True)
    data = make_data(size, seed=seed)
    path.write_bytes(data)
    return path, data


def check_stored(env, area, name, data):
    assert env.sha256_file(seeds_dir(env, area) / name) == sha256(data)
    r = env.client.get(f'/upload/{name}')
    assert r.status == 200 and sha256(r.body) == sha256(data), r


class TestSeedUploadPages:
    AREA = 'seeds-pages'
    CONF = staticmethod(conf(AREA))
    ALLOW_ERRORS = ALLOW

    @pytest.mark.parametrize('which', ['flow', 'resumable'])
    def test_rs_860_01_flowlike_pause_reload(self, env, pages, which):
        name = f'{which}-page.bin'
        path, data = source(env, name, 16 << 20, seed=861)
        out = run_page(env, which, path)
        assert out['link'] == f'/upload/{name}'
        check_stored(env, self.AREA, name, data)
        chunks = out['chunks']
        assert chunks == 16
        after = out['requests'][out['reloadAt']:]
        posts = [q for q in after if q['method'] == 'POST']
        found = [q for q in after if q['method'] == 'GET'
                 and q['status'] == 200]
        # after the reload the library's test GETs found chunks on the
        # server and only the missing ones were posted
        assert found and len(posts) < chunks, after
        assert len(found) + len(posts) >= chunks, after

    def test_rs_860_03_slice003_pause_reload(self, env, pages):
        path, data = source(env, 'shards.bin', 16 << 20, seed=866)
        out = run_page(env, 'slice003', path)
        assert out['link'] == '/upload/shards.bin'
        check_stored(env, self.AREA, 'shards.bin', data)
        assert out['chunks'] == 16
        q = out['requests']
        assert all(x['status'] == 200 for x in q if x['body']), q
        # after the reload only the shards not yet sent went up
        assert 0 < len(q[out['reloadAt']:]) < 16, q

    def test_rs_860_02_slice_reload(self, env, pages):
        path, data = source(env, 'test.mp4', 12 << 20, seed=862)
        out = run_page(env, 'slice', path)
        assert out['link'] == '/upload/test.mp4'
        check_stored(env, self.AREA, 'test.mp4', data)
        before = out['requests'][:out['reloadAt']]
        assert not [q for q in before if q['url'].endswith('/sliceMerge')]
        merges = [q for q in out['requests'] if q['url'].endswith('/sliceMerge')]
        assert len(merges) == 1 and merges[0]['status'] == 200, merges


class TestSeedOffsetPage:
    AREA = 'seeds-pages-offset'
    CONF = staticmethod(conf(AREA))
    ALLOW_ERRORS = ALLOW

    def test_rs_860_10_offset_stop_reload(self, env, pages):
        path, data = source(env, 'offset-page.bin', 24 << 20, seed=863)
        out = run_page(env, 'offset', path)
        assert out['log'] == 'success'
        counts = [int(q['body']) for q in out['requests']
                  if q['url'].endswith('/status') and q['status'] == 200]
        # resumed twice (after Stop, after the reload) from a real offset
        assert counts[0] == 0 and len(counts) >= 3, counts
        assert 0 < counts[1] < counts[-1] < len(data), counts
        # the seed client never sends X-File-Size: the upload stays open on
        # the server (resumable) with every byte in place
        area = seeds_dir(env, self.AREA)
        assert env.visible_files(area) == []
        stored = env.staged_data_file(area, '')
        assert stored and env.sha256_file(stored) == sha256(data)
        r = env.client.get('/status', {'X-File-Id': f'offset-page.bin-{len(data)}-'
                                       f'{int(path.stat().st_mtime * 1000)}'})
        assert r.status == 200 and int(r.body) == len(data), r


class TestSeedDownloadPage:
    AREA = 'seeds-pages-download'
    CONF = staticmethod(conf(AREA))
    ALLOW_ERRORS = ALLOW

    def test_rs_860_20_download_abort_resume(self, env, pages):
        area = seeds_dir(env, self.AREA)
        data = make_data(10 << 20, seed=864)
        (area / 'test.mp4').write_bytes(data)
        out = run_page(env, 'download', area / 'test.mp4')
        n = out['paused']
        assert 0 < n < len(data) and out['total'] == len(data), out
        q = out['requests']
        assert [x['range'] for x in q] == ['bytes=0', f'bytes={n}'], q
        assert [x['status'] for x in q] == [206, 206], q
        assert q[1]['contentRange'] == f'bytes {n}-{len(data) - 1}/{len(data)}'
        # the seed client's blob holds what its last request received: the
        # rest of the file from the byte it stopped at
        assert out['blob']['length'] == len(data) - n, out['blob']
        assert out['blob']['sha256'] == sha256(data[n:])

    def test_rs_860_21_ranged_pause_continue(self, env, pages):
        area = seeds_dir(env, self.AREA)
        data = make_data((6 << 20) + 12345, seed=867)
        (area / 'ranged.bin').write_bytes(data)
        out = run_page(env, 'ranged', area / 'ranged.bin')
        assert out['sha'] == sha256(data)
        assert 0 < out['paused'] < 100, out['paused']
        assert out['info'] == ('Accept-Ranges: bytes, '
                               'Content-Disposition: attachment'), out['info']
        q = out['requests']
        assert q[0]['method'] == 'HEAD' and q[0]['status'] == 200, q
        gets = q[1:]
        assert len(gets) == 7 and all(x['status'] == 206 for x in gets), q
        mib = 1 << 20
        assert [x['range'] for x in gets] == \
            [f'bytes={i * mib}-{(i + 1) * mib - 1}' for i in range(7)], gets
        assert gets[-1]['contentRange'] == \
            f'bytes {6 * mib}-{len(data) - 1}/{len(data)}', gets[-1]


class TestSeedMd5Page:
    AREA = 'seeds-pages-md5'
    CONF = staticmethod(conf(AREA))
    ALLOW_ERRORS = ALLOW

    def test_rs_860_30_md5_pause_reload_instant(self, env, pages):
        path, data = source(env, 'md5-page.bin', 16 << 20, seed=865)
        name = hashlib.md5(data).hexdigest() + '.bin'
        out = run_page(env, 'md5', path)
        assert out['link'] == f'http://localhost:8000/upload/{name}', out
        check_stored(env, self.AREA, name, data)
        q = out['requests']
        shakes = [x for x in q if x['url'].endswith('/handshake')]
        assert len(shakes) == 3 and all(x['status'] == 200 for x in shakes)
        # after the reload the server needed only some of the 16 chunks
        def shake_after(i):
            return json.loads(next(x for x in q[i:] if x in shakes)['body'])

        after = shake_after(out['reloadAt'])['data']
        assert isinstance(after, list) and 0 < len(after) < 16, after
        chunks = [x for x in q if x['url'].endswith('/api/upload')]
        assert all(x['status'] == 200 for x in chunks), chunks
        assert len(chunks) < 16 + len(after), chunks
        # the third choice of the same file: instant upload, the link
        assert out['again'] == 'finish' and out['instant'] == out['link']
        assert shake_after(out['instantAt'])['data'] == out['link']
