"""850: the demo page (htdocs/index.html, tus-js-client in the browser) in
headless Chromium: pause/resume and reload/resume, results checked by
sha256 of what the server stores and serves."""
import json
import shutil
import subprocess

import pytest

from pyrs.client import make_data, sha256


@pytest.fixture(scope='module')
def demo_root(env):
    """Serve the repo's htdocs plus the tus-js-client bundle from docroot."""
    node = env.repo / 'node_modules'
    if not (node / 'playwright-core').is_dir():
        subprocess.run(['npm', 'ci', '--no-audit', '--no-fund'], cwd=env.repo,
                       check=True, timeout=300)
    demo = env.docroot / 'demo'
    shutil.copytree(env.repo / 'htdocs', demo, dirs_exist_ok=True)
    (env.docroot / 'vendor').mkdir(exist_ok=True)
    shutil.copy(node / 'tus-js-client' / 'dist' / 'tus.min.js',
                env.docroot / 'vendor' / 'tus.min.js')
    return demo


def run_page(env, script, timeout=150, **kw):
    cmd = ['node', str(env.repo / 'test' / 'browser' / script)]
    for k, v in kw.items():
        cmd += [f'--{k}', str(v)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       cwd=env.repo)
    lines = [l for l in r.stdout.splitlines() if l.startswith('{')]
    assert lines, f'no result from {script}: {r.stdout}\n{r.stderr}'
    out = json.loads(lines[-1])
    assert out.get('ok'), out.get('error')
    return out


@pytest.mark.usefixtures('rs_default')
class TestBrowserDemo:

    def test_rs_850_01_pause_resume_reload(self, env, tus, demo_root):
        f1, f2 = env.gen / 'demo-one.bin', env.gen / 'demo-two.bin'
        d1, d2 = make_data(12 << 20, seed=851), make_data(12 << 20, seed=852)
        f1.write_bytes(d1)
        f2.write_bytes(d2)
        out = run_page(env, 'tus_demo.mjs', page=f'{env.url}/demo/index.html',
                       file1=f1, file2=f2, shot=env.gen / 'demo.png')
        for url, data, note in zip(out['urls'], (d1, d2), out['resumed']):
            r = tus.get(url)
            assert r.status == 200 and sha256(r.body) == sha256(data), url
            assert 'demo-' in r.headers.get('Content-Disposition', '')
            # the page resumed from a real server offset, not from 0
            assert 'already has 0 B' not in note, note
