"""Raw HTTP/1.1 client for the mod_resumable tests (stdlib sockets only).

Full control over what goes on the wire: chunked bodies with trailers,
partial bodies, aborts (FIN or RST). Every socket has a timeout.
"""
import base64
import hashlib
import random
import re
import select
import socket
import struct
import time
from urllib.parse import urlsplit

from requests.structures import CaseInsensitiveDict

TUS_VERSION = '1.0.0'
OCTET = 'application/offset+octet-stream'



def answered_early(s):
    """The server sent a final answer before the body was all sent (an
    interim 1xx, such as the IETF draft's 104, is not one: the server
    still wants the body)."""
    r, _w, _x = select.select([s], [], [], 0)
    if not r:
        return False
    try:
        data = s.recv(65536, socket.MSG_PEEK)
    except OSError:
        return True
    if not data:
        return True                     # closed
    while re.match(rb'HTTP/1\.[01] 1\d\d', data):
        end = data.find(b'\r\n\r\n')
        if end < 0:
            return False                # an interim answer still arriving
        data = data[end + 4:]
    return bool(data)

class Resp(tuple):
    """(status, headers, body); headers case-insensitive (repeated headers
    joined with ', '); also .reason, .raw_headers, .trailers, .text."""

    def __new__(cls, status, headers, body, reason='', raw_headers=(), trailers=None):
        self = super().__new__(cls, (status, headers, body))
        self.reason = reason
        self.raw_headers = list(raw_headers)
        self.trailers = trailers or CaseInsensitiveDict()
        return self

    status = property(lambda self: self[0])
    headers = property(lambda self: self[1])
    body = property(lambda self: self[2])

    @property
    def text(self):
        return self.body.decode('utf-8', 'replace')

    def __repr__(self):
        return (f'Resp({self.status} {self.reason}, {dict(self.headers)}, '
                f'{self.body[:200]!r})')


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def digest_b64(alg, data):
    return base64.b64encode(hashlib.new(alg, data).digest()).decode()


def make_data(n, seed=0):
    """n deterministic pseudo-random bytes."""
    return random.Random(seed).randbytes(n)


def b64(s):
    if isinstance(s, str):
        s = s.encode('utf-8')
    return base64.b64encode(s).decode()


def encode_metadata(meta):
    """dict -> Upload-Metadata value ('key b64,key2'); a str passes as is."""
    if meta is None or isinstance(meta, str):
        return meta
    parts = []
    for k, v in meta.items():
        parts.append(k if v is None else f'{k} {b64(v)}')
    return ','.join(parts)


def split_url(url):
    """-> (path with query, host header or None) of a path or absolute URL."""
    if url.startswith('http://') or url.startswith('https://'):
        u = urlsplit(url)
        return (u.path + ('?' + u.query if u.query else '')), u.netloc
    return url, None


def upload_id(url):
    return split_url(url)[0].rstrip('/').rsplit('/', 1)[-1]


def abort_socket(sock):
    """Close with RST (SO_LINGER 0): unsent/unread data is dropped."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    except OSError:
        pass
    sock.close()


def _readline(f):
    line = f.readline(65537)
    if not line:
        raise ConnectionError('connection closed while reading response')
    return line


def _read_headers(f):
    raw = []
    for _ in range(1000):
        line = _readline(f).rstrip(b'\r\n')
        if not line:
            break
        name, _, value = line.decode('latin-1').partition(':')
        raw.append((name.strip(), value.strip()))
    hdrs = CaseInsensitiveDict()
    for k, v in raw:
        hdrs[k] = f'{hdrs[k]}, {v}' if k in hdrs else v
    return raw, hdrs


def read_response(sock, method='GET', timeout=10):
    """Read one response from a socket (interim 1xx responses skipped)."""
    sock.settimeout(timeout)
    f = sock.makefile('rb')
    try:
        for _ in range(20):     # interim 1xx responses, bounded
            line = _readline(f).decode('latin-1').rstrip('\r\n')
            parts = line.split(' ', 2)
            if len(parts) < 2 or not parts[0].startswith('HTTP/'):
                raise ConnectionError(f'bad status line {line!r}')
            status = int(parts[1])
            reason = parts[2] if len(parts) > 2 else ''
            raw, hdrs = _read_headers(f)
            if 100 <= status < 200 and status != 101:
                continue
            break
        trailers = CaseInsensitiveDict()
        body = b''
        if method == 'HEAD' or status in (204, 304) or 100 <= status < 200:
            pass
        elif 'chunked' in hdrs.get('Transfer-Encoding', '').lower():
            chunks = []
            for _ in range(1 << 20):
                size = int(_readline(f).split(b';')[0].strip(), 16)
                if size == 0:
                    _r, trailers = _read_headers(f)
                    break
                chunks.append(f.read(size))
                f.readline()
            body = b''.join(chunks)
        elif 'Content-Length' in hdrs:
            n = int(hdrs['Content-Length'])
            body = f.read(n)
            if len(body) != n:
                raise ConnectionError(f'short body {len(body)}/{n}')
        else:
            body = f.read()
        return Resp(status, hdrs, body, reason, raw, trailers)
    finally:
        f.close()


class RsClient:
    """HTTP/1.1 over raw sockets against one server (base url)."""

    def __init__(self, base_url, timeout=10):
        u = urlsplit(base_url)
        self.host = u.hostname
        self.port = u.port or 80
        self.base = base_url
        self.timeout = timeout

    def connect(self, timeout=None):
        s = socket.create_connection((self.host, self.port), timeout=timeout or self.timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def _head_bytes(self, method, path, headers, host):
        path, url_host = split_url(path)
        hdrs = CaseInsensitiveDict()
        hdrs['Host'] = host or url_host or f'{self.host}:{self.port}'
        hdrs['Connection'] = 'close'
        for k, v in (headers or {}).items():
            if v is None:
                hdrs.pop(k, None)
            else:
                hdrs[k] = v
        lines = [f'{method} {path} HTTP/1.1'] + [f'{k}: {v}' for k, v in hdrs.items()]
        return ('\r\n'.join(lines) + '\r\n\r\n').encode('utf-8')

    def request(self, method, path, headers=None, body=b'', chunked=False,
                trailers=None, chunk_size=65536, host=None, timeout=None,
                send_delay=0.0):
        """Send one request on a new connection; returns Resp.

        headers: dict, a None value removes a default header (Host,
        Connection, Content-Length). chunked: send the body with
        Transfer-Encoding: chunked and `trailers` (dict) after the last chunk.
        Sending stops early when the server answers before the body is all
        sent (e.g. 413/423), and that answer is returned.
        """
        headers = dict(headers or {})
        lower = {k.lower() for k in headers}
        if chunked:
            if 'transfer-encoding' not in lower:
                headers['Transfer-Encoding'] = 'chunked'
            if trailers and 'trailer' not in lower:
                headers['Trailer'] = ', '.join(trailers.keys())
        elif 'content-length' not in lower and (body or method in ('POST', 'PATCH', 'PUT')):
            headers['Content-Length'] = str(len(body))
        timeout = timeout or self.timeout
        s = self.connect(timeout)
        try:
            s.sendall(self._head_bytes(method, path, headers, host))
            if chunked:
                pieces = [b'%x\r\n' % len(body[i:i + chunk_size]) + body[i:i + chunk_size] + b'\r\n'
                          for i in range(0, len(body), chunk_size)]
                end = b'0\r\n' + b''.join(f'{k}: {v}\r\n'.encode() for k, v in
                                          (trailers or {}).items()) + b'\r\n'
                pieces.append(end)
            else:
                pieces = [body[i:i + chunk_size] for i in range(0, len(body), chunk_size)]
            for piece in pieces:
                if answered_early(s):
                    break   # server answered early
                try:
                    s.sendall(piece)
                except (BrokenPipeError, ConnectionResetError):
                    break
                if send_delay:
                    time.sleep(send_delay)
            return read_response(s, method, timeout)
        finally:
            s.close()

    def send_partial(self, method, path, headers, body_part, total_len, timeout=None):
        """Send the head with Content-Length total_len and only body_part;
        returns the open socket (stall it, send more, close or abort_socket)."""
        headers = dict(headers or {})
        headers['Content-Length'] = str(total_len)
        s = self.connect(timeout)
        s.sendall(self._head_bytes(method, path, headers, None))
        if body_part:
            s.sendall(body_part)
        return s

    def get(self, path, headers=None, **kw):
        return self.request('GET', path, headers, **kw)

    def head(self, path, headers=None, **kw):
        return self.request('HEAD', path, headers, **kw)

    def options(self, path, headers=None, **kw):
        return self.request('OPTIONS', path, headers, **kw)


class Tus:
    """tus 1.0.0 helper on an area; every request carries Tus-Resumable
    (and Authorization when auth=(user, password))."""

    def __init__(self, client, area='/files/', auth=None, headers=None):
        self.client = client
        self.area = area
        self.base_headers = {'Tus-Resumable': TUS_VERSION}
        if auth:
            tok = base64.b64encode(f'{auth[0]}:{auth[1]}'.encode()).decode()
            self.base_headers['Authorization'] = f'Basic {tok}'
        self.base_headers.update(headers or {})

    def _h(self, headers):
        h = dict(self.base_headers)
        h.update(headers or {})
        return h

    def request(self, method, url, headers=None, **kw):
        return self.client.request(method, url, self._h(headers), **kw)

    def options(self, url=None, headers=None):
        return self.client.request('OPTIONS', url or self.area, headers)

    def create_resp(self, length=None, defer=False, metadata=None, concat=None,
                    body=None, headers=None, content_type=OCTET, url=None, **kw):
        h = {}
        if length is not None:
            h['Upload-Length'] = str(length)
        if defer:
            h['Upload-Defer-Length'] = '1'
        if metadata is not None:
            h['Upload-Metadata'] = encode_metadata(metadata)
        if concat is not None:
            h['Upload-Concat'] = concat
        if body is not None and content_type:
            h['Content-Type'] = content_type
        h.update(headers or {})
        return self.request('POST', url or self.area, h, body=body or b'', **kw)

    def create(self, length=None, defer=False, metadata=None, concat=None,
               body=None, headers=None, **kw):
        """POST creation; asserts 201 and returns the Location (upload URL)."""
        r = self.create_resp(length, defer, metadata, concat, body, headers, **kw)
        assert r.status == 201, f'creation failed: {r}'
        loc = r.headers.get('Location')
        assert loc, f'no Location: {r}'
        return loc

    def head(self, url, headers=None, **kw):
        return self.request('HEAD', url, headers, **kw)

    def get(self, url, headers=None, **kw):
        return self.request('GET', url, headers, **kw)

    def delete(self, url, headers=None, **kw):
        return self.request('DELETE', url, headers, **kw)

    def patch(self, url, offset, data, checksum=None, headers=None,
              content_type=OCTET, **kw):
        """PATCH data at offset. checksum: 'sha1' (computed) or a full
        Upload-Checksum value ('sha1 base64')."""
        h = {'Upload-Offset': str(offset)}
        if content_type:
            h['Content-Type'] = content_type
        if checksum:
            if ' ' not in checksum:
                checksum = f'{checksum} {digest_b64(checksum, data)}'
            h['Upload-Checksum'] = checksum
        h.update(headers or {})
        return self.request('PATCH', url, h, body=data, **kw)

    def offset(self, url):
        r = self.head(url)
        assert r.status == 200, f'HEAD {url}: {r}'
        return int(r.headers['Upload-Offset'])

    def upload(self, data, metadata=None, chunk_size=None, **create_kw):
        """Create and upload all of data in PATCHes; returns the URL."""
        url = self.create(length=len(data), metadata=metadata, **create_kw)
        self.upload_rest(url, data, 0, chunk_size)
        return url

    def upload_rest(self, url, data, offset, chunk_size=None):
        chunk_size = chunk_size or max(1, len(data))
        for _ in range(len(data) // chunk_size + 2):
            if offset >= len(data):
                break
            piece = data[offset:offset + chunk_size]
            r = self.patch(url, offset, piece)
            assert r.status == 204, f'PATCH at {offset}: {r}'
            offset = int(r.headers['Upload-Offset'])
        assert offset == len(data), f'upload stopped at {offset}/{len(data)}'
        return offset


# ---- module-level helpers on the session's server ---------------------------
_default = {'client': None}


def set_default_base(base_url):
    """RsEnv calls this: the module-level helpers then talk to its server."""
    _default['client'] = RsClient(base_url)


def _client():
    if _default['client'] is None:
        raise RuntimeError('no server: use the env fixture first')
    return _default['client']


def request(method, path, headers=None, body=b'', chunked=False, trailers=None, **kw):
    """One request to the session's server (path or absolute URL) -> Resp,
    which unpacks as (status, headers, body)."""
    return _client().request(method, path, headers, body=body, chunked=chunked,
                             trailers=trailers, **kw)


def send_partial(method, path, headers, body_part, total_len, **kw):
    """Head with Content-Length total_len plus body_part; returns the open
    socket (stall it, sock.sendall() more, sock.close() or abort_socket())."""
    return _client().send_partial(method, path, headers, body_part, total_len, **kw)


def create(length=None, defer=False, metadata=None, concat=None, headers=None,
           area='/files/', **kw):
    """tus creation on the session's server; returns the upload URL."""
    return Tus(_client(), area).create(length=length, defer=defer, metadata=metadata,
                                       concat=concat, headers=headers, **kw)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()
