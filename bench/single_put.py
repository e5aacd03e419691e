#!/usr/bin/python3
"""One large upload in one request: mod_resumable (tus PATCH) next to
httpd's own mod_dav PUT on the same httpd instance.

Usage: bench/single_put.py [--size-mib 1024] [--pairs 5] [--dir /dev/shm]

Starts a private httpd (event MPM) on a free loopback port with one tus area
and one DAV area whose data live in --dir (tmpfs by default: software cost;
pass a disk directory to include the disk). Runs the two contenders
interleaved (A B A B ...), and prints per run MB/s and server CPU seconds
(utime+stime of every httpd process of the instance, from /proc), then the
medians and the median of the pairwise ratios. Every stored file is checked
by sha256 against the source. Bounded: each upload has a curl timeout.
"""
import argparse
import hashlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODS = '/usr/lib/apache2/modules'
TICK = os.sysconf('SC_CLK_TCK')


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def write_conf(root, port, data):
    user = 'User www-data\nGroup www-data\n' if os.geteuid() == 0 else ''
    conf = f"""ServerRoot {root}
Listen 127.0.0.1:{port}
ServerName 127.0.0.1
PidFile {root}/httpd.pid
ErrorLog {root}/error_log
LogLevel warn
{user}
LoadModule mpm_event_module {MODS}/mod_mpm_event.so
LoadModule authz_core_module {MODS}/mod_authz_core.so
LoadModule alias_module {MODS}/mod_alias.so
LoadModule dav_module {MODS}/mod_dav.so
LoadModule dav_fs_module {MODS}/mod_dav_fs.so
LoadModule resumable_module {REPO}/.libs/mod_resumable.so
StartServers 2
ServerLimit 4
ThreadsPerChild 16
MaxRequestWorkers 64
MinSpareThreads 16
MaxSpareThreads 64
Timeout 300
DocumentRoot {root}
DavLockDB {root}/davlock
ResumableStateDB {root}/state
LimitRequestBody 0
<Location /files/>
    SetHandler resumable
    ResumableDir {data}/tus
</Location>
Alias /dav {data}/dav
<Directory {data}/dav>
    Dav On
</Directory>
"""
    with open(f'{root}/httpd.conf', 'w') as f:
        f.write(conf)


def httpd_pids(root):
    with open(f'{root}/httpd.pid') as f:
        parent = int(f.read())
    pids = [parent]
    for d in os.listdir('/proc'):
        if d.isdigit():
            try:
                with open(f'/proc/{d}/stat') as f:
                    fields = f.read().rsplit(')', 1)[1].split()
                if int(fields[1]) == parent:
                    pids.append(int(d))
            except OSError:
                pass
    return pids


def cpu_by_pid(root):
    """utime+stime in seconds of every process of the instance, by pid."""
    out = {}
    for pid in httpd_pids(root):
        try:
            with open(f'/proc/{pid}/stat') as f:
                fields = f.read().rsplit(')', 1)[1].split()
            out[pid] = (int(fields[11]) + int(fields[12])) / TICK
        except OSError:
            pass
    return out


def cpu_since(root, before):
    """CPU seconds used since `before` (processes started since count whole)."""
    return sum(v - before.get(pid, 0) for pid, v in cpu_by_pid(root).items())


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def curl(args):
    r = subprocess.run(['curl', '-s', '-S', '--max-time', '600', '-o', '/dev/null',
                        '-w', '%{http_code} %{time_total}', *args],
                       capture_output=True, text=True, timeout=700)
    code, secs = r.stdout.split()
    return int(code), float(secs)


def tus_upload(base, src, size):
    r = subprocess.run(['curl', '-s', '-D', '-', '-o', '/dev/null', '-X', 'POST',
                        '-H', 'Tus-Resumable: 1.0.0', '-H', f'Upload-Length: {size}',
                        f'{base}/files/'], capture_output=True, text=True, timeout=60)
    loc = [l.split(' ', 1)[1].strip() for l in r.stdout.splitlines()
           if l.lower().startswith('location:')][0]
    code, secs = curl(['-X', 'PATCH', '-T', src, '-H', 'Tus-Resumable: 1.0.0',
                       '-H', 'Upload-Offset: 0', '-H', 'Expect:',
                       '-H', 'Content-Type: application/offset+octet-stream', loc])
    return code == 204, secs, loc.rsplit('/', 1)[1]


def dav_upload(base, src, n):
    code, secs = curl(['-T', src, '-H', 'Expect:', f'{base}/dav/f{n}.bin'])
    return code in (201, 204), secs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--size-mib', type=int, default=1024)
    ap.add_argument('--pairs', type=int, default=5)
    ap.add_argument('--dir', default='/dev/shm')
    a = ap.parse_args()
    root = os.path.join(REPO, 'bench', 'out', 'single_put')
    data = os.path.join(a.dir, f'rs-bench-{os.getpid()}')
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    for d in ('tus', 'dav'):
        os.makedirs(f'{data}/{d}')
        shutil.chown(f'{data}/{d}', 'www-data', 'www-data') if os.geteuid() == 0 else None
    if os.geteuid() == 0:
        shutil.chown(root, 'www-data', 'www-data')
    src = f'{data}/source.bin'
    size = a.size_mib << 20
    with open(src, 'wb') as f:
        for _ in range(a.size_mib):
            f.write(os.urandom(1 << 20))
    want = sha256_file(src)
    port = free_port()
    base = f'http://127.0.0.1:{port}'
    write_conf(root, port, data)
    subprocess.run(['apache2', '-d', root, '-f', f'{root}/httpd.conf', '-k', 'start'],
                   check=True)
    results = {'resumable': [], 'dav': []}
    try:
        time.sleep(1)
        for n in range(a.pairs):
            for who in ('resumable', 'dav'):
                c0 = cpu_by_pid(root)
                if who == 'resumable':
                    ok, secs, uid = tus_upload(base, src, size)
                    stored = f'{data}/tus/{uid}'
                else:
                    ok, secs = dav_upload(base, src, n)
                    stored = f'{data}/dav/f{n}.bin'
                cpu = cpu_since(root, c0)
                good = ok and sha256_file(stored) == want
                os.unlink(stored)
                mbs = size / secs / 1e6
                results[who].append((mbs, cpu))
                print(f'{who:10s} run {n}: {mbs:8.1f} MB/s  server CPU {cpu:6.2f} s'
                      f'  sha256 {"ok" if good else "MISMATCH"}', flush=True)
                if not good:
                    sys.exit(1)
    finally:
        subprocess.run(['apache2', '-d', root, '-f', f'{root}/httpd.conf', '-k', 'stop'])
        time.sleep(1)
        shutil.rmtree(data, ignore_errors=True)
    med = {w: (statistics.median(x[0] for x in r), statistics.median(x[1] for x in r))
           for w, r in results.items()}
    ratio = statistics.median(a_[0] / b_[0] for a_, b_ in
                              zip(results['resumable'], results['dav']))
    print(f'\n{a.size_mib} MiB single request, data in {a.dir}, {a.pairs} interleaved pairs')
    print('| server | median MB/s | median server CPU s |')
    print('|---|---|---|')
    for w in ('resumable', 'dav'):
        print(f'| {w} | {med[w][0]:.1f} | {med[w][1]:.2f} |')
    print(f'median pairwise throughput ratio resumable/dav: {ratio:.2f}')


if __name__ == '__main__':
    main()
