"""263: state database transactions per request (issue 15), counted by the
module itself: RESUMABLE_STATE_WRITES / RESUMABLE_STATE_READS of each
request, written to an access log. The PATCH that completes an upload
saves its offset and the completion in one write transaction."""
import itertools
import time

from pyrs.client import make_data
from pyrs.env import RsArea

LOG_NAME = 'rs_txns.log'
TAGS = itertools.count(1)


def conf(env):
    log = env.gen / 'logs' / LOG_NAME
    return dict(
        areas=[RsArea('/files/', dir='txn_files',
                      directives=['ResumableExpire 1h',
                                  'ResumableMaxPending 0 0']),
               RsArea('/pend/', dir='txn_pend',
                      directives=['ResumableExpire 1h'])],
        server_extra=(
            'LogFormat "%{X-Rs-Tag}i %m %>s %{RESUMABLE_STATE_WRITES}e '
            '%{RESUMABLE_STATE_READS}e" rstxn\n'
            f'CustomLog "{log}" rstxn env=RESUMABLE_STATE_WRITES\n'))


def tag():
    """A header that names one request in the log."""
    return {'X-Rs-Tag': f't{next(TAGS)}'}


def txns(env, t, timeout=10, log_name=LOG_NAME):
    """(method, status, writes, reads) of the request tagged t in the log
    log_name; the log phase runs after the answer, so wait for its line
    (bounded)."""
    path = env.gen / 'logs' / log_name
    deadline = time.time() + timeout
    while True:
        got = path.read_text().splitlines() if path.exists() else []
        mine = [ln.split() for ln in got if ln.split()[0] == t['X-Rs-Tag']]
        if mine or time.time() > deadline:
            break
        time.sleep(0.05)
    assert len(mine) == 1, got
    _, m, st, w, r = mine[0]
    return m, int(st), int(w), int(r)


class TestStateTxns:
    CONF = staticmethod(conf)

    def test_rs_263_01_tus_patch_that_completes_writes_once(self, env):
        tus = env.tus('/files/')
        data = make_data(4000, seed=263)
        url = tus.create(length=len(data))
        t1, t2, t3 = tag(), tag(), tag()
        assert tus.patch(url, 0, data[:1000], headers=t1).status == 204
        assert tus.head(url, headers=t2).status == 200
        assert tus.patch(url, 1000, data[1000:], headers=t3).status == 204
        assert txns(env, t1)[:3] == ('PATCH', 204, 1)
        assert txns(env, t2)[:3] == ('HEAD', 200, 0)
        # offset and completion in one transaction (2 before issue 15)
        assert txns(env, t3)[:3] == ('PATCH', 204, 1)
        assert tus.head(url).headers.get('Upload-Offset') == str(len(data))

    def test_rs_263_02_creation_with_upload(self, env):
        tus = env.tus('/files/')
        data = make_data(3000, seed=2632)
        t = tag()
        r = tus.create_resp(length=len(data), body=data, headers=t)
        assert r.status == 201, r
        m, st, w, rd = txns(env, t)
        # deferred creation: the record is stored once, complete, after
        # the body (3 writes before issue 15, then 2 writes and 1 read)
        assert (m, st, w, rd) == ('POST', 201, 1, 0), (m, st, w, rd)
        url = r.headers['Location']
        assert tus.head(url).headers.get('Upload-Offset') == str(len(data))

    def test_rs_263_03_declared_length_completes_in_one_write(self, env):
        tus = env.tus('/files/')
        url = tus.create(defer=True)
        data = make_data(2000, seed=2633)
        t1, t2 = tag(), tag()
        assert tus.patch(url, 0, data[:500], headers=t1).status == 204
        assert tus.patch(url, 500, data[500:], headers=dict(
            t2, **{'Upload-Length': str(len(data))})).status == 204
        assert txns(env, t1)[2] == 1
        assert txns(env, t2)[2] == 1    # length, offset, completion at once
        assert tus.head(url).headers.get('Upload-Offset') == str(len(data))

    def test_rs_263_04_refused_patch_writes_nothing(self, env):
        tus = env.tus('/files/')
        url = tus.create(length=100)
        t = tag()
        assert tus.patch(url, 7, b'x' * 10, headers=t).status == 409
        assert txns(env, t)[:3] == ('PATCH', 409, 0)

    def test_rs_263_05_creation_with_upload_checks_max_pending(self, env):
        """With ResumableMaxPending (on by default) the deferred creation
        reads its counts before the body: one read, still one write."""
        tus = env.tus('/pend/')
        data = make_data(3000, seed=2635)
        t = tag()
        r = tus.create_resp(length=len(data), body=data, headers=t)
        assert r.status == 201, r
        assert txns(env, t) == ('POST', 201, 1, 1)
