"""23x: composition. A final concatenation whose partials are complete, and
a chunk merge without a whole-file MD5, complete at once with the parts as
their data (RS_UF_COMPOSED); the published file is made after the response
went out (or by the sweep). While the area directory is not writable for
httpd (we run as root, httpd as its user) materialising fails: the upload
stays composed and is served from its parts, its partials can neither be
deleted nor expire, and once the directory is writable again the sweep
(ResumableSweepInterval 1) materialises it. Every wait is bounded."""
import hashlib
import json
import os
import time

import pytest

from pyrs.client import make_data, sha256, split_url, upload_id
from pyrs.ctl import resumablectl
from pyrs.env import RsArea, wait_for
from pyrs.seeds import post_form, seeds_conf, seeds_dir

COMPOSED = 0x40
PUBLISHED = 0x10
# publishing, so materialising, failed (the upload stays composed)
ALLOW = dict(tags=['RS03105', 'RS01032'])


def db_path(env, name):
    return env.gen / name / 'state'




def flags(env, db, uid):
    rc, out = resumablectl(env, db, 'show', uid)
    assert rc == 0, out
    line = [ln for ln in out.splitlines() if ln.startswith('flags:')][0]
    return int(line.split()[1], 16)


def assert_verified(env, db):
    """resumablectl verify finds the state database sound."""
    rc, out = resumablectl(env, db, 'verify')
    assert rc == 0 and ' 0 problems' in out, out


def path_of(url):
    return split_url(url)[0]


class Locked:
    """The area directory not writable for httpd: publishing fails."""

    def __init__(self, d):
        self.d = d

    def __enter__(self):
        os.chmod(self.d, 0o555)
        return self

    def __exit__(self, *exc):
        os.chmod(self.d, 0o755)


def tus_conf(env):
    env.mkdir_www(db_path(env, 'state235').parent)
    return dict(areas=[RsArea('/files/', dir='compose235',
                              directives=['ResumableExpire 1h']),
                       RsArea('/short/', dir='compose235s',
                              directives=['ResumableExpire 2'])],
                statedb=str(db_path(env, 'state235')))


class TestComposeTus:
    CONF = tus_conf
    ALLOW_ERRORS = ALLOW

    def parts(self, tus, n, size, seed):
        datas = [make_data(size + 17 * i, seed=seed + i) for i in range(n)]
        urls = []
        for d in datas:
            url = tus.create(length=len(d), concat='partial')
            tus.upload_rest(url, d, 0)
            urls.append(url)
        return datas, urls

    def final(self, tus, urls, **kw):
        r = tus.create_resp(concat='final;' + ' '.join(path_of(u) for u in urls),
                            **kw)
        assert r.status == 201, r
        return r.headers['Location']

    def test_rs_235_01_final_at_once_then_published(self, env):
        tus = env.tus('/files/')
        datas, urls = self.parts(tus, 8, 40000, 2351)
        whole = b''.join(datas)
        final = self.final(tus, urls, metadata={'filename': 'eight.bin'})
        r = tus.get(final)                      # right after the POST
        assert r.status == 200 and sha256(r.body) == sha256(whole), r
        assert int(r.headers['Content-Length']) == len(whole)
        f = env.area_dir('compose235') / 'eight.bin'
        assert wait_for(f.exists), 'never published'
        assert env.sha256_file(f) == sha256(whole)
        db = db_path(env, 'state235')
        fl = wait_for(lambda: flags(env, db, upload_id(final)) & PUBLISHED)
        assert fl and not flags(env, db, upload_id(final)) & COMPOSED
        # its data file's name goes right after the record says published
        assert wait_for(lambda: not (env.area_dir('compose235') / '.resumable'
                                     / f'{upload_id(final)}.data').exists())
        for u in urls:                          # partials stay until expiry
            assert tus.head(u).status == 200
        assert_verified(env, db)

    def test_rs_235_02_served_from_parts(self, env):
        tus = env.tus('/files/')
        area = env.area_dir('compose235')
        datas, urls = self.parts(tus, 4, 3000, 2352)
        whole = b''.join(datas)
        db = db_path(env, 'state235')
        with Locked(area):
            final = self.final(tus, urls)
            assert flags(env, db, upload_id(final)) & COMPOSED
            r = tus.get(final)
            assert r.status == 200 and r.body == whole, r
            etag = r.headers.get('ETag')
            assert etag and etag.startswith('"'), r
            # ranges across part boundaries (3000 | 3017 | 3034 | 3051)
            r = tus.get(final, {'Range': 'bytes=2990-3020'})
            assert r.status == 206 and r.body == whole[2990:3021], r
            assert r.headers['Content-Range'] == f'bytes 2990-3020/{len(whole)}'
            r = tus.get(final, {'Range': 'bytes=10-20,5990-6100'})
            assert r.status == 206, r
            assert r.headers['Content-Type'].startswith('multipart/byteranges')
            assert whole[10:21] in r.body and whole[5990:6101] in r.body
            r = tus.get(final, {'Range': 'bytes=-5000'})
            assert r.status == 206 and r.body == whole[-5000:], r
            r = tus.get(final, {'Range': 'bytes=100-', 'If-Range': etag})
            assert r.status == 206 and r.body == whole[100:], r
            r = tus.get(final, {'Range': 'bytes=100-', 'If-Range': '"other"'})
            assert r.status == 200 and r.body == whole, r
            r = tus.get(final, {'If-None-Match': etag})
            assert r.status == 304, r
            r = env.client.head(path_of(final))
            assert r.status == 200 and r.headers['Content-Length'] == str(len(whole))
            assert flags(env, db, upload_id(final)) & COMPOSED   # still
            assert not list(area.glob(upload_id(final) + '*'))
        # writable again: the sweep materialises it
        f = area / upload_id(final)
        assert wait_for(f.exists), 'the sweep did not materialise it'
        assert env.sha256_file(f) == sha256(whole)
        assert wait_for(lambda: not flags(env, db, upload_id(final)) & COMPOSED)
        r = tus.get(final)
        assert r.status == 200 and r.body == whole, r
        assert_verified(env, db)

    def test_rs_235_06_etag_stable_across_materialisation(self, env):
        """The validators of finished content are the record's: the ETag
        and Last-Modified served from the parts are those of the single
        file (never weak), so a download resumed with If-Range across the
        materialisation gets 206 (it got 200 and the whole file)."""
        tus = env.tus('/files/')
        area = env.area_dir('compose235')
        datas, urls = self.parts(tus, 3, 5000, 2356)
        whole = b''.join(datas)
        db = db_path(env, 'state235')
        with Locked(area):
            final = self.final(tus, urls)
            assert flags(env, db, upload_id(final)) & COMPOSED
            r = tus.get(final, {'Range': 'bytes=0-99'})
            assert r.status == 206 and r.body == whole[:100], r
            etag, lm = r.headers.get('ETag'), r.headers.get('Last-Modified')
            assert etag and etag.startswith('"') and lm, r
        assert wait_for(lambda: flags(env, db, upload_id(final)) & PUBLISHED)
        for _ in range(2):                      # at once, and a second later
            for r in (tus.get(final), env.client.head(path_of(final))):
                assert r.status == 200, r
                assert r.headers.get('ETag') == etag, r
                assert r.headers.get('Last-Modified') == lm, r
            r = tus.get(final, {'Range': 'bytes=100-', 'If-Range': etag})
            assert r.status == 206 and r.body == whole[100:], r
            r = tus.get(final, {'If-None-Match': etag})
            assert r.status == 304, r
            time.sleep(1.1)
        # a plain upload too: strong at once (no W/ while its mtime is fresh)
        data = make_data(4000, seed=23561)
        url = tus.upload(data)
        r = tus.get(url)
        assert r.status == 200 and r.headers['ETag'].startswith('"'), r

    def test_rs_235_03_partial_delete_waits_for_final(self, env):
        tus = env.tus('/files/')
        area = env.area_dir('compose235')
        datas, urls = self.parts(tus, 3, 2000, 2353)
        whole = b''.join(datas)
        with Locked(area):
            final = self.final(tus, urls)
            r = tus.delete(urls[1])
            assert r.status == 423, r          # the final still needs it
            assert tus.head(urls[1]).status == 200
            assert tus.get(final).body == whole
        r = tus.delete(urls[1])                # materialises the final first
        assert r.status == 204, r
        assert tus.head(urls[1]).status in (404, 410)
        assert (area / upload_id(final)).read_bytes() == whole
        assert tus.get(final).body == whole

    def test_rs_235_04_partial_expiry_waits_for_final(self, env):
        tus = env.tus('/short/')
        area = env.area_dir('compose235s')
        datas, urls = self.parts(tus, 2, 1500, 2354)
        whole = b''.join(datas)
        with Locked(area):
            final = self.final(tus, urls)
            time.sleep(3.5)                    # partials expired (2 s)
            for u in urls:
                assert tus.head(u).status == 200
            assert tus.get(final).body == whole
        f = area / upload_id(final)
        assert wait_for(f.exists), 'the sweep did not materialise it'
        assert f.read_bytes() == whole
        assert wait_for(lambda: tus.head(urls[0]).status == 410), 'not expired'
        assert tus.get(final).body == whole

    def test_rs_235_05_final_waiting_for_partial(self, env):
        """Composed when the last partial completes (its PATCH)."""
        tus = env.tus('/files/')
        a, b = make_data(5000, seed=23551), make_data(7000, seed=23552)
        ua = tus.create(length=len(a), concat='partial')
        ub = tus.create(length=len(b), concat='partial')
        tus.upload_rest(ua, a, 0)
        final = self.final(tus, [ua, ub])
        assert not (flags(env, db_path(env, 'state235'), upload_id(final))
                    & COMPOSED)
        tus.upload_rest(ub, b, 0)
        r = tus.get(final)
        assert r.status == 200 and r.body == a + b, r
        f = env.area_dir('compose235') / upload_id(final)
        assert wait_for(f.exists) and f.read_bytes() == a + b


AREA = 'seeds-compose'


def slice_conf(env):
    env.mkdir_www(db_path(env, 'state235c').parent)
    byid = (f'<Location "/byid">\n    SetHandler resumable\n'
            f'    ResumableDir "{seeds_dir(env, AREA)}"\n'
            f'    ResumableProtocols tus\n</Location>\n')
    return dict(seeds_conf(env, AREA, after=byid),
                statedb=str(db_path(env, 'state235c')))


def send_chunk(env, name, index, chunk, total=None):
    parts = [('chunk', ('blob', chunk, 'application/octet-stream')),
             ('index', index), ('name', name)]
    if total is not None:
        parts.append(('total', total))
    r = post_form(env, '/sliceUpload', parts)
    assert r.status == 200, r
    return r


def merge(env, name, size):
    return env.client.request('POST', '/sliceMerge',
                              {'Content-Type': 'application/json'},
                              json.dumps({'name': name, 'size': size}).encode())


def chunk_id(env):
    st = seeds_dir(env, AREA) / '.resumable'
    ids = {p.name.split('.c')[0] for p in st.iterdir() if '.c' in p.name}
    assert len(ids) == 1, ids
    return ids.pop()


class TestComposeChunks:
    CONF = slice_conf
    ALLOW_ERRORS = ALLOW

    def test_rs_235_10_slice_merge_composed(self, env):
        area = seeds_dir(env, AREA)
        db = db_path(env, 'state235c')
        data = make_data(5 * 4096 + 100, seed=23510)
        pieces = [data[i:i + 4096] for i in range(0, len(data), 4096)]
        for i in (3, 0, 5, 1, 4, 2):
            send_chunk(env, 'sliced.bin', i, pieces[i])
        uid = chunk_id(env)
        with Locked(area):
            r = merge(env, 'sliced.bin', 4096)
            assert r.status == 200 and r.body == b'ok', r
            assert flags(env, db, uid) & COMPOSED
            r = env.client.get(f'/byid/{uid}')
            assert r.status == 200 and r.body == data, r
            r = env.client.get(f'/byid/{uid}', {'Range': 'bytes=4000-8200'})
            assert r.status == 206 and r.body == data[4000:8201], r
            assert len(list((area / '.resumable').glob(uid + '.c*'))) == 6
        f = area / 'sliced.bin'
        assert wait_for(f.exists), 'the sweep did not materialise it'
        assert env.sha256_file(f) == sha256(data)
        assert wait_for(lambda: not list((area / '.resumable').glob(uid + '.c*')))
        assert env.client.get('/upload/sliced.bin').body == data
        assert env.client.get(f'/byid/{uid}').body == data
        assert_verified(env, db)

    def test_rs_235_11_slice_total_composed(self, env):
        """Completion by the last chunk of a declared count; published after
        the response without the sweep's help being needed."""
        area = seeds_dir(env, AREA)
        data = make_data(3 * 5000, seed=23511)
        for i, at in ((2, 10000), (0, 0), (1, 5000)):
            send_chunk(env, 'total.bin', i, data[at:at + 5000], total=3)
        f = area / 'total.bin'
        assert wait_for(f.exists) and env.sha256_file(f) == sha256(data)

    def test_rs_235_12_md5_merge_verifies_at_once(self, env):
        area = seeds_dir(env, AREA)
        data = make_data(3 * 1000 + 7, seed=23512)
        fid = hashlib.md5(data).hexdigest()
        pieces = [data[i:i + 1000] for i in range(0, len(data), 1000)]
        ids = [hashlib.md5(c).hexdigest() + str(i) for i, c in enumerate(pieces)]
        r = env.client.request('POST', '/api/upload/handshake',
                               {'Content-Type': 'application/json'},
                               json.dumps({'fileId': fid, 'ext': '.bin',
                                           'chunkIds': ids}).encode())
        assert r.status == 200, r
        for cid, c in zip(ids, pieces):
            r = post_form(env, '/api/upload', [
                ('file', ('blob', c, 'application/octet-stream')),
                ('chunkId', cid), ('fileId', fid)])
            assert r.status == 200, r
        # published before the answer of the last chunk: no wait
        assert (area / f'{fid}.bin').read_bytes() == data
        # a wrong whole-file MD5 is refused by that answer
        bad = make_data(2000, seed=23513)
        wrong = '0' * 32
        bids = [hashlib.md5(bad[:1000]).hexdigest() + '0',
                hashlib.md5(bad[1000:]).hexdigest() + '1']
        r = env.client.request('POST', '/api/upload/handshake',
                               {'Content-Type': 'application/json'},
                               json.dumps({'fileId': wrong, 'ext': '.bin',
                                           'chunkIds': bids}).encode())
        assert r.status == 200, r
        codes = []
        for cid, c in zip(bids, (bad[:1000], bad[1000:])):
            r = post_form(env, '/api/upload', [
                ('file', ('blob', c, 'application/octet-stream')),
                ('chunkId', cid), ('fileId', wrong)])
            codes.append(r.status)
        assert codes == [200, 400], codes
        assert not (area / f'{wrong}.bin').exists()
