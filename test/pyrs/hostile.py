"""Helpers of the hostile-input and isolation suites (test_94x, test_95x):
state snapshots of an area and request builders for every protocol."""
import json
import os
from urllib.parse import urlencode

from .ctl import resumablectl

BOUNDARY = 'RsHostileB0undary'


def area_state(env, area_dir):
    """Everything a request could change in an area: every path below the
    area dir (dot files and the staging folder included, lock files
    excluded) with its size, and the state database's record list."""
    files = {}
    for root, _dirs, names in os.walk(area_dir):
        for n in names:
            p = os.path.join(root, n)
            if n.endswith('.lock'):
                continue
            try:
                files[os.path.relpath(p, area_dir)] = os.path.getsize(p)
            except OSError:
                pass
    rc, out = resumablectl(env, env.statedb, 'list')
    records = []
    for line in out.splitlines():       # without the AGE column
        f = line.split(None, 4)
        records.append(tuple(f[:3] + f[4:]) if len(f) >= 4 else tuple(f))
    return files, (rc, sorted(records))


def multipart(parts, boundary=BOUNDARY, close=True):
    """parts: (name, str) or (name, (filename, bytes, ctype)) or raw bytes
    (sent verbatim as a part). Returns the body bytes."""
    out = b''
    for part in parts:
        out += b'--' + boundary.encode() + b'\r\n'
        if isinstance(part, bytes):
            out += part + b'\r\n'
            continue
        name, value = part
        if isinstance(value, tuple):
            fname, data, ctype = value
            out += (f'Content-Disposition: form-data; name="{name}"; '
                    f'filename="{fname}"\r\nContent-Type: {ctype}\r\n\r\n'
                    ).encode('utf-8', 'surrogateescape') + data
        else:
            out += (f'Content-Disposition: form-data; name="{name}"\r\n\r\n'
                    ).encode() + str(value).encode('utf-8', 'surrogateescape')
        out += b'\r\n'
    if close:
        out += b'--' + boundary.encode() + b'--\r\n'
    return out


def mp_type(boundary=BOUNDARY):
    return f'multipart/form-data; boundary={boundary}'


def jbody(obj):
    return obj if isinstance(obj, bytes) else json.dumps(obj).encode()


def flow_query(**over):
    p = {'flowChunkNumber': 1, 'flowChunkSize': 1024,
         'flowCurrentChunkSize': 10, 'flowTotalSize': 10,
         'flowIdentifier': '10-h.bin', 'flowFilename': 'h.bin',
         'flowRelativePath': 'h.bin', 'flowTotalChunks': 1}
    for k, v in over.items():
        if v is None:
            p.pop(k, None)
        else:
            p[k] = v
    return urlencode(p)


def flow_parts(data=b'0123456789', **over):
    p = {'flowChunkNumber': 1, 'flowChunkSize': 1024,
         'flowCurrentChunkSize': len(data), 'flowTotalSize': len(data),
         'flowIdentifier': f'{len(data)}-h.bin', 'flowFilename': 'h.bin',
         'flowRelativePath': 'h.bin', 'flowTotalChunks': 1}
    fname = over.pop('_fname', 'h.bin')
    for k, v in over.items():
        if v is None:
            p.pop(k, None)
        else:
            p[k] = v
    parts = list(p.items())
    parts.append(('file', (fname, data, 'application/octet-stream')))
    return parts


def send_whole(client, method, path, headers, body, timeout=15):
    """One request with the whole body sent even when the server answers
    early (an interim 104 must not stop the body); -> Resp."""
    from .client import read_response
    headers = dict(headers)
    if body or method in ('POST', 'PATCH', 'PUT'):
        headers.setdefault('Content-Length', str(len(body)))
    s = client.connect(timeout)
    try:
        s.sendall(client._head_bytes(method, path, headers, None))
        try:
            s.sendall(body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_response(s, method, timeout)
    finally:
        s.close()


def basic(user):
    """Authorization header value of (user, password)."""
    import base64
    return 'Basic ' + base64.b64encode(f'{user[0]}:{user[1]}'.encode()).decode()


def users_conf(env, path, area_dir, users, directives=()):
    """CONF dict: one upload area with every protocol, behind httpd Basic
    authentication with the given (user, password) pairs."""
    import subprocess
    from .env import RsArea
    f = env.gen / 'conf' / 'htpasswd-hostile'
    f.parent.mkdir(parents=True, exist_ok=True)
    for i, (u, pw) in enumerate(users):
        subprocess.run(['htpasswd', '-bB' + ('c' if i == 0 else ''), str(f),
                        u, pw], check=True, capture_output=True, timeout=30)
    return dict(areas=[RsArea(path, dir=area_dir, directives=list(directives),
                              section=['AuthType Basic', 'AuthName "uploads"',
                                       f'AuthUserFile "{f}"',
                                       'Require valid-user'])])
