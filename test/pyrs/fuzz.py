"""HTTP-level mutation fuzzer (test_972): seeded, bounded mutations of valid
requests of every protocol, sent on raw sockets, with a strict reader of
the answer.

A Template is a valid request (method, path, headers as a list of pairs,
body as bytes, ('json', obj) or ('mp', parts)). mutate() applies one to
three operators chosen by a random.Random(seed): header values (numbers
around 0, 2^31, 2^63, 2^64, negatives, empty, NUL/CTL bytes, long
strings, bad base64, structured-field and JSON fragments), dropped or
repeated headers, protocol headers added, methods, URLs (other front
ends, mutated ids, junk queries and escapes), bodies (bit flips,
truncation with an honest or a dishonest Content-Length, JSON values,
multipart fields and framing), chunked framing with bad trailers or chunk
lines. send() writes the request and reads until the server closes;
parse() checks that the answer is well-formed: interim 1xx responses,
then one final response whose body has the framing its headers declare,
and nothing after it. Every loop here is bounded."""
import json
import random
import socket
import time

N63 = 2 ** 63
NUMBERS = ['0', '1', '-1', '-0', '+1', '007', '1 2', ' 5', '5 ', '0x10',
           '1e3', '1.5', '', ' ', '9' * 19, '9' * 40, str(2 ** 31 - 1),
           str(2 ** 31), str(2 ** 32), str(N63 - 2), str(N63 - 1), str(N63),
           str(N63 + 1), str(2 ** 64 - 1), str(2 ** 64), '-' + str(N63),
           '-' + str(N63 + 1), '4', '3', '10', '100', '1000000']
STRINGS = ['', ' ', '\t', 'x' * 9000, 'a\x01b', '\x7f', '\xe9', ';', ',',
           '=', '"', '"open', ':', '::', ':YWJj:', ':!!!:', ':YWJj', '?1',
           '?0', '?2', '?1, ?0', '?1;a=1', 'x; y', 'x;', ';;', 'a=b; c',
           'filename="a', "filename*=UTF-8''%zz", '%00', '%zz', '../..',
           '/', '\\', '{', '[', 'null', '{"a":', 'YQ', '!!!', 'a YQ==,a',
           'sha1 !!!', 'md5 YQ==', 'sha-256=:YWJj:', 'sha-256=:' + 'A' * 44
           + ':', 'final;', 'final;/x/../y', 'partial', 'partial;x',
           'bytes=0-', 'bytes=-0', 'bytes=5-2', 'bytes=' + '9' * 30 + '-',
           'bytes=0-0,' * 50, 'application/offset+octet-stream',
           'application/partial-upload', 'multipart/form-data',
           'multipart/form-data; boundary=', 'multipart/form-data; '
           'boundary=' + 'b' * 300, 'application/json', 'text/plain',
           'http://evil.example', '*', 'PATCH', 'DELETE', 'TRACE', 'P' * 500,
           '1.0.0', '0.2.2', '8', '6', '-8', 'abc', 'é' * 50]
# values aimed at the parser of each header (lower-case names); numbers
# for every numeric header
NUMERIC = {'upload-offset', 'upload-length', 'upload-defer-length',
           'x-start-byte', 'x-file-size', 'upload-draft-interop-version',
           'content-length'}
SF = ['?1', '?0', '?', '?2', '1', '"?1"', '?1;x', '?1, ?0', '', 'a=?1',
      'sha-256=:YWJj:', 'sha-256=:!!!:', 'sha-256=:YWJj', 'sha-256=abc',
      'sha-256=:' + 'A' * 43 + '=:', 'sha=:YWJj:, sha-256=:YWJj:',
      'sha-256=1', 'sha-256=10, sha=3', 'sha-256=-1', 'sha-256=' + '9' * 20,
      'a' * 300 + '=:YWJj:', ', '.join(f'k{i}=:YQ==:' for i in range(200)),
      'sha-256=:YWJj:;p=1', '\x00', 'Sha-256=:YWJj:', '*=1']
POOLS = {
    'content-disposition': ['x; y', 'x;', ';', 'x; ;;', 'x; y; z',
                            'attachment; filename', 'attachment; filename=',
                            'attachment; filename="', 'x; filename*',
                            "x; filename*=UTF-8''", "x; filename*=UTF-8''%",
                            "x; filename*=UTF-8''%zz%00", "x; filename*=''a",
                            "x; filename*=a'b'c", 'x; filename="a\\"',
                            'x; filename="../../etc/passwd"',
                            'x; filename=' + 'n' * 5000, 'x;filename=a;'],
    'upload-complete': SF, 'upload-incomplete': SF, 'repr-digest': SF,
    'content-digest': SF, 'want-repr-digest': SF,
    'upload-metadata': ['filename', 'filename ', 'filename !!!', 'a YQ',
                        'a YQ==,a YQ==', ',', ' ,', 'a YQ== b', 'é YQ==',
                        'a\x01 YQ==', ','.join(f'k{i} YQ==' for i in range(500)),
                        'filename ' + 'Q' * 12000, 'filename Li4vLi4veA=='],
    'upload-checksum': ['sha1', 'sha1 ', 'sha1 !!!', 'md5 YQ==', 'x YQ==',
                        'sha1 ' + 'A' * 28, 'sha256 ' + 'A' * 44,
                        'sha1 YQ== YQ==', ' sha1 YQ=='],
    'upload-concat': ['final;', 'final; ', 'final;/', 'final;/fz/',
                      'final;/fz/x /fz/x', 'final;' + '/fz/A ' * 300,
                      'partial;', 'final', 'finalx;/fz/a'],
    'range': ['bytes=0-', 'bytes=-0', 'bytes=5-2', 'bytes=' + '9' * 30 + '-',
              'bytes=-' + '9' * 30, 'bytes=0-0,' * 100, 'bytes=1', 'bytes=',
              'bytes=' + str(N63 - 1) + '-', 'bytes=0-' + str(N63)],
}
PROTO_HEADERS = ['Upload-Offset', 'Upload-Length', 'Upload-Defer-Length',
                 'Upload-Metadata', 'Upload-Concat', 'Upload-Checksum',
                 'Tus-Resumable', 'Upload-Complete', 'Upload-Incomplete',
                 'Upload-Draft-Interop-Version', 'Repr-Digest',
                 'Content-Digest', 'Want-Repr-Digest', 'Content-Disposition',
                 'X-File-Id', 'X-Start-Byte', 'X-File-Size', 'Content-Type',
                 'Range', 'If-Range', 'X-HTTP-Method-Override', 'Origin',
                 'Access-Control-Request-Method', 'Upload-Expires',
                 'X-Forwarded-Host', 'X-Forwarded-Proto', 'Expect']
METHODS = ['GET', 'HEAD', 'POST', 'PATCH', 'PUT', 'DELETE', 'OPTIONS',
           'FROB', 'get', 'PROPFIND']
# methods httpd itself knows; for any other it answers 501 (AH00135)
# before a module sees the request: httpd's answer, not the module's
HTTPD_METHODS = {'GET', 'HEAD', 'POST', 'PATCH', 'PUT', 'DELETE', 'OPTIONS',
                 'PROPFIND', 'TRACE'}
# framing the fuzzer never varies (httpd answers them itself, e.g. 501
# for an unknown Transfer-Encoding, before any module sees the request)
FIXED = {'transfer-encoding', 'host', 'connection'}
BAD_TRAILERS = [b'NoColon\r\n', b'Bad Name: x\r\n', b'X-Ctl\x01: y\r\n',
                b'X-Long: ' + b'a' * 9000 + b'\r\n', b': empty\r\n',
                b'Upload-Checksum: sha1 !!!\r\n', b'Repr-Digest: x\r\n']


class Template:
    """A valid request; trailer: sent chunked with these trailer lines."""

    def __init__(self, name, method, path, headers, body=b'', trailer=None):
        self.name, self.method, self.path = name, method, path
        self.headers = list(headers.items()) if isinstance(headers, dict) \
            else list(headers)
        self.body = body
        self.trailer = trailer


class Request:
    """One mutated request, ready to send."""

    def __init__(self, t):
        self.name = t.name
        self.method, self.path = t.method, t.path
        self.headers = [(k, v) for k, v in t.headers]
        self.body = t.body
        self.ops = []
        self.chunked = t.trailer is not None
        self.trailer = t.trailer or b''
        self.chunk_line = None
        self.short = 0          # body bytes withheld (dishonest length)
        self.cl = None          # Content-Length header value, if mutated
        self.pipeline = False   # a second request follows on the connection
        self.version = 'HTTP/1.1'

    def body_bytes(self, boundary):
        b = self.body
        if isinstance(b, tuple) and b[0] == 'json':
            return b[1] if isinstance(b[1], bytes) else \
                json.dumps(b[1]).encode('utf-8', 'surrogatepass')
        if isinstance(b, tuple) and b[0] == 'mp':
            return multipart_bytes(b[1], boundary)
        return b

    def raw(self, boundary='FuzzB0undary'):
        body = self.body_bytes(boundary)
        lines = [f'{self.method} {self.path} {self.version}', 'Host: 127.0.0.1',
                 'Connection: ' + ('keep-alive' if self.pipeline else 'close')]
        for k, v in self.headers:
            lines.append(f'{k}: {v}')
        if self.chunked:
            lines.append('Transfer-Encoding: chunked')
        elif self.cl is not None:
            lines.append(f'Content-Length: {self.cl}')
        elif body or self.method in ('POST', 'PATCH', 'PUT'):
            lines.append(f'Content-Length: {len(body) + self.short}')
        head = ('\r\n'.join(lines) + '\r\n\r\n').encode('utf-8',
                                                          'surrogateescape')
        if not self.chunked:
            return head + body + self.second()
        out, i = [head], 0
        while i < len(body):
            n = max(1, min(len(body) - i, 1 + (len(body) // 3)))
            out.append(b'%x\r\n' % n + body[i:i + n] + b'\r\n')
            i += n
        out.append(self.chunk_line if self.chunk_line is not None
                   else b'0\r\n' + self.trailer + b'\r\n')
        return b''.join(out) + self.second()

    def second(self):
        return (b'HEAD / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close'
                b'\r\n\r\n') if self.pipeline else b''

    def describe(self):
        return f'{self.name} {self.method} {self.path[:80]} ops={self.ops}'


def multipart_bytes(parts, boundary):
    out = b''
    for name, value in parts:
        out += b'--' + boundary.encode() + b'\r\n'
        if isinstance(value, tuple):
            fname, data = value
            out += (f'Content-Disposition: form-data; name="{name}"; '
                    f'filename="{fname}"\r\nContent-Type: '
                    'application/octet-stream\r\n\r\n').encode(
                        'utf-8', 'surrogateescape') + data
        else:
            out += (f'Content-Disposition: form-data; name="{name}"\r\n\r\n'
                    f'{value}').encode('utf-8', 'surrogateescape')
        out += b'\r\n'
    return out + b'--' + boundary.encode() + b'--\r\n'


# ---- operators ---------------------------------------------------------------

def _value(rnd, name=''):
    name = name.lower()
    r = rnd.random()
    if name in NUMERIC and r < 0.7:
        return rnd.choice(NUMBERS)
    if name in POOLS and r < 0.7:
        return rnd.choice(POOLS[name])
    if r < 0.45:
        return rnd.choice(NUMBERS)
    if r < 0.9:
        return rnd.choice(STRINGS)
    return ''.join(chr(rnd.randrange(1, 256)) for _ in range(rnd.randrange(1, 40)))


def op_header_value(rnd, q, paths):
    hs = [i for i, (k, _v) in enumerate(q.headers) if k.lower() not in FIXED]
    if hs:
        i = rnd.choice(hs)
        q.headers[i] = (q.headers[i][0], _value(rnd, q.headers[i][0]))
        return f'value:{q.headers[i][0]}'
    return op_add_header(rnd, q, paths)


def op_drop_header(rnd, q, paths):
    if q.headers:
        k = q.headers.pop(rnd.randrange(len(q.headers)))[0]
        return f'drop:{k}'
    return 'drop:-'


def op_repeat_header(rnd, q, paths):
    if q.headers:
        k, v = rnd.choice(q.headers)
        q.headers.append((k, rnd.choice([v, _value(rnd, k)])))
        return f'repeat:{k}'
    return 'repeat:-'


def op_add_header(rnd, q, paths):
    k = rnd.choice(PROTO_HEADERS)
    q.headers.append((k, _value(rnd, k)))
    return f'add:{k}'


def op_method(rnd, q, paths):
    q.method = rnd.choice(METHODS)
    return f'method:{q.method}'


def op_path(rnd, q, paths):
    r = rnd.random()
    if r < 0.3:
        q.path = rnd.choice(paths)
    elif r < 0.5:                               # truncate or extend the id
        cut = rnd.randrange(1, max(2, len(q.path)))
        q.path = q.path[:cut] if rnd.random() < 0.5 else q.path + 'A' * cut
    elif r < 0.65:
        i = rnd.randrange(len(q.path))
        q.path = q.path[:i] + rnd.choice('A_-.%/~zZ9') + q.path[i + 1:]
    elif r < 0.8:
        q.path += rnd.choice(['?', '?a=b', '?flowChunkNumber=1',
                              '?x=' + 'q' * 3000, '?%zz', '/..', '/./x',
                              '%2e%2e/', '%00', '/', ';x=1', '#f'])
    else:
        q.path = rnd.choice(paths) + rnd.choice(['', 'x', 'A' * 22,
                                                 '.resumable', '..'])
    if not q.path.startswith('/'):
        q.path = '/' + q.path
    return 'path'


def _mutate_json(rnd, obj, depth=0):
    if isinstance(obj, dict) and obj and depth < 4:
        k = rnd.choice(list(obj))
        r = rnd.random()
        if r < 0.2:
            del obj[k]
        elif r < 0.6:
            obj[k] = rnd.choice([None, True, -1, 0, 1.5, N63, N63 - 1,
                                 -N63, 10 ** 30, '', 'x' * 5000, [], {},
                                 [1, 2], ['a'] * 300, _value(rnd)])
        else:
            _mutate_json(rnd, obj[k], depth + 1)
    elif isinstance(obj, list) and obj and depth < 4:
        i = rnd.randrange(len(obj))
        r = rnd.random()
        if r < 0.3:
            obj.append(obj[i])
        elif r < 0.6:
            obj[i] = rnd.choice([None, 7, '', 'z' * 40, _value(rnd), [obj[i]]])
        else:
            del obj[i]
    return obj


def op_body(rnd, q, paths):
    b = q.body
    if isinstance(b, tuple) and b[0] == 'json' and not isinstance(b[1], bytes) \
            and rnd.random() < 0.7:
        q.body = ('json', _mutate_json(rnd, json.loads(json.dumps(b[1]))))
        return 'json'
    if isinstance(b, tuple) and b[0] == 'mp' and rnd.random() < 0.7:
        parts = [list(p) for p in b[1]]
        r = rnd.random()
        i = rnd.randrange(len(parts)) if parts else 0
        if not parts:
            pass
        elif r < 0.5 and not isinstance(parts[i][1], tuple):
            parts[i][1] = _value(rnd)
        elif r < 0.65:
            del parts[i]
        elif r < 0.8:
            parts.append(list(rnd.choice(parts)))
        elif isinstance(parts[i][1], tuple):
            fname, data = parts[i][1]
            parts[i][1] = (rnd.choice([fname, '', '../x', 'a"b', 'é']),
                           data[:rnd.randrange(len(data) + 1)])
        else:
            parts[i][0] = _value(rnd)
        q.body = ('mp', [tuple(p) for p in parts])
        return 'mp'
    data = bytearray(q.body_bytes('FuzzB0undary'))
    r = rnd.random()
    if r < 0.25 and data:
        for _ in range(rnd.randrange(1, 8)):
            data[rnd.randrange(len(data))] ^= 1 << rnd.randrange(8)
        op = 'flip'
    elif r < 0.45:
        data = data[:rnd.randrange(len(data) + 1)]
        op = 'truncate'
    elif r < 0.6:
        cut = rnd.randrange(len(data) + 1)
        q.short = len(data) - cut + rnd.randrange(1, 5000)
        data = data[:cut]
        op = f'dishonest:{q.short}'
    elif r < 0.75:
        data += bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 300)))
        op = 'append'
    elif r < 0.85:
        data = bytearray()
        op = 'empty'
    else:
        data = bytearray(b'x' * rnd.choice([1, 100, 70000, 300000,
                                                 4700000]))
        op = 'big'
    q.body = bytes(data)
    return op


# byte tokens of multipart and JSON bodies and what may replace them
TOKENS = [b'form-data; ', b'name="', b'filename="', b'"\r\n', b'\r\n\r\n',
          b'--FuzzB0undary', b'Content-Type: ', b'":', b'", "', b'{', b'[',
          b'"', b'\r\n']
SWAPS = [b'', b'\r\n', b'\n', b'\r\n\r\n', b'"', b'\\"', b';', b'; x',
         b'name=', b'name*=UTF-8\'\'%zz', b'filename*=UTF-8\'\'a%2fb; ',
         b'--FuzzB0undary--\r\n', b'--FuzzB0undary\r\n', b'\x00', b'\xff',
         b'":{"', b'[' * 100, b'"\\u0000', b'"\\ud800', b'1e999', b'-0',
         b'9' * 30, b'Content-Disposition: form-data; name="index"\r\n\r\n1']


def op_tokens(rnd, q, paths):
    data = q.body_bytes('FuzzB0undary')
    spots = []
    for t in TOKENS:
        i = data.find(t)
        for _ in range(200):
            if i < 0:
                break
            spots.append((t, i))
            i = data.find(t, i + 1)
    if not spots:
        return op_body(rnd, q, paths)
    t, i = rnd.choice(spots)
    q.body = data[:i] + rnd.choice(SWAPS) + data[i + len(t):]
    return f'token:{t!r}'


def op_framing(rnd, q, paths):
    q.chunked = True
    q.short = 0
    r = rnd.random()
    if r < 0.5:
        q.trailer = rnd.choice(BAD_TRAILERS)
    elif r < 0.7:
        q.chunk_line = rnd.choice([b'zz\r\n', b'-1\r\n', b'f' * 20 + b'\r\n',
                                   b'0;' + b'e' * 9000 + b'\r\n\r\n',
                                   b'0\r\n', b'1\r\nab\r\n0\r\n\r\n'])
    return 'chunked'


def op_length(rnd, q, paths):
    near = [str(N63 - d) for d in (1, 2, 4, 5, 100, 4096)]   # offset + CL
    q.cl = rnd.choice(near if rnd.random() < 0.5 else
                      NUMBERS + ['3, 4', '4, 4', '0x4'])
    return f'cl:{q.cl!r}'


def op_version(rnd, q, paths):
    q.version = rnd.choice(['HTTP/1.0', 'HTTP/1.0', 'http/1.1'])
    return f'version:{q.version}'


def op_pipeline(rnd, q, paths):
    q.pipeline = True
    return 'pipeline'


OPERATORS = [(op_pipeline, 5), (op_version, 3), (op_header_value, 30), (op_drop_header, 8),
             (op_repeat_header, 6), (op_add_header, 14), (op_method, 6),
             (op_path, 10), (op_body, 16), (op_tokens, 10), (op_framing, 6),
             (op_length, 10)]


def mutate(rnd, template, paths):
    q = Request(template)
    ops, weights = zip(*OPERATORS)
    for _ in range(rnd.choice([1, 1, 1, 2, 2, 3])):
        op = rnd.choices(ops, weights)[0]
        q.ops.append(op(rnd, q, paths))
    if q.cl is not None and q.chunked:
        q.cl = None
    if q.short or q.cl is not None or q.chunk_line is not None:
        q.pipeline = False      # where the first request ends is unclear
    return q


# ---- sending and checking ------------------------------------------------------

def send(host, port, q, timeout=10.0):
    """Send q, read until the server closes; -> bytes (b'' when nothing
    came back). A dishonest length or a bad chunk line half-closes the
    connection, so the server sees the end instead of waiting Timeout."""
    s = socket.create_connection((host, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    out = []
    try:
        try:
            s.sendall(q.raw())
            s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        end = time.time() + timeout
        while time.time() < end:
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                break
            if not b:
                break
            out.append(b)
    finally:
        s.close()
    return b''.join(out)


def _head(buf, pos):
    end = buf.find(b'\r\n\r\n', pos)
    if end < 0:
        raise ValueError('no end of head')
    lines = buf[pos:end].split(b'\r\n')
    parts = lines[0].split(b' ', 2)
    if len(parts) < 2 or parts[0] != b'HTTP/1.1' or len(parts[1]) != 3 \
            or not parts[1].isdigit():
        raise ValueError(f'bad status line {lines[0][:100]!r}')
    hdrs = {}
    for line in lines[1:]:
        k, sep, v = line.partition(b':')
        if not sep or not k or k != k.strip() or any(c < 33 or c > 126
                                                      for c in k):
            raise ValueError(f'bad header line {line[:100]!r}')
        if any(c < 32 and c != 9 or c == 127 for c in v):
            raise ValueError(f'control byte in header {line[:100]!r}')
        hdrs.setdefault(k.decode().lower(), []).append(v.strip().decode(
            'latin-1'))
    return int(parts[1]), hdrs, end + 4


def _fail(reason):
    raise ValueError(reason)


def _chunked_end(buf, pos):
    """End of a chunked body starting at pos (with its trailer)."""
    for _ in range(100000):
        eol = buf.find(b'\r\n', pos)
        line = buf[pos:eol].split(b';')[0].strip() if eol >= 0 else b''
        if not line or any(c not in b'0123456789abcdefABCDEF' for c in line):
            raise ValueError(f'bad chunk line {buf[pos:pos + 40]!r}')
        n, pos = int(line, 16), eol + 2
        if n == 0:
            end = buf.find(b'\r\n\r\n', pos - 2)
            if end < 0:
                raise ValueError('unterminated trailer')
            return end + 4
        if buf[pos + n:pos + n + 2] != b'\r\n':
            raise ValueError('short chunk')
        pos += n + 2
    raise ValueError('too many chunks')


def parse(buf, method, pipeline=False):
    """-> final status of a well-formed answer (of the first request when
    pipelined: a well-formed answer to the second may follow, or nothing
    when the server closed after the first); ValueError otherwise."""
    status, pos = parse_one(buf, 0, method, pipeline)
    if pipeline and pos < len(buf):
        parse_one(buf, pos, 'HEAD', False)
    return status


def parse_one(buf, pos, method, more):
    """-> (status, end) of one well-formed answer starting at pos."""
    for _ in range(20):
        status, hdrs, pos = _head(buf, pos)
        if 100 <= status < 200:
            continue
        break
    else:
        raise ValueError('too many interim responses')
    if method == 'HEAD' or status in (204, 304):
        body_len = 0
    elif 'chunked' in ','.join(hdrs.get('transfer-encoding', [])).lower():
        end = _chunked_end(buf, pos)
        if end != len(buf) and not more:
            _fail('bytes after the chunked body')
        return status, end
    elif 'content-length' in hdrs:
        cls = set(hdrs['content-length'])
        if len(cls) != 1 or not next(iter(cls)).isdigit():
            raise ValueError(f'bad Content-Length {cls}')
        body_len = int(next(iter(cls)))
    else:
        body_len = len(buf) - pos           # delimited by the close
    if len(buf) - pos < body_len or (len(buf) - pos > body_len and not more):
        raise ValueError(f'body of {len(buf) - pos} bytes, declared '
                         f'{body_len}')
    return status, pos + body_len


def run(host, port, templates, paths, seed, count, seconds, check=None):
    """Send up to count mutated requests within seconds. Returns
    (sent, statuses dict, failures list of (description, reason))."""
    rnd = random.Random(seed)
    end = time.time() + seconds
    sent, statuses, failures = 0, {}, []
    for i in range(count):
        if time.time() > end:
            break
        t = rnd.choice(templates)
        q = mutate(rnd, t, paths)
        method = q.method
        buf = send(host, port, q)
        sent += 1
        try:
            status = parse(buf, method, q.pipeline) if buf else None
        except ValueError as e:
            failures.append((f'#{i} {q.describe()}', f'malformed: {e}',
                             buf[:300]))
            continue
        statuses[status] = statuses.get(status, 0) + 1
        if status is None:
            failures.append((f'#{i} {q.describe()}', 'no answer', b''))
        elif status >= 500 and not (status == 501
                                    and method not in HTTPD_METHODS):
            failures.append((f'#{i} {q.describe()}', f'status {status}',
                             buf[:300]))
        if check:
            reason = check(i, q, status)
            if reason:
                failures.append((f'#{i} {q.describe()}', reason, buf[:300]))
    return sent, statuses, failures
