"""993: hook notifications in mod_status: ResumableHookEventsPending (the
outbox, as the deliverer last counted it), ResumableHookEventsDelivered and
ResumableHookAttemptsFailed, on /server-status?auto and the HTML page;
they follow an endpoint that is down then back, resumablectl drop, and an
httpd restart with events pending."""
import time

from pyrs.client import RsClient, make_data
from pyrs.ctl import resumablectl
from pyrs.env import RsArea
from pyrs.hookrx import Receiver
from test_980_status import auto as status_auto  # noqa: E402

NOTIFY = ('post-create', 'post-finish')


class Rx:
    down = Receiver()       # started by the tests


def auto(env):
    return status_auto(env, 'ResumableHook')


def wait_auto(env, pred, timeout=20):
    end = time.monotonic() + timeout
    a = auto(env)
    while not pred(a) and time.monotonic() < end:
        time.sleep(0.2)
        a = auto(env)
    assert pred(a), a
    return a


def conf(env):
    if env.statedb.with_suffix('.pag').exists():
        rc, out = resumablectl(env, env.statedb, 'drop', 'all')
        assert rc == 0, out
    return dict(areas=[RsArea('/n/', dir='hookstat', directives=[
        f'ResumableHook {e} {Rx.down.url}/n' for e in NOTIFY])])


def upload(env, n, seed):
    tus = env.tus('/n/')
    url = tus.create(length=n, metadata={'filename': f's{seed}.bin'})
    assert tus.patch(url, 0, make_data(n, seed=seed)).status == 204


class TestHookStatus:
    CONF = staticmethod(conf)

    def test_rs_993_01_pending_then_delivered(self, env):
        a = wait_auto(env, lambda a: a.get('HookEventsPending') == 0)
        assert set(a) == {'HookEventsPending', 'HookEventsDelivered',
                          'HookAttemptsFailed'}, a
        delivered, failed = a['HookEventsDelivered'], a['HookAttemptsFailed']
        for i in range(2):
            upload(env, 300, 9930 + i)
        a = wait_auto(env, lambda a: a['HookEventsPending'] == 4
                      and a['HookAttemptsFailed'] >= failed + 4)
        assert a['HookEventsDelivered'] == delivered
        html = RsClient(env.url).get('/server-status').body.decode()
        assert 'HookEventsPending' in html
        assert 'hook notifications pending' in html
        Rx.down.start()
        try:
            rc, out = resumablectl(env, env.statedb, 'replay', 'all')
            assert rc == 0, out
            a = wait_auto(env, lambda a: a['HookEventsPending'] == 0)
            assert a['HookEventsDelivered'] == delivered + 4, a
            assert len({e[1] for e in Rx.down.events}) == 4
        finally:
            Rx.down.stop()
            Rx.down.clear()

    def test_rs_993_02_drop(self, env):
        upload(env, 100, 9935)
        wait_auto(env, lambda a: a['HookEventsPending'] == 2)
        rc, out = resumablectl(env, env.statedb, 'drop', 'all')
        assert rc == 0 and 'drop: 2 event(s)' in out, out
        wait_auto(env, lambda a: a['HookEventsPending'] == 0)

    def test_rs_993_03_restart(self, env):
        """The counters start from zero with httpd; the pending events are
        counted again at once (not only when their retry is due)."""
        for i in range(3):
            upload(env, 100, 9940 + i)
        wait_auto(env, lambda a: a['HookEventsPending'] == 6)
        env.stop()
        env.start()
        a = wait_auto(env, lambda a: a['HookEventsPending'] == 6, timeout=10)
        assert a['HookEventsDelivered'] == 0, a
        rc, out = resumablectl(env, env.statedb, 'drop', 'all')
        assert rc == 0, out
        wait_auto(env, lambda a: a['HookEventsPending'] == 0)
