"""A hook receiver for the hook tests (ResumableHook): a real HTTP server on
127.0.0.1 in a thread of the test process, used directly (absolute URL)
and behind ProxyPass; CGI_SCRIPT is the same policy as a CGI program.

Policy of blocking hooks (pre-create, pre-finish), shared by both:
  request.user == 'bob'              -> 403 "bob may not upload"
  filename contains 'reject'         -> 403 "name refused" (+ headers that
                                        must never reach the client)
  filename contains 'slow'           -> sleeps 3 s, then 200
  pre-finish, data contains b'VIRUS' -> 422 "infected"
  filename starts with 'rename'      -> 200 {"metadata": {.., "approved":
                                        "yes"}, "filename": "renamed.txt"}
  filename contains 'limit'          -> 200 {"size_limit": 10}
  pre-finish, filename starts with
  'finrename'                        -> 200 {"filename": "final-" + name}
  otherwise                          -> 200 (empty body)
Notifications are answered 200 and recorded (event ids kept, duplicates
counted by the test).
"""
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def content(up):
    """The bytes of a finished upload, from data_path or data_parts."""
    out = b''
    try:
        if up.get('data_path'):
            with open(up['data_path'], 'rb') as f:
                return f.read()
        for part in up.get('data_parts') or []:
            with open(part['path'], 'rb') as f:
                out += f.read(part['length'])
    except OSError:             # gone: the hook was too slow (failopen)
        pass
    return out


def decide(p):
    """(status, body bytes, content type) for payload p."""
    ev = p.get('event')
    if ev not in ('pre-create', 'pre-finish'):
        return 200, b'', 'text/plain'
    up = p.get('upload') or {}
    req = p.get('request') or {}
    name = up.get('filename') or (up.get('metadata') or {}).get('filename') or ''
    if req.get('user') == 'bob':
        return 403, b'bob may not upload', 'text/plain'
    if 'reject' in name:
        return 403, b'name refused', 'text/plain'
    if 'slow' in name:
        time.sleep(3)
    if ev == 'pre-finish' and b'VIRUS' in content(up):
        return 422, b'infected', 'text/plain'
    if ev == 'pre-create' and name.startswith('rename'):
        meta = dict(up.get('metadata') or {})
        meta['approved'] = 'yes'
        return 200, json.dumps({'metadata': meta,
                                'filename': 'renamed.txt'}).encode(), \
            'application/json'
    if ev == 'pre-finish' and name.startswith('finrename'):
        return 200, json.dumps({'filename': 'final-' + name}).encode(), \
            'application/json'
    if ev == 'pre-create' and 'limit' in name:
        return 200, b'{"size_limit": 10}', 'application/json'
    return 200, b'', 'text/plain'


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass                # a TLS client that refused our certificate


class Receiver:
    """tls: an ssl.SSLContext (server side) to answer https (the handshake
    happens in the request's thread)."""

    def __init__(self, port=None, tls=None):
        self.tls = tls
        self.port = port or free_port()
        self.events = []            # (event, id, payload) as received
        self.headers = []           # request headers, in order
        self.paths = []             # request paths, in order
        self.lock = threading.Lock()
        self.srv = None
        self.thread = None
        self.delay = 0              # seconds before answering a notification

    @property
    def url(self):
        return f'{"https" if self.tls else "http"}://127.0.0.1:{self.port}'

    def start(self):
        rx = self

        class H(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get('Content-Length') or 0)
                body = self.rfile.read(n)
                try:
                    p = json.loads(body)
                except ValueError:
                    p = {}
                with rx.lock:
                    rx.events.append((p.get('event'), p.get('id'), p))
                    rx.headers.append(dict(self.headers))
                    rx.paths.append(self.path)
                status, out, ctype = decide(p)
                if rx.delay and p.get('event', '').startswith('post-'):
                    time.sleep(rx.delay)
                try:
                    self.send_response(status)
                    self.send_header('Content-Type', ctype)
                    self.send_header('Content-Length', str(len(out)))
                    self.send_header('X-Injected', 'evil')
                    self.send_header('Set-Cookie', 'session=stolen')
                    self.send_header('Location', 'http://evil.example/')
                    self.end_headers()
                    self.wfile.write(out)
                except OSError:     # the caller is gone (a killed child)
                    pass

        self.srv = _Server(('127.0.0.1', self.port), H)
        self.srv.daemon_threads = True
        if self.tls:
            self.srv.socket = self.tls.wrap_socket(
                self.srv.socket, server_side=True,
                do_handshake_on_connect=False)
        self.thread = threading.Thread(target=self.srv.serve_forever,
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.srv:
            self.srv.shutdown()
            self.srv.server_close()
            self.srv = None

    def of(self, event):
        with self.lock:
            return [e for e in self.events if e[0] == event]

    def wait_for(self, pred, timeout=30):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if pred(list(self.events)):
                    return True
            time.sleep(0.1)
        return False

    def clear(self):
        with self.lock:
            self.events.clear()
            self.headers.clear()
            self.paths.clear()


def free_port():
    from pyrs.env import _free_port
    return _free_port()


CGI_SCRIPT = '''#!/usr/bin/python3
import json, sys, os, time
sys.path.insert(0, %(pyrs)r)
from hookrx import decide
n = int(os.environ.get("CONTENT_LENGTH") or 0)
body = sys.stdin.buffer.read(n)
p = json.loads(body or b"{}")
with open(%(log)r, "a") as f:
    f.write(json.dumps([p.get("event"), p.get("id")]) + "\\n")
status, out, ctype = decide(p)
sys.stdout.write("Status: %%d\\r\\nContent-Type: %%s\\r\\nX-Injected: evil\\r\\n\\r\\n" %% (status, ctype))
sys.stdout.flush()
sys.stdout.buffer.write(out)
'''
