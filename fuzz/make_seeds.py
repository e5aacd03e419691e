#!/usr/bin/env python3
"""Regenerate the seed corpora in fuzz/corpus/<target>/ (deterministic).

Run from anywhere: python3 fuzz/make_seeds.py. The seeds are small valid
and near-valid inputs of each parser; libFuzzer mutates from there.
"""
import base64
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, 'corpus', target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def b64(s):
    return base64.b64encode(s.encode()).decode()


def meta():
    write('meta', 'one', f'filename {b64("a.txt")}')
    write('meta', 'two', f'filename {b64("x y.bin")},filetype {b64("text/plain")}')
    write('meta', 'flag', f'is_confidential,name {b64("n")}')
    write('meta', 'spaces', f'a {b64("1")} , b {b64("22")}')
    write('meta', 'nul', 'k AGFi')
    write('meta', 'bad', 'k ===')


def checksum():
    for alg, n in (('md5', 16), ('sha1', 20), ('sha256', 32), ('sha512', 64)):
        write('checksum', alg, f'{alg} ' + base64.b64encode(bytes(n)).decode())
    write('checksum', 'unknown', 'crc32 AAAAAA==')
    write('checksum', 'short', 'sha1 AAAA')


def field(tag, value):
    return struct.pack('>BI', tag, len(value)) + value


def i64(v):
    return struct.pack('>q', v)


def s(v):
    return v.encode()


def lst(items):
    return b''.join(struct.pack('>I', len(x)) + x.encode() for x in items)


def upload():
    base = [field(2, i64(1)), field(3, i64(0)), field(4, i64(0)),
            field(5, i64(100)), field(6, i64(10)), field(7, i64(-1)),
            field(8, i64(1)), field(9, i64(2)), field(10, i64(0)),
            field(11, s('')), field(12, s('/srv/up')),
            field(14, s('a.txt'))]
    end = field(0, b'')
    write('upload', 'active', b'\x01' + b''.join(base) + end)
    final = base + [field(17, s('final;/f/a /f/b')), field(18, lst(['a', 'b']))]
    write('upload', 'final', b'\x01' + b''.join(final) + end)
    write('upload', 'truncated', (b'\x01' + b''.join(base) + end)[:-3])
    write('upload', 'version2', b'\x02' + end)
    write('upload', 'unknown_tag', b'\x01' + field(0x60, b'xx') + end)


def head(gen, value, piece):
    n = max(1, -(-len(value) // piece))
    h = struct.pack('>BBHIIII', 0xD5, 1, piece, gen, n, len(value),
                    zlib.crc32(value) & 0xffffffff)
    return h + value[:piece], [value[i * piece:(i + 1) * piece] for i in range(1, n)]


def store_input(h, segs):
    out = bytes([len(segs)]) + struct.pack('>H', len(h)) + h
    for sg in segs:
        out += struct.pack('>H', len(sg)) + sg
    return out


def store():
    h, segs = head(1, b'hello', 457)
    write('store', 'single', store_input(h, segs))
    big = bytes(range(256)) * 5
    h, segs = head(7, big, 457)
    write('store', 'segments', store_input(h, segs))
    write('store', 'missing_seg', store_input(h, segs[:1]))
    h, segs = head(3, b'x' * 300, 128)
    write('store', 'small_piece', store_input(h, segs))
    write('store', 'bad_magic', store_input(b'\x00' + h[1:], segs))


def util():
    for i, v in enumerate(['0', '123', '9223372036854775807', '10G', '1h',
                           'aGVsbG8=', 'report.pdf', 'AAAAAAAAAAAAAAAAAAAAAA']):
        write('util', f'seed{i}', bytes([i % 6]) + v.encode())
    write('util', 'name_utf8', bytes([4]) + '../../é tr\x01è.tar.gz'.encode())
    write('util', 'name_dots', bytes([4]) + b'...')
    write('util', 'size_bad', bytes([1]) + b'+5K')


def sf():
    for i, v in enumerate(['42', '?1', '"str"', 'tok;a=1', ':AAEC:', '1.5',
                           '(1 2);x', '@1659578233', '%"f%c3%bc"']):
        write('sf', f'item{i}', bytes([0]) + v.encode())
    write('sf', 'list', bytes([1]) + b'a, (b c);p=?0, "d"')
    write('sf', 'dict', bytes([2]) + b'sha-256=:AAAA:, sha-512=:AAAA:;q=1')
    write('sf', 'integer', bytes([3]) + b'123456789012345')
    write('sf', 'boolean', bytes([4]) + b'?0')


def multipart():
    ct = b'multipart/form-data; boundary=XyZ\n'
    body = (b'--XyZ\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n'
            b'--XyZ\r\nContent-Disposition: form-data; name="file"; '
            b'filename="x.bin"\r\nContent-Type: application/octet-stream\r\n'
            b'\r\n\x00\r\n--XyZ-\r\n\r\n--XyZ--\r\n')
    write('multipart', 'two', ct + body)
    write('multipart', 'quoted', b'multipart/form-data; boundary="a b"\n'
          b'--a b\r\nContent-Disposition: form-data; name="n"\r\n\r\nv\r\n--a b--')
    write('multipart', 'truncated', ct + body[:60])


def form():
    """fuzz_form: byte 0 = content type (0 multipart, 1 text/plain, 2 JSON)
    + piece size; then the body."""
    import hashlib
    import json

    def mp(parts):
        out = ''
        for name, value, fname in parts:
            out += '--xYz123\r\nContent-Disposition: form-data; '
            out += f'name="{name}"'
            out += f'; filename="{fname}"\r\nContent-Type: ' \
                   'application/octet-stream' if fname else ''
            out += f'\r\n\r\n{value}\r\n'
        return out + '--xYz123--\r\n'
    md5 = hashlib.md5(b'abc').hexdigest()
    write('form', 'slice', b'\x00' + mp([('chunk', 'abc', 'blob'),
                                         ('index', '0', None),
                                         ('name', 'a.bin', None)]).encode())
    write('form', 'slice-total', b'\x10' + mp([
        ('data', 'abc', 'blob'), ('index', '1', None), ('name', 'b.bin', None),
        ('total', '1', None)]).encode())
    write('form', 'merge', b'\x01' + json.dumps(
        {'name': 'a.bin', 'size': 3}).encode())
    write('form', 'handshake', b'\x02' + json.dumps(
        {'fileId': md5, 'ext': '.bin', 'chunkIds': [md5 + '0']}).encode())
    write('form', 'md5-chunk', b'\x03' + mp([
        ('file', 'abc', 'blob'), ('chunkId', md5 + '0', None),
        ('fileId', md5, None)]).encode())
    write('form', 'flow', b'\x00' + mp([
        ('flowChunkNumber', '1', None), ('flowChunkSize', '1024', None),
        ('flowCurrentChunkSize', '3', None), ('flowTotalSize', '3', None),
        ('flowIdentifier', '3-c.bin', None), ('flowFilename', 'c.bin', None),
        ('flowTotalChunks', '1', None), ('file', 'abc', 'c.bin')]).encode())
    write('form', 'deep', b'\x01' + b'[' * 12 + b']' * 12)


if __name__ == '__main__':
    form()
    sf()
    multipart()
    meta()
    checksum()
    upload()
    store()
    util()
