"""981: the RESUMABLE_* variables of each upload request in the access log,
with the example LogFormat of conf/resumable.conf, for tus, IETF, offset
and slice requests."""
import re
import time

from pyrs.client import make_data, read_response, upload_id
from pyrs.env import RsArea
from pyrs.seeds import post_form, seeds_conf

LOG_NAME = 'rs_vars.log'
RE_LINE = re.compile(r'"(?P<req>[^"]*)" (?P<status>\d+) \S+ (?P<proto>\S+) '
                     r'(?P<id>\S+) (?P<before>\S+) (?P<after>\S+) '
                     r'(?P<bytes>\S+) (?P<complete>\S+) (?P<error>\S+)$')


def example_format(env):
    """The LogFormat line of conf/resumable.conf (never a copy)."""
    for line in (env.repo / 'conf' / 'resumable.conf').read_text().splitlines():
        if line.strip().startswith('LogFormat') and line.rstrip().endswith(' resumable'):
            return line.strip()
    raise AssertionError('no example LogFormat in conf/resumable.conf')


def conf(env):
    c = seeds_conf(env, 'seeds-log')
    c['areas'] = [RsArea('/files/', dir='log_files')]
    log = env.gen / 'logs' / LOG_NAME
    c['server_extra'] = (example_format(env) + '\n'
                         f'CustomLog "{log}" resumable env=RESUMABLE_PROTOCOL\n')
    return c


def log_lines(env, n, timeout=10):
    """The first n parsed lines (the log phase runs after the answer)."""
    path = env.gen / 'logs' / LOG_NAME
    deadline = time.time() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= n or time.time() > deadline:
            break
        time.sleep(0.1)
    out = []
    for line in lines:
        m = RE_LINE.search(line)
        assert m, line
        out.append(m.groupdict())
    return out


def whole(env, method, path, headers, body):
    """Head and body in one send (a 104 answer does not stop the body)."""
    c = env.client
    h = dict(headers, **{'Content-Length': str(len(body))})
    s = c.connect()
    try:
        s.sendall(c._head_bytes(method, path, h, None) + body)
        return read_response(s, method)
    finally:
        s.close()


def url_path(url):
    return '/' + url.split('://', 1)[1].split('/', 1)[1]


class TestAccessLog:
    CONF = staticmethod(conf)

    def test_rs_981_01_variables_per_protocol(self, env):
        path = env.gen / 'logs' / LOG_NAME
        start = len(path.read_text().splitlines()) if path.exists() else 0
        tus = env.tus('/files/')
        url = tus.create(length=300)
        tid = upload_id(url)
        assert tus.patch(url, 0, make_data(100, seed=1)).status == 204
        assert tus.patch(url, 50, b'x' * 10).status == 409
        assert tus.patch(url, 100, make_data(200, seed=2)).status == 204
        gone = tus.create(length=10)
        assert tus.delete(gone).status == 204
        # IETF: creation with the whole body
        r = whole(env, 'POST', '/files/', {
            'Upload-Draft-Interop-Version': '8', 'Upload-Complete': '?1',
            'Content-Type': 'application/octet-stream'}, make_data(500, seed=3))
        assert r.status in (200, 201), r
        iid = upload_id(r.headers['Location'])
        # offset (design document 001): the whole file in one POST
        r = env.client.request('POST', '/upload', {
            'X-File-Id': 'log-400-1', 'X-Start-Byte': '0', 'X-File-Size': '400',
            'Content-Type': 'video/mp4'}, make_data(400, seed=4))
        assert r.status == 200, r
        # slice: one chunk (multipart form)
        r = post_form(env, '/sliceUpload', [
            ('chunk', ('blob', make_data(256, seed=5), 'application/octet-stream')),
            ('index', 0), ('name', 'log.bin')])
        assert r.status == 200, r

        lines = log_lines(env, start + 9)[start:]
        assert len(lines) == 9, lines

        def one(method, path, status, **want):
            """The one line of that request (the log phase runs after the
            answer: lines of quick requests may swap places)."""
            got = [m for m in lines if m['req'].split()[:2] == [method, path]
                   and m['status'] == str(status)
                   and all(m[k] == v for k, v in want.items())]
            assert len(got) == 1, (method, path, status, want, lines)
            return got[0]
        c = one('POST', '/files/', 201, proto='tus', id=tid)
        assert (c['before'], c['after'], c['bytes'], c['complete']) == \
            ('0', '0', '0', '0'), c
        p1 = one('PATCH', url_path(url), 204, before='0')
        assert (p1['proto'], p1['id'], p1['after'], p1['bytes'],
                p1['complete'], p1['error']) == ('tus', tid, '100', '100',
                                                 '0', '-'), p1
        bad = one('PATCH', url_path(url), 409)
        assert (bad['error'], bad['after'], bad['bytes']) == \
            ('ERR_MISMATCHED_OFFSET', '100', '0'), bad
        p2 = one('PATCH', url_path(url), 204, before='100')
        assert (p2['after'], p2['bytes'], p2['complete']) == \
            ('300', '200', '1'), p2
        one('POST', '/files/', 201, proto='tus', id=upload_id(gone))
        one('DELETE', url_path(gone), 204, proto='tus', id=upload_id(gone))
        ietf = one('POST', '/files/', 201, proto='ietf')
        assert (ietf['id'], ietf['before'], ietf['after'], ietf['bytes'],
                ietf['complete']) == (iid, '0', '500', '500', '1'), ietf
        off = one('POST', '/upload', 200, proto='offset')
        assert (off['after'], off['bytes'], off['complete']) == \
            ('400', '400', '1'), off
        assert off['id'] != '-', off
        sl = one('POST', '/sliceUpload', 200, proto='slice')
        assert (sl['bytes'], sl['complete']) == ('256', '0'), sl
        assert sl['id'] != '-', sl
