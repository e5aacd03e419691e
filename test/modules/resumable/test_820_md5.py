"""82x: the "md5" front end (design document 002): handshake, chunks
checked by MD5, instant upload of stored content, on the seed's own URLs
(conf/seeds.conf: /api/upload/handshake, /api/upload, files at /upload/)."""
import time
import hashlib
import json

from pyrs.client import make_data, sha256
from pyrs.seeds import post_form, seeds_conf, seeds_dir as _seeds_dir

AREA = 'seeds-md5'
CHUNK = 64 * 1024


def seeds_dir(env):
    return _seeds_dir(env, AREA)


def md5(b):
    return hashlib.md5(b).hexdigest()


def split(data, size=CHUNK):
    """As the seed's splitFile(): ids are the chunk MD5 + its index."""
    pieces = [data[i:i + size] for i in range(0, len(data), size)]
    return md5(data), [(md5(c) + str(i), c) for i, c in enumerate(pieces)]


def handshake(env, file_id, ext, ids, body=None):
    if body is None:
        body = json.dumps({'fileId': file_id, 'ext': ext, 'chunkIds': ids}).encode()
    r = env.client.request('POST', '/api/upload/handshake',
                           {'Content-Type': 'application/json'}, body)
    assert r.headers.get('Content-Type', '').startswith('application/json'), r
    return r, json.loads(r.body)


def send(env, file_id, chunk_id, content):
    r = post_form(env, '/api/upload', [
        ('file', ('blob', content, 'application/octet-stream')),
        ('chunkId', chunk_id), ('fileId', file_id)])
    assert r.headers.get('Content-Type', '').startswith('application/json'), r
    return r, json.loads(r.body)


def begin(env, data, size, leave):
    """Handshake data in chunks of size and send all of them but the last
    leave; returns (fileId, chunks)."""
    fid, chunks = split(data, size)
    r, j = handshake(env, fid, '.bin', [c[0] for c in chunks])
    assert r.status == 200, j
    for cid, content in chunks[:len(chunks) - leave]:
        r, j = send(env, fid, cid, content)
        assert r.status == 200 and j['code'] == 0, j
    return fid, chunks


def upload_all(env, file_id, chunks, needs):
    by_id = dict(chunks)
    for _ in range(len(chunks) + 1):           # as uploadPiece(): needs[0]
        if not needs:
            return
        r, j = send(env, file_id, needs[0], by_id[needs[0]])
        assert r.status == 200 and j['code'] == 0 and j['msg'] == '', j
        assert isinstance(j['data'], list), j
        assert len(j['data']) == len(needs) - 1, (needs, j)
        needs = j['data']
    assert not needs


class TestMd5:
    CONF = staticmethod(lambda env: seeds_conf(env, AREA))

    def test_rs_820_01_upload(self, env):
        data = make_data(5 * CHUNK + 17, seed=821)
        fid, chunks = split(data)
        r, j = handshake(env, fid, '.jpg', [c[0] for c in chunks])
        assert r.status == 200 and j == {'code': 0, 'msg': '',
                                         'data': [c[0] for c in chunks]}, j
        upload_all(env, fid, chunks, j['data'])
        assert env.sha256_file(seeds_dir(env) / f'{fid}.jpg') == sha256(data)
        r = env.client.get(f'/upload/{fid}.jpg')
        assert r.status == 200 and sha256(r.body) == sha256(data), r

    def test_rs_820_02_instant_upload(self, env):
        data = make_data(2 * CHUNK, seed=822)
        fid, chunks = split(data)
        r, j = handshake(env, fid, '.png', [c[0] for c in chunks])
        upload_all(env, fid, chunks, j['data'])
        r, j = handshake(env, fid, '.png', [c[0] for c in chunks])
        assert r.status == 200, r
        assert j == {'code': 0, 'msg': '',
                     'data': f'{env.url}/upload/{fid}.png'}, j
        r = env.client.get(f'/upload/{fid}.png')
        assert r.status == 200 and sha256(r.body) == sha256(data)

    def test_rs_820_03_dedup_across_protocols(self, env):
        """Content that arrived through seed 001's offset protocol."""
        data = make_data(3 * CHUNK + 5, seed=823)
        r = env.client.request('POST', '/upload', {
            'X-File-Id': 'movie.bin-x', 'X-Start-Byte': '0',
            'X-File-Size': str(len(data))}, data)
        assert r.status == 200, r
        fid, chunks = split(data)
        # other protocols' files are hashed by the sweep (ResumableSweepInterval
        # 1 here), off the request that finished them
        deadline = time.time() + 10
        while True:
            r, j = handshake(env, fid, '.bin', [c[0] for c in chunks])
            if isinstance(j['data'], str) or time.time() > deadline:
                break
            time.sleep(0.3)
        # the stored file's own name at ResumableFilesURL: no new name
        assert j['data'] == f'{env.url}/upload/movie.bin-x', j
        assert not (seeds_dir(env) / f'{fid}.bin').exists()
        r = env.client.get('/upload/movie.bin-x')
        assert r.status == 200 and sha256(r.body) == sha256(data), r

    def test_rs_820_04_resume(self, env):
        data = make_data(4 * CHUNK, seed=824)
        fid, chunks = split(data)
        ids = [c[0] for c in chunks]
        r, j = handshake(env, fid, '.mp4', ids)
        for cid, content in chunks[1:3]:
            r, j2 = send(env, fid, cid, content)
            assert r.status == 200, j2
        r, j = handshake(env, fid, '.mp4', ids)
        assert j['data'] == [ids[0], ids[3]], j
        r, j2 = send(env, fid, ids[1], chunks[1][1])       # re-sent: no-op
        assert r.status == 200 and j2['data'] == [ids[0], ids[3]], j2
        upload_all(env, fid, chunks, j['data'])
        assert env.sha256_file(seeds_dir(env) / f'{fid}.mp4') == sha256(data)

    def test_rs_820_05_bad_chunks(self, env):
        data = make_data(2 * CHUNK, seed=825)
        fid, chunks = split(data)
        ids = [c[0] for c in chunks]
        handshake(env, fid, '.dat', ids)
        r, j = send(env, fid, ids[0], chunks[1][1])           # wrong bytes
        assert r.status == 400 and j['code'] == 400 and j['data'] is None, j
        r, j = send(env, fid, md5(b'x') + '0', b'x')            # not listed
        assert r.status == 400 and j['data'] is None, j
        r, j = send(env, fid, ids[0] + '9', chunks[0][1])        # bad index
        assert r.status == 400, j
        r, j = send(env, md5(b'never'), ids[0], chunks[0][1])    # no handshake
        assert r.status == 404 and j['code'] == 404 and j['data'] is None, j
        r, j = send(env, 'not-an-md5', ids[0], chunks[0][1])
        assert r.status == 400, j
        r, j = handshake(env, fid, '.dat', ids)
        assert j['data'] == ids, j                              # no change

    def test_rs_820_06_wrong_file_md5(self, env):
        data = make_data(2 * CHUNK, seed=826)
        _fid, chunks = split(data)
        fid = md5(b'something else')
        ids = [c[0] for c in chunks]
        r, j = handshake(env, fid, '.bin', ids)
        assert j['data'] == ids
        r, j = send(env, fid, ids[0], chunks[0][1])
        assert r.status == 200
        r, j = send(env, fid, ids[1], chunks[1][1])
        assert r.status == 400 and j['code'] == 400 and j['data'] is None, j
        assert not (seeds_dir(env) / f'{fid}.bin').exists()
        r, j = handshake(env, fid, '.bin', ids)
        assert j['data'] == ids, j                               # starts over

    def test_rs_820_07_bad_handshakes(self, env):
        ok_id = md5(b'a')
        ids = [md5(b'a') + '0']
        bad = [
            b'{"fileId": "' + ok_id.encode() + b'", ',            # bad JSON
            json.dumps({'ext': '.a', 'chunkIds': ids}).encode(),
            json.dumps({'fileId': 'xyz', 'ext': '.a', 'chunkIds': ids}).encode(),
            json.dumps({'fileId': ok_id.upper(), 'ext': '.a', 'chunkIds': ids}).encode(),
            json.dumps({'fileId': ok_id, 'ext': '/../x', 'chunkIds': ids}).encode(),
            json.dumps({'fileId': ok_id, 'ext': '.jpg/../../x', 'chunkIds': ids}).encode(),
            json.dumps({'fileId': ok_id, 'chunkIds': ids}).encode(),
            json.dumps({'fileId': ok_id, 'ext': '.a', 'chunkIds': []}).encode(),
            json.dumps({'fileId': ok_id, 'ext': '.a', 'chunkIds': [md5(b'a') + '1']}).encode(),
            json.dumps({'fileId': ok_id, 'ext': '.a', 'chunkIds': 'nope'}).encode(),
            json.dumps({'fileId': ok_id, 'ext': '.a', 'chunkIds': ids * 2}).encode(),
        ]
        for body in bad:
            r = env.client.request('POST', '/api/upload/handshake',
                                   {'Content-Type': 'application/json'}, body)
            assert r.status == 400, (body, r)
            if r.headers.get('Content-Type', '').startswith('application/json'):
                j = json.loads(r.body)
                assert j['code'] == 400 and j['data'] is None, j
        assert not any(p.name.startswith(ok_id) for p in seeds_dir(env).iterdir())

    def test_rs_820_08_handshakes_never_write(self, env):
        """Content stored under another name: 50 handshakes (any ext) answer
        one URL and add no directory entry (each used to link a new
        '<md5> (n).ext'; issue 11)."""
        data = make_data(2 * CHUNK + 9, seed=828)
        r = env.client.request('POST', '/upload', {
            'X-File-Id': 'amp.bin-x', 'X-Start-Byte': '0',
            'X-File-Size': str(len(data))}, data)
        assert r.status == 200, r
        fid, chunks = split(data)
        ids = [c[0] for c in chunks]
        deadline = time.time() + 10
        while True:
            r, j = handshake(env, fid, '.bin', ids)
            if isinstance(j['data'], str) or time.time() > deadline:
                break
            time.sleep(0.3)
        before = sorted(p.name for p in seeds_dir(env).iterdir())
        urls = set()
        for i in range(50):
            r, j = handshake(env, fid, ['.bin', '.pdf', f'.x{i}'][i % 3], ids)
            assert r.status == 200 and isinstance(j['data'], str), j
            urls.add(j['data'])
        assert urls == {f'{env.url}/upload/amp.bin-x'}, urls
        assert sorted(p.name for p in seeds_dir(env).iterdir()) == before
