"""995: Uppy (@uppy/core + @uppy/tus, test/js/uppy_client.mjs, installed
from the repo's package-lock.json) on a tus area whose pre-finish hook
refuses infected content (pyrs.hookrx): Uppy reports the upload failed
(upload-error, never upload-success) and nothing is published; a name the
pre-create hook refuses fails too; clean content succeeds."""
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from pyrs.env import RsArea
from pyrs.hookrx import Receiver

REPO = Path(__file__).resolve().parents[3]
CLIENT = REPO / 'test' / 'js' / 'uppy_client.mjs'
UPPY = {'@uppy/core': '6.3.1', '@uppy/tus': '6.0.0'}
RX = Receiver()


def _installed():
    for name, version in UPPY.items():
        pkg = REPO / 'node_modules' / name / 'package.json'
        try:
            if json.loads(pkg.read_text())['version'] != version:
                return False
        except (OSError, ValueError, KeyError):
            return False
    return True


@pytest.fixture(scope='session')
def uppy_node():
    """node with Uppy installed (`npm ci` once if not; a failure fails)."""
    node = shutil.which('node')
    if node is None:
        pytest.fail('node is not installed: the Uppy tests need Node >= 18')
    if not _installed():
        p = subprocess.run(['npm', 'ci', '--no-audit', '--no-fund'], cwd=REPO,
                           capture_output=True, text=True, timeout=600)
        if p.returncode != 0 or not _installed():
            pytest.fail(f'`npm ci` failed: {p.stdout[-2000:]}{p.stderr[-2000:]}')
    return node


def run_uppy(node, endpoint, path, name=None, chunk_size=None):
    cmd = [node, str(CLIENT), '--endpoint', endpoint, '--file', str(path),
           '--timeout', '60']
    if name:
        cmd += ['--name', name]
    if chunk_size:
        cmd += ['--chunk-size', str(chunk_size)]
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                       timeout=90)
    lines = [line for line in p.stdout.splitlines() if line.startswith('{')]
    assert lines, (p.stdout, p.stderr)
    out = json.loads(lines[-1])
    out['_exit'] = p.returncode
    return out


def conf(env):
    if RX.srv is None:
        RX.start()
    return dict(areas=[RsArea('/uppy/', dir='hooks-uppy', directives=[
        f'ResumableHook {e} {RX.url}/hook'
        for e in ('pre-create', 'pre-finish')])])


class TestHookUppy:
    CONF = staticmethod(conf)
    ALLOW_ERRORS = dict(tags=['RS04020'])

    @pytest.mark.parametrize('chunk', [None, 4096])
    def test_rs_995_01_pre_finish_refused(self, env, uppy_node, chunk):
        area = env.area_dir('hooks-uppy')
        bad = env.gen / f'uppy-infected-{chunk}.bin'
        bad.write_bytes(b'header ' + b'x' * 10000 + b'VIRUS' + b'y' * 100)
        out = run_uppy(uppy_node, env.url + '/uppy/', bad, chunk_size=chunk)
        assert out['ok'] is False and out['_exit'] == 1, out
        assert out['failed'] == 1 and out['successful'] == 0, out
        assert out['events'] == ['upload-error'], out
        assert '422' in out['error'] and 'infected' in out['error'], out
        assert not (area / bad.name).exists()
        ok = env.gen / f'uppy-clean-{chunk}.bin'
        ok.write_bytes(b'z' * 10000)
        out = run_uppy(uppy_node, env.url + '/uppy/', ok, chunk_size=chunk)
        assert out['ok'] is True and out['_exit'] == 0, out
        assert out['events'] == ['upload-success'], out
        assert (area / ok.name).read_bytes() == ok.read_bytes()

    def test_rs_995_02_pre_create_refused(self, env, uppy_node):
        path = env.gen / 'uppy-plain.bin'
        path.write_bytes(b'fine content')
        out = run_uppy(uppy_node, env.url + '/uppy/', path,
                       name='reject-me.bin')
        assert out['ok'] is False and out['events'] == ['upload-error'], out
        assert '403' in out['error'], out
        assert not (env.area_dir('hooks-uppy') / 'reject-me.bin').exists()
