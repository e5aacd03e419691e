#!/usr/bin/python3
"""Where the time goes: the profiles behind bench/ANALYSIS.md.

    bench/profile.py [--size-mib 1024] [--what syscalls,perf,head,callgrind]

  syscalls   perf stat over the server's processes for one upload in one
             request (mod_resumable, mod_dav, the discarding handler,
             nginx): task-clock and the count of each relevant syscall
  perf       perf record -g of mod_resumable's processes during one upload;
             prints the top symbols (bench/out/perf.data kept)
  head       HEAD on an upload vs HEAD on a static file (ab, 20,000
             requests): requests/s and syscalls per request
  callgrind  httpd -X under valgrind --tool=callgrind: POST, a 4 MiB PATCH,
             HEAD, three times; prints the inclusive cost of the module's
             functions (bench/out/callgrind.out kept)

Uses bench/run.py's servers and configuration (bench/httpd.conf.in); run
bench/run.py --quick once first so mod_discard is built. Everything on
127.0.0.1, everything it starts is stopped on exit.
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402

EVENTS = ['task-clock', 'context-switches', 'raw_syscalls:sys_enter'] + [
    f'syscalls:sys_enter_{s}' for s in (
        'read', 'recvfrom', 'pwrite64', 'write', 'writev', 'poll', 'fdatasync',
        'openat', 'flock', 'fcntl', 'futex', 'splice', 'ioctl', 'pipe2')]


def perf_stat(pids, fn):
    out = os.path.join(run.OUT, 'perf-stat.txt')
    p = subprocess.Popen(['perf', 'stat', '-x,', '-e', ','.join(EVENTS), '-p',
                          ','.join(map(str, pids)), '-o', out])
    time.sleep(0.5)
    try:
        res = fn()
    finally:
        time.sleep(0.2)
        p.send_signal(signal.SIGINT)
        p.wait(30)
    counts = {}
    with open(out) as f:
        for line in f:
            v = line.strip().split(',')
            if len(v) > 3 and re.match(r'^[\d.]+$', v[0]):
                counts[v[2].split(':')[-1].replace('sys_enter_', '')
                       .replace('sys_enter', 'all syscalls')] = float(v[0])
    return res, counts


def pids_of(server):
    return run.tree(run.proc_table(), server.root_pid())


def tus_put(httpd, src, size):
    def fn():
        _, _, h = run.curl(['-X', 'POST', '-H', 'Tus-Resumable: 1.0.0', '-H',
                            f'Upload-Length: {size}', httpd.base + '/files/'])
        return run.curl(['-X', 'PATCH', '-T', src, '-H', 'Expect:', '-H',
                         'Tus-Resumable: 1.0.0', '-H', 'Upload-Offset: 0', '-H',
                         'Content-Type: application/offset+octet-stream',
                         h['location']])[:2]
    return fn


def put(url, src):
    return lambda: run.curl(['-T', src, '-H', 'Expect:', url])[:2]


def syscalls(httpd, nginx, src, size):
    print(f'\n# one {size >> 20} MiB upload in one request: server-side counts')
    for name, server, fn in (
            ('resumable', httpd, tus_put(httpd, src, size)),
            ('moddav', httpd, put(httpd.base + '/dav/p.bin', src)),
            ('discard', httpd, put(httpd.base + '/discard', src)),
            ('nginx', nginx, put(nginx.base + '/p.bin', src))):
        fn()                                    # warm up
        (code, secs), c = perf_stat(pids_of(server), fn)
        print(f'{name:10s} http {code} {size / secs / 1e6:7.0f} MB/s ' + ' '.join(
            f'{k}={v:.0f}' for k, v in c.items()))


def perf_record(httpd, src, size):
    data = os.path.join(run.OUT, 'perf.data')
    fn = tus_put(httpd, src, size)
    fn()
    p = subprocess.Popen(['perf', 'record', '-g', '-o', data, '-p',
                          ','.join(map(str, pids_of(httpd)))],
                         stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    fn()
    p.send_signal(signal.SIGINT)
    p.wait(60)
    print(f'\n# perf: mod_resumable, one {size >> 20} MiB upload')
    for sort, n in (('dso', 8), ('dso,sym', 25)):
        r = subprocess.run(['perf', 'report', '-i', data, '--no-children', '--sort',
                            sort, '--stdio', '-g', 'none'],
                           capture_output=True, text=True)
        print('\n'.join([l for l in r.stdout.splitlines() if '%' in l][:n]))


def head(httpd):
    c = run.Conn(httpd.port)
    path = run.tus_create(c, 100)
    c.close()
    print('\n# HEAD: 20,000 requests, 16 connections (ab -i -k)')
    for what, url, hdr in (('upload', httpd.base + path, ['-H', 'Tus-Resumable: 1.0.0']),
                           ('static', httpd.base + '/static/small.txt', [])):
        (out, _), cnt = perf_stat(pids_of(httpd), lambda: (subprocess.run(
            ['ab', '-q', '-i', '-k', '-c16', '-n', '20000', *hdr, url],
            capture_output=True, text=True).stdout, 0))
        rate = re.search(r'Requests per second:\s+([\d.]+)', out)
        print(f'{what:7s} {rate.group(1) if rate else "?"} req/s; per request: ' +
              ' '.join(f'{k}={v / 20000:.2f}' for k, v in cnt.items()))


def callgrind(data, discard_so):
    src = os.path.join(data, 'cg-src.bin')
    with open(src, 'wb') as f:
        f.write(os.urandom(4 * run.MiB))
    httpd = run.Httpd(data, discard_so)
    httpd.stop()
    run.STARTED.remove(httpd)
    conf = f'{httpd.dir}/httpd.conf'
    with open(conf) as f:
        text = f.read().replace('StartServers 16', 'StartServers 1')
    with open(conf, 'w') as f:
        f.write(text.replace('MinSpareThreads 64', 'MinSpareThreads 4'))
    out = os.path.join(run.OUT, 'callgrind.out')
    run.rm(out)
    p = subprocess.Popen(['valgrind', '--tool=callgrind', f'--callgrind-out-file={out}',
                          'apache2', '-X', '-d', httpd.dir, '-f', conf],
                         stderr=subprocess.DEVNULL)
    try:
        run.wait_port(httpd.port, 120)
        time.sleep(1)
        run.chown_www(out)          # the child writes it after setuid
        for _ in range(3):
            tus_put(httpd, src, 4 * run.MiB)()
            run.curl(['-I', '-H', 'Tus-Resumable: 1.0.0', httpd.base + '/files/x'])
    finally:
        p.terminate()
        p.wait(120)
    r = subprocess.run(['callgrind_annotate', '--inclusive=yes', out],
                       capture_output=True, text=True)
    print('\n# callgrind: POST + 4 MiB PATCH + HEAD, 3 times (inclusive Ir)')
    keep = re.compile(r'rs_|body_read|tus_|ap_get_brigade|memcpy|memmove|apr_dbm|'
                      r'sdbm|apr_bucket|EVP|apr_time_now')
    print('\n'.join([l for l in r.stdout.splitlines()
                     if re.match(r'^\s*[\d,]+ \(', l) and keep.search(l)][:40]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--size-mib', type=int, default=1024)
    ap.add_argument('--what', default='syscalls,perf,head,callgrind')
    a = ap.parse_args()
    what = a.what.split(',')
    discard_so = os.path.join(run.OUT, 'build', '.libs', 'mod_discard.so')
    if not os.path.exists(discard_so):
        sys.exit('build mod_discard first: bench/run.py --quick')
    os.makedirs(os.path.dirname(run.MODULE_COPY), exist_ok=True)
    shutil.copy(os.path.join(run.REPO, '.libs', 'mod_resumable.so'), run.MODULE_COPY)
    data = f'/dev/shm/rs-profile-{os.getpid()}'
    run.mkdir_www(data)
    src = os.path.join(data, 'source.bin')
    size = a.size_mib * run.MiB
    try:
        with open(src, 'wb') as f:
            for _ in range(a.size_mib):
                f.write(os.urandom(run.MiB))
        if set(what) & {'syscalls', 'perf', 'head'}:
            httpd = run.Httpd(data, discard_so)
            nginx = run.Nginx(data)
            if 'syscalls' in what:
                syscalls(httpd, nginx, src, size)
            if 'perf' in what:
                perf_record(httpd, src, size)
            if 'head' in what:
                head(httpd)
            run.stop_all()
        if 'callgrind' in what:
            callgrind(data, discard_so)
    finally:
        run.stop_all()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == '__main__':
    main()
