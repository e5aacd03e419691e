"""996: a pre-finish answer names the published file ({"filename": ...};
pyrs.hookrx answers "final-<name>" for names starting with "finrename"):
an appended tus upload, a tus concatenation final and merged slice chunks
(the composed path) are published under the application's name only, the
post-finish notification and HEAD say so; a pre-finish answer changes
nothing else (its metadata and size_limit are ignored as before)."""
import json
import time

from pyrs.client import make_data
from pyrs.env import RsArea
from pyrs.hookrx import Receiver
from pyrs.seeds import post_form, seeds_conf, seeds_dir

RX = Receiver()
HOOKS = ('pre-create', 'pre-finish', 'post-finish')
AREA = 'hooks-finrename-seeds'


def conf(env):
    if RX.srv is None:
        RX.start()
    base = seeds_conf(env, AREA, server_extra='\n'.join(
        f'ResumableHook {e} {RX.url}/seeds' for e in HOOKS))
    base['areas'] = [RsArea('/fin/', dir='hooks-finrename', directives=[
        f'ResumableHook {e} {RX.url}/hook' for e in HOOKS])]
    return base


def published(d, name, timeout=10):
    end = time.monotonic() + timeout
    while not (d / name).exists() and time.monotonic() < end:
        time.sleep(0.05)
    return (d / name).exists()


def post_finish(uid, timeout=15):
    assert RX.wait_for(lambda evs: any(
        e[0] == 'post-finish' and e[2]['upload']['id'] == uid for e in evs),
        timeout=timeout), RX.events
    return [e[2] for e in RX.events if e[0] == 'post-finish'
            and e[2]['upload']['id'] == uid][0]


class TestHookFinishRename:
    CONF = staticmethod(conf)

    def test_rs_996_01_tus_append(self, env):
        d = env.area_dir('hooks-finrename')
        tus = env.tus('/fin/')
        data = make_data(3000, seed=9961)
        url = tus.create(length=len(data),
                         metadata={'filename': 'finrename-a.bin'})
        assert tus.patch(url, 0, data).status == 204
        assert published(d, 'final-finrename-a.bin')
        assert (d / 'final-finrename-a.bin').read_bytes() == data
        assert not (d / 'finrename-a.bin').exists()
        assert tus.get(url).body == data
        p = post_finish(url.rsplit('/', 1)[1])
        assert p['upload']['path'].endswith('/final-finrename-a.bin'), p
        assert p['upload']['filename'] == 'final-finrename-a.bin', p
        # pre-create saw the client's name, pre-finish too
        fin = [e[2] for e in RX.events if e[0] == 'pre-finish'
               and e[2]['upload']['id'] == url.rsplit('/', 1)[1]]
        assert fin[0]['upload']['filename'] == 'finrename-a.bin'

    def test_rs_996_02_tus_concat_final(self, env):
        d = env.area_dir('hooks-finrename')
        tus = env.tus('/fin/')
        parts = []
        for piece in (b'first half, ', b'second half'):
            url = tus.create(length=len(piece), concat='partial')
            assert tus.patch(url, 0, piece).status == 204
            parts.append('/' + url.split('//', 1)[-1].split('/', 1)[1])
        r = tus.create_resp(concat='final;' + ' '.join(parts),
                            metadata={'filename': 'finrename-c.bin'})
        assert r.status == 201, r
        final = r.headers['Location']
        assert tus.get(final).body == b'first half, second half'
        p = post_finish(final.rsplit('/', 1)[1])
        # composed: path is the name it gets once materialised
        assert p['upload']['path'].split('/')[-1] == 'final-finrename-c.bin', \
            p['upload']
        # materialised under the application's name once the parts go
        for part in parts:
            assert tus.delete(part).status == 204
        assert published(d, 'final-finrename-c.bin')
        assert (d / 'final-finrename-c.bin').read_bytes() == \
            b'first half, second half'
        assert not (d / 'finrename-c.bin').exists()

    def test_rs_996_03_slice_merge(self, env):
        d = seeds_dir(env, AREA)
        for i, chunk in enumerate((b'slice one ', b'slice two')):
            r = post_form(env, '/sliceUpload', [
                ('chunk', ('blob', chunk, 'application/octet-stream')),
                ('index', i), ('name', 'finrename-s.bin')])
            assert r.status == 200, r
        r = env.client.request('POST', '/sliceMerge',
                               {'Content-Type': 'text/plain;charset=UTF-8'},
                               json.dumps({'name': 'finrename-s.bin',
                                           'size': 10}).encode())
        assert r.status == 200, r
        assert published(d, 'final-finrename-s.bin')
        assert (d / 'final-finrename-s.bin').read_bytes() == \
            b'slice one slice two'
        assert not (d / 'finrename-s.bin').exists()

    def test_rs_996_04_only_the_name(self, env):
        """A pre-create answer's other changes are not taken from a
        pre-finish answer: an ordinary name is published as it is."""
        d = env.area_dir('hooks-finrename')
        tus = env.tus('/fin/')
        url = tus.create(length=5, metadata={'filename': 'plain.txt'})
        assert tus.patch(url, 0, b'hello').status == 204
        assert published(d, 'plain.txt')
