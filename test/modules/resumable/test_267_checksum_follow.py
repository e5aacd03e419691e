"""267: a tus Upload-Checksum body of 1 MiB or more stays on the splice
path (issue 15): the bytes go socket -> pipe -> data file, and a worker
thread digests them from the page cache as they land (src/rs_hash_follow.c).
The verdicts are those of the in-memory digest: a match counts, a mismatch
is 460 with the offset and the data file back where they were, for every
algorithm; an upload of unknown body length (chunked) is digested the same
way without splice."""
import re

import pytest

from pyrs.client import digest_b64, make_data, sha256, upload_id
from pyrs.env import RsArea

SPLICED = re.compile(r'RS04051: moving the body into the file in the kernel')
MiB = 1024 * 1024


def spliced(env, mark):
    return sum(1 for line in env.log_lines(mark) if SPLICED.search(line))


def data_size(env, url):
    f = env.staged_data_file(env.area_dir('follow'), upload_id(url))
    return f.stat().st_size if f else None


class TestChecksumFollow:
    CONF = dict(areas=[RsArea('/files/', dir='follow')])

    @pytest.mark.parametrize('alg', ['md5', 'sha1', 'sha256', 'sha512'])
    def test_rs_267_01_spliced_and_verified(self, env, alg):
        tus = env.tus('/files/')
        data = make_data(3 * MiB + 12345, seed=2671)
        cut = MiB + 3
        url = tus.create(length=len(data))
        mark = env.log_mark()
        r = tus.patch(url, 0, data[:cut], checksum=alg)
        assert r.status == 204 and r.headers.get('Upload-Offset') == str(cut), r
        assert spliced(env, mark) == 1
        mark = env.log_mark()
        wrong = f'{alg} {digest_b64(alg, data[cut:-1] + b"x")}'
        r = tus.patch(url, cut, data[cut:], checksum=wrong)
        assert r.status == 460, r
        assert spliced(env, mark) == 1
        assert tus.offset(url) == cut and data_size(env, url) == cut
        r = tus.patch(url, cut, data[cut:], checksum=alg)
        assert r.status == 204, r
        assert sha256(tus.get(url).body) == sha256(data)

    def test_rs_267_02_chunked_body(self, env):
        """Transfer-Encoding: chunked (length unknown): not spliced, still
        digested from the file by the worker; mismatch rolled back."""
        tus = env.tus('/files/')
        data = make_data(2 * MiB + 7, seed=2672)
        url = tus.create(length=len(data))
        wrong = f'sha256 {digest_b64("sha256", data[1:])}'
        r = tus.patch(url, 0, data, checksum=wrong, chunked=True, chunk_size=250000)
        assert r.status == 460, r
        assert tus.offset(url) == 0 and data_size(env, url) == 0
        r = tus.patch(url, 0, data, checksum='sha256', chunked=True, chunk_size=250000)
        assert r.status == 204, r
        assert sha256(tus.get(url).body) == sha256(data)
