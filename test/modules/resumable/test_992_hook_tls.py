"""992: hooks to https:// targets (ResumableHook EVENT https://... [ca=FILE]):
a real TLS receiver on 127.0.0.1 with a certificate this test makes with
openssl (its CA passed with ca=). Accepted, refused, a wrong CA, a wrong
name, the system CA store (which does not know the test's CA), a server
that never answers the handshake (timeout), failopen, config checks, and
at-least-once delivery of notifications over https."""
import os
import socket
import ssl
import subprocess
import time

import pytest

from pyrs.client import make_data
from pyrs.ctl import resumablectl
from pyrs.env import BASE_MODULES, RsArea
from pyrs.hookrx import Receiver, free_port
from test_990_hooks import published, tus_upload  # noqa: E402

BLOCKING = ('pre-create', 'pre-finish')
NOTIFY = ('post-create', 'post-finish')
ALLOW = dict(tags=['RS09701', 'RS04020'])


class Tls:
    """Certificates (made once per session dir) and receivers."""
    dir = None
    good = None         # cert for IP 127.0.0.1, signed by the test CA
    named = None        # cert for DNS wrong.example only, same CA
    later = None        # like good, down until a test starts it
    silent = None       # a listener that never answers the handshake
    silent_port = None
    plain = None        # plain http receiver (latency)


def openssl(*args, cwd):
    subprocess.run(['openssl', *args], cwd=cwd, check=True,
                   capture_output=True)


def make_certs(d):
    d.mkdir(exist_ok=True)
    if (d / 'named.pem').exists():
        return
    ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
          '-nodes']
    for ca in ('ca', 'otherca'):
        openssl('req', '-x509', *ec, '-keyout', f'{ca}.key', '-out',
                f'{ca}.pem', '-days', '2', '-subj', f'/CN=rs-test-{ca}',
                cwd=d)
    for name, san in (('good', 'IP:127.0.0.1'), ('named', 'DNS:wrong.example')):
        (d / f'{name}.ext').write_text(
            f'subjectAltName={san}\nbasicConstraints=CA:FALSE\n'
            'extendedKeyUsage=serverAuth\n')
        openssl('req', *ec, '-keyout', f'{name}.key', '-out', f'{name}.csr',
                '-subj', f'/CN={name}', cwd=d)
        openssl('x509', '-req', '-in', f'{name}.csr', '-CA', 'ca.pem',
                '-CAkey', 'ca.key', '-CAcreateserial', '-out', f'{name}.pem',
                '-days', '2', '-extfile', f'{name}.ext', cwd=d)


def server_ctx(d, name):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(d / f'{name}.pem'), str(d / f'{name}.key'))
    return ctx


def hooks(url, events, opts=''):
    return [f'ResumableHook {e} {url} {opts}'.strip() for e in events]


def conf(env):
    d = env.gen / 'tls-hooks'
    make_certs(d)
    Tls.dir = d
    if Tls.good is None:
        Tls.good = Receiver(tls=server_ctx(d, 'good')).start()
        Tls.named = Receiver(tls=server_ctx(d, 'named')).start()
        Tls.later = Receiver(tls=server_ctx(d, 'good'))
        Tls.silent = socket.socket()
        Tls.silent.bind(('127.0.0.1', 0))
        Tls.silent.listen(8)        # never accepted: no ServerHello
        Tls.silent_port = Tls.silent.getsockname()[1]
    if env.statedb.with_suffix('.pag').exists():
        rc, out = resumablectl(env, env.statedb, 'drop', 'all')
        assert rc == 0, out
    ca, other = f'ca={d}/ca.pem', f'ca={d}/otherca.pem'
    good, named = Tls.good.url + '/hook', Tls.named.url + '/hook'
    return dict(areas=[
        RsArea('/tls/', dir='tls-ok',
               directives=hooks(good, BLOCKING + NOTIFY, ca)),
        RsArea('/wrongca/', dir='tls-wrongca',
               directives=hooks(good, BLOCKING, f'timeout=3 {other}')),
        RsArea('/wrongname/', dir='tls-wrongname',
               directives=hooks(named, BLOCKING, f'timeout=3 {ca}')),
        RsArea('/sysca/', dir='tls-sysca',
               directives=hooks(good, BLOCKING, 'timeout=3')),
        RsArea('/silent/', dir='tls-silent', directives=hooks(
            f'https://127.0.0.1:{Tls.silent_port}/x', BLOCKING,
            f'timeout=1 {ca}')),
        RsArea('/open/', dir='tls-open', directives=hooks(
            named, BLOCKING, f'timeout=3 failopen=on {ca}')),
        RsArea('/later/', dir='tls-later',
               directives=hooks(Tls.later.url + '/n', NOTIFY, ca)),
    ], modules=BASE_MODULES)


def pending(env):
    rc, out = resumablectl(env, env.statedb, 'events')
    assert rc == 0, out
    return [line.split()[0] for line in out.splitlines()
            if not line.startswith('events:')], out


class TestHookTls:
    CONF = staticmethod(conf)
    ALLOW_ERRORS = ALLOW

    def test_rs_992_01_accepted(self, env):
        Tls.good.clear()
        data = make_data(3000, seed=9921)
        tus, url, r = tus_upload(env, '/tls/', data, 'ok.bin')
        assert r.status == 204, r
        assert published(env.area_dir('tls-ok'), 'ok.bin')
        assert Tls.good.wait_for(lambda evs: {'post-create', 'post-finish'}
                                 <= {e[0] for e in evs}, timeout=15), \
            Tls.good.events
        assert [e[0] for e in Tls.good.events if e[0] in BLOCKING] == \
            list(BLOCKING)
        assert Tls.good.headers[0]['Host'] == f'127.0.0.1:{Tls.good.port}'
        fin = Tls.good.of('pre-finish')[0][2]
        assert fin['upload']['offset'] == 3000

    def test_rs_992_02_refused(self, env):
        tus = env.tus('/tls/')
        r = tus.create_resp(length=10, metadata={'filename': 'reject.txt'})
        assert r.status == 403 and r.body == b'name refused\n', r
        assert 'X-Injected' not in r.headers
        data = b'clean start VIRUS end'
        tus, url, r = tus_upload(env, '/tls/', data, 'infected.bin')
        assert r.status == 422 and r.body == b'infected\n', r
        assert not (env.area_dir('tls-ok') / 'infected.bin').exists()

    @pytest.mark.parametrize('area,why', [
        ('/wrongca/', 'certificate verify failed: unable to get local issuer'),
        ('/wrongname/', 'certificate verify failed: IP address mismatch'),
        ('/sysca/', 'certificate verify failed: unable to get local issuer'),
    ])
    def test_rs_992_03_untrusted_fails_closed(self, env, area, why):
        """A certificate the hook cannot trust (other CA, other name, or
        the system store that does not know the test's CA): 503, logged
        with the reason, nothing stored; the receiver learns nothing."""
        Tls.good.clear()
        Tls.named.clear()
        tus = env.tus(area)
        r = tus.create_resp(length=10, metadata={'filename': 'a.txt'})
        assert r.status == 503, r
        log = '\n'.join(env.log_lines())
        assert 'RS09701' in log and why in log, log[-2000:]
        assert Tls.good.events == [] and Tls.named.events == []
        d = env.area_dir('tls-' + area.strip('/'))
        assert not list(env.staging_dir(d).glob('*.data'))

    def test_rs_992_04_handshake_timeout(self, env):
        tus = env.tus('/silent/')
        t0 = time.monotonic()
        r = tus.create_resp(length=10, metadata={'filename': 'a.txt'})
        assert r.status == 503, r
        assert time.monotonic() - t0 < 3
        log = '\n'.join(env.log_lines())
        assert 'RS09701' in log and 'timed out' in log

    def test_rs_992_05_failopen(self, env):
        tus, url, r = tus_upload(env, '/open/', b'0123456789', 'a.txt')
        assert r.status == 204, r
        assert published(env.area_dir('tls-open'), 'a.txt')

    def test_rs_992_06_at_least_once(self, env):
        """Notifications over https: the receiver is down for the upload,
        comes back, every event arrives (the stored record keeps ca=)."""
        ids = []
        for i in range(3):
            tus, url, r = tus_upload(env, '/later/', make_data(500, 9960 + i),
                                     f'l{i}.bin')
            assert r.status == 204, r
        end = time.monotonic() + 20
        while len(ids) < 6 and time.monotonic() < end:
            ids, out = pending(env)
            time.sleep(0.2)
        assert len(ids) == 6, out
        Tls.later.start()
        try:
            rc, out = resumablectl(env, env.statedb, 'replay', 'all')
            assert rc == 0, out
            assert Tls.later.wait_for(lambda evs: len(
                {e[1] for e in evs} & set(ids)) == 6, timeout=30), \
                Tls.later.events
            end = time.monotonic() + 10
            while pending(env)[0] and time.monotonic() < end:
                time.sleep(0.2)
            assert pending(env)[0] == []
        finally:
            Tls.later.stop()


class TestHookTlsConfig:
    @pytest.mark.parametrize('opts,msg', [
        ('ca=/nonexistent/ca.pem', 'no such file'),
        ('ca=relative.pem', 'an absolute path'),
        ('ca=/etc/hostname', 'no PEM certificate'),
    ])
    def test_rs_992_10_configtest(self, env, opts, msg):
        env.install(areas=[RsArea('/files/', directives=[
            f'ResumableHook pre-create https://127.0.0.1:9/x {opts}'])])
        rc, out = env.configtest()
        assert rc != 0 and msg in out, out

    def test_rs_992_11_ca_needs_https(self, env):
        env.install(areas=[RsArea('/files/', directives=[
            'ResumableHook pre-create http://127.0.0.1:9/x ca=/etc/hostname'])])
        rc, out = env.configtest()
        assert rc != 0 and 'https:// targets only' in out, out

    def test_rs_992_12_configtest_ok(self, env):
        d = env.gen / 'tls-hooks'
        make_certs(d)
        env.install(areas=[RsArea('/files/', directives=[
            'ResumableHook pre-create https://hooks.example/x',
            f'ResumableHook post-finish https://127.0.0.1:8443/y timeout=5 '
            f'failopen=on ca={d}/ca.pem'])])
        rc, out = env.configtest()
        assert rc == 0, out


def latency_conf(env):
    conf(env)                               # certificates, receivers
    if Tls.plain is None:
        Tls.plain = Receiver().start()
    return dict(areas=[
        RsArea('/plain/', dir='tls-lat-plain'),
        RsArea('/http/', dir='tls-lat-http', directives=hooks(
            Tls.plain.url + '/hook', ('pre-create',))),
        RsArea('/https/', dir='tls-lat-https', directives=hooks(
            Tls.good.url + '/hook', ('pre-create',),
            f'ca={Tls.dir}/ca.pem')),
    ], modules=BASE_MODULES)


class TestHookTlsLatency:
    """What an https pre-create hook adds to a creation (median of 20 tus
    creations, a new TLS connection each; printed with pytest -s as
    "LATENCY ...") next to the same receiver over plain http."""
    CONF = staticmethod(lambda env: latency_conf(env))

    def test_rs_992_20_latency(self, env):
        import statistics
        out = {}
        for area in ('/plain/', '/http/', '/https/'):
            tus = env.tus(area)
            times = []
            for _ in range(20):
                t0 = time.perf_counter()
                r = tus.create_resp(length=10, metadata={'filename': 'l.txt'})
                times.append(time.perf_counter() - t0)
                assert r.status == 201, r
            out[area.strip('/')] = statistics.median(times) * 1000
        print('\nLATENCY creation median ms: ' + ', '.join(
            f'{k}={v:.2f}' for k, v in out.items()))
        assert out['https'] < 1000, out
