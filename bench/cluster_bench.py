#!/usr/bin/python3
"""State providers on one node: dbm (sdbm) vs pgsql (ResumableStateDB dbd:).

Interleaved rounds on one httpd (the test harness's RsEnv) and a private
PostgreSQL 15 (initdb, as the tests do): per round and provider, one tus
upload of --size-mib in a single PATCH (curl -T from /dev/shm) and the HEAD
rate of `ab -i` (keep-alive, 4 concurrent). Prints medians and the median
of the per-round ratios pgsql/dbm. Run as root or as a user that may run
httpd; nothing is asserted.

    bench/cluster_bench.py --size-mib 256 --rounds 3
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'test'))

from pyrs.env import RsArea, RsEnv, _free_port  # noqa: E402
from pyrs.pg import PgCluster  # noqa: E402


def upload(env, src, size):
    r = subprocess.run(['curl', '-s', '-i', '-X', 'POST', '-H',
                        'Tus-Resumable: 1.0.0', '-H', f'Upload-Length: {size}',
                        f'{env.url}/files/'], capture_output=True, text=True,
                       timeout=60)
    loc = re.search(r'^Location: (\S+)', r.stdout, re.M | re.I).group(1)
    t = time.monotonic()
    r = subprocess.run(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}',
                        '-X', 'PATCH', '-H', 'Tus-Resumable: 1.0.0', '-H',
                        'Upload-Offset: 0', '-H',
                        'Content-Type: application/offset+octet-stream',
                        '-T', str(src), loc], capture_output=True, text=True,
                       timeout=600)
    dt = time.monotonic() - t
    assert r.stdout == '204', r
    return size / dt / 2**20, loc


def head_rate(url, n):
    r = subprocess.run(['ab', '-q', '-k', '-i', '-c', '4', '-n', str(n), '-H',
                        'Tus-Resumable: 1.0.0', url], capture_output=True,
                       text=True, timeout=300)
    return float(re.search(r'Requests per second:\s+([\d.]+)',
                           r.stdout).group(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--size-mib', type=int, default=256)
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--heads', type=int, default=3000)
    a = ap.parse_args()
    env = RsEnv(gen=REPO / 'test' / 'gen' / f'bench-{os.getpid()}').setup(
        build=False)
    pg = PgCluster(env.gen / 'pg', _free_port()).init().start()
    src = Path('/dev/shm') / f'rs-bench-{os.getpid()}'
    size = a.size_mib * 2**20
    with open(src, 'wb') as f:
        for _ in range(a.size_mib):
            f.write(os.urandom(2**20))
    res = {'dbm': ([], []), 'pgsql': ([], [])}
    try:
        for rnd in range(a.rounds):
            for mode in (('dbm', 'pgsql') if rnd % 2 == 0
                         else ('pgsql', 'dbm')):
                env.pg_params = pg.params() if mode == 'pgsql' else None
                env.install(areas=[RsArea('/files/', dir='bench',
                                          directives=['ResumableExpire 1h'])],
                            loglevel='warn')
                env.start()
                mibs, loc = upload(env, src, size)
                heads = head_rate(loc, a.heads)
                env.stop()
                res[mode][0].append(mibs)
                res[mode][1].append(heads)
                print(f'round {rnd} {mode:5}: upload {mibs:7.1f} MiB/s, '
                      f'HEAD {heads:8.0f}/s', flush=True)
                for p in (env.gen / 'areas' / 'bench').glob('*'):
                    if p.is_file():
                        p.unlink()
    finally:
        env.stop()
        pg.stop()
        src.unlink()
    for i, what in enumerate(('upload MiB/s', 'HEAD/s')):
        d, p = res['dbm'][i], res['pgsql'][i]
        ratio = statistics.median(x / y for x, y in zip(p, d))
        print(f'{what:13}: dbm {statistics.median(d):9.1f}  pgsql '
              f'{statistics.median(p):9.1f}  pgsql/dbm {ratio:.2f}')


if __name__ == '__main__':
    main()
