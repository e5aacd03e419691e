#!/usr/bin/python3
"""mod_resumable benchmark suite: one command, everything on loopback.

    bench/run.py                 full suite (1 GiB, 5 pairs, tmpfs and disk)
    bench/run.py --quick         small sizes, 2 pairs, tmpfs only
    bench/run.py --cases single,checksum --media tmpfs --size-mib 256 --pairs 3

Contenders (started and stopped by the suite, all on 127.0.0.1):
  resumable      mod_resumable (tus PATCH) on a private httpd (event MPM)
  moddav         httpd's mod_dav PUT on the SAME httpd instance
  discard        bench/mod_discard.c on the same httpd: reads the body,
                 throws it away (httpd's ceiling)
  nginx          Debian's nginx, dav PUT, client_body_buffer_size 1m
  tusnode        @tus/server + @tus/file-store (bench/package.json)
  sink           bench/sink.py: a socket that discards (the client's ceiling)
Clients: curl (one request), tus-js-client (bench/tus_upload.mjs) and the
suite's own HTTP/1.1 client (many requests, many connections).

Contenders run interleaved (A B C ... A B C ...) for --pairs rounds; the
report gives medians and the median of the per-round ratios. Per run: MB/s,
server CPU seconds per GiB (utime+stime of all the server's processes, from
/proc), peak RSS (per process and total, sampled every 50 ms) and the sha256
of what was stored. Writes bench/out/results.json, bench/out/*.png and
BENCHMARKS.md (top of the repository), and prints every target as met / not
met. Needs root for apt-get (only when nginx, ab or gnuplot is missing).
"""
import argparse
import concurrent.futures
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
OUT = os.path.join(BENCH, 'out')
MODS = '/usr/lib/apache2/modules'
TICK = os.sysconf('SC_CLK_TCK')
PAGE = os.sysconf('SC_PAGE_SIZE')
MiB = 1 << 20
GiB = 1 << 30
ALL_CASES = ['single', 'chunked', 'checksum', 'parallel', 'concurrent',
             'head', 'big', 'small', 'syscalls', 'patch5', 'seed000',
             'checksums', 'md5last']
NODE_CASES = {'single', 'chunked', 'parallel', 'concurrent'}
STARTED = []            # servers to stop on any exit
MODULE_COPY = os.path.join(OUT, 'build', 'mod_resumable.so')


def log(*a):
    print(*a, flush=True)


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def wait_port(port, secs=20):
    end = time.time() + secs
    while time.time() < end:
        try:
            socket.create_connection(('127.0.0.1', port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f'nothing listens on 127.0.0.1:{port}')


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        while True:
            b = f.read(4 * MiB)
            if not b:
                return h.hexdigest()
            h.update(b)


def chown_www(path):
    if os.geteuid() == 0:
        shutil.chown(path, 'www-data', 'www-data')


def mkdir_www(path):
    os.makedirs(path, exist_ok=True)
    chown_www(path)
    return path


# ---------------------------------------------------------------------------
# /proc: process trees, CPU, RSS

def proc_table():
    """pid -> (ppid, cpu seconds, rss bytes) for every process."""
    out = {}
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open(f'/proc/{d}/stat') as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        out[int(d)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK,
                       int(fields[21]) * PAGE)
    return out


def tree(table, root):
    pids, todo = [], [root]
    while todo:
        p = todo.pop()
        if p in table:
            pids.append(p)
            todo.extend(c for c, v in table.items() if v[0] == p)
    return pids


class Monitor:
    """CPU and RSS of one server's process tree during a measurement."""

    def __init__(self, server):
        self.server = server

    def __enter__(self):
        t = proc_table()
        self.cpu0 = {p: t[p][1] for p in tree(t, self.server.root_pid())}
        self.rss0 = {p: t[p][2] for p in self.cpu0}
        self.peak = dict(self.rss0)
        self.peak_total = sum(self.rss0.values())
        self.cpu1 = dict(self.cpu0)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        t = proc_table()
        try:
            pids = tree(t, self.server.root_pid())
        except OSError:             # stopped (interrupted run)
            return
        total = 0
        for p in pids:
            rss = t[p][2]
            total += rss
            self.peak[p] = max(self.peak.get(p, 0), rss)
            self.cpu1[p] = t[p][1]
        self.peak_total = max(self.peak_total, total)

    def _run(self):
        while not self.stop.wait(0.05):
            self._sample()

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self._sample()
        self.cpu = sum(v - self.cpu0.get(p, 0) for p, v in self.cpu1.items())
        self.growth = max((v - self.rss0.get(p, 0) for p, v in self.peak.items()),
                          default=0)
        self.base_total = sum(self.rss0.values())
        self.nprocs = len(self.peak)

    def stats(self):
        return dict(cpu=self.cpu, peak_rss_proc=max(self.peak.values(), default=0),
                    peak_rss_total=self.peak_total, rss_growth_proc=self.growth,
                    base_rss_total=self.base_total, nprocs=self.nprocs)


# ---------------------------------------------------------------------------
# servers

class Server:
    name = '?'

    def stop(self):
        pass

    def stop_daemon(self, stop_cmd):
        """Run stop_cmd and wait (bounded) until the daemon's root process
        (root_pid) is gone; nothing when it is not running."""
        try:
            pid = self.root_pid()
        except (OSError, ValueError):
            return
        stop_cmd()
        end = time.time() + 20
        while time.time() < end and os.path.exists(f'/proc/{pid}'):
            time.sleep(0.1)

    def started(self):
        STARTED.append(self)
        return self


def nofile_limit(want=8192):
    """RLIMIT_NOFILE of this process (and so of the servers it starts) as
    Debian's apache2ctl sets it (8192): a child of conf/many-uploads.conf
    holds ~5 descriptors per upload in flight (512 threads), more than a
    shell's default 1024."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < want:
        up = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, up), hard))


class Httpd(Server):
    """One private httpd: mod_resumable at /files/, mod_dav at /dav/,
    mod_discard at /discard, a small static file at /static/small.txt."""
    name = 'httpd'

    def __init__(self, data, discard_so, extra=''):
        self.dir = os.path.join(OUT, 'httpd')
        self.data = data
        self.port = free_port()
        self.base = f'http://127.0.0.1:{self.port}'
        keep_log(self.dir)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(f'{self.dir}/htdocs/static')
        with open(f'{self.dir}/htdocs/static/small.txt', 'w') as f:
            f.write('mod_resumable benchmark: a small static file\n' * 8)
        for d in ('tus', 'dav', 'state'):
            mkdir_www(f'{data}/{d}')
        chown_www(self.dir)
        tmpl = open(os.path.join(BENCH, 'httpd.conf.in')).read()
        user = 'User www-data\nGroup www-data' if os.geteuid() == 0 else ''
        conf = (tmpl.replace('@ROOT@', self.dir).replace('@PORT@', str(self.port))
                .replace('@DATA@', data).replace('@MODS@', MODS)
                .replace('@MODULE@', MODULE_COPY)
                .replace('@DISCARD@', discard_so).replace('@USER@', user)
                .replace('@REPO@', REPO))
        with open(f'{self.dir}/httpd.conf', 'w') as f:
            f.write(conf + extra.replace('\\n', '\n') + '\n')
        nofile_limit()
        self.ctl('start')
        self.started()
        wait_port(self.port)
        time.sleep(1.0)         # let the children spawn before measuring

    def ctl(self, what):
        return subprocess.run(['apache2', '-d', self.dir, '-f',
                               f'{self.dir}/httpd.conf', '-k', what],
                              check=what == 'start', timeout=60)

    def root_pid(self):
        with open(f'{self.dir}/httpd.pid') as f:
            return int(f.read())

    def stop(self):
        self.stop_daemon(lambda: self.ctl('stop'))



def keep_log(httpd_dir):
    """Append an instance's error_log to bench/out/httpd-error_log (all
    instances of the run: a restart must not lose it)."""
    try:
        with open(f'{httpd_dir}/error_log') as f, \
                open(os.path.join(OUT, 'httpd-error_log'), 'a') as out:
            out.write(f.read())
    except OSError:
        pass


def httpd_errors():
    try:
        with open(os.path.join(OUT, 'httpd-error_log')) as f:
            return [l.strip() for l in f
                    if re.search(r':(error|crit|alert|emerg)\]|AH00052', l)]
    except OSError:
        return []


class Nginx(Server):
    name = 'nginx'

    def __init__(self, data):
        self.dir = os.path.join(OUT, 'nginx')
        self.port = free_port()
        self.base = f'http://127.0.0.1:{self.port}'
        self.root = mkdir_www(f'{data}/nginx')
        tmp = mkdir_www(f'{data}/nginx-tmp')
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        user = 'user www-data;' if os.geteuid() == 0 else ''
        conf = f"""{user}
worker_processes auto;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp};
    proxy_temp_path {self.dir}/proxy;
    fastcgi_temp_path {self.dir}/fastcgi;
    uwsgi_temp_path {self.dir}/uwsgi;
    scgi_temp_path {self.dir}/scgi;
    client_max_body_size 0;
    client_body_buffer_size 1m;
    client_body_timeout 300s;
    server {{
        listen 127.0.0.1:{self.port};
        root {self.root};
        location / {{
            dav_methods PUT;
            dav_access user:rw group:r;
        }}
    }}
}}
"""
        with open(f'{self.dir}/nginx.conf', 'w') as f:
            f.write(conf)
        sh(['nginx', '-p', self.dir, '-e', f'{self.dir}/error.log',
            '-c', f'{self.dir}/nginx.conf'], timeout=30)
        self.started()
        wait_port(self.port)

    def root_pid(self):
        with open(f'{self.dir}/nginx.pid') as f:
            return int(f.read())

    def stop(self):
        self.stop_daemon(lambda: subprocess.run(
            ['nginx', '-p', self.dir, '-e', f'{self.dir}/error.log',
             '-c', f'{self.dir}/nginx.conf', '-s', 'stop'], timeout=30))


class Child(Server):
    """A server that is one child process of ours (node, the sink)."""

    def __init__(self, name, argv, port, ready=None):
        self.name = name
        self.port = port
        self.base = f'http://127.0.0.1:{port}'
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                     cwd=BENCH, start_new_session=True)
        self.started()
        wait_port(port)

    def root_pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def stop_all():
    while STARTED:
        s = STARTED.pop()
        try:
            log(f'stopping {s.name}')
            s.stop()
        except Exception as e:      # keep stopping the others
            log(f'stopping {s.name}: {e}')


# ---------------------------------------------------------------------------
# HTTP clients

def curl(args, timeout=900):
    r = subprocess.run(['curl', '-s', '-S', '--max-time', str(timeout), '-o',
                        '/dev/null', '-D', '-', '-w', '\n%{http_code} %{time_total}',
                        *args], capture_output=True, text=True, timeout=timeout + 60)
    lines = r.stdout.strip().splitlines()
    code, secs = lines[-1].split() if lines else ('0', '0')
    hdrs = {}
    for l in lines[:-1]:
        if ':' in l:
            k, v = l.split(':', 1)
            hdrs[k.strip().lower()] = v.strip()
    return int(code), float(secs), hdrs


class Conn:
    """Minimal blocking HTTP/1.1 client on one keep-alive connection.

    Like any HTTP client it resends a request once on a new connection when
    the server closed the kept-alive one before answering (httpd's event
    MPM closes idle keep-alive connections when it runs short of workers);
    `reconnects` counts that.
    """
    reconnects = 0                  # over all connections

    def __init__(self, port, timeout=600):
        self.port = port
        self.timeout = timeout
        self.sock = socket.create_connection(('127.0.0.1', port), timeout)
        self.buf = b''
        self.used = 0

    def close(self):
        self.sock.close()

    def request(self, method, path, headers=None, body=None, body_len=None):
        """body: bytes/memoryview, or a function returning an iterable of
        them (body_len given)."""
        try:
            return self._request(method, path, headers, body, body_len)
        except (ConnectionError, BrokenPipeError) as e:
            if not self.used or self.buf:
                raise
            log(f'    (server closed a kept-alive connection: {e}; resending)')
            Conn.reconnects += 1
            self.sock.close()
            self.sock = socket.create_connection(('127.0.0.1', self.port),
                                                 self.timeout)
            self.used = 0
            return self._request(method, path, headers, body, body_len)

    def _request(self, method, path, headers, body, body_len):
        h = {'Host': f'127.0.0.1:{self.port}'}
        h.update(headers or {})
        if body is not None:
            h['Content-Length'] = str(body_len if body_len is not None else len(body))
        head = f'{method} {path} HTTP/1.1\r\n' + ''.join(
            f'{k}: {v}\r\n' for k, v in h.items()) + '\r\n'
        self.sock.sendall(head.encode())
        if isinstance(body, (bytes, bytearray, memoryview)):
            for part in slices(memoryview(body)):
                self.sock.sendall(part)
        elif body is not None:
            for part in body():
                self.sock.sendall(part)
        res = self._response(method)
        self.used += 1
        return res

    def _read_more(self):
        b = self.sock.recv(65536)
        if not b:
            raise ConnectionError('connection closed')
        self.buf += b

    def _response(self, method):
        while b'\r\n\r\n' not in self.buf:
            self._read_more()
        head, self.buf = self.buf.split(b'\r\n\r\n', 1)
        lines = head.decode('latin-1').split('\r\n')
        status = int(lines[0].split()[1])
        hdrs = {}
        for l in lines[1:]:
            k, v = l.split(':', 1)
            hdrs[k.strip().lower()] = v.strip()
        if method == 'HEAD' or status in (204, 304):
            return status, hdrs, b''
        if hdrs.get('transfer-encoding', '').lower() == 'chunked':
            body = b''
            while True:
                while b'\r\n' not in self.buf:
                    self._read_more()
                size_line, self.buf = self.buf.split(b'\r\n', 1)
                n = int(size_line.split(b';')[0], 16)
                while len(self.buf) < n + 2:
                    self._read_more()
                body += self.buf[:n]
                self.buf = self.buf[n + 2:]
                if n == 0:
                    return status, hdrs, body
        n = int(hdrs.get('content-length', '0'))
        while len(self.buf) < n:
            self._read_more()
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, hdrs, body


def run_workers(worker, k, errors):
    """k threads running worker() at once; what one raised goes to errors.
    Returns the wall time (bounded: each worker at most 900 s)."""
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(k) as ex:
        for f in [ex.submit(worker) for _ in range(k)]:
            try:
                f.result(timeout=900)
            except Exception as e:
                errors.append(str(e))
    return time.monotonic() - t0


def path_of(url):
    return '/' + url.split('://', 1)[1].split('/', 1)[1]


def slices(view, step=4 * MiB):
    for i in range(0, len(view), step):
        yield view[i:i + step]


TUS = {'Tus-Resumable': '1.0.0'}
PATCH_CT = {'Content-Type': 'application/offset+octet-stream'}


def tus_create(c, length, extra=None):
    st, h, _ = c.request('POST', '/files/', dict(TUS, **{'Upload-Length': str(length)},
                                                   **(extra or {})), b'')
    if st != 201:
        raise RuntimeError(f'tus POST: {st}')
    return path_of(h['location'])


def tus_send(c, path, view, chunk):
    """PATCH view to path in requests of `chunk` bytes on connection c."""
    off = 0
    while off < len(view):
        part = view[off:off + chunk]
        st, h, _ = c.request('PATCH', path, dict(TUS, **PATCH_CT, **{
            'Upload-Offset': str(off)}), part)
        if st != 204:
            raise RuntimeError(f'tus PATCH at {off}: {st}')
        off += len(part)


# ---------------------------------------------------------------------------
# the suite

class Suite:
    def __init__(self, a):
        self.a = a
        self.size = a.size_mib * MiB
        self.results = {'cases': {}, 'targets': [], 'notes': []}
        self.results['config'] = {k: v for k, v in vars(a).items()}

    # ---- setup -------------------------------------------------------------
    def setup(self):
        need = [pkg for tool, pkg in (('nginx', 'nginx-light'),
                                      ('ab', 'apache2-utils'),
                                      ('gnuplot', 'gnuplot-nox'))
                if not shutil.which(tool)]
        if need:
            log(f'setup: apt-get install {" ".join(need)}')
            sh(['apt-get', 'update', '-qq'])
            sh(['apt-get', 'install', '-y', '-qq', *need],
               env=dict(os.environ, DEBIAN_FRONTEND='noninteractive'))
        if set(self.a.cases) & NODE_CASES and not os.path.isdir(
                os.path.join(BENCH, 'node_modules', '@tus', 'server')):
            log('setup: npm ci (bench/)')
            sh(['npm', 'ci', '--no-audit', '--no-fund'], cwd=BENCH)
        if not os.path.exists(os.path.join(REPO, '.libs', 'mod_resumable.so')):
            sh(['make', '-C', REPO])
        os.makedirs(OUT, exist_ok=True)
        rm(os.path.join(OUT, 'httpd-error_log'))
        build = os.path.join(OUT, 'build')
        os.makedirs(build, exist_ok=True)
        # a private copy: one build for the whole run, even if the tree's
        # module is rebuilt meanwhile
        shutil.copy(os.path.join(REPO, '.libs', 'mod_resumable.so'), MODULE_COPY)
        self.results['module_sha256'] = sha256_file(MODULE_COPY)[:16]
        self.results['module_built'] = time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(
            os.path.getmtime(os.path.join(REPO, '.libs', 'mod_resumable.so'))))
        shutil.copy(os.path.join(BENCH, 'mod_discard.c'), build)
        sh(['apxs', '-c', '-o', 'mod_discard.so', 'mod_discard.c'], cwd=build,
           stdout=subprocess.DEVNULL)
        self.discard_so = os.path.join(build, '.libs', 'mod_discard.so')
        cflags = subprocess.run(
            'apr-1-config --cflags --cppflags --includes; apu-1-config --includes',
            shell=True, capture_output=True, text=True, check=True).stdout.split()
        libs = subprocess.run(
            'apu-1-config --link-ld; apr-1-config --link-ld --libs', shell=True,
            capture_output=True, text=True, check=True).stdout.split()
        # the module's own store and record codec (and what they use)
        core = [os.path.join(REPO, 'src', f) for f in (
            'rs_store.c', 'rs_sdbm_guard.c', 'rs_upload.c', 'rs_util.c',
                      'rs_log.c')]
        self.gen = os.path.join(build, 'gen_records')
        sh(['cc', '-O2', '-std=gnu99', '-w', '-I', os.path.join(REPO, 'include'),
            *cflags, '-o', self.gen, os.path.join(BENCH, 'gen_records.c'), *core,
            *libs, '-lcrypto', '-ljansson'])

    def media(self, name):
        if name == 'tmpfs':
            return f'/dev/shm/rs-bench-{os.getpid()}'
        return os.path.join(OUT, f'disk-{os.getpid()}')

    def make_source(self, path, size):
        log(f'source: {size >> 20} MiB of random data')
        with open(path, 'wb') as f:
            left = size
            while left:
                n = min(left, 16 * MiB)
                f.write(os.urandom(n))
                left -= n
        return sha256_file(path)

    # ---- one measured run -----------------------------------------------
    def measure(self, server, fn, nbytes):
        """fn() -> (ok, seconds or None, note). Returns a run record."""
        with Monitor(server) as m:
            t0 = time.monotonic()
            ok, secs, note = fn()
            wall = time.monotonic() - t0
        secs = secs if secs else wall
        st = m.stats()
        return dict(ok=ok, secs=secs, mbs=nbytes / secs / 1e6,
                    cpu_per_gib=st['cpu'] / (nbytes / GiB), note=note, **st)

    def interleave(self, case, medium, contenders, nbytes, pairs=None,
                   between=None):
        """contenders: [(name, server, fn)]; rounds of A B C ...;
        between(round) after each round (a measurement of another kind)."""
        runs = {n: [] for n, _, _ in contenders}
        for r in range(pairs or self.a.pairs):
            if between and r:
                between(r - 1)
            for name, server, fn in contenders:
                rec = self.measure(server, fn, nbytes)
                runs[name].append(rec)
                log(f'  {case}/{medium} {name:18s} round {r}: {rec["mbs"]:8.1f} MB/s '
                    f'cpu {rec["cpu_per_gib"]:6.2f} s/GiB peak rss '
                    f'{rec["peak_rss_total"] / MiB:7.1f} MiB '
                    f'{"ok" if rec["ok"] else "FAILED"} {rec["note"] or ""}')
        if between:
            between((pairs or self.a.pairs) - 1)
        self.results['cases'].setdefault(case, {})[medium] = {
            'bytes': nbytes, 'runs': runs, 'summary': summarize(runs)}
        return runs

    # ---- contenders' single upload --------------------------------------
    def stored_ok(self, path, want):
        try:
            good = sha256_file(path) == want
        except OSError:
            return False
        os.unlink(path)
        return good

    def up_resumable(self, checksum=None, area='files', alg='sha256'):
        def fn():
            extra = ['-H', f'Upload-Checksum: {alg} {checksum}'] if checksum else []
            code, _, h = curl(['-X', 'POST', '-H', 'Tus-Resumable: 1.0.0', '-H',
                               f'Upload-Length: {self.size}', f'{self.httpd.base}/{area}/'])
            loc = h.get('location', '')
            code, secs, _ = curl(['-X', 'PATCH', '-T', self.src, '-H', 'Expect:',
                                  '-H', 'Tus-Resumable: 1.0.0', '-H', 'Upload-Offset: 0',
                                  '-H', 'Content-Type: application/offset+octet-stream',
                                  *extra, loc])
            ok = code == 204 and self.stored_ok(
                f'{self.data}/tus/{loc.rsplit("/", 1)[-1]}', self.want)
            return ok, secs, None if ok else f'http {code}'
        return fn

    def up_put(self, base, stored_dir, prefix):
        def fn():
            self.n += 1
            code, secs, _ = curl(['-T', self.src, '-H', 'Expect:',
                                  f'{base}/{prefix}f{self.n}.bin'])
            ok = code in (201, 204) and self.stored_ok(
                f'{stored_dir}/f{self.n}.bin', self.want)
            return ok, secs, None if ok else f'http {code}'
        return fn

    def up_discard(self, base):
        def fn():
            code, secs, h = curl(['-T', self.src, '-H', 'Expect:', base])
            ok = code == 204 and h.get('x-discarded') == str(self.size)
            return ok, secs, 'bytes counted, nothing stored'
        return fn

    def up_tusnode_curl(self):
        def fn():
            code, _, h = curl(['-X', 'POST', '-H', 'Tus-Resumable: 1.0.0', '-H',
                               f'Upload-Length: {self.size}', f'{self.tusnode.base}/files/'])
            loc = h.get('location', '')
            code, secs, _ = curl(['-X', 'PATCH', '-T', self.src, '-H', 'Expect:',
                                  '-H', 'Tus-Resumable: 1.0.0', '-H', 'Upload-Offset: 0',
                                  '-H', 'Content-Type: application/offset+octet-stream',
                                  loc])
            uid = loc.rsplit('/', 1)[-1]
            ok = code == 204 and self.stored_ok(f'{self.data}/tusnode/{uid}', self.want)
            rm(f'{self.data}/tusnode/{uid}.json')
            return ok, secs, None if ok else f'http {code}'
        return fn

    def up_tusjs(self, base, stored, chunk=None, parallel=None):
        def fn():
            argv = ['node', os.path.join(BENCH, 'tus_upload.mjs'), '--endpoint',
                    f'{base}/files/', '--file', self.src]
            if chunk:
                argv += ['--chunk-size', str(chunk)]
            if parallel:
                argv += ['--parallel', str(parallel)]
            r = subprocess.run(argv, capture_output=True, text=True, timeout=900,
                               cwd=BENCH)
            try:
                res = json.loads(r.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                return False, None, f'tus-js-client: {r.stderr[-200:]}'
            if not res.get('ok'):
                return False, None, res.get('error')
            uid = res['url'].rsplit('/', 1)[-1]
            # a concatenation answers at once; its file is written just after
            ok = (self.stored_wait if parallel else self.stored_ok)(
                os.path.join(stored, uid), self.want)
            rm(os.path.join(stored, uid + '.json'))
            if parallel:        # tus-js-client leaves its partials: free the space
                staging = os.path.join(stored, '.resumable')
                for f in os.listdir(staging) if os.path.isdir(staging) else []:
                    if f.endswith('.data'):
                        rm(os.path.join(staging, f))
            return ok, res['secs'], None
        return fn

    def up_sink(self):
        def fn():
            code, secs, h = curl(['-T', self.src, '-H', 'Expect:', f'{self.sink.base}/'])
            ok = code == 204 and h.get('x-discarded') == str(self.size)
            return ok, secs, 'bytes counted, nothing stored'
        return fn

    def up_chunked_py(self, port, stored, chunk):
        def fn():
            c = Conn(port)
            try:
                path = tus_create(c, self.size)
                t0 = time.monotonic()
                tus_send(c, path, self.view, chunk)
                secs = time.monotonic() - t0
            finally:
                c.close()
            uid = path.rsplit('/', 1)[-1]
            ok = self.stored_ok(os.path.join(stored, uid), self.want)
            rm(os.path.join(stored, uid + '.json'))
            return ok, secs, None
        return fn

    # ---- cases -------------------------------------------------------------
    def case_single(self, medium):
        c = [('resumable', self.httpd, self.up_resumable()),
             ('moddav', self.httpd, self.up_put(self.httpd.base, f'{self.data}/dav', 'dav/')),
             ('resumable-tusonly', self.httpd, self.up_resumable(area='tusonly')),
             ('nginx', self.nginx, self.up_put(self.nginx.base, self.nginx.root, '')),
             ('tusnode-curl', self.tusnode, self.up_tusnode_curl()),
             ('resumable-tusjs', self.httpd, self.up_tusjs(self.httpd.base, f'{self.data}/tus')),
             ('tusnode-tusjs', self.tusnode, self.up_tusjs(self.tusnode.base,
                                                           f'{self.data}/tusnode')),
             ('discard', self.httpd, self.up_discard(f'{self.httpd.base}/discard')),
             ('sink', self.sink, self.up_sink())]
        self.interleave('single', medium, c, self.size)

    def case_chunked(self, medium):
        ch = self.a.chunk_mib * MiB
        c = [('resumable', self.httpd, self.up_chunked_py(self.httpd.port,
                                                          f'{self.data}/tus', ch)),
             ('tusnode', self.tusnode, self.up_chunked_py(self.tusnode.port,
                                                          f'{self.data}/tusnode', ch)),
             ('resumable-tusjs', self.httpd, self.up_tusjs(
                 self.httpd.base, f'{self.data}/tus', chunk=ch)),
             ('tusnode-tusjs', self.tusnode, self.up_tusjs(
                 self.tusnode.base, f'{self.data}/tusnode', chunk=ch))]
        self.interleave('chunked', medium, c, self.size)

    def case_checksum(self, medium):
        b64 = __import__('base64').b64encode(bytes.fromhex(self.want)).decode()
        c = [('resumable', self.httpd, self.up_resumable()),
             ('resumable-sha256', self.httpd, self.up_resumable(b64))]
        self.interleave('checksum', medium, c, self.size)

    def stored_wait(self, path, want, timeout=120):
        """stored_ok once the file exists: a concatenation or merge answers
        at once and the module writes the single published file after the
        response (its data is readable through the module meanwhile)."""
        end = time.monotonic() + timeout
        while not os.path.exists(path) and time.monotonic() < end:
            time.sleep(0.05)
        return self.stored_ok(path, want)

    def parallel_bounds(self, n, part):
        return [(i * part, min(self.size, (i + 1) * part)) for i in range(n)]

    def up_parallel(self, n):
        """tus concatenation: n partials in parallel, then the final POST."""
        def fn():
            def one(b):
                c = Conn(self.httpd.port)
                try:
                    p = tus_create(c, b[1] - b[0], {'Upload-Concat': 'partial'})
                    tus_send(c, p, self.view[b[0]:b[1]], b[1] - b[0])
                    return p
                finally:
                    c.close()
            t0 = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(n) as ex:
                parts = list(ex.map(one, self.parallel_bounds(n, self.size // n + 1)))
            t1 = time.monotonic()
            c = Conn(self.httpd.port)
            try:
                st, h, _ = c.request('POST', '/files/', dict(TUS, **{
                    'Upload-Concat': 'final;' + ' '.join(parts)}), b'')
            finally:
                c.close()
            t2 = time.monotonic()
            uid = path_of(h.get('location', '/x')).rsplit('/', 1)[-1]
            ok = st == 201 and self.stored_wait(f'{self.data}/tus/{uid}', self.want)
            self.assembly['concat'].append((t1 - t0, t2 - t1, time.monotonic() - t1))
            c = Conn(self.httpd.port)
            try:                    # partials stay until they expire: remove
                for p in parts:
                    c.request('DELETE', p, TUS)
            finally:
                c.close()
            return ok, t2 - t0, f'transfer {t1 - t0:.2f}s assembly {t2 - t1:.3f}s'
        return fn

    def up_slice(self, n):
        """slice protocol (design document 000): n multipart chunk POSTs in
        parallel, then the JSON merge."""
        def fn():
            name = f'slice-{time.monotonic_ns()}.bin'
            part = self.size // n + 1

            def one(i_b):
                i, (b0, b1) = i_b
                bnd = f'rsbench{i}x{time.monotonic_ns()}'
                pre = (f'--{bnd}\r\nContent-Disposition: form-data; name="chunk"; '
                       'filename="blob"\r\nContent-Type: application/octet-stream\r\n\r\n'
                       ).encode()
                post = (f'\r\n--{bnd}\r\nContent-Disposition: form-data; name="index"'
                        f'\r\n\r\n{i}\r\n--{bnd}\r\nContent-Disposition: form-data; '
                        f'name="name"\r\n\r\n{name}\r\n--{bnd}--\r\n').encode()
                view = self.view[b0:b1]
                c = Conn(self.httpd.port)
                try:
                    st, _, _ = c.request(
                        'POST', '/files/',
                        {'Content-Type': f'multipart/form-data; boundary={bnd}'},
                        lambda: [pre, *slices(view), post],
                        len(pre) + len(view) + len(post))
                    return st
                finally:
                    c.close()
            t0 = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(n) as ex:
                sts = list(ex.map(one, enumerate(self.parallel_bounds(n, part))))
            t1 = time.monotonic()
            c = Conn(self.httpd.port)
            try:
                st, _, _ = c.request('POST', '/files/',
                                     {'Content-Type': 'text/plain;charset=UTF-8'},
                                     json.dumps({'name': name, 'size': part}).encode())
            finally:
                c.close()
            t2 = time.monotonic()
            ok = (st == 200 and all(x == 200 for x in sts)
                  and self.stored_wait(f'{self.data}/tus/{name}', self.want))
            self.assembly['slice'].append((t1 - t0, t2 - t1, time.monotonic() - t1))
            return ok, t2 - t0, f'transfer {t1 - t0:.2f}s merge {t2 - t1:.3f}s'
        return fn

    def case_parallel(self, medium):
        self.assembly = {'concat': [], 'slice': []}
        c = [('resumable-1', self.httpd, self.up_resumable()),
             ('resumable-concat8', self.httpd, self.up_parallel(8)),
             ('resumable-slice8', self.httpd, self.up_slice(8)),
             ('resumable-tusjs-par8', self.httpd, self.up_tusjs(
                 self.httpd.base, f'{self.data}/tus', parallel=8))]
        self.interleave('parallel', medium, c, self.size)
        res = self.results['cases']['parallel'][medium]
        res['assembly'] = self.assembly
        res['assembly_ratio'] = {k: statistics.median(b / a for a, b, _ in v)
                                 for k, v in self.assembly.items() if v}

    def many(self, n, kind, server):
        """n concurrent uploads of size/n bytes (distinct slices)."""
        per = self.size // n

        def fn():
            errors = []
            r0 = Conn.reconnects

            def one(i):
                view = self.view[i * per:(i + 1) * per]
                want = hashlib.sha256(view).hexdigest()
                c = Conn(server.port)
                try:
                    if kind == 'tus':
                        p = tus_create(c, per)
                        tus_send(c, p, view, per)
                        uid = p.rsplit('/', 1)[-1]
                        stored = (f'{self.data}/tus/{uid}' if server is self.httpd
                                  else f'{self.data}/tusnode/{uid}')
                    else:
                        p = f'/{"dav/" if server is self.httpd else ""}c{i}.bin'
                        st, _, _ = c.request('PUT', p, {}, view)
                        if st not in (201, 204):
                            raise RuntimeError(f'PUT {st}')
                        stored = (f'{self.data}/dav/c{i}.bin' if server is self.httpd
                                  else f'{self.nginx.root}/c{i}.bin')
                finally:
                    c.close()
                return stored, want

            t0 = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(n) as ex:
                futs = [ex.submit(one, i) for i in range(n)]
                done = []
                for f in futs:
                    try:
                        done.append(f.result(timeout=900))
                    except Exception as e:
                        errors.append(str(e))
            secs = time.monotonic() - t0
            bad = sum(1 for s, w in done if not self.stored_ok(s, w))
            for s, _ in done:
                rm(s + '.json')
            ok = not errors and not bad and len(done) == n
            again = Conn.reconnects - r0
            return ok, secs, f'{len(done) - bad}/{n} intact' + (
                f'; errors: {errors[:2]}' if errors else '') + (
                f'; {again} requests resent on a new connection' if again else '')
        return fn, per * n

    def case_concurrent(self, medium):
        for n in self.a.conc:
            fns = [(name, srv) + self.many(n, kind, srv) for name, srv, kind in (
                ('resumable', self.httpd, 'tus'), ('moddav', self.httpd, 'put'),
                ('nginx', self.nginx, 'put'), ('tusnode', self.tusnode, 'tus'))]
            nbytes = fns[0][3]
            self.interleave(f'concurrent{n}', medium,
                            [(name, srv, fn) for name, srv, fn, _ in fns], nbytes)

    def head_rate(self, url, secs, headers):
        """HEAD requests/s with ab (-i HEAD, -k keep-alive, 16 connections).
        Not wrk: wrk's parser waits for a body after HEAD (wg/wrk#198)."""
        argv = ['ab', '-q', '-i', '-k', '-c16', f'-t{secs}', '-n', '100000000']
        for k, v in headers.items():
            argv += ['-H', f'{k}: {v}']
        r = subprocess.run(argv + [url], capture_output=True, text=True,
                           timeout=secs + 60)
        m = re.search(r'Requests per second:\s+([\d.]+)', r.stdout)
        failed = re.search(r'Failed requests:\s+(\d+)', r.stdout)
        non2xx = re.search(r'Non-2xx responses:\s+(\d+)', r.stdout)
        bad = sum(int(x.group(1)) for x in (failed, non2xx) if x)
        return float(m.group(1)) if m else 0.0, bad if m else -1

    def case_head(self, medium):
        # one real upload, then (server stopped) N copies of its record
        c = Conn(self.httpd.port)
        path = tus_create(c, self.size)
        c.close()
        uid = path.rsplit('/', 1)[-1]
        self.httpd.stop()
        STARTED.remove(self.httpd)
        t0 = time.monotonic()
        sh([self.gen, 'sdbm', f'{self.data}/state/state', uid, str(self.a.records)],
           stdout=subprocess.DEVNULL)
        gen_secs = time.monotonic() - t0
        for f in os.listdir(f'{self.data}/state'):
            chown_www(f'{self.data}/state/{f}')
        log(f'  head/{medium}: {self.a.records} records written in {gen_secs:.1f}s')
        self.httpd = Httpd(self.data, self.discard_so, self.a.httpd_extra)
        res = {'records': self.a.records, 'gen_secs': gen_secs, 'upload': [],
               'static': [], 'non2xx': 0}
        for r in range(self.a.pairs):
            for what, url, hdr in (('upload', self.httpd.base + path, TUS),
                                   ('static', self.httpd.base + '/static/small.txt', {})):
                rate, bad = self.head_rate(url, self.a.head_secs, hdr)
                res[what].append(rate)
                res['non2xx'] += bad
                log(f'  head/{medium} {what:7s} round {r}: {rate:9.0f} req/s'
                    f'{f" ({bad} non-2xx)" if bad else ""}')
        res['ratio'] = statistics.median([u / s for u, s in zip(
            res['upload'], res['static']) if s] or [0.0])
        self.results['cases'].setdefault('head', {})[medium] = res

    def case_big(self, medium):
        """--big-gib GiB in one PATCH (a 64 MiB block repeated), RSS sampled.

        All uploads go over ONE connection, so they are served by the same
        httpd process: a first small upload warms it (not measured: a
        process's first request allocates its pools), then a small and the
        big one are measured. RSS growth = the largest rise of any server
        process over its RSS before that upload."""
        block = self.view[:min(self.size, 64 * MiB)]
        n = max(1, (self.a.big_gib * GiB) // len(block))
        total = n * len(block)
        h = hashlib.sha256()
        for _ in range(n):
            h.update(block)
        want_big, want_small = h.hexdigest(), hashlib.sha256(block).hexdigest()
        runs = []
        c = Conn(self.httpd.port, timeout=1800)
        try:
            for size, reps, label in ((len(block), 1, 'warm-up (first upload of '
                                       'the process)'), (len(block), 1, 'small'),
                                      (total, n, 'large')):
                def fn(size=size, reps=reps):
                    p = tus_create(c, size)
                    t0 = time.monotonic()
                    st, _, _ = c.request('PATCH', p, dict(TUS, **PATCH_CT, **{
                        'Upload-Offset': '0'}), lambda: (s for _ in range(reps)
                                                         for s in slices(block)), size)
                    secs = time.monotonic() - t0
                    stored = f'{self.data}/tus/{p.rsplit("/", 1)[-1]}'
                    ok = st == 204 and self.stored_ok(
                        stored, want_big if reps == n else want_small)
                    return ok, secs, None
                rec = self.measure(self.httpd, fn, size)
                rec['size'], rec['label'] = size, label
                runs.append(rec)
                log(f'  big/{medium} {label:36s} {size / GiB:6.2f} GiB: {rec["mbs"]:8.1f} '
                    f'MB/s rss growth {rec["rss_growth_proc"] / MiB:6.2f} MiB '
                    f'{"ok" if rec["ok"] else "FAILED"}')
        finally:
            c.close()
        self.results['cases'].setdefault('big', {})[medium] = {'runs': runs}

    # ---- issue 15: where real clients live (many small requests) ----------
    def small_run(self, kind, server):
        """--small-n uploads of 1 MiB, --small-conc at once (each worker on
        one keep-alive connection): kind 'cwu' (tus creation-with-upload,
        one request), 'postpatch' (tus POST + PATCH) or 'put' (PUT)."""
        per = MiB
        nsrc = max(1, len(self.view) // per)
        n, k = self.a.small_n, self.a.small_conc
        if not hasattr(self, 'small_want'):
            self.small_want = [hashlib.sha256(self.view[i * per:(i + 1) * per]).hexdigest()
                               for i in range(nsrc)]

        def fn():
            todo = list(range(n))
            mu = threading.Lock()
            done, errors = [], []
            r0 = Conn.reconnects

            def worker():
                c = Conn(server.port)
                try:
                    while True:
                        with mu:
                            if not todo:
                                return
                            i = todo.pop()
                        s = i % nsrc
                        view = self.view[s * per:(s + 1) * per]
                        if kind == 'cwu':
                            st, h, _ = c.request('POST', '/files/', dict(
                                TUS, **PATCH_CT, **{'Upload-Length': str(per)}), view)
                            if st != 201 or h.get('upload-offset') != str(per):
                                raise RuntimeError(f'creation-with-upload: {st}')
                            stored = f'{self.data}/tus/{path_of(h["location"]).rsplit("/", 1)[-1]}'
                        elif kind == 'postpatch':
                            p = tus_create(c, per)
                            tus_send(c, p, view, per)
                            stored = f'{self.data}/tus/{p.rsplit("/", 1)[-1]}'
                        else:
                            self.n += 1
                            name = f'small{self.n}-{i}.bin'
                            st, _, _ = c.request('PUT', '/' + name, {}, view)
                            if st not in (201, 204):
                                raise RuntimeError(f'PUT {st}')
                            stored = f'{self.nginx.root}/{name}'
                        with mu:
                            done.append((stored, s))
                finally:
                    c.close()

            secs = run_workers(worker, k, errors)
            bad = sum(1 for p, s in done if not self.stored_ok(p, self.small_want[s]))
            again = Conn.reconnects - r0
            ok = not errors and not bad and len(done) == n
            return ok, secs, f'{len(done) - bad}/{n} intact' + (
                f'; errors: {errors[:2]}' if errors else '') + (
                f'; {again} resent' if again else '')
        return fn

    def case_small(self, medium):
        """512 x 1 MiB, 32 at once: creation-with-upload and POST + PATCH
        against nginx's PUT (server CPU per upload, throughput)."""
        c = [('nginx', self.nginx, self.small_run('put', self.nginx)),
             ('resumable-cwu', self.httpd, self.small_run('cwu', self.httpd)),
             ('resumable-postpatch', self.httpd, self.small_run('postpatch', self.httpd))]
        runs = self.interleave('small', medium, c, self.a.small_n * MiB)
        res = self.results['cases']['small'][medium]
        res['uploads'] = self.a.small_n
        res['vs_nginx'] = {n: dict(
            mbs=statistics.median(a['mbs'] / b['mbs'] for a, b in zip(runs[n], runs['nginx'])),
            cpu=statistics.median(a['cpu'] / b['cpu'] for a, b in zip(runs[n], runs['nginx'])
                                  if b['cpu'] > 0) if any(b['cpu'] for b in runs['nginx'])
            else float('nan'),
            cpu_ms=statistics.median(1000 * a['cpu'] / self.a.small_n for a in runs[n]),
            ms=statistics.median(1000 * a['secs'] / self.a.small_n for a in runs[n]))
            for n in runs}

    def all_tids(self, server):
        tids = []
        for p in tree(proc_table(), server.root_pid()):
            try:
                tids += [int(t) for t in os.listdir(f'/proc/{p}/task')]
            except OSError:
                pass
        return tids

    def strace(self, server, fn, args):
        """Run fn() under strace (args) attached to every thread of server;
        returns (fn's result, strace output file, wall seconds)."""
        out = os.path.join(OUT, 'strace.txt')
        rm(out)
        argv = ['strace', '-f', '-o', out, *args]
        for t in tree(proc_table(), server.root_pid()):
            argv += ['-p', str(t)]      # -f: all its threads
        p = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
        # strace says "Process N attached [with M threads]" per process
        want, seen, end = argv.count('-p'), 0, time.time() + 120
        while seen < want and time.time() < end:
            line = p.stderr.readline()
            if not line:
                break
            if 'attached' in line:
                seen += 1
        time.sleep(0.3)
        t0 = time.monotonic()
        try:
            res = fn()
        finally:
            wall = time.monotonic() - t0
            time.sleep(0.3)
            p.send_signal(signal.SIGINT)
            try:
                p.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
        return res, out, wall

    def one_small(self, kind, server, i):
        """One 1 MiB upload on a new connection: cwu, postpatch or put."""
        view = self.view[:MiB]
        c = Conn(server.port)
        try:
            if kind == 'cwu':
                st, h, _ = c.request('POST', '/files/', dict(
                    TUS, **PATCH_CT, **{'Upload-Length': str(MiB)}), view)
                return st == 201
            if kind == 'postpatch':
                tus_send(c, tus_create(c, MiB), view, MiB)
                return True
            st, _, _ = c.request('PUT', f'/sys{i}.bin', {}, view)
            return st in (201, 204)
        finally:
            c.close()

    def case_syscalls(self, medium):
        """strace -c -f on every server thread: syscalls per 1 MiB upload
        (each on a new connection), an idle window of the same length
        subtracted; and the state write transactions of each request."""
        n = self.a.syscall_n
        res = {'uploads': n, 'per_upload': {}, 'top': {}, 'txn': {}}
        for name, kind, server in (('resumable-cwu', 'cwu', self.httpd),
                                   ('resumable-postpatch', 'postpatch', self.httpd),
                                   ('nginx', 'put', self.nginx)):
            self.one_small(kind, server, 0)                 # warm up
            ok, out, wall = self.strace(server, lambda: all(
                self.one_small(kind, server, i) for i in range(n)), ['-c'])
            busy = parse_strace_c(out)
            _, out, _ = self.strace(server, lambda: time.sleep(wall), ['-c'])
            idle = parse_strace_c(out)
            per = {k: (v - idle.get(k, 0)) / n for k, v in busy.items()}
            res['per_upload'][name] = sum(per.values())
            res['top'][name] = dict(sorted(((k, round(v, 1)) for k, v in per.items()
                                            if v >= 0.5), key=lambda x: -x[1]))
            log(f'  syscalls/{medium} {name:20s} {sum(per.values()):7.1f} per upload '
                f'{"ok" if ok else "FAILED"}: ' +
                ' '.join(f'{k}={v}' for k, v in list(res['top'][name].items())[:12]))
        res['txn'] = self.count_txns()
        for k, v in res['txn'].items():
            log(f'  syscalls/{medium} state write transactions: {k}: {v}')
        self.results['cases'].setdefault('syscalls', {})[medium] = res

    def count_txns(self):
        """State write transactions per request: a write transaction is one
        exclusive lock of the state database's .dir (sdbm), seen by strace
        -y; requests are spaced in time and told apart by timestamps."""
        marks = []
        c = Conn(self.httpd.port)

        def reqs():
            def mark(what, f):
                t0 = time.time()
                r = f()
                marks.append((what, t0, time.time()))
                time.sleep(0.3)
                return r
            view = self.view[:MiB]
            mark('creation-with-upload POST', lambda: c.request('POST', '/files/', dict(
                TUS, **PATCH_CT, **{'Upload-Length': str(MiB)}), view))
            _, h, _ = mark('POST (create)', lambda: c.request('POST', '/files/', dict(
                TUS, **{'Upload-Length': str(MiB)}), b''))
            p = path_of(h['location'])
            mark('PATCH (half)', lambda: c.request('PATCH', p, dict(
                TUS, **PATCH_CT, **{'Upload-Offset': '0'}), view[:MiB // 2]))
            mark('HEAD', lambda: c.request('HEAD', p, TUS))
            mark('PATCH (last)', lambda: c.request('PATCH', p, dict(
                TUS, **PATCH_CT, **{'Upload-Offset': str(MiB // 2)}), view[MiB // 2:]))
        try:
            _, out, _ = self.strace(self.httpd, reqs, [
                '-y', '-ttt', '-e', 'trace=flock,fcntl,openat'])
        finally:
            c.close()
        txn = {}
        with open(out) as f:
            lines = f.read().splitlines()
        for what, t0, t1 in marks:
            nw = nr = 0
            for l in lines:
                m = re.match(r'\s*\d+\s+([\d.]+)\s+(flock|fcntl)\((\d+)<([^>]*)>, *(.*)\)',
                             l)
                if not m or not (t0 - 0.01 <= float(m.group(1)) <= t1 + 0.01):
                    continue
                if not m.group(4).endswith('.dir'):
                    continue
                arg = m.group(5)
                if 'LOCK_EX' in arg or 'F_WRLCK' in arg:
                    nw += 1
                elif 'LOCK_SH' in arg or 'F_RDLCK' in arg:
                    nr += 1
            txn[what] = f'{nw} write, {nr} read'
        return txn

    def case_patch5(self, medium):
        """1 GiB as --patch-mib (5) MiB tus PATCHes on one connection against
        the same in one PATCH (same client)."""
        st = f'{self.data}/tus'
        c = [('resumable-1', self.httpd, self.up_chunked_py(self.httpd.port, st, self.size)),
             (f'resumable-patch{self.a.patch_mib}', self.httpd, self.up_chunked_py(
                 self.httpd.port, st, self.a.patch_mib * MiB))]
        self.interleave('patch5', medium, c, self.size)

    def up_seed000(self, slice_mib, conc):
        """Seed 000: slices of slice_mib MiB as multipart POSTs, conc at once
        (each worker on one keep-alive connection), then the JSON merge."""
        def fn():
            name = f'seed-{time.monotonic_ns()}.bin'
            part = slice_mib * MiB
            todo = list(enumerate(range(0, self.size, part)))[::-1]
            mu = threading.Lock()

            def worker():
                c = Conn(self.httpd.port)
                try:
                    while True:
                        with mu:
                            if not todo:
                                return
                            i, b0 = todo.pop()
                        bnd = f'rsbench{i}x{time.monotonic_ns()}'
                        pre = (f'--{bnd}\r\nContent-Disposition: form-data; name="chunk"; '
                               'filename="blob"\r\nContent-Type: application/octet-stream'
                               '\r\n\r\n').encode()
                        post = (f'\r\n--{bnd}\r\nContent-Disposition: form-data; name='
                                f'"index"\r\n\r\n{i}\r\n--{bnd}\r\nContent-Disposition: '
                                f'form-data; name="name"\r\n\r\n{name}\r\n--{bnd}--\r\n'
                                ).encode()
                        view = self.view[b0:b0 + part]
                        st, _, _ = c.request(
                            'POST', '/files/',
                            {'Content-Type': f'multipart/form-data; boundary={bnd}'},
                            lambda: [pre, *slices(view), post],
                            len(pre) + len(view) + len(post))
                        if st != 200:
                            raise RuntimeError(f'slice {i}: {st}')
                finally:
                    c.close()
            t0 = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(conc) as ex:
                for f in [ex.submit(worker) for _ in range(conc)]:
                    f.result(timeout=900)
            t1 = time.monotonic()
            c = Conn(self.httpd.port)
            try:
                st, _, _ = c.request('POST', '/files/',
                                     {'Content-Type': 'text/plain;charset=UTF-8'},
                                     json.dumps({'name': name, 'size': part}).encode())
            finally:
                c.close()
            t2 = time.monotonic()
            ok = st == 200 and self.stored_wait(f'{self.data}/tus/{name}', self.want)
            return ok, t2 - t0, f'transfer {t1 - t0:.2f}s merge {t2 - t1:.3f}s'
        return fn

    def case_seed000(self, medium):
        c = [('resumable-1', self.httpd, self.up_chunked_py(
                 self.httpd.port, f'{self.data}/tus', self.size)),
             ('resumable-seed000', self.httpd, self.up_seed000(5, 4))]
        self.interleave('seed000', medium, c, self.size)

    def openssl_speed(self, alg):
        """openssl speed -evp alg on 256 KiB blocks, one core: bytes/s."""
        r = subprocess.run(['openssl', 'speed', '-evp', alg, '-bytes', '262144',
                            '-seconds', str(self.a.openssl_secs)],
                           capture_output=True, text=True, timeout=120)
        for l in r.stdout.splitlines()[::-1]:
            m = re.match(r'^\s*(\S+)\s+([\d.]+)k\s*$', l)
            if m:
                return float(m.group(2)) * 1000
        raise RuntimeError(f'openssl speed {alg}: {r.stdout[-200:]} {r.stderr[-200:]}')

    def case_checksums(self, medium):
        """tus PATCH with Upload-Checksum for each algorithm against
        openssl speed -evp of that algorithm, measured in the same rounds."""
        import base64
        algs = ('sha256', 'sha1', 'md5', 'sha512')
        sums = {}
        for alg in algs:
            h = hashlib.new(alg)
            h.update(self.view)
            sums[alg] = base64.b64encode(h.digest()).decode()
        c = [('resumable', self.httpd, self.up_resumable())] + [
            (f'resumable-{alg}', self.httpd, self.up_resumable(sums[alg], alg=alg))
            for alg in algs]
        speed = {alg: [] for alg in algs}

        def between(r):
            for alg in algs:
                speed[alg].append(self.openssl_speed(alg))
                log(f'  checksums/{medium} openssl speed -evp {alg:6s} round {r}: '
                    f'{speed[alg][-1] / 1e6:8.1f} MB/s')
        runs = self.interleave('checksums', medium, c, self.size, between=between)
        res = self.results['cases']['checksums'][medium]
        res['openssl'] = speed
        res['vs_openssl'] = {alg: statistics.median(
            r['mbs'] * 1e6 / s for r, s in zip(runs[f'resumable-{alg}'], speed[alg]))
            for alg in algs}

    def up_md5(self, chunk_mib):
        """md5 protocol (seed 002): handshake, chunks one after another on
        one connection, each timed; the first chunk differs per round (a
        new file: the same content would be an instant upload)."""
        def fn():
            part = chunk_mib * MiB
            first = os.urandom(min(part, self.size))
            pieces = [first] + [self.view[i:i + part]
                                for i in range(len(first), self.size, part)]
            whole, sha = hashlib.md5(), hashlib.sha256()
            ids = []
            for i, p in enumerate(pieces):
                whole.update(p)
                sha.update(p)
                ids.append(hashlib.md5(p).hexdigest() + str(i))
            fid = whole.hexdigest()
            c = Conn(self.httpd.port)
            times = []
            try:
                st, _, b = c.request('POST', '/files/handshake',
                                     {'Content-Type': 'application/json'},
                                     json.dumps({'fileId': fid, 'ext': '.bin',
                                                 'chunkIds': ids}).encode())
                if st != 200 or len(json.loads(b)['data']) != len(ids):
                    raise RuntimeError(f'handshake {st} {b[:200]}')
                t0 = time.monotonic()
                for cid, p in zip(ids, pieces):
                    bnd = f'rsbench{time.monotonic_ns()}'
                    pre = (f'--{bnd}\r\nContent-Disposition: form-data; name="file"; '
                           'filename="blob"\r\nContent-Type: application/octet-stream'
                           '\r\n\r\n').encode()
                    post = (f'\r\n--{bnd}\r\nContent-Disposition: form-data; name='
                            f'"chunkId"\r\n\r\n{cid}\r\n--{bnd}\r\nContent-Disposition: '
                            f'form-data; name="fileId"\r\n\r\n{fid}\r\n--{bnd}--\r\n'
                            ).encode()
                    t = time.monotonic()
                    st, _, b = c.request(
                        'POST', '/files/',
                        {'Content-Type': f'multipart/form-data; boundary={bnd}'},
                        lambda: [pre, *slices(memoryview(p)), post],
                        len(pre) + len(p) + len(post))
                    times.append(time.monotonic() - t)
                    if st != 200 or json.loads(b)['code'] != 0:
                        raise RuntimeError(f'chunk {cid}: {st} {b[:200]}')
                secs = time.monotonic() - t0
            finally:
                c.close()
            ok = self.stored_wait(f'{self.data}/tus/{fid}.bin', sha.hexdigest())
            mid = statistics.median(times[1:-1] or times)
            self.md5_last.append((times[-1], mid))
            return ok, secs, f'last chunk {times[-1] * 1000:.1f} ms, middle ' \
                f'(median) {mid * 1000:.1f} ms'
        return fn

    def case_md5last(self, medium):
        self.md5_last = []
        c = [('resumable-md5', self.httpd, self.up_md5(self.a.patch_mib))]
        self.interleave('md5last', medium, c, self.size)
        res = self.results['cases']['md5last'][medium]
        res['last_mid'] = self.md5_last
        res['ratio'] = statistics.median(a / b for a, b in self.md5_last)

    # ---- driver ------------------------------------------------------------
    def run(self):
        self.setup()
        srcdir = f'/dev/shm/rs-bench-src-{os.getpid()}'
        os.makedirs(srcdir)
        try:
            self.src = os.path.join(srcdir, 'source.bin')
            self.want = self.make_source(self.src, self.size)
            with open(self.src, 'rb') as f:
                self.blob = f.read()
            self.view = memoryview(self.blob)
            for medium in self.a.media:
                self.run_medium(medium)
        finally:
            stop_all()
            shutil.rmtree(srcdir, ignore_errors=True)
        self.results['machine'] = machine((self.results.get('module_sha256', '?'),
                                           self.results.get('module_built', '?')))
        self.results['targets'] = targets(self.results, self.a)
        with open(os.path.join(OUT, 'results.json'), 'w') as f:
            json.dump(self.results, f, indent=1)
        report(self.results, self.a)

    def run_medium(self, medium):
        self.data = self.media(medium)
        shutil.rmtree(self.data, ignore_errors=True)
        # the source just written and the files just removed leave the
        # disk (and the page cache's reclaim) busy for seconds: the first
        # rounds on tmpfs of one run stalled 2-10x (2026-12-06)
        os.sync()
        time.sleep(3)
        os.makedirs(self.data)
        chown_www(self.data)
        mkdir_www(f'{self.data}/tusnode')
        self.n = 0
        try:
            self.httpd = Httpd(self.data, self.discard_so, self.a.httpd_extra)
            self.nginx = Nginx(self.data)
            if set(self.a.cases) & NODE_CASES:
                self.tusnode = Child('tusnode', ['node', os.path.join(
                    BENCH, 'tus_server.mjs'), '--port', str(p := free_port()),
                    '--dir', f'{self.data}/tusnode'], p)
                self.sink = Child('sink', [sys.executable, os.path.join(
                    BENCH, 'sink.py'), str(p := free_port())], p)
            for case in self.a.cases:
                if medium != 'tmpfs' and case == 'big' and self.a.big_media == 'tmpfs':
                    continue
                if medium == 'tmpfs' and case == 'big' and self.a.big_media == 'disk':
                    continue
                log(f'== {case} ({medium}) ==')
                getattr(self, f'case_{case}')(medium)
        finally:
            stop_all()
            keep_log(os.path.join(OUT, 'httpd'))
            shutil.rmtree(self.data, ignore_errors=True)
        errs = httpd_errors()
        if errs:
            self.results['notes'].append(
                f'{medium}: {len(errs)} error lines in bench/out/httpd-error_log.{medium}, '
                f'first: '
                f'`{errs[0][:300]}`')
        rm(os.path.join(OUT, 'httpd-error_log.' + medium))
        if os.path.exists(os.path.join(OUT, 'httpd-error_log')):
            os.rename(os.path.join(OUT, 'httpd-error_log'),
                      os.path.join(OUT, 'httpd-error_log.' + medium))


def rm(path):
    try:
        os.unlink(path)
    except OSError:
        pass


# ---------------------------------------------------------------------------
# summary, targets, report

def parse_strace_c(path):
    """strace -c's table: syscall -> calls."""
    out = {}
    try:
        with open(path) as f:
            for l in f:
                v = l.split()
                if len(v) >= 5 and v[-1] != 'total' and v[-1] != 'syscall' \
                        and v[3].isdigit():
                    out[v[-1]] = int(v[3])
    except OSError:
        pass
    return out


def summarize(runs):
    names = list(runs)
    out = {}
    for n in names:
        rs = runs[n]
        out[n] = dict(
            mbs=statistics.median(r['mbs'] for r in rs),
            cpu_per_gib=statistics.median(r['cpu_per_gib'] for r in rs),
            peak_rss_proc=max(r['peak_rss_proc'] for r in rs),
            peak_rss_total=max(r['peak_rss_total'] for r in rs),
            ok=all(r['ok'] for r in rs), n=len(rs),
            notes=sorted({r['note'] for r in rs if r['note']})[:3])
    base = names[0]
    for n in names[1:]:
        out[n]['ratio_base_over'] = statistics.median(
            a['mbs'] / b['mbs'] for a, b in zip(runs[base], runs[n]))
    return out


def get(res, *keys):
    for k in keys:
        if not isinstance(res, dict) or k not in res:
            return None
        res = res[k]
    return res


def targets(res, a):
    out = []
    c = res['cases']

    def add(name, value, ok, detail):
        out.append(dict(name=name, value=value, met=ok, detail=detail))
    s = get(c, 'single', 'tmpfs', 'summary')
    if s:
        for other, need in (('nginx', 1.0), ('moddav', 1.5), ('tusnode-curl', 4.0)):
            r = get(s, other, 'ratio_base_over')
            if r is not None:
                add(f'single request, tmpfs: resumable >= {need}x {other}', f'{r:.2f}x',
                    r >= need, 'median of per-round ratios')
        if 'nginx' in s:
            mine, theirs = s['resumable']['cpu_per_gib'], s['nginx']['cpu_per_gib']
            add('single request, tmpfs: server CPU/GiB <= nginx',
                f'{mine:.2f} vs {theirs:.2f} s/GiB', mine <= theirs, 'medians')
    s = get(c, 'checksum', 'tmpfs', 'summary')
    if s:
        r = 1 / s['resumable-sha256']['ratio_base_over']
        add('sha256 checksum on >= 0.8x without', f'{r:.2f}x', r >= 0.8,
            'median of per-round ratios')
    for medium in ('disk', 'tmpfs'):
        b = get(c, 'big', medium, 'runs')
        if b:
            b = [r for r in b if not r.get('label', '').startswith('warm')]
            g = max(r['rss_growth_proc'] for r in b)
            add(f'RSS growth <= 2 MiB per upload ({b[-1]["size"] / GiB:.0f} GiB, {medium})',
                f'{g / MiB:.2f} MiB', g <= 2 * MiB and all(r['ok'] for r in b),
                'largest rise of one server process over its RSS before the upload '
                '(same, warmed process; small and large upload)')
    p = get(c, 'parallel', 'tmpfs')
    for kind, what in (('concat', 'tus concatenation'), ('slice', 'slice protocol')):
        r = p and p['assembly_ratio'].get(kind)
        if r is not None:
            add(f'8 parallel chunks ({what}): assembly <= 10% of transfer',
                f'{100 * r:.1f}%', r <= 0.10,
                'median of (final POST or merge) time / parallel transfer time')
    for medium in ('tmpfs', 'disk'):
        k = get(c, 'concurrent1000', medium, 'summary', 'resumable')
        if k:
            add(f'1,000 concurrent uploads intact ({medium})', '; '.join(k['notes']),
                k['ok'], 'every stored upload checked by sha256, every round')
    h = get(c, 'head', 'tmpfs')
    if h:
        add(f'HEAD upload >= 0.5x HEAD static ({h["records"]:,} records)',
            f'{h["ratio"]:.2f}x', h['ratio'] >= 0.5 and not h['non2xx'],
            f'median upload {statistics.median(h["upload"]):.0f} req/s, static '
            f'{statistics.median(h["static"]):.0f} req/s')
    out.extend(targets15(c))
    full = (a.size_mib >= 1024 and a.pairs >= 5 and a.records >= 10 ** 6
            and a.big_gib >= 10)
    for t in out:
        t['full_size'] = full
    return out


def targets15(c):
    """The targets of issue 15 (many small requests, checksums)."""
    out = []

    def add(name, value, ok, detail):
        out.append(dict(name=name, value=value, met=ok, detail=detail))
    for medium in ('tmpfs', 'disk'):
        v = get(c, 'small', medium, 'vs_nginx')
        if v:
            n = get(c, 'small', medium, 'uploads')
            cw, pp = v['resumable-cwu'], v['resumable-postpatch']
            add(f'{n} x 1 MiB, 32 at once, creation-with-upload ({medium}): server CPU '
                'per upload <= 1.2x nginx PUT', f'{cw["cpu"]:.2f}x ({cw["cpu_ms"]:.2f} vs '
                f'{v["nginx"]["cpu_ms"]:.2f} ms)', cw['cpu'] <= 1.2,
                'median of per-round ratios of server CPU')
            add(f'{n} x 1 MiB, 32 at once, creation-with-upload ({medium}): throughput '
                '>= 0.95x nginx', f'{cw["mbs"]:.2f}x', cw['mbs'] >= 0.95,
                'median of per-round ratios')
            add(f'{n} x 1 MiB, 32 at once, POST + PATCH ({medium}): server CPU per '
                'upload <= 1.4x nginx PUT', f'{pp["cpu"]:.2f}x ({pp["cpu_ms"]:.2f} ms)',
                pp['cpu'] <= 1.4, 'median of per-round ratios of server CPU')
        y = get(c, 'syscalls', medium)
        if y:
            k = y['per_upload']['resumable-cwu']
            add(f'syscalls for one 1 MiB upload in one request ({medium}) <= 60',
                f'{k:.0f} (nginx {y["per_upload"]["nginx"]:.0f})', k <= 60,
                f'strace -c -f on every server thread, {y["uploads"]} uploads, '
                'idle window subtracted')
            worst = max(int(v.split()[0]) for k2, v in y['txn'].items()
                        if not k2.startswith('HEAD'))
            add(f'state write transactions per state-changing request ({medium}) <= 1',
                '; '.join(f'{k2}: {v}' for k2, v in y['txn'].items()), worst <= 1,
                'exclusive locks of the state .dir file (strace -y)')
        s = get(c, 'patch5', medium, 'summary')
        size = f"{(get(c, 'patch5', medium, 'bytes') or 0) >> 20} MiB"
        if s:
            name = [n for n in s if n != 'resumable-1'][0]
            r = 1 / s[name]['ratio_base_over']
            cpu = s[name]['cpu_per_gib'] / s['resumable-1']['cpu_per_gib']
            add(f'{size} as 5 MiB tus PATCHes on one connection ({medium}): >= 0.95x '
                'one request', f'{r:.2f}x', r >= 0.95, 'median of per-round ratios')
            add(f'{size} as 5 MiB tus PATCHes ({medium}): CPU per GiB <= 1.05x one request',
                f'{cpu:.2f}x ({s[name]["cpu_per_gib"]:.2f} vs '
                f'{s["resumable-1"]["cpu_per_gib"]:.2f} s/GiB)', cpu <= 1.05, 'medians')
        s = get(c, 'seed000', medium, 'summary')
        if s:
            r = 1 / s['resumable-seed000']['ratio_base_over']
            add(f'seed 000: 5 MiB slices, 4 at once, + merge ({medium}) >= 0.9x one request',
                f'{r:.2f}x', r >= 0.9, 'median of per-round ratios')
        v = get(c, 'checksums', medium, 'vs_openssl')
        if v:
            for alg, r in v.items():
                sp = statistics.median(c['checksums'][medium]['openssl'][alg]) / 1e6
                add(f'tus {alg} checksum ({medium}) >= 0.9x openssl speed -evp {alg}',
                    f'{r:.2f}x (openssl {sp:.0f} MB/s)', r >= 0.9,
                    'median of per-round ratios, openssl measured in each round')
        m = get(c, 'md5last', medium)
        if m:
            add(f'md5 protocol ({medium}): last chunk <= 1.2x a middle chunk',
                f'{m["ratio"]:.2f}x', m['ratio'] <= 1.2,
                'median over rounds of last / median middle chunk time')
    return out


def machine(res_module=('?', '?')):
    def first(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True,
                                  timeout=30).stdout.strip().splitlines()[0]
        except Exception:
            return '?'
    cpu = '?'
    with open('/proc/cpuinfo') as f:
        for l in f:
            if l.startswith('model name'):
                cpu = l.split(':', 1)[1].strip()
                break
    with open('/proc/meminfo') as f:
        mem = int(f.readline().split()[1]) // 1024
    rev = subprocess.run(['git', '-C', REPO, 'rev-parse', '--short', 'HEAD'],
                         capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(['git', '-C', REPO, 'status', '--porcelain', 'src',
                            'include', 'mod_resumable.c'],
                           capture_output=True, text=True).stdout.strip()
    return {
        'date': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
        'kernel': platform.release(), 'cpu': cpu, 'cores': os.cpu_count(),
        'memory_mib': mem, 'load_at_end': os.getloadavg()[0],
        'mod_resumable': rev + (' (+ uncommitted changes)' if dirty else ''),
        'mod_resumable.so': f'sha256 {res_module[0]}..., built {res_module[1]}',
        'httpd': first(['apache2', '-v']).split(':', 1)[-1].strip(),
        'nginx': subprocess.run(['nginx', '-v'], capture_output=True,
                                text=True).stderr.strip().split(':', 1)[-1].strip(),
        'node': first(['node', '--version']),
        'curl': first(['curl', '--version']).split(' (')[0],
        'ab': first(['ab', '-V']),
        '@tus/server': npm_version('@tus/server'),
        '@tus/file-store': npm_version('@tus/file-store'),
        'tus-js-client': npm_version('tus-js-client'),
    }


def npm_version(name):
    try:
        with open(os.path.join(BENCH, 'node_modules', name, 'package.json')) as f:
            return json.load(f)['version']
    except OSError:
        return '?'


def mib(x):
    return f'{x / MiB:.1f}'


def report15(case, r):
    md = []
    if case == 'small':
        md.append('\n| contender | server CPU ms per upload | ms per upload (wall / n) '
                  '| CPU / nginx (median of rounds) | throughput / nginx |\n'
                  '|---|---:|---:|---:|---:|')
        for n, v in r['vs_nginx'].items():
            md.append(f'| {n} | {v["cpu_ms"]:.2f} | {v["ms"]:.3f} | {v["cpu"]:.2f} | '
                      f'{v["mbs"]:.2f} |')
    if case == 'checksums':
        md.append('\n| algorithm | openssl speed -evp MB/s (median) | upload / openssl '
                  '(median of rounds) |\n|---|---:|---:|')
        for alg, v in r['vs_openssl'].items():
            md.append(f'| {alg} | {statistics.median(r["openssl"][alg]) / 1e6:.0f} | '
                      f'{v:.2f} |')
    if case == 'md5last':
        md.append('\nlast chunk / median middle chunk: ' + ', '.join(
            f'{a * 1000:.1f}/{b * 1000:.1f} ms' for a, b in r['last_mid']) +
            f'; median ratio {r["ratio"]:.2f}.')
    return md


def table(summary, base):
    rows = ['| contender | median MB/s | ' + base + ' / contender (median of rounds)'
            ' | server CPU s/GiB | peak RSS per process MiB | peak RSS total MiB'
            ' | intact | runs |', '|---|---:|---:|---:|---:|---:|---|---:|']
    for n, s in summary.items():
        ratio = f'{s["ratio_base_over"]:.2f}' if 'ratio_base_over' in s else '—'
        notes = '; '.join(s['notes']) if not s['ok'] else ''
        rows.append(f'| {n} | {s["mbs"]:.1f} | {ratio} | {s["cpu_per_gib"]:.2f} | '
                    f'{mib(s["peak_rss_proc"])} | {mib(s["peak_rss_total"])} | '
                    f'{"yes" if s["ok"] else "NO " + notes} | {s["n"]} |')
    return '\n'.join(rows)


def plot(res):
    s = res['cases'].get('single', {})
    if not s or not shutil.which('gnuplot'):
        return None
    dat = os.path.join(OUT, 'single.dat')
    media = [m for m in ('tmpfs', 'disk') if m in s]
    names = list(next(iter(s.values()))['summary'])
    with open(dat, 'w') as f:
        f.write('contender ' + ' '.join(media) + '\n')
        for n in names:
            f.write(n + ' ' + ' '.join(f'{s[m]["summary"].get(n, {}).get("mbs", 0):.1f}'
                                       for m in media) + '\n')
    png = os.path.join(REPO, 'bench', 'single.png')
    cols = ', '.join(f"'{dat}' using {i + 2}:xtic(1) title '{m}'"
                     if i == 0 else f"'' using {i + 2} title '{m}'"
                     for i, m in enumerate(media))
    script = f"""set terminal pngcairo size 900,450 noenhanced
set output '{png}'
set title 'One {res["cases"]["single"][media[0]]["bytes"] >> 20} MiB upload in one request (median MB/s)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set key autotitle columnhead top right
set ylabel 'MB/s'
set grid ytics
set xtics rotate by -30
set yrange [0:*]
plot {cols}
"""
    try:
        subprocess.run(['gnuplot'], input=script, text=True, check=True, timeout=60,
                       capture_output=True)
    except (subprocess.SubprocessError, OSError):
        try:
            subprocess.run(['gnuplot'], input=script.replace('pngcairo', 'png'),
                           text=True, check=True, timeout=60, capture_output=True)
        except (subprocess.SubprocessError, OSError):
            return None
    return 'bench/single.png'


HEADER = """# Benchmarks

`bench/run.py` measures mod_resumable next to the alternatives in one run,
on loopback, and regenerates this file. Everything it needs it starts and
stops itself: a private httpd (event MPM) serving mod_resumable, httpd's own
mod_dav PUT on the same instance and a discarding handler built from
`bench/mod_discard.c` (httpd's ceiling); Debian's nginx with dav PUT and a
1 MiB body buffer; @tus/server with @tus/file-store (`bench/package.json`);
and a discarding socket (`bench/sink.py`, the client's ceiling). It installs
nginx, ab (apache2-utils) and gnuplot with apt-get and the Node packages with `npm ci` in
`bench/` only when they are missing.

```sh
bench/run.py             # full suite: 1 GiB, 5 rounds, tmpfs and disk (~1 h)
bench/run.py --quick     # 64 MiB, 2 rounds, tmpfs, 10^4 records (minutes)
bench/run.py --cases single,checksum --media tmpfs --size-mib 256 --pairs 3
```

Method: the machine is a noisy 2-core VM, so contenders run interleaved
(A B C ... A B C ...) and the tables give medians and the median of the
per-round throughput ratios, never single times. MB/s is bytes / transfer
time as the client measured it (curl's `time_total`; tus-js-client from
`start()` to `onSuccess`). Server CPU is utime+stime summed over all the
server's processes (from `/proc`), per GiB moved. RSS is sampled every 50 ms
over the server's process tree. Every stored file is checked by sha256
against the source. Each case runs with the data directory (and the state
database) on tmpfs — the software's cost — and on disk.

Durability is not equal: mod_resumable runs with its default
`ResumableSync On` (fdatasync before an offset is acknowledged); nginx,
mod_dav and @tus/file-store do not sync. `resumable-tusonly` is the same
area with `ResumableProtocols tus`. The httpd configuration is
`bench/httpd.conf.in`, which includes the event MPM sizing for 1,000
concurrent uploads shown to admins in `conf/many-uploads.conf`;
`--httpd-extra 'Directive value'` adds to it, to try a tuning. Where the
time goes (perf, callgrind, syscall counts: `bench/profile.py`) is in
`bench/ANALYSIS.md`.
"""


def report(res, a):
    c = res['cases']
    md = [HEADER]
    full = (a.size_mib >= 1024 and a.pairs >= 5)
    if not full or len(a.media) < 2:
        md.append(f'> **Reduced run** ({a.size_mib} MiB, {a.pairs} rounds, media '
                  f'{", ".join(a.media)}, {a.records:,} records, big case '
                  f'{a.big_gib} GiB): the numbers below are indicative only; the full '
                  'run is `bench/run.py`.\n')
    md.append('## Targets\n')
    md.append('| target | measured | result | how |\n|---|---|---|---|')
    for t in res['targets']:
        md.append(f'| {t["name"]} | {t["value"]} | {"met" if t["met"] else "**not met**"}'
                  f' | {t["detail"]} |')
    png = plot(res)
    if png:
        md.append(f'\n![single request throughput]({os.path.basename(png)})\n'
                  .replace('](', '](bench/'))
    titles = {'single': 'One upload in one request',
              'chunked': f'The same upload in {a.chunk_mib} MiB requests (tus PATCHes '
                         'on one connection)',
              'checksum': 'tus checksum (sha256 over the whole PATCH) on and off',
              'parallel': '8 parallel chunks (tus concatenation, slice protocol) vs '
                          'one request',
              'small': f'{a.small_n} uploads of 1 MiB, {a.small_conc} at once (each '
                       'worker on one keep-alive connection)',
              'patch5': f'The same upload in {a.patch_mib} MiB tus PATCHes on one '
                        'connection vs one PATCH (same client)',
              'seed000': 'Seed 000: 5 MiB slices (multipart), 4 at once, + merge, vs '
                         'one PATCH',
              'checksums': 'tus Upload-Checksum per algorithm (one PATCH) vs '
                           '`openssl speed -evp`',
              'md5last': f'md5 protocol (seed 002), {a.patch_mib} MiB chunks one after '
                         'another: last chunk vs a middle chunk'}
    for case in [k for k in c if k not in ('head', 'big', 'syscalls')]:
        t = titles.get(case, f'{case[10:]} concurrent uploads of '
                       f'{c[case][next(iter(c[case]))]["bytes"] // int(case[10:]) >> 10}'
                       ' KiB each' if case.startswith('concurrent') else case)
        for medium, r in c[case].items():
            first = next(iter(r['summary']))
            md.append(f'\n## {t} — {r["bytes"] >> 20} MiB, {medium}\n')
            md.append(table(r['summary'], first))
            if case == 'parallel':
                for kind, runs in r['assembly'].items():
                    if not runs:
                        continue
                    md.append(f'\n{kind}: answer to the final POST / merge against the '
                              'parallel transfer: median '
                              f'{100 * r["assembly_ratio"][kind]:.1f}% (per round: '
                              f'{", ".join(f"{b:.3f}s/{x:.2f}s" for x, b, _ in runs)}); '
                              'the single published file was in place '
                              f'{statistics.median(w for _, _, w in runs):.2f}s (median) '
                              'after the transfer ended (written after the answer; '
                              'the upload is readable through the module at once).')
            if case.startswith('concurrent'):
                md.append('\n' + '; '.join(f'{n}: {", ".join(s["notes"])}'
                                           for n, s in r['summary'].items()))
            md.extend(report15(case, r))
    for medium, y in c.get('syscalls', {}).items():
        md.append(f'\n## Syscalls per 1 MiB upload (new connection each) — {medium}\n')
        md.append(f'strace -c -f attached to every server thread, {y["uploads"]} '
                  'uploads, the same idle window subtracted; per upload:\n')
        md.append('| server | syscalls | largest counts |\n|---|---:|---|')
        for n, k in y['per_upload'].items():
            top = ', '.join(f'{s} {v:g}' for s, v in list(y['top'][n].items())[:14])
            md.append(f'| {n} | {k:.0f} | {top} |')
        md.append('\nState write transactions (exclusive locks of the state .dir, '
                  'strace -y) per request: ' + '; '.join(
                      f'{k}: {v}' for k, v in y['txn'].items()) + '.')
    for medium, h in c.get('head', {}).items():
        md.append(f'\n## HEAD rate with {h["records"]:,} upload records stored — {medium}\n')
        md.append(f'ab -i -k (HEAD, keep-alive), 16 connections, {a.head_secs} s per run, '
                  'interleaved (wrk cannot: it waits for a body after HEAD, wg/wrk#198); '
                  f'records generated in {h["gen_secs"]:.1f} s by `bench/gen_records.c`.\n')
        md.append('| round | HEAD upload (req/s) | HEAD static file (req/s) |\n|---|---:|---:|')
        for i, (u, s) in enumerate(zip(h['upload'], h['static'])):
            md.append(f'| {i} | {u:.0f} | {s:.0f} |')
        bad = f'; {h["non2xx"]} non-2xx answers' if h['non2xx'] else ''
        md.append(f'\nmedian ratio upload/static: {h["ratio"]:.2f}{bad}')
    for medium, b in c.get('big', {}).items():
        md.append(f'\n## Memory: one large upload while sampling RSS — {medium}\n')
        md.append('One connection, so one httpd process serves all three.\n')
        md.append('| upload | size | MB/s | server CPU s/GiB | RSS growth of the serving '
                  'process MiB | peak RSS total MiB | intact |\n|---|---:|---:|---:|---:|---:|---|')
        for r in b['runs']:
            md.append(f'| {r.get("label", "")} | {r["size"] / GiB:.2f} GiB | {r["mbs"]:.1f} | '
                      f'{r["cpu_per_gib"]:.2f} | {mib(r["rss_growth_proc"])} | '
                      f'{mib(r["peak_rss_total"])} | {"yes" if r["ok"] else "NO"} |')
    if res['notes']:
        md.append('\n## Notes\n\n' + '\n'.join(f'- {n}' for n in res['notes']))
    md.append('\n## Machine and versions\n')
    md.append('| | |\n|---|---|')
    for k, v in res['machine'].items():
        md.append(f'| {k} | {v} |')
    md.append(f'\nCommand: `bench/run.py {" ".join(sys.argv[1:])}`'.rstrip() + '\n')
    with open(os.path.join(REPO, 'BENCHMARKS.md'), 'w') as f:
        f.write('\n'.join(md))
    log('\nTargets:')
    for t in res['targets']:
        log(f'  {"met    " if t["met"] else "NOT MET"}  {t["name"]}: {t["value"]}')
    log(f'\nwrote BENCHMARKS.md, {os.path.join(OUT, "results.json")}')


class Interrupted(Exception):
    pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--quick', action='store_true',
                    help='64 MiB, 2 rounds, tmpfs, 10^4 records, 1 GiB big case')
    ap.add_argument('--size-mib', type=int, default=1024)
    ap.add_argument('--pairs', type=int, default=5, help='interleaved rounds')
    ap.add_argument('--media', default='tmpfs,disk')
    ap.add_argument('--cases', default=','.join(ALL_CASES))
    ap.add_argument('--chunk-mib', type=int, default=8)
    ap.add_argument('--conc', default='32,1000')
    ap.add_argument('--records', type=int, default=10 ** 6)
    ap.add_argument('--head-secs', type=int, default=10)
    ap.add_argument('--big-gib', type=int, default=10)
    ap.add_argument('--httpd-extra', default='', metavar='DIRECTIVES',
                    help='appended to the httpd config (\\n separates lines), '
                    'e.g. "ReadBufferSize 262144" to try a tuning')
    ap.add_argument('--big-media', default='disk', choices=('disk', 'tmpfs', 'both'))
    ap.add_argument('--small-n', type=int, default=512,
                    help='small: uploads of 1 MiB per run')
    ap.add_argument('--small-conc', type=int, default=32,
                    help='small: uploads at once')
    ap.add_argument('--syscall-n', type=int, default=20,
                    help='syscalls: uploads counted under strace')
    ap.add_argument('--patch-mib', type=int, default=5,
                    help='patch5, md5last: request (chunk) size; seed000 slices are 5 MiB')
    ap.add_argument('--openssl-secs', type=int, default=3,
                    help='checksums: seconds per openssl speed run')
    a = ap.parse_args()
    if a.quick:
        a.size_mib, a.pairs, a.media, a.records = 64, 2, 'tmpfs', 10 ** 4
        a.head_secs, a.big_gib, a.big_media = 3, 1, 'tmpfs'
        a.small_n, a.syscall_n, a.openssl_secs = 128, 10, 1
    a.media = [m for m in a.media.split(',') if m]
    a.cases = [c for c in a.cases.split(',') if c]
    a.conc = [int(n) for n in str(a.conc).split(',') if n]
    bad = [c for c in a.cases if c not in ALL_CASES]
    if bad or any(m not in ('tmpfs', 'disk') for m in a.media):
        ap.error(f'unknown case or medium: {bad or a.media}')

    def on_signal(sig, frame):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Interrupted(sig)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        Suite(a).run()
    except Interrupted as e:
        log(f'interrupted by signal {e.args[0]}: servers stopped, nothing written')
        sys.exit(128 + e.args[0])
    finally:
        stop_all()


if __name__ == '__main__':
    main()
