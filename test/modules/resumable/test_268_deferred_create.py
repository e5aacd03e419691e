"""268: deferred creation (issue 15). A tus creation-with-upload stores its
record once, after the body, in one write transaction; while the body
streams into "<id>.new" no record exists, so the id answers 404 to
anyone who guesses it. A child killed during the body leaves an orphaned
"<id>.new" that resumablectl neither reports nor adopts and the sweep
removes; a cut body stores what it stored before (the record with the
bytes received); hook events keep their order."""
import itertools
import os
import time

import pytest

from pyrs.client import OCTET, abort_socket, digest_b64, make_data, \
    read_response, sha256, upload_id
from pyrs.ctl import resumablectl
from pyrs.env import RsArea
from pyrs.hookrx import Receiver
from test_263_state_txns import txns as state_txns
from test_910_kill import kill_serving

LOG_NAME = 'rs268_txns.log'
TAGS = itertools.count(1)
RX = Receiver()
ALLOW = dict(patterns=[r'exit signal Killed', r'\[resumable:warn\]'])
NEW_GRACE = 10          # RS_ENGINE_NEW_GRACE, seconds


def statedb(env):
    return env.state_dir / 'deferred268'


def conf(env):
    if RX.srv is None:
        RX.start()
    log = env.gen / 'logs' / LOG_NAME
    hooks = [f'ResumableHook {e} {RX.url}/hook' for e in
             ('pre-create', 'pre-finish', 'post-create', 'post-finish',
              'post-receive')]
    return dict(
        statedb=f'"{statedb(env)}"',
        areas=[RsArea('/files/', dir='deferred268',
                      directives=['ResumableExpire 1h',
                                  'ResumableMaxPending 0 0']),
               RsArea('/pend/', dir='deferred268-pend',
                      directives=['ResumableExpire 1h',
                                  'ResumableMaxPending 1']),
               RsArea('/hooked/', dir='deferred268-hooks',
                      directives=['ResumableExpire 1h'] + hooks)],
        server_extra=(
            'LogFormat "%{X-Rs-Tag}i %m %>s %{RESUMABLE_STATE_WRITES}e '
            '%{RESUMABLE_STATE_READS}e" rs268\n'
            f'CustomLog "{log}" rs268 env=RESUMABLE_STATE_WRITES\n'))


def tag():
    return {'X-Rs-Tag': f'd{next(TAGS)}'}


def txns(env, t, timeout=10):
    """(method, status, writes, reads) of the request tagged t."""
    return state_txns(env, t, timeout, LOG_NAME)


def post_headers(tus, length, extra=None):
    h = dict(tus.base_headers)
    h.update({'Upload-Length': str(length), 'Content-Type': OCTET})
    h.update(extra or {})
    return h


def new_files(env, area):
    return sorted(env.staging_dir(env.area_dir(area)).glob('*.new'))


def wait_new(env, area, min_size=1, timeout=10):
    """The in-flight file of a deferred creation, once it holds min_size
    bytes (bounded wait)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for f in new_files(env, area):
            try:
                if f.stat().st_size >= min_size:
                    return f
            except FileNotFoundError:
                pass
        time.sleep(0.005)
    return None


def wait_head(tus, url, want, timeout=10):
    deadline = time.time() + timeout
    while True:
        r = tus.head(url)
        if r.status == want or time.time() > deadline:
            return r
        time.sleep(0.05)


class TestDeferredCreate:
    CONF = staticmethod(conf)
    ALLOW_ERRORS = ALLOW

    def test_rs_268_01_one_write(self, env):
        """Complete, partial and checksummed creation-with-upload: one
        write transaction, no read; the record is right afterwards."""
        tus = env.tus('/files/')
        data = make_data(300 * 1024, seed=2681)
        for length, body, extra in (
                (len(data), data, None),
                (len(data), data[:1000], None),
                (len(data), data, {'Upload-Checksum':
                                   'sha1 ' + digest_b64('sha1', data)})):
            t = tag()
            h = dict(t, **(extra or {}))
            r = tus.create_resp(length=length, body=body, headers=h)
            assert r.status == 201, r
            assert r.headers['Upload-Offset'] == str(len(body))
            assert txns(env, t) == ('POST', 201, 1, 0)
            url = r.headers['Location']
            head = tus.head(url)
            assert head.status == 200, head
            assert head.headers['Upload-Offset'] == str(len(body))
            if len(body) == len(data):
                assert sha256(tus.get(url).body) == sha256(data)
            else:
                assert tus.patch(url, len(body), data[len(body):]).status \
                    == 204
                assert sha256(tus.get(url).body) == sha256(data)
        assert new_files(env, 'deferred268') == []

    def test_rs_268_02_guessed_id_during_body(self, env):
        """No record while the body streams: HEAD, PATCH and DELETE of the
        id get 404, like any unknown id; then the creation completes."""
        tus = env.tus('/files/')
        data = make_data(200 * 1024, seed=2682)
        s = env.client.send_partial('POST', '/files/',
                                    post_headers(tus, len(data)),
                                    data[:50000], len(data))
        try:
            f = wait_new(env, 'deferred268')
            assert f is not None, 'no in-flight file'
            uid = f.name[:-len('.new')]
            url = f'/files/{uid}'
            assert tus.head(url).status == 404
            assert tus.patch(url, 0, b'x' * 10).status == 404
            assert tus.delete(url).status == 404
            s.sendall(data[50000:])
            r = read_response(s, 'POST')
        finally:
            s.close()
        assert r.status == 201, r
        assert upload_id(r.headers['Location']) == uid
        assert sha256(tus.get(url).body) == sha256(data)
        assert not f.exists()

    def test_rs_268_03_cut_body_keeps_bytes(self, env):
        """A client gone midway: the record is stored with the bytes
        received (as before deferral), and the upload resumes."""
        tus = env.tus('/files/')
        data = make_data(256 * 1024, seed=2683)
        s = env.client.send_partial('POST', '/files/',
                                    post_headers(tus, len(data)),
                                    data[:100000], len(data))
        f = wait_new(env, 'deferred268', min_size=100000)
        assert f is not None
        uid = f.name[:-len('.new')]
        abort_socket(s)
        url = f'/files/{uid}'
        r = wait_head(tus, url, 200)
        assert r.status == 200, r
        off = int(r.headers['Upload-Offset'])
        assert off == 100000, off
        assert tus.patch(url, off, data[off:]).status == 204
        assert sha256(tus.get(url).body) == sha256(data)

    def test_rs_268_04_bad_checksum_keeps_record(self, env):
        """A checksum mismatch refuses the bytes but the upload exists at
        offset 0 (its URL comes with the error), as before deferral."""
        tus = env.tus('/files/')
        data = make_data(5000, seed=2684)
        t = tag()
        r = tus.create_resp(length=len(data), body=data, headers=dict(
            t, **{'Upload-Checksum': 'sha1 ' + digest_b64('sha1', b'x')}))
        assert r.status == 460, r
        url = r.headers['Location']
        assert txns(env, t)[2] == 1
        head = tus.head(url)
        assert head.status == 200 and head.headers['Upload-Offset'] == '0'
        assert tus.patch(url, 0, data).status == 204
        assert sha256(tus.get(url).body) == sha256(data)

    @pytest.mark.slow
    def test_rs_268_05_kill_leaves_orphan_swept(self, env):
        """SIGKILL during the body: no record (404), verify is clean,
        rebuild does not adopt the orphan, the sweep removes it."""
        tus = env.tus('/files/')
        data = make_data(512 * 1024, seed=2685)
        s = env.client.send_partial('POST', '/files/',
                                    post_headers(tus, len(data)),
                                    data[:64 * 1024], len(data))
        f = wait_new(env, 'deferred268', min_size=1)
        assert f is not None
        uid = f.name[:-len('.new')]
        kill_serving(env, s)
        assert f.exists()
        assert tus.head(f'/files/{uid}').status == 404
        rc, out = resumablectl(env, statedb(env), 'verify')
        assert rc == 0 and uid not in out, out
        scratch = env.gen / 'rs268_rebuild'
        rc, out = resumablectl(env, scratch, 'rebuild',
                               env.area_dir('deferred268'))
        assert uid not in out, out
        deadline = time.time() + NEW_GRACE + 20
        while f.exists() and time.time() < deadline:
            time.sleep(0.2)
        assert not f.exists(), 'orphan not swept'
        assert not (env.staging_dir(env.area_dir('deferred268'))
                    / f'{uid}.data').exists()
        rc, out = resumablectl(env, statedb(env), 'verify')
        assert rc == 0, out
        for p in scratch.parent.glob(scratch.name + '*'):
            os.remove(p)

    def test_rs_268_06_hooks_order(self, env):
        """pre-create, pre-finish, then post-create (as created: offset 0)
        before post-finish, from the one write; the pre-finish hook sees
        the bytes; a partial body notifies post-create then post-receive."""
        RX.clear()
        tus = env.tus('/hooked/')
        data = make_data(4000, seed=2686)
        r = tus.create_resp(length=len(data), body=data,
                            metadata={'filename': 'd268.bin'})
        assert r.status == 201, r
        uid = upload_id(r.headers['Location'])
        assert RX.wait_for(lambda evs: any(
            e[0] == 'post-finish' and e[2]['upload']['id'] == uid
            for e in evs), timeout=15)
        mine = [e for e in RX.events if e[2]['upload']['id'] == uid]
        assert [e[0] for e in mine] == ['pre-create', 'pre-finish',
                                        'post-create', 'post-finish'], mine
        assert mine[1][2]['upload']['offset'] == len(data)
        assert mine[2][2]['upload']['offset'] == 0
        assert mine[3][2]['upload']['offset'] == len(data)
        assert (env.area_dir('deferred268-hooks') / 'd268.bin').exists()
        r = tus.create_resp(length=len(data), body=data[:1000])
        assert r.status == 201, r
        uid = upload_id(r.headers['Location'])
        assert RX.wait_for(lambda evs: any(
            e[0] == 'post-receive' and e[2]['upload']['id'] == uid
            for e in evs), timeout=15)
        mine = [e[0] for e in RX.events if e[2]['upload']['id'] == uid]
        assert mine == ['pre-create', 'post-create', 'post-receive'], mine

    def test_rs_268_07_pre_finish_refusal(self, env):
        """A creation-with-upload the pre-finish hook refuses (it reads the
        bytes from data_path, "<id>.new"): 422 with the URL, then 403 for
        good, nothing published, no data left, verify clean."""
        RX.clear()
        tus = env.tus('/hooked/')
        data = b'clean start VIRUS' + b' end' * 100
        r = tus.create_resp(length=len(data), body=data,
                            metadata={'filename': 'infected268.bin'})
        assert r.status == 422 and r.body == b'infected\n', r
        url = r.headers['Location']
        uid = upload_id(url)
        fin = [e for e in RX.of('pre-finish') if e[2]['upload']['id'] == uid]
        assert fin and fin[0][2]['upload']['data_path'].endswith(
            f'{uid}.new'), fin
        assert tus.head(url).status == 403
        d = env.area_dir('deferred268-hooks')
        assert not (d / 'infected268.bin').exists()
        assert not list(env.staging_dir(d).glob(f'{uid}.*'))
        rc, out = resumablectl(env, statedb(env), 'verify')
        assert rc == 0 and uid not in out, out

    def test_rs_268_08_cut_before_any_byte_counts_pending(self, env):
        """A creation-with-upload cut before its first byte is stored
        holding no data: counted by ResumableMaxPending in the same write
        (the next creation is refused), and verify finds the count right."""
        tus = env.tus('/pend/')
        s = env.client.send_partial('POST', '/pend/', post_headers(tus, 100),
                                    b'', 100)
        f = wait_new(env, 'deferred268-pend', min_size=0)
        assert f is not None
        uid = f.name[:-len('.new')]
        abort_socket(s)
        r = wait_head(tus, f'/pend/{uid}', 200)
        assert r.status == 200 and r.headers['Upload-Offset'] == '0', r
        assert tus.create_resp(length=10).status == 429
        rc, out = resumablectl(env, statedb(env), 'verify')
        assert rc == 0, out
        assert tus.patch(f'/pend/{uid}', 0, b'x' * 100).status == 204
        assert tus.create_resp(length=10).status == 201

    def test_rs_268_09_staging_folder_made_on_need(self, env):
        """The deferred creation opens its file without a stat of the
        staging folder; a folder removed meanwhile is made again."""
        import shutil
        tus = env.tus('/files/')
        staging = env.staging_dir(env.area_dir('deferred268'))
        data = make_data(70 * 1024, seed=2689)
        assert tus.create_resp(length=len(data), body=data).status == 201
        shutil.rmtree(staging)
        t = tag()
        r = tus.create_resp(length=len(data), body=data[:500], headers=t)
        assert r.status == 201, r
        assert txns(env, t) == ('POST', 201, 1, 0)
        assert staging.is_dir()
        url = r.headers['Location']
        assert tus.patch(url, 500, data[500:]).status == 204
        assert sha256(tus.get(url).body) == sha256(data)

    def test_rs_268_10_foreign_new_file_left_alone_quietly(self, env):
        """A "<id>.new" the server cannot open (not one of its creations)
        is neither removed nor logged at every sweep (the error-log check
        at teardown fails on any RS03101)."""
        staging = env.staging_dir(env.area_dir('deferred268'))
        staging.mkdir(exist_ok=True)
        foreign = staging / f'{"F" * 22}.new'
        foreign.write_bytes(b'x' * 100)
        foreign.chmod(0o600)                    # root's: www-data can't open
        old = time.time() - 3 * NEW_GRACE
        os.utime(foreign, (old, old))
        try:
            time.sleep(3)                       # sweeps pass (1 s apart)
            assert foreign.exists()
        finally:
            foreign.unlink()
