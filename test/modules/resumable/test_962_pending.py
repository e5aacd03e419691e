"""962: ResumableMaxPending (issue 11 part 3): unfinished uploads that hold
no data yet are bounded per user (anonymous clients: per address) and per
area, in every protocol, at creation; an upload stops counting once it
holds data, and when it is deleted or expires. Refusal: 429 with a body
saying why (the md5 protocol in its own envelope)."""
import json
import subprocess

from pyrs.env import RsArea
from test_960_crossproto import (Paths, md5, md5_handshake, offset_post,
                                 slice_chunk, flow_chunk, ietf_h)
from test_700_ietf import ireq

LIMIT = ['ResumableExpire 1h', 'ResumableMaxPending 3 100']
AREAS = ['t', 'i', 'o', 's', 'm', 'f']


def conf(env):
    f = env.gen / 'conf' / 'htpasswd-962'
    subprocess.run(['htpasswd', '-bcB', str(f), 'alice', 'alice-pw'],
                   check=True, capture_output=True)
    subprocess.run(['htpasswd', '-bB', str(f), 'bob', 'bob-pw'], check=True,
                   capture_output=True)
    areas = [RsArea(f'/{n}/', dir=f'pending-{n}', directives=LIMIT
                    + (['ResumableMaxSize 1K'] if n == 's' else []))
             for n in AREAS]
    areas.append(RsArea('/area/', dir='pending-area', directives=[
        'ResumableMaxPending 0 4']))
    areas.append(RsArea('/users/', dir='pending-users', directives=[
        'ResumableMaxPending 2 3'], section=[
            'AuthType Basic', 'AuthName "uploads"', f'AuthUserFile "{f}"',
            'Require valid-user']))
    return dict(areas=areas)


def tus_create(env, area, auth=None, length=10):
    return env.tus(area, auth=auth).create_resp(length=length)


def refused(r):
    assert r.status == 429, r
    assert b'hold no data' in r.body, r


class TestPending:
    CONF = conf

    def test_rs_962_01_tus(self, env):
        tus = env.tus('/t/')
        urls = [tus.create(length=10) for _ in range(3)]
        refused(tus.create_resp(length=10))
        assert tus.create_resp(length=0).status == 201      # complete at once
        assert tus.patch(urls[0], 0, b'12345').status == 204  # holds data now
        urls.append(tus.create(length=10))
        refused(tus.create_resp(length=10))
        assert tus.delete(urls[1]).status == 204             # deleted
        urls.append(tus.create(length=10))
        refused(tus.create_resp(length=10))
        # creation with data: never left pending
        r = tus.create_resp(length=10, body=b'abc',
                            headers={'Content-Type':
                                     'application/offset+octet-stream'})
        assert r.status == 429, r      # counted before its body is stored

    def test_rs_962_02_ietf(self, env):
        for _ in range(3):
            r = ireq(env, 'POST', '/i/', ietf_h(False), b'')
            assert r.status == 201, r
        r = ireq(env, 'POST', '/i/', ietf_h(False), b'')
        assert r.status == 429, r
        # counted at creation, before its body is stored: refused too
        r = ireq(env, 'POST', '/i/', ietf_h(True), b'data')
        assert r.status == 429, r

    def test_rs_962_03_offset(self, env):
        P = Paths('/o/')
        for i in range(3):
            assert offset_post(env, P, f'empty-{i}', 0, b'', 10).status == 200
        r = offset_post(env, P, 'empty-3', 0, b'', 10)
        refused(r)
        # data for one of them: room for another
        assert offset_post(env, P, 'empty-0', 0, b'abc', 10).status == 200
        assert offset_post(env, P, 'empty-3', 0, b'', 10).status == 200

    def test_rs_962_04_slice(self, env):
        """A refused first chunk leaves an upload without data: bounded."""
        P = Paths('/s/')
        for i in range(3):
            r = slice_chunk(env, P, f'far-{i}.bin', 5000, b'x' * 100)
            assert r.status == 413, r
        refused(slice_chunk(env, P, 'far-3.bin', 5000, b'x' * 100))
        # at the limit a new name is refused before its chunk is stored
        refused(slice_chunk(env, P, 'near.bin', 0, b'x' * 100))

    def test_rs_962_05_md5(self, env):
        P = Paths('/m/')
        for i in range(3):
            r = md5_handshake(env, P, md5(b'%d' % i), [md5(b'c') + '0'])
            assert r.status == 200, r
        r = md5_handshake(env, P, md5(b'3'), [md5(b'c') + '0'])
        assert r.status == 429, r
        j = json.loads(r.body)
        assert j['code'] == 429 and 'hold no data' in j['msg'], j

    def test_rs_962_06_flow_holds_data(self, env):
        """Flow creates an upload with its first chunk: it holds data, so
        any number of them are fine."""
        P = Paths('/f/')
        for i in range(6):
            r = flow_chunk(env, P, f'8-flow-{i}.bin', 1, b'abcd')
            assert r.status == 200 and r.body == b'partly_done', r

    def test_rs_962_07_area_limit(self, env):
        tus = env.tus('/area/')
        for _ in range(4):
            assert tus.create_resp(length=10).status == 201
        refused(tus.create_resp(length=10))

    def test_rs_962_08_per_user(self, env):
        alice, bob = ('alice', 'alice-pw'), ('bob', 'bob-pw')
        for _ in range(2):
            assert tus_create(env, '/users/', alice).status == 201
        refused(tus_create(env, '/users/', alice))
        assert tus_create(env, '/users/', bob).status == 201   # bob's own
        refused(tus_create(env, '/users/', bob))               # area: 3


class TestPendingConfig:

    def test_rs_962_10_bad_values(self, env):
        for bad in ('-1', 'many', '5 x', '1 2 3', '2000000000'):
            env.install(areas=[RsArea('/files/', dir='pending-cfg',
                                      directives=[f'ResumableMaxPending {bad}'])])
            assert env.apache_fail() != 0, bad
            assert 'ResumableMaxPending' in env.last_fail_output, bad

    def test_rs_962_11_htaccess_only_lowers(self, env):
        env.install(areas=[RsArea('/ht/', kind='htaccess', directives=[
            'ResumableMaxPending 0'], section=['ResumableMaxPending 2'])])
        env.start()
        try:
            tus = env.tus('/ht/')
            for _ in range(2):
                assert tus.create_resp(length=10).status == 201
            refused(tus.create_resp(length=10))
        finally:
            env.stop()
