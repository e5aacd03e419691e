"""991: hook notifications are delivered at least once (ResumableHook
post-*): written to the outbox in the transaction of the change, sent off
the request path by the watchdog with retries and backoff, surviving an
endpoint that is down, a SIGKILLed child and an httpd restart; every event
arrives, ids let the receiver deduplicate; resumablectl events/replay/drop.

Delivery figures of the outage tests are printed (pytest -s) as
"DELIVERY <test>: sent=N received=N unique=N duplicates=N"."""
import os
import signal
import time

from pyrs.client import make_data
from pyrs.ctl import resumablectl
from pyrs.env import BASE_MODULES, RsArea
from pyrs.hookrx import Receiver, free_port

NOTIFY = ('post-create', 'post-finish', 'post-terminate', 'post-expire')
PROGRESS = ('post-receive', 'post-finish')
# the deliverer logs each failed attempt at info; a killed child is fatal
# for the log checker unless allowed ("exit signal Killed")
ALLOW = dict(tags=['AH00052'], patterns=[r'exit signal Killed'])


def hooks(target, events=NOTIFY):
    return [f'ResumableHook {e} {target}' for e in events]


class Rx:
    """Receivers on fixed ports, started and stopped by the tests."""
    live = Receiver()
    app = Receiver()
    outage = Receiver()


def conf(env):
    for r in (Rx.live, Rx.app):
        if r.srv is None:
            r.start()
    if env.statedb.with_suffix('.pag').exists():
        # events other classes left for their own receivers: not ours
        rc, out = resumablectl(env, env.statedb, 'drop', 'all')
        assert rc == 0, out
    return dict(
        areas=[
            RsArea('/abs/', dir='dl-abs', directives=hooks(Rx.live.url + '/n')),
            RsArea('/app/', dir='dl-app', directives=hooks('/_hooks/app')),
            RsArea('/down/', dir='dl-down',
                   directives=hooks(Rx.outage.url + '/n')),
            RsArea('/progress/', dir='dl-progress',
                   directives=hooks(Rx.live.url + '/p', PROGRESS)),
            RsArea('/exp/', dir='dl-exp', directives=hooks(Rx.live.url + '/e')
                   + ['ResumableExpire 1']),
        ],
        modules=BASE_MODULES + ['proxy', 'proxy_http'],
        extra=f'ProxyPass "/_hooks/app" "{Rx.app.url}/app"\n'
              '<Location "/_hooks/">\n    Require local\n</Location>\n')


def upload(env, area, n, seed):
    tus = env.tus(area)
    data = make_data(n, seed=seed)
    url = tus.create(length=n, metadata={'filename': f'f{seed}.bin'})
    assert tus.patch(url, 0, data).status == 204
    return tus, url


def figures(name, rx, sent_ids):
    ids = [e[1] for e in rx.events]
    got = [i for i in ids if i in sent_ids]
    unique = set(got)
    print(f'\nDELIVERY {name}: sent={len(sent_ids)} received={len(got)} '
          f'unique={len(unique)} duplicates={len(got) - len(unique)}')
    return unique


def pending(env):
    rc, out = resumablectl(env, env.statedb, 'events')
    assert rc == 0, out
    return [line.split()[0] for line in out.splitlines()
            if not line.startswith('events:')], out


def wait_pending(env, n, timeout=20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        ids, out = pending(env)
        if len(ids) >= n:
            return ids
        time.sleep(0.2)
    raise AssertionError(f'{n} pending expected: {out}')


class TestDelivery:
    CONF = staticmethod(conf)
    ALLOW_ERRORS = ALLOW

    def test_rs_991_01_events_arrive(self, env):
        for rx, area in ((Rx.live, '/abs/'), (Rx.app, '/app/')):
            rx.clear()
            tus, url = upload(env, area, 2000, 9911)
            assert tus.delete(url).status == 204
            assert rx.wait_for(lambda evs: len(evs) >= 3, timeout=15), rx.events
            evs = [e[0] for e in rx.events]
            assert evs == ['post-create', 'post-finish', 'post-terminate'], evs
            ids = [e[1] for e in rx.events]
            assert len(set(ids)) == 3
            fin = rx.of('post-finish')[0][2]
            assert fin['upload']['path'].endswith('f9911.bin')
            assert fin['upload']['offset'] == 2000
            assert fin['request']['method'] == 'PATCH'
            hdr = rx.headers[1]
            assert hdr['X-Resumable-Event'] == 'post-finish'
            assert hdr['X-Resumable-Event-Id'] == ids[1]
        assert pending(env)[0] == []

    def test_rs_991_02_expire_from_the_sweep(self, env):
        Rx.live.clear()
        tus = env.tus('/exp/')
        url = tus.create(length=10)
        assert Rx.live.wait_for(lambda evs: any(e[0] == 'post-expire'
                                                for e in evs), timeout=20)
        p = Rx.live.of('post-expire')[0][2]
        assert url.endswith(p['upload']['id'])
        assert p['request'] is None         # the sweep, not a request
        assert tus.head(url).status in (404, 410)

    def test_rs_991_03_endpoint_down_then_back(self, env):
        """Down for the whole upload (and for several retries), back later:
        every event arrives."""
        assert Rx.outage.srv is None
        for i in range(5):
            upload(env, '/down/', 1000, 9930 + i)
        ids = wait_pending(env, 10)
        time.sleep(3)                       # some failed attempts
        _ids, out = pending(env)
        assert 'attempts=' in out and 'last:' in out, out
        Rx.outage.start()
        try:
            rc, out = resumablectl(env, env.statedb, 'replay', 'all')
            assert rc == 0 and 'replay: 10 event(s)' in out, out
            assert Rx.outage.wait_for(lambda evs: len(
                {e[1] for e in evs} & set(ids)) == 10, timeout=30)
            unique = figures('endpoint_down', Rx.outage, set(ids))
            assert unique == set(ids)
            assert pending(env)[0] == []
        finally:
            Rx.outage.stop()
            Rx.outage.clear()

    def test_rs_991_04_child_killed_before_delivery(self, env):
        """Events committed, receiver down; every child SIGKILLed; the
        new children deliver them."""
        for i in range(3):
            upload(env, '/down/', 500, 9940 + i)
        ids = wait_pending(env, 6)
        killed = env.children()
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        assert env.wait_children(exclude=killed, timeout=15)
        Rx.outage.start()
        try:
            resumablectl(env, env.statedb, 'replay', 'all')
            assert Rx.outage.wait_for(lambda evs: len(
                {e[1] for e in evs} & set(ids)) == 6, timeout=30)
            unique = figures('child_killed', Rx.outage, set(ids))
            assert unique == set(ids)
        finally:
            Rx.outage.stop()
            Rx.outage.clear()

    def test_rs_991_05_restart_with_events_pending(self, env):
        for i in range(3):
            upload(env, '/down/', 700, 9950 + i)
        ids = wait_pending(env, 6)
        env.stop()
        assert pending(env)[0] == ids       # durable while httpd is down
        Rx.outage.start()
        try:
            env.start()
            assert Rx.outage.wait_for(lambda evs: len(
                {e[1] for e in evs} & set(ids)) == 6, timeout=30)
            unique = figures('restart', Rx.outage, set(ids))
            assert unique == set(ids)
        finally:
            Rx.outage.stop()
            Rx.outage.clear()

    def test_rs_991_07_child_killed_while_delivering(self, env):
        """The receiver got the event, the child dies before it hears the
        answer: the event is sent again (the documented duplicate), and its
        id is the same, so the receiver drops it."""
        Rx.outage.delay = 3
        Rx.outage.start()
        try:
            upload(env, '/down/', 300, 9970)
            ids = set(wait_pending(env, 2, timeout=5))
            assert Rx.outage.wait_for(lambda evs: len(evs) >= 1, timeout=10)
            killed = env.children()
            for pid in killed:
                os.kill(pid, signal.SIGKILL)
            assert env.wait_children(exclude=killed, timeout=15)
            Rx.outage.delay = 0
            assert Rx.outage.wait_for(lambda evs: len(
                {e[1] for e in evs} & ids) == 2, timeout=30)
            time.sleep(2)
            unique = figures('killed_while_delivering', Rx.outage, ids)
            assert unique == ids
            got = [e[1] for e in Rx.outage.events]
            assert len(got) - len(set(got)) >= 1     # the duplicate
            assert pending(env)[0] == []
        finally:
            Rx.outage.stop()
            Rx.outage.clear()
            Rx.outage.delay = 0

    def test_rs_991_08_post_receive(self, env):
        """post-receive: progress of an unfinished upload, at most one a
        second per upload (and child), never for the append that finishes
        it."""
        Rx.live.clear()
        tus = env.tus('/progress/')
        data = make_data(3000, seed=9980)
        url = tus.create(length=3000)
        assert tus.patch(url, 0, data[:1000]).status == 204
        assert tus.patch(url, 1000, data[1000:2000]).status == 204  # < 1 s
        time.sleep(1.2)
        assert tus.patch(url, 2000, data[2000:2500]).status == 204
        assert tus.patch(url, 2500, data[2500:]).status == 204
        assert Rx.live.wait_for(lambda evs: any(e[0] == 'post-finish'
                                                for e in evs), timeout=15)
        time.sleep(1.5)
        got = [e[2]['upload']['offset'] for e in Rx.live.of('post-receive')]
        # the limit is per child: the second PATCH may reach another one
        assert got in ([1000, 2500], [1000, 2000, 2500]), got
        assert all(e[2]['request']['method'] == 'PATCH'
                   for e in Rx.live.of('post-receive'))

    def test_rs_991_06_drop(self, env):
        upload(env, '/down/', 100, 9960)
        ids = wait_pending(env, 2)
        rc, out = resumablectl(env, env.statedb, 'drop', ids[0])
        assert rc == 0 and f'{ids[0]}: dropped' in out, out
        rc, out = resumablectl(env, env.statedb, 'drop', ids[0])
        assert rc == 1, out
        rc, out = resumablectl(env, env.statedb, 'drop', 'all')
        assert rc == 0 and 'drop: 1 event(s)' in out, out
        assert pending(env)[0] == []
