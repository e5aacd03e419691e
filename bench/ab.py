#!/usr/bin/python3
"""A/B of two builds of mod_resumable on the same machine, interleaved.

    bench/ab.py --base 8a6dc9c                 # base revision vs the tree
    bench/ab.py --base REV --size-mib 256 --pairs 7 --small 128

Builds the module of revision --base (git worktree in bench/out/ab/base,
`make`), takes the working tree's .libs/mod_resumable.so as "new", and runs
two private httpd instances (event MPM, the same generated config but for
the LoadModule line; data and state on tmpfs). Rounds alternate A B A B:

Each case starts with one uncounted warm-up upload per server.

  single  one tus upload of --size-mib MiB (POST, then one PATCH with curl)
  small   --small uploads of 1 MiB, creation-with-upload, 8 at once

Per round it records throughput (bytes / curl's time_total summed per
upload) and server CPU (utime + stime of the httpd process tree, /proc) per
GiB; it prints medians and the median of per-round ratios new/base, and the
CPU model. Nothing is asserted: it measures. Used for the "no cost" claims
of issues 13 (no hook configured) and 14 (status counters on the body
path): the base revision has neither.
"""
import argparse
import concurrent.futures
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
OUT = os.path.join(BENCH, 'out', 'ab')
MODS = '/usr/lib/apache2/modules'
TICK = os.sysconf('SC_CLK_TCK')
MiB = 1 << 20
GiB = 1 << 30

CONF = """ServerRoot "{root}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile "{root}/httpd.pid"
ErrorLog "{root}/error_log"
LogLevel warn
{user}
LoadModule mpm_event_module {mods}/mod_mpm_event.so
LoadModule authz_core_module {mods}/mod_authz_core.so
LoadModule status_module {mods}/mod_status.so
LoadModule resumable_module "{module}"
StartServers 2
ServerLimit 4
ThreadsPerChild 25
MaxRequestWorkers 100
MaxConnectionsPerChild 0
Timeout 60
LimitRequestBody 0
ResumableStateDB {data}/state/state
<Location /files/>
    SetHandler resumable
    ResumableDir {data}/files
</Location>
"""


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cpu_model():
    for line in open('/proc/cpuinfo'):
        if line.startswith('model name'):
            return line.split(':', 1)[1].strip()
    return '?'


def tree_cpu(root):
    """utime + stime (s) of root and all its descendants."""
    kids, ticks = {}, {}
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            f = open(f'/proc/{d}/stat').read()
        except OSError:
            continue
        rest = f[f.rindex(')') + 2:].split()
        kids.setdefault(int(rest[1]), []).append(int(d))
        ticks[int(d)] = int(rest[11]) + int(rest[12])
    total, todo = 0, [root]
    while todo:
        p = todo.pop()
        total += ticks.get(p, 0)
        todo += kids.get(p, [])
    return total / TICK


class Httpd:
    def __init__(self, name, module, data):
        self.root = os.path.join(OUT, name)
        self.data = os.path.join(data, name)
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.data, ignore_errors=True)
        for d in (self.root, f'{self.data}/files', f'{self.data}/state'):
            os.makedirs(d)
        shutil.copy(module, f'{self.root}/mod_resumable.so')
        self.port = free_port()
        user = 'User www-data\nGroup www-data' if os.geteuid() == 0 else ''
        with open(f'{self.root}/httpd.conf', 'w') as f:
            f.write(CONF.format(root=self.root, port=self.port, user=user,
                                mods=MODS, module=f'{self.root}/mod_resumable.so',
                                data=self.data))
        if os.geteuid() == 0:
            sh(['chown', '-R', 'www-data:', self.data, self.root])
        sh(['apache2', '-d', self.root, '-f', f'{self.root}/httpd.conf', '-k', 'start'])
        end = time.time() + 20
        while time.time() < end:
            try:
                socket.create_connection(('127.0.0.1', self.port), 1).close()
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(1)
        self.base = f'http://127.0.0.1:{self.port}/files/'

    def pid(self):
        return int(open(f'{self.root}/httpd.pid').read())

    def stop(self):
        try:
            pid = self.pid()
        except OSError:
            return
        subprocess.run(['apache2', '-d', self.root, '-f', f'{self.root}/httpd.conf',
                        '-k', 'stop'], timeout=60)
        end = time.time() + 20
        while time.time() < end and os.path.exists(f'/proc/{pid}'):
            time.sleep(0.1)


def curl(args):
    r = subprocess.run(['curl', '-s', '-o', '/dev/null', '-D', '-', '-w',
                        '\n%{http_code} %{time_total}', *args],
                       capture_output=True, text=True, timeout=900)
    code, secs = r.stdout.strip().rsplit('\n', 1)[-1].split()
    loc = ''
    for line in r.stdout.splitlines():
        if line.lower().startswith('location:'):
            loc = line.split(':', 1)[1].strip()
    return int(code), float(secs), loc


def tus_upload(base, src, size, with_body):
    """One upload; returns curl seconds of the data-carrying request(s)."""
    h = ['-H', 'Tus-Resumable: 1.0.0', '-H', 'Expect:']
    if with_body:       # creation-with-upload: one request
        code, secs, _ = curl(['-X', 'POST', *h, '-H', f'Upload-Length: {size}',
                              '-H', 'Content-Type: application/offset+octet-stream',
                              '--data-binary', f'@{src}', base])
        return code == 201, secs
    code, _, loc = curl(['-X', 'POST', *h, '-H', f'Upload-Length: {size}', base])
    if code != 201:
        return False, 0.0
    code, secs, _ = curl(['-X', 'PATCH', *h, '-H', 'Upload-Offset: 0', '-H',
                          'Content-Type: application/offset+octet-stream',
                          '-T', src, loc])
    return code == 204, secs


def run_case(srv, case, a, srcs):
    c0 = tree_cpu(srv.pid())
    t0 = time.monotonic()
    ok = True
    if case == 'single':
        good, secs = tus_upload(srv.base, srcs['single'], a.size_mib * MiB, False)
        ok, nbytes = good, a.size_mib * MiB
    else:
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            res = list(ex.map(lambda _: tus_upload(srv.base, srcs['small'], MiB, True),
                              range(a.small)))
        ok = all(g for g, _ in res)
        secs = time.monotonic() - t0
        nbytes = a.small * MiB
    cpu = tree_cpu(srv.pid()) - c0
    for f in os.listdir(f'{srv.data}/files'):        # keep tmpfs small
        p = f'{srv.data}/files/{f}'
        if os.path.isfile(p):
            os.unlink(p)
    return dict(ok=ok, mbs=nbytes / secs / 1e6, cpu=cpu / (nbytes / GiB))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--base', required=True, help='git revision of the base build')
    ap.add_argument('--size-mib', type=int, default=256)
    ap.add_argument('--small', type=int, default=128)
    ap.add_argument('--pairs', type=int, default=5)
    ap.add_argument('--cases', default='single,small')
    a = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    wt = os.path.join(OUT, 'base-src')
    if os.path.exists(wt):
        subprocess.run(['git', '-C', REPO, 'worktree', 'remove', '--force', wt])
        shutil.rmtree(wt, ignore_errors=True)
    sh(['git', '-C', REPO, 'worktree', 'add', '-q', '--detach', wt, a.base])
    try:
        sh(['make', '-C', wt, '.libs/mod_resumable.so'], stdout=subprocess.DEVNULL,
           stderr=subprocess.DEVNULL)
        base_so = os.path.join(OUT, 'base.so')
        shutil.copy(os.path.join(wt, '.libs', 'mod_resumable.so'), base_so)
    finally:
        subprocess.run(['git', '-C', REPO, 'worktree', 'remove', '--force', wt])
    new_so = os.path.join(REPO, '.libs', 'mod_resumable.so')
    data = f'/dev/shm/rs-ab-{os.getpid()}'
    srcs = {'single': f'{data}/single.bin', 'small': f'{data}/small.bin'}
    os.makedirs(data)
    for k, n in (('single', a.size_mib * MiB), ('small', MiB)):
        with open(srcs[k], 'wb') as f:
            for _ in range(n // MiB):
                f.write(os.urandom(MiB))
    servers = {}
    try:
        servers = {'base': Httpd('base', base_so, data), 'new': Httpd('new', new_so, data)}
        print(f'CPU: {cpu_model()}, {os.cpu_count()} cores; base {a.base}, '
              f'new = working tree; {a.pairs} rounds, tmpfs')
        for case in a.cases.split(','):
            runs = {'base': [], 'new': []}
            for name in ('base', 'new'):    # warm-up, not counted (page
                run_case(servers[name], case, a, srcs)  # cache, children)
            for r in range(a.pairs):
                order = ('base', 'new') if r % 2 == 0 else ('new', 'base')
                for name in order:
                    rec = run_case(servers[name], case, a, srcs)
                    runs[name].append(rec)
                    print(f'  {case} {name:4s} round {r}: {rec["mbs"]:8.1f} MB/s '
                          f'cpu {rec["cpu"]:6.2f} s/GiB {"ok" if rec["ok"] else "FAILED"}',
                          flush=True)
            thr = statistics.median(n['mbs'] / b['mbs'] for b, n in zip(runs['base'], runs['new']))
            cpu = statistics.median(n['cpu'] / b['cpu'] for b, n in zip(runs['base'], runs['new'])
                                    if b['cpu'] > 0)
            print(f'{case}: base {statistics.median(x["mbs"] for x in runs["base"]):.1f} MB/s '
                  f'{statistics.median(x["cpu"] for x in runs["base"]):.2f} s/GiB; '
                  f'new {statistics.median(x["mbs"] for x in runs["new"]):.1f} MB/s '
                  f'{statistics.median(x["cpu"] for x in runs["new"]):.2f} s/GiB; '
                  f'median ratio new/base: throughput {thr:.2f}x, CPU per GiB {cpu:.2f}x',
                  flush=True)
    finally:
        for s in servers.values():
            s.stop()
        shutil.rmtree(data, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
