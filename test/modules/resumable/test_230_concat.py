"""23x: concatenation and concatenation-unfinished."""
import time

import pytest

from pyrs.client import make_data, sha256, split_url, upload_id


def path_of(url):
    return split_url(url)[0]


def published(path, timeout=20):
    """A final is composed at once and published after its response went
    out (test_235): wait, bounded, for the file to appear."""
    end = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < end:
        time.sleep(0.05)
    return path


@pytest.mark.usefixtures('rs_default')
class TestConcat:

    def partial(self, tus, data, upload=True):
        url = tus.create(length=len(data), concat='partial')
        if upload:
            tus.upload_rest(url, data, 0)
        return url

    def test_rs_230_01_partial_head(self, env, tus):
        url = tus.create(length=10, concat='partial')
        r = tus.head(url)
        assert r.status == 200, r
        assert r.headers.get('Upload-Concat') == 'partial'
        assert r.headers.get('Upload-Offset') == '0'

    @pytest.mark.parametrize('absolute', [False, True], ids=['paths', 'urls'])
    def test_rs_230_02_final(self, env, tus, absolute):
        a, b = make_data(70000, seed=1), make_data(33333, seed=2)
        ua, ub = self.partial(tus, a), self.partial(tus, b)
        refs = [ua, ub] if absolute else [path_of(ua), path_of(ub)]
        r = tus.create_resp(concat='final;' + ' '.join(refs))
        assert r.status == 201, r
        final = r.headers['Location']
        r = tus.head(final)
        assert r.status == 200, r
        total = str(len(a) + len(b))
        assert r.headers.get('Upload-Offset') == total and r.headers.get('Upload-Length') == total, r
        concat = r.headers.get('Upload-Concat', '')
        assert concat.startswith('final;'), r
        assert upload_id(ua) in concat and upload_id(ub) in concat
        assert concat.index(upload_id(ua)) < concat.index(upload_id(ub))
        r = tus.get(final)
        assert r.status == 200 and sha256(r.body) == sha256(a + b)
        on_disk = published(env.area_dir('files') / upload_id(final))
        assert env.sha256_file(on_disk) == sha256(a + b)

    def test_rs_230_03_patch_final_forbidden(self, env, tus):
        ua = self.partial(tus, b'abc')
        final = tus.create(concat=f'final;{path_of(ua)}')
        r = tus.patch(final, 3, b'x')
        assert r.status == 403, r
        r = tus.patch(final, 0, b'x')
        assert r.status == 403, r
        assert tus.get(final).body == b'abc'

    def test_rs_230_04_final_with_body(self, env, tus):
        ua = self.partial(tus, b'abc')
        r = tus.create_resp(concat=f'final;{path_of(ua)}', body=b'xyz')
        assert r.status == 403, r
        assert 'Location' not in r.headers

    def test_rs_230_05_final_unknown_part(self, env, tus):
        ua = self.partial(tus, b'abc')
        r = tus.create_resp(concat=f'final;{path_of(ua)} /files/{"Z" * 22}')
        assert r.status == 400, r

    def test_rs_230_06_final_non_partial(self, env, tus):
        ua = self.partial(tus, b'abc')
        plain = tus.upload(b'def')
        r = tus.create_resp(concat=f'final;{path_of(ua)} {path_of(plain)}')
        assert r.status == 400, r

    def test_rs_230_07_final_of_final(self, env, tus):
        ua = self.partial(tus, b'abc')
        final = tus.create(concat=f'final;{path_of(ua)}')
        r = tus.create_resp(concat=f'final;{path_of(final)}')
        assert r.status == 400, r

    @pytest.mark.parametrize('value', ['final;', 'final', 'bogus', 'partial;x',
                                       'final;/files/not-an-id', 'final;/elsewhere/AAAAAAAAAAAAAAAAAAAAAA'])
    def test_rs_230_08_malformed(self, env, tus, value):
        r = tus.create_resp(concat=value, length=10 if value.startswith('partial') else None)
        assert r.status == 400, r

    def test_rs_230_09_unfinished(self, env, tus):
        a, b = make_data(40000, seed=9), make_data(20000, seed=10)
        ua = self.partial(tus, a, upload=False)
        ub = self.partial(tus, b, upload=False)
        assert tus.patch(ua, 0, a[:1000]).status == 204
        r = tus.create_resp(concat=f'final;{path_of(ua)} {path_of(ub)}')
        assert r.status == 201, r
        final = r.headers['Location']
        r = tus.head(final)
        assert r.status == 200, r
        assert 'Upload-Offset' not in r.headers, r
        assert r.headers.get('Upload-Concat', '').startswith('final;')
        tus.upload_rest(ub, b, 0)
        assert 'Upload-Offset' not in tus.head(final).headers
        assert tus.get(final).status == 409
        tus.upload_rest(ua, a, 1000)
        r = tus.get(final)
        assert r.status == 200 and sha256(r.body) == sha256(a + b), r.status
        r = tus.head(final)
        assert r.headers.get('Upload-Offset') == str(len(a) + len(b)), r
        assert r.headers.get('Upload-Length') == str(len(a) + len(b)), r

    def test_rs_230_10_partial_twice(self, env, tus):
        """A partial listed twice is refused (issue 11: each listing cost a
        record write); test_236 checks that nothing is stored."""
        a, b = b'AAAA', b'bb'
        ua, ub = self.partial(tus, a), self.partial(tus, b)
        r = tus.create_resp(concat=f'final;{path_of(ua)} {path_of(ua)} {path_of(ub)}')
        assert r.status == 400 and b'listed twice' in r.body, r
        assert 'Location' not in r.headers
        final = tus.create(concat=f'final;{path_of(ua)} {path_of(ub)}')
        assert tus.get(final).body == a + b

    def test_rs_230_11_partial_in_two_finals(self, env, tus):
        ua, ub = self.partial(tus, b'one'), self.partial(tus, b'two')
        f1 = tus.create(concat=f'final;{path_of(ua)} {path_of(ub)}')
        f2 = tus.create(concat=f'final;{path_of(ub)} {path_of(ua)}')
        assert tus.get(f1).body == b'onetwo'
        assert tus.get(f2).body == b'twoone'

    def test_rs_230_12_partial_deferred(self, env, tus):
        ua = tus.create(defer=True, concat='partial')
        assert tus.patch(ua, 0, b'xyz', headers={'Upload-Length': '3'}).status == 204
        ub = self.partial(tus, b'123')
        final = tus.create(concat=f'final;{path_of(ua)} {path_of(ub)}')
        assert tus.get(final).body == b'xyz123'

    def test_rs_230_13_final_metadata(self, env, tus):
        ua = self.partial(tus, b'hello ')
        ub = self.partial(tus, b'world')
        r = tus.create_resp(concat=f'final;{path_of(ua)} {path_of(ub)}',
                            metadata={'filename': 'concat-hello.txt', 'filetype': 'text/plain'})
        assert r.status == 201, r
        final = r.headers['Location']
        assert tus.get(final).body == b'hello world'
        p = published(env.area_dir('files') / 'concat-hello.txt')
        assert p.read_bytes() == b'hello world'
