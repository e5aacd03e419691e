"""994: the seed upload pages (htdocs/seeds/: 000 slice, 002 md5, 003
slice, Flow.js, Resumable.js) in headless Chromium, as test_860, on the
seeds' URLs with a pre-finish hook that refuses infected content
(pyrs.hookrx): each page shows an error, never success, and nothing is
published; a clean file succeeds and is published. (Seed 001's page never
finishes an upload: test_990_45 covers it with pre-create.)"""
import hashlib

import pytest

from pyrs.hookrx import Receiver
from pyrs.seeds import seeds_conf, seeds_dir
from test_860_seed_pages import pages, run_page  # noqa: F401 (fixture)

RX = Receiver()
AREA = 'hook-seed-pages'
ALLOW = dict(tags=['RS04020'], patterns=[r'\[resumable:warn\]'])


def conf(env):
    if RX.srv is None:
        RX.start()
    return seeds_conf(env, AREA, server_extra='\n'.join(
        f'ResumableHook {e} {RX.url}/seeds'
        for e in ('pre-create', 'pre-finish')))


def content(which, infected):
    """1.5 MiB (two chunks of the 1 MiB pages, one 000 slice), the word
    the hook refuses near the end (in the last chunk)."""
    body = (which.encode() + b' ') * (3 << 17)
    body = body[:(3 << 19) - 100]
    return body + (b'VIRUS' if infected else b'clean') + b'.' * 95


def published_name(which, name, data):
    return hashlib.md5(data).hexdigest() + '.bin' if which == 'md5' else name


class TestHookSeedPagesFinish:
    CONF = staticmethod(conf)
    ALLOW_ERRORS = ALLOW

    @pytest.mark.parametrize('which', ['slice', 'slice003', 'flow',
                                       'resumable', 'md5'])
    def test_rs_994_01_refused_then_clean(self, env, pages, which):
        area = seeds_dir(env, AREA)
        for infected in (True, False):
            name = f'{"infected" if infected else "clean"}-{which}.bin'
            data = content(which, infected)
            path = env.gen / 'hook-seed-pages' / name
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(data)
            RX.clear()
            out = run_page(env, f'once-{which}', path)
            stored = area / published_name(which, name, data)
            if infected:
                assert out['shown'] == 'error', out
                assert not stored.exists(), out
                assert any(e[0] == 'pre-finish' for e in RX.events)
                # the refusal reached the client: 422 "infected"
                assert any(q['status'] == 422 or '422' in q['body']
                           for q in out['requests']), out['requests']
            else:
                assert out['shown'] == 'success', out
                assert stored.exists() and stored.read_bytes() == data
