"""25x: checksum and checksum-trailer."""
import time

import pytest

from pyrs.client import OCTET, digest_b64, make_data, sha256

ALGS = ['md5', 'sha1', 'sha256', 'sha512']


@pytest.mark.usefixtures('rs_default')
class TestChecksum:

    @pytest.mark.parametrize('alg', ALGS)
    def test_rs_250_01_valid(self, env, tus, alg):
        data = make_data(100000, seed=1)
        url = tus.create(length=len(data))
        r = tus.patch(url, 0, data[:60000], checksum=alg)
        assert r.status == 204 and r.headers.get('Upload-Offset') == '60000', r
        r = tus.patch(url, 60000, data[60000:], checksum=alg)
        assert r.status == 204, r
        assert sha256(tus.get(url).body) == sha256(data)

    @pytest.mark.parametrize('alg', ALGS)
    def test_rs_250_02_mismatch(self, env, tus, alg):
        data = make_data(50000, seed=2)
        url = tus.create(length=len(data))
        assert tus.patch(url, 0, data[:10000], checksum=alg).status == 204
        wrong = f'{alg} {digest_b64(alg, b"something else")}'
        r = tus.patch(url, 10000, data[10000:], checksum=wrong)
        assert r.status == 460, r
        assert r.headers.get('Tus-Resumable') == '1.0.0'
        assert tus.offset(url) == 10000
        r = tus.patch(url, 10000, data[10000:], checksum=alg)
        assert r.status == 204, r
        assert sha256(tus.get(url).body) == sha256(data)

    @pytest.mark.parametrize('value', [f'crc32 {digest_b64("md5", b"x")}', 'foo AAAA'])
    def test_rs_250_03_unknown_algorithm(self, env, tus, value):
        url = tus.create(length=10)
        r = tus.patch(url, 0, b'0123456789', checksum=value)
        assert r.status == 400, r
        assert tus.offset(url) == 0

    @pytest.mark.parametrize('value', ['sha1', 'sha1 !!!!', 'sha1 YQ== YQ==', 'YQ==',
                                       'sha1,YQ=='],
                             ids=['noval', 'badchars', 'twovals', 'noalg', 'comma'])
    def test_rs_250_04_malformed(self, env, tus, value):
        url = tus.create(length=10)
        r = tus.request('PATCH', url, {'Upload-Offset': '0', 'Content-Type': OCTET,
                                       'Upload-Checksum': value}, body=b'0123456789')
        assert r.status == 400, r
        assert tus.offset(url) == 0

    @pytest.mark.parametrize('alg', ['sha1', 'sha256'])
    def test_rs_250_05_trailer(self, env, tus, alg):
        data = make_data(200000, seed=5)
        url = tus.create(length=len(data))
        r = tus.patch(url, 0, data[:150000], chunked=True, chunk_size=16384,
                      trailers={'Upload-Checksum': f'{alg} {digest_b64(alg, data[:150000])}'})
        assert r.status == 204 and r.headers.get('Upload-Offset') == '150000', r
        r = tus.patch(url, 150000, data[150000:], chunked=True,
                      trailers={'Upload-Checksum': f'{alg} {digest_b64(alg, b"nope")}'})
        assert r.status == 460, r
        assert tus.offset(url) == 150000
        r = tus.patch(url, 150000, data[150000:], chunked=True,
                      trailers={'Upload-Checksum': f'{alg} {digest_b64(alg, data[150000:])}'})
        assert r.status == 204, r
        assert sha256(tus.get(url).body) == sha256(data)

    def test_rs_250_06_trailer_malformed(self, env, tus):
        url = tus.create(length=10)
        r = tus.patch(url, 0, b'0123456789', chunked=True,
                      trailers={'Upload-Checksum': 'crc32 AAAA'})
        assert r.status == 400, r
        assert tus.offset(url) == 0

    def test_rs_250_07_mismatch_on_completing_patch(self, env, tus):
        """A bad checksum on the last PATCH leaves the upload incomplete."""
        data = b'0123456789'
        url = tus.create(length=10, metadata={'filename': 'cks-final.txt'})
        r = tus.patch(url, 0, data, checksum=f'md5 {digest_b64("md5", b"x")}')
        assert r.status == 460, r
        assert tus.get(url).status == 409
        assert not (env.area_dir('files') / 'cks-final.txt').exists()
        assert tus.patch(url, 0, data, checksum='md5').status == 204
        assert (env.area_dir('files') / 'cks-final.txt').read_bytes() == data

    @pytest.mark.parametrize('alg', ['sha256', 'md5'])
    def test_rs_250_08_large_pipelined(self, env, tus, alg):
        """Bodies of 1 MiB and more are digested in a worker thread while
        they stream: the same verdicts, the same bytes."""
        data = make_data(3 * 1024 * 1024 + 5, seed=8)
        cut = 1024 * 1024 + 77
        url = tus.create(length=len(data))
        r = tus.patch(url, 0, data[:cut], checksum=alg)
        assert r.status == 204 and r.headers.get('Upload-Offset') == str(cut), r
        wrong = f'{alg} {digest_b64(alg, data[cut:-1])}'
        r = tus.patch(url, cut, data[cut:], checksum=wrong)
        assert r.status == 460, r
        assert tus.offset(url) == cut
        r = tus.patch(url, cut, data[cut:], checksum=alg, chunked=True, chunk_size=300000)
        assert r.status == 204, r
        assert sha256(tus.get(url).body) == sha256(data)

    def test_rs_250_09_large_pipelined_abort(self, env, tus):
        """A client gone mid-way through a checksummed body: the worker
        thread is stopped with the request, nothing unverified counts."""
        data = make_data(4 * 1024 * 1024, seed=9)
        url = tus.create(length=len(data))
        s = env.client.send_partial('PATCH', url, {
            'Tus-Resumable': '1.0.0', 'Upload-Offset': '0', 'Content-Type': OCTET,
            'Upload-Checksum': f'sha256 {digest_b64("sha256", data)}'},
            data[:2 * 1024 * 1024], len(data))
        s.close()
        off = None
        for _ in range(50):
            off = tus.offset(url)
            if off == 0 and tus.patch(url, 0, data, checksum='sha256').status == 204:
                break
            time.sleep(0.1)         # the aborted writer may still hold it
        assert off == 0
        assert sha256(tus.get(url).body) == sha256(data)
