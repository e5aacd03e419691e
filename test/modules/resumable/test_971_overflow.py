"""971: sums of client numbers near 2^63 and malformed header parameters
that were undefined behaviour (UBSan aborts the child under make
asan-test; the normal build answered 500 or went on with a wrapped
number): each is a 4xx now, and the server stays up.

- two tus partials of length 2^63-1 summed by a final (rs_engine.c
  load_parts): 413, not 500 ERR_STATE;
- IETF Upload-Offset + Content-Length past 2^63 (rs_proto_ietf.c
  append_lengths_ok, digest_body): 400 before any body is read;
- IETF `Content-Disposition: x; y` (a parameter without '=', cd_param
  stepped past a NULL pointer): the upload is made, without a name;
- found by the fuzzer (test_972): a flow test GET whose query has a bad
  %-escape (apr_punescape_url gave NULL, used as a table key: SIGSEGV in
  every build): 400."""
import pytest

from pyrs.client import OCTET, split_url
from pyrs.env import RsArea
from pyrs.hostile import flow_query, send_whole

P = '/ov/'
TUS = {'Tus-Resumable': '1.0.0'}
IETF = {'Upload-Draft-Interop-Version': '8'}
MAX63 = str(2 ** 63 - 1)
ALLOW = dict(patterns=[r'\[resumable:warn\]'])


class TestOverflow:
    # no ResumableMaxSize: lengths up to 2^63-1 are accepted
    CONF = dict(areas=[RsArea(P, dir='overflow')])
    ALLOW_ERRORS = ALLOW

    def alive(self, env):
        url = env.tus(P).upload(b'still alive')
        assert env.client.get(url).body == b'still alive'

    def test_rs_971_01_concat_lengths_overflow(self, env):
        tus = env.tus(P)
        parts = []
        for _ in range(2):
            r = tus.create_resp(length=int(MAX63), concat='partial')
            assert r.status == 201, r
            parts.append(split_url(r.headers['Location'])[0])
        r = env.client.request('POST', P, dict(TUS, **{
            'Upload-Concat': 'final;' + ' '.join(parts)}))
        assert r.status == 413, r
        for u in parts:                  # the partials are unchanged
            r = tus.head(u)
            assert r.status == 200 and r.headers['Upload-Length'] == MAX63, r
        self.alive(env)

    def test_rs_971_02_concat_unknown_plus_max(self, env):
        """A deferred partial with a 2^63-1 one: no sum is taken yet."""
        tus = env.tus(P)
        r1 = tus.create_resp(length=int(MAX63), concat='partial')
        r2 = tus.create_resp(defer=True, concat='partial')
        assert r1.status == 201 and r2.status == 201, (r1, r2)
        urls = [split_url(r.headers['Location'])[0] for r in (r1, r2)]
        r = env.client.request('POST', P, dict(TUS, **{
            'Upload-Concat': 'final;' + ' '.join(urls)}))
        assert 400 <= r.status < 500 or r.status == 201, r
        self.alive(env)

    def ietf_upload(self, env, length):
        r = send_whole(env.client, 'POST', P, dict(IETF, **{
            'Upload-Complete': '?0', 'Upload-Length': str(length)}), b'abcd')
        assert r.status == 201, r
        return split_url(r.headers['Location'])[0]

    @pytest.mark.parametrize('complete', ['?0', '?1'])
    @pytest.mark.parametrize('length', [MAX63, None])
    def test_rs_971_03_ietf_offset_plus_length(self, env, complete, length):
        url = self.ietf_upload(env, 100)
        h = dict(IETF, **{'Upload-Complete': complete, 'Upload-Offset': '4',
                          'Content-Type': 'application/partial-upload',
                          'Content-Length': MAX63})
        if length:
            h['Upload-Length'] = length
        s = env.client.connect(10)
        try:
            s.sendall(env.client._head_bytes('PATCH', url, h, None) + b'xyz')
            from pyrs.client import read_response
            r = read_response(s, 'PATCH', 10)
        finally:
            s.close()
        assert 400 <= r.status < 500, r
        r = env.client.head(url, IETF)
        assert r.headers.get('Upload-Offset') == '4', r
        self.alive(env)

    def test_rs_971_04_ietf_unknown_length_offset_overflow(self, env):
        """Unknown length, Content-Length 2^63-1 at offset 4."""
        r = send_whole(env.client, 'POST', P, dict(IETF, **{
            'Upload-Complete': '?0'}), b'abcd')
        assert r.status == 201, r
        url = split_url(r.headers['Location'])[0]
        h = dict(IETF, **{'Upload-Complete': '?0', 'Upload-Offset': '4',
                          'Content-Type': 'application/partial-upload',
                          'Upload-Length': MAX63,
                          'Content-Length': MAX63})
        s = env.client.connect(10)
        try:
            s.sendall(env.client._head_bytes('PATCH', url, h, None) + b'xyz')
            from pyrs.client import read_response
            r = read_response(s, 'PATCH', 10)
        finally:
            s.close()
        assert 400 <= r.status < 500, r
        self.alive(env)

    @pytest.mark.parametrize('cd', ['x; y', 'x;', 'x; y; z', 'x;filename',
                                    'x; filename*', 'attachment; filename=',
                                    'x; ;;', ';', 'x; filename="a'])
    def test_rs_971_05_ietf_disposition_param_without_value(self, env, cd):
        r = send_whole(env.client, 'POST', P, dict(IETF, **{
            'Upload-Complete': '?1', 'Content-Disposition': cd,
            'Content-Type': OCTET}), b'abcd')
        assert r.status in (200, 201) or 400 <= r.status < 500, r
        self.alive(env)

    @pytest.mark.parametrize('bad', ['f%owTotalSize=10', 'flowTotalSize=%',
                                     'flowTotalSize=1%zz', '%=1', '%',
                                     'flowFilename=%G0.bin', '%00=1'])
    def test_rs_971_06_flow_query_bad_escape(self, env, bad):
        q = flow_query(flowTotalSize=None) + '&' + bad
        r = env.client.get(P + '?' + q)
        assert r.status == 400, r
        self.alive(env)


class TestLoweredMaxSize:
    """A deferred-length upload past a ResumableMaxSize that was lowered
    after it started: the room left is none (it was max - offset < 0, which
    the engine took for "no limit": any number of bytes more)."""

    def test_rs_971_07_offset_past_lowered_max(self, env):
        def conf(limit):
            env.install(areas=[RsArea('/lm/', dir='lowered', directives=[
                f'ResumableMaxSize {limit}'])])
        conf('1M')
        env.start()
        try:
            tus = env.tus('/lm/')
            url = tus.create(defer=True)
            assert tus.patch(url, 0, b'a' * 100000).status == 204
            conf('64K')
            env.restart()
            r = tus.patch(url, 100000, b'b' * 1000)
            assert r.status == 413, r
            assert tus.offset(url) == 100000
        finally:
            env.stop()
