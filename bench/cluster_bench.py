#!/usr/bin/python3
"""Cluster benchmarks (issue 12): state providers, the balancer, round trips.

One command starts everything it needs on this machine and stops it again:
a private PostgreSQL 15 (initdb, as the tests do: test/pyrs/pg.py), one
httpd node with the dbm provider (sdbm), and a cluster of two httpd nodes
with the pgsql provider (`ResumableStateDB dbd:` through mod_dbd) sharing
one upload directory behind a front httpd with mod_proxy_balancer (no
stickiness: test/pyrs/cluster.py). All of them run at once, so each round
measures every contender back to back (interleaved, the order alternating
by round) without restarts between them:

  dbm     the dbm node, direct
  pgsql   cluster node 0, direct (the pgsql provider on one node)
  front   through the balancer (requests alternate between the two nodes)

Cases (--cases, default all):

  single      one tus upload of --size-mib in one PATCH (curl -T from
              /dev/shm): MB/s, server CPU per GiB (httpd and PostgreSQL
              apart); ratios pgsql/dbm and front/pgsql
  head        HEAD rate on an upload URL (ab -k -i, --head-conc at once,
              --heads requests), and HEAD of a static file direct and
              through the front (the proxy's own cost)
  small       --small-n uploads of --small-kib KiB, creation-with-upload,
              --small-conc at once, each worker on one keep-alive
              connection: per-upload latency (median, p90, p99),
              throughput, CPU per upload
  trips       PostgreSQL round trips and transactions per request (HEAD, a
              POST, a small creation-with-upload, the first and the last
              half of a large upload in two PATCHes, a large upload in one
              PATCH) on node 0: PostgreSQL logs every statement
              (log_statement=all, only for this case), and the lines of the
              nodes' connections (application_name) are counted and
              classified by statement and key prefix; an idle window's rate
              is subtracted (pg_stat_database's xact_commit is no check: an
              idle backend flushes its counters only after 10 s)
  checkpoint  ResumableCheckpoint 1M/16M/64M (--checkpoints; server level
              or in the area, wherever the build takes it): upload
              --size-mib on node 0 per value (graceful restart between
              values), MB/s, CPU per GiB; then one more upload per value
              with every statement logged: round trips and write
              transactions per GiB. A build without the directive is said
              so and skipped. Either way the case then measures the two
              parts of a checkpoint: fdatasync every N bytes vs once at the
              end (same file system as the uploads), and the latency of one
              epoch-conditional write transaction (pgbench, on a table of
              its own), and prints the estimate per GiB from those

Per round and contender it records bytes / time as the client measured it
and utime+stime of the process trees (from /proc): the httpd servers
involved and the postmaster's tree. It prints medians and the median of
the per-round ratios, names the CPU, and writes everything as JSON to
bench/out/cluster-<time>.json. Nothing is asserted: it measures.

    bench/cluster_bench.py                           # all cases, 3 rounds
    bench/cluster_bench.py --cases single,head --size-mib 512 --rounds 5
    bench/cluster_bench.py --media tmpfs             # data and PostgreSQL on /dev/shm
    RS_MODULE=/path/mod_resumable.so bench/cluster_bench.py   # another build
"""
import argparse
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / 'bench'
OUT = BENCH / 'out'
sys.path.insert(0, str(REPO / 'test'))
sys.path.insert(0, str(BENCH))

from pyrs.cluster import RsCluster  # noqa: E402
from pyrs.env import RsArea, RsEnv, _free_port  # noqa: E402
from pyrs.pg import PG_BIN, PgCluster, pg_available  # noqa: E402
from run import PATCH_CT, TUS, Conn, proc_table, run_workers, tree  # noqa: E402

MiB = 1 << 20
GiB = 1 << 30
APP = 'rsbench'                 # application_name of the nodes' connections
CKPT = 'ResumableCheckpoint'    # the lease work's directive (16M default)
# the sweep (expiry, background content indexing: it hashes every finished
# upload and writes its record) would run in the middle of a case; its cost
# is not one request's
SWEEP = '1h'
ALL_CASES = ['single', 'head', 'small', 'trips', 'checkpoint']


def log(*a):
    print(*a, flush=True)


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float('nan')


def ratio(a, b):
    """Median of per-round ratios a[i] / b[i]."""
    return med([x / y for x, y in zip(a, b) if x and y])


def parse_size(s):
    m = re.fullmatch(r'(\d+)([KMG]?)', s.strip().upper())
    return int(m.group(1)) * {'': 1, 'K': 1 << 10, 'M': MiB, 'G': GiB}[m.group(2)]


# ---------------------------------------------------------------------------
# servers

class Bench:

    def __init__(self, a):
        self.a = a
        root = (Path('/dev/shm') if a.media == 'tmpfs'
                else REPO / 'test' / 'gen') / f'cbench-{os.getpid()}'
        self.env = RsEnv(gen=root).setup(build=False)
        self.env.pg_params = None                     # the dbm node
        self.pg = PgCluster(root / 'pg', _free_port()).init()
        with open(self.pg.data / 'postgresql.conf', 'a') as f:
            f.write("log_line_prefix = '%m [%p] %a: '\n")
        self.pg.start()
        self.cluster = RsCluster(
            self.env, f'{self.pg.dbd_params()} application_name={APP}').setup()
        self.src = Path('/dev/shm') / f'rs-cbench-{os.getpid()}'
        self.size = a.size_mib * MiB
        with open(self.src, 'wb') as f:
            for _ in range(a.size_mib):
                f.write(os.urandom(MiB))
        self.src_sha = hashlib.sha256(self.src.read_bytes()).hexdigest()
        self.small = os.urandom(a.small_kib << 10)
        self.small_sha = hashlib.sha256(self.small).hexdigest()
        self.dbm_dir = self.env.area_dir('files')
        self.results = {'args': vars(a), 'cases': {}}

    def start(self, node0_extra=()):
        env, c = self.env, self.cluster
        env.install(areas=[RsArea('/files/', dir=self.dbm_dir,
                                  directives=['ResumableExpire 1h'])],
                    loglevel='warn', sweep=SWEEP)
        env.start()
        self.shared = c.area_dir('files')
        for i, node in enumerate(c.nodes):
            self.install_node(node, node0_extra if i == 0 else ())
            node.start()
        c.start_front()
        # contender -> (base url, servers whose CPU counts, data dir)
        self.contenders = {
            'dbm': (env.url, [env], self.dbm_dir),
            'pgsql': (c.nodes[0].url, c.nodes + [c.front], self.shared),
            'front': (c.front.url, c.nodes + [c.front], self.shared),
        }

    def install_node(self, node, extra=(), server_extra=()):
        node.install(areas=[RsArea('/files/', dir=self.shared, directives=[
            'ResumableExpire 1h', 'ResumableTrustForwarded On', *extra])],
            server_extra='\n'.join(server_extra), loglevel='warn',
            sweep=SWEEP)

    def install_ckpt(self, node, value):
        """node 0 with ResumableCheckpoint value, in the area or at server
        level (wherever checkpoint_known found this build takes it)."""
        line = [f'{CKPT} {value}']
        if self.ckpt_where == 'area':
            self.install_node(node, extra=line)
        else:
            self.install_node(node, server_extra=line)

    def stop(self):
        for e in [self.cluster.front] + self.cluster.nodes + [self.env]:
            try:
                e.stop()
            except Exception as e2:          # keep stopping the others
                log(f'stop: {e2}')
        self.pg.stop()
        self.src.unlink(missing_ok=True)

    # ---- CPU ----------------------------------------------------------------
    def pg_pid(self):
        return int((self.pg.data / 'postmaster.pid').read_text().split()[0])

    def cpu(self, servers):
        """(httpd CPU s of servers' trees, PostgreSQL CPU s)."""
        t = proc_table()
        h = sum(t[p][1] for s in servers if s.pid()
                for p in tree(t, s.pid()))
        g = sum(t[p][1] for p in tree(t, self.pg_pid()))
        return h, g

    def measure(self, servers, fn):
        """fn() under CPU accounting: (fn's result, httpd s, pg s)."""
        h0, g0 = self.cpu(servers)
        res = fn()
        h1, g1 = self.cpu(servers)
        return res, h1 - h0, g1 - g0

    def order(self, rnd, names):
        return names if rnd % 2 == 0 else list(reversed(names))

    # ---- requests -----------------------------------------------------------
    def create(self, base, length):
        r = subprocess.run(['curl', '-s', '-i', '-X', 'POST', '-H',
                            'Tus-Resumable: 1.0.0', '-H',
                            f'Upload-Length: {length}', f'{base}/files/'],
                           capture_output=True, text=True, timeout=60)
        m = re.search(r'^Location: (\S+)', r.stdout, re.M | re.I)
        if not m:
            raise RuntimeError(f'POST {base}/files/: {r.stdout[:300]}')
        return m.group(1)

    def patch(self, loc, src, offset=0):
        r = subprocess.run(['curl', '-s', '-o', '/dev/null', '-w',
                            '%{http_code} %{time_total}', '-X', 'PATCH',
                            '-H', 'Tus-Resumable: 1.0.0', '-H',
                            f'Upload-Offset: {offset}', '-H',
                            'Content-Type: application/offset+octet-stream',
                            '-T', str(src), loc], capture_output=True,
                           text=True, timeout=900)
        code, secs = r.stdout.split()
        if code != '204':
            raise RuntimeError(f'PATCH {loc}: {code} {r.stderr}')
        return float(secs)

    def check_and_remove(self, data_dir, loc, want_sha, size):
        """Compare the published file with the source, then remove the
        upload (tus termination)."""
        p = Path(data_dir) / loc.rsplit('/', 1)[-1]
        ok = False
        if p.exists() and p.stat().st_size == size:
            h = hashlib.sha256()
            with open(p, 'rb') as f:
                for b in iter(lambda: f.read(4 * MiB), b''):
                    h.update(b)
            ok = h.hexdigest() == want_sha
        subprocess.run(['curl', '-s', '-o', '/dev/null', '-X', 'DELETE', '-H',
                        'Tus-Resumable: 1.0.0', loc], timeout=60)
        if p.exists():
            p.unlink()
        return ok

    # ---- case: single -------------------------------------------------------
    def case_single(self):
        runs = {n: [] for n in self.contenders}
        for rnd in range(self.a.rounds):
            for name in self.order(rnd, list(self.contenders)):
                base, servers, ddir = self.contenders[name]
                loc = self.create(base, self.size)
                secs, h, g = self.measure(servers,
                                          lambda: self.patch(loc, self.src))
                ok = self.check_and_remove(ddir, loc, self.src_sha, self.size)
                rec = dict(mbs=self.size / secs / 1e6,
                           httpd_cpu_gib=h * GiB / self.size,
                           pg_cpu_gib=g * GiB / self.size,
                           cpu_gib=(h + g) * GiB / self.size, ok=ok)
                runs[name].append(rec)
                log(f'single r{rnd} {name:6} {rec["mbs"]:8.1f} MB/s  CPU/GiB '
                    f'httpd {rec["httpd_cpu_gib"]:.2f} s, pg '
                    f'{rec["pg_cpu_gib"]:.2f} s  {"ok" if ok else "CORRUPT"}')
        self.results['cases']['single'] = self.summary(
            runs, ('mbs', 'httpd_cpu_gib', 'pg_cpu_gib', 'cpu_gib'))

    def summary(self, runs, keys):
        s = {'runs': runs, 'median': {}, 'ratios': {}}
        for n, rs in runs.items():
            s['median'][n] = {k: med([r[k] for r in rs]) for k in keys}
            s['median'][n]['intact'] = all(r.get('ok', True) for r in rs)
        for a, b in (('pgsql', 'dbm'), ('front', 'pgsql'), ('front', 'dbm')):
            if a in runs and b in runs:
                # dbm's PostgreSQL CPU is the idle server's: no ratio
                s['ratios'][f'{a}/{b}'] = {k: ratio([r[k] for r in runs[a]],
                                                    [r[k] for r in runs[b]])
                                           for k in keys
                                           if not (b == 'dbm' and
                                                   k.startswith('pg_'))}
        return s

    # ---- case: head ---------------------------------------------------------
    def ab(self, url, n):
        r = subprocess.run(['ab', '-q', '-k', '-i', '-c',
                            str(self.a.head_conc), '-n', str(n), '-H',
                            'Tus-Resumable: 1.0.0', url], capture_output=True,
                           text=True, timeout=300)
        m = re.search(r'Requests per second:\s+([\d.]+)', r.stdout)
        bad = re.search(r'Non-2xx responses:\s+(\d+)', r.stdout)
        if not m or bad:
            raise RuntimeError(f'ab {url}: {r.stdout[-600:]}{r.stderr[-300:]}')
        return float(m.group(1))

    def case_head(self):
        urls = {}
        for name, (base, servers, _) in self.contenders.items():
            urls[name] = (self.create(base, 1 << 30), servers)
        c = self.cluster
        urls['static-direct'] = (f'{c.nodes[0].url}/static.txt', c.nodes)
        urls['static-front'] = (f'{c.front.url}/static.txt',
                                c.nodes + [c.front])
        runs = {n: [] for n in urls}
        n = self.a.heads
        for rnd in range(self.a.rounds):
            for name in self.order(rnd, list(urls)):
                url, servers = urls[name]
                rate, h, g = self.measure(servers, lambda: self.ab(url, n))
                rec = dict(rps=rate, httpd_cpu_us=h / n * 1e6,
                           pg_cpu_us=g / n * 1e6, cpu_us=(h + g) / n * 1e6)
                runs[name].append(rec)
                log(f'head   r{rnd} {name:13} {rate:8.0f}/s  CPU per HEAD '
                    f'httpd {rec["httpd_cpu_us"]:.0f} us, pg '
                    f'{rec["pg_cpu_us"]:.0f} us')
        s = self.summary(runs, ('rps', 'httpd_cpu_us', 'pg_cpu_us',
                                'cpu_us'))
        s['ratios']['static-front/static-direct'] = {
            'rps': ratio([r['rps'] for r in runs['static-front']],
                         [r['rps'] for r in runs['static-direct']])}
        self.results['cases']['head'] = s
        for name, (base, _, _) in self.contenders.items():
            subprocess.run(['curl', '-s', '-o', '/dev/null', '-X', 'DELETE',
                            '-H', 'Tus-Resumable: 1.0.0', urls[name][0]],
                           timeout=60)

    # ---- case: small --------------------------------------------------------
    def small_run(self, base):
        port = int(base.rsplit(':', 1)[1])
        n, k = self.a.small_n, self.a.small_conc
        size = len(self.small)
        todo = list(range(n))
        mu = threading.Lock()
        lat, locs, errors = [], [], []

        def worker():
            c = Conn(port)
            try:
                while True:
                    with mu:
                        if not todo:
                            return
                        todo.pop()
                    t = time.monotonic()
                    st, h, _ = c.request('POST', '/files/', dict(
                        TUS, **PATCH_CT, **{'Upload-Length': str(size)}),
                        self.small)
                    dt = time.monotonic() - t
                    if st != 201 or h.get('upload-offset') != str(size):
                        raise RuntimeError(f'creation-with-upload: {st} {h}')
                    with mu:
                        lat.append(dt)
                        locs.append(h['location'])
            finally:
                c.close()

        return run_workers(worker, k, errors), lat, locs, errors

    def case_small(self):
        runs = {n: [] for n in self.contenders}
        n, size = self.a.small_n, len(self.small)
        for rnd in range(self.a.rounds):
            for name in self.order(rnd, list(self.contenders)):
                base, servers, ddir = self.contenders[name]
                (secs, lat, locs, errors), h, g = self.measure(
                    servers, lambda: self.small_run(base))
                bad = 0
                for loc in locs:
                    p = Path(ddir) / loc.rsplit('/', 1)[-1]
                    try:
                        if hashlib.sha256(p.read_bytes()).hexdigest() \
                                != self.small_sha:
                            bad += 1
                        p.unlink()
                    except OSError:
                        bad += 1
                ok = not errors and not bad and len(locs) == n
                rec = dict(mbs=len(locs) * size / secs / 1e6,
                           per_s=len(locs) / secs,
                           lat_ms=1000 * med(lat), p90_ms=1000 * pct(lat, .9),
                           p99_ms=1000 * pct(lat, .99),
                           httpd_cpu_ms=1000 * h / n, pg_cpu_ms=1000 * g / n,
                           cpu_ms=1000 * (h + g) / n,
                           ok=ok, errors=errors[:3])
                runs[name].append(rec)
                log(f'small  r{rnd} {name:6} {rec["per_s"]:7.0f} uploads/s '
                    f'{rec["mbs"]:6.1f} MB/s  latency median '
                    f'{rec["lat_ms"]:.1f} p90 {rec["p90_ms"]:.1f} p99 '
                    f'{rec["p99_ms"]:.1f} ms  CPU per upload httpd '
                    f'{rec["httpd_cpu_ms"]:.2f} ms pg {rec["pg_cpu_ms"]:.2f}'
                    f' ms  {len(locs) - bad}/{n} intact'
                    + (f' errors {errors[:2]}' if errors else ''))
        self.results['cases']['small'] = self.summary(
            runs, ('per_s', 'mbs', 'lat_ms', 'p90_ms', 'p99_ms',
                   'httpd_cpu_ms', 'pg_cpu_ms', 'cpu_ms'))

    # ---- case: trips --------------------------------------------------------
    def pg_set(self, name, value):
        self.pg.psql(f"ALTER SYSTEM SET {name} = '{value}'")
        self.pg.psql('SELECT pg_reload_conf()')
        time.sleep(0.5)

    def statements(self, since):
        """Statements (one per simple-query round trip) the nodes sent
        since log offset `since`, classified by kind and, for reads and
        writes of keys, by the key's prefix ("u:" record, "k:" client key,
        "q:"/"n:" pending counts, "h:" content index, ...: rs_store.h)."""
        text = self.pg.log.read_bytes()[since:].decode(errors='replace')
        kinds = {}
        for line in text.splitlines():
            m = re.search(rf' {APP}: LOG:  (?:statement|execute [^:]*): (.*)',
                          line)
            if not m:
                continue
            s = m.group(1).strip()
            if s.startswith('BEGIN ISOLATION LEVEL'):
                s = s.split(';', 1)[1].strip()
                k = 'read BEGIN + ' + s.split()[0].upper()
            elif s.startswith('BEGIN'):
                k = 'write BEGIN + lock'
            elif 'clock_timestamp()' in s:
                k = 'SELECT clock'          # the leases' clock (pg_clock)
            else:
                k = s.split()[0].upper()
            key = re.search(r"decode\('([0-9a-f]{4})", s)
            if key and k not in ('COMMIT', 'ROLLBACK'):
                pre = bytes.fromhex(key.group(1)).decode('latin-1')
                k += f' {pre}' if pre.endswith(':') else ' ?'
            kinds[k] = kinds.get(k, 0) + 1
        return kinds

    def trips_window(self, fn):
        pos = self.pg.log.stat().st_size
        t = time.monotonic()
        fn()
        wall = time.monotonic() - t
        time.sleep(0.3)
        return self.statements(pos), wall

    def case_trips(self):
        node = self.cluster.nodes[0].url
        reps = self.a.trip_reps
        half = self.size // 2
        a_src = Path(f'{self.src}.a')
        b_src = Path(f'{self.src}.b')
        data = self.src.read_bytes()
        a_src.write_bytes(data[:half])
        b_src.write_bytes(data[half:])
        del data
        small = Path(f'{self.src}.small')
        small.write_bytes(self.small)
        head_url = self.create(node, 1 << 30)
        made = []

        def head():
            for _ in range(reps):
                subprocess.run(['curl', '-s', '-o', '/dev/null', '-I', '-H',
                                'Tus-Resumable: 1.0.0', head_url], timeout=60)

        def post():
            for _ in range(reps):
                made.append(self.create(node, self.size))

        def cwu():
            for _ in range(reps):
                subprocess.run(['curl', '-s', '-o', '/dev/null', '-X', 'POST',
                                '-H', 'Tus-Resumable: 1.0.0', '-H',
                                f'Upload-Length: {len(self.small)}', '-H',
                                'Content-Type: application/offset+octet-stream',
                                '--data-binary', f'@{small}',
                                f'{node}/files/'], timeout=60)

        def first_half():
            for loc in made[:self.a.trip_large]:
                self.patch(loc, a_src, 0)

        def last_half():
            for loc in made[:self.a.trip_large]:
                self.patch(loc, b_src, half)

        def whole():
            n = self.a.trip_large
            for loc in made[n:2 * n]:
                self.patch(loc, self.src, 0)

        self.pg_set('log_statement', 'all')
        res = {}
        try:
            for name, fn, n in (
                    ('idle (per second)', lambda: time.sleep(3), 3),
                    ('HEAD', head, reps),
                    ('POST (create)', post, reps),
                    (f'POST creation-with-upload {self.a.small_kib} KiB',
                     cwu, reps),
                    (f'PATCH first half ({self.size // 2 // MiB} MiB)',
                     first_half, self.a.trip_large),
                    (f'PATCH last half ({self.size // 2 // MiB} MiB, '
                     'completes)', last_half, self.a.trip_large),
                    (f'PATCH whole upload ({self.size // MiB} MiB)', whole,
                     self.a.trip_large)):
                kinds, wall = self.trips_window(fn)
                res[name] = dict(n=n, wall=wall, kinds=kinds)
        finally:
            self.pg_set('log_statement', 'none')
            for p in (a_src, b_src, small):
                p.unlink(missing_ok=True)
        idle = res['idle (per second)']
        idle_rate = sum(idle['kinds'].values()) / idle['wall']
        out = {}
        for name, r in res.items():
            per = {k: v / r['n'] for k, v in r['kinds'].items()}
            trips = sum(r['kinds'].values())
            if name != 'idle (per second)':
                trips -= idle_rate * r['wall']
            out[name] = dict(
                round_trips=trips / r['n'], kinds=per,
                transactions=sum(v for k, v in r['kinds'].items()
                                 if 'BEGIN' in k) / r['n'],
                writes=sum(v for k, v in r['kinds'].items()
                           if k.startswith('write')) / r['n'],
                idle_subtracted=idle_rate * r['wall'] / r['n']
                if name != 'idle (per second)' else 0)
            log(f'trips  {name:42} round trips {out[name]["round_trips"]:5.1f}'
                f'  transactions {out[name]["transactions"]:4.1f} '
                f'(write {out[name]["writes"]:4.1f})  '
                + ', '.join(f'{k} {v:.1f}' for k, v in sorted(per.items())))
        for loc in made:                # the halves and the wholes
            self.check_and_remove(self.shared, loc, self.src_sha, self.size)
        subprocess.run(['curl', '-s', '-o', '/dev/null', '-X', 'DELETE', '-H',
                        'Tus-Resumable: 1.0.0', head_url], timeout=60)
        for p in Path(self.shared).iterdir():     # the creation-with-uploads
            if p.is_file() and p.stat().st_size == len(self.small):
                p.unlink()
        self.results['cases']['trips'] = out

    # ---- case: checkpoint ---------------------------------------------------
    def checkpoint_known(self):
        """None when this build takes ResumableCheckpoint in an area or at
        server level (self.ckpt_where says which), else the reason (the
        first lines of httpd -t)."""
        node = self.cluster.nodes[0]
        probe = node.gen / 'conf' / 'probe.conf'
        why = None
        for where in ('area', 'server'):
            line = [f'{CKPT} 16M']
            node.install(areas=[RsArea('/files/', dir=self.shared, directives=[
                'ResumableTrustForwarded On',
                *(line if where == 'area' else [])])],
                server_extra='\n'.join(line if where == 'server' else []),
                loglevel='warn', sweep=SWEEP, conf_path=probe)
            rc, out = node.configtest(probe)
            if rc == 0:
                self.ckpt_where = where
                return None
            why = why or ' '.join(out.strip().splitlines()[:2])
        return why

    def case_checkpoint(self):
        values = [v.strip() for v in self.a.checkpoints.split(',')]
        why = self.checkpoint_known()
        res = {'values': values}
        if why:
            log(f'checkpoint: ResumableCheckpoint is unknown to this build, '
                f'skipped ({why}); measuring its parts instead')
            res['skipped'] = why
        else:
            res['directive'] = self.checkpoint_directive(values)
        res['parts'] = self.checkpoint_parts(values)
        self.results['cases']['checkpoint'] = res

    def checkpoint_directive(self, values):
        """The checkpoint_rounds; node 0 gets its own config back, also
        when they fail (the cases after this one use it)."""
        node = self.cluster.nodes[0]
        try:
            return self.checkpoint_rounds(node, values)
        finally:
            self.install_node(node)
            node.graceful()

    def checkpoint_rounds(self, node, values):
        runs = {v: [] for v in values}
        for rnd in range(self.a.rounds):
            for v in self.order(rnd, values):
                self.install_ckpt(node, v)
                node.graceful()
                loc = self.create(node.url, self.size)
                secs, h, g = self.measure(self.cluster.nodes,
                                          lambda: self.patch(loc, self.src))
                ok = self.check_and_remove(self.shared, loc, self.src_sha,
                                           self.size)
                rec = dict(mbs=self.size / secs / 1e6,
                           httpd_cpu_gib=h * GiB / self.size,
                           pg_cpu_gib=g * GiB / self.size, ok=ok)
                runs[v].append(rec)
                log(f'ckpt   r{rnd} {v:5} {rec["mbs"]:8.1f} MB/s  CPU/GiB '
                    f'httpd {rec["httpd_cpu_gib"]:.2f} s pg '
                    f'{rec["pg_cpu_gib"]:.2f} s  {"ok" if ok else "CORRUPT"}')
        # transactions per GiB: one more upload per value, untimed, with
        # every statement logged
        trips = {}
        self.pg_set('log_statement', 'all')
        try:
            for v in values:
                self.install_ckpt(node, v)
                node.graceful()
                loc = self.create(node.url, self.size)
                kinds, _ = self.trips_window(lambda: self.patch(loc, self.src))
                self.check_and_remove(self.shared, loc, self.src_sha,
                                      self.size)
                trips[v] = dict(
                    round_trips_gib=sum(kinds.values()) * GiB / self.size,
                    writes_gib=sum(n for k, n in kinds.items()
                                   if k.startswith('write')) * GiB / self.size,
                    kinds=kinds)
                log(f'ckpt   {v:5} per GiB: round trips '
                    f'{trips[v]["round_trips_gib"]:.0f}, write transactions '
                    f'{trips[v]["writes_gib"]:.0f}')
        finally:
            self.pg_set('log_statement', 'none')
        base = '16M' if '16M' in values else values[0]
        keys = ('mbs', 'httpd_cpu_gib', 'pg_cpu_gib')
        return {'runs': runs, 'trips': trips,
                'median': {v: {k: med([r[k] for r in runs[v]]) for k in keys}
                           for v in values},
                'ratios_vs_' + base: {v: {k: ratio([r[k] for r in runs[v]],
                                                   [r[k] for r in runs[base]])
                                          for k in keys} for v in values}}

    def fsync_run(self, path, every):
        """Write --size-mib MiB in 1 MiB writes, fdatasync every `every`
        bytes (0: once at the end): (wall s, s spent inside fdatasync)."""
        with open(self.src, 'rb') as f:
            buf = f.read(MiB)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            t = time.monotonic()
            done, in_sync = 0, 0.0
            for _ in range(self.a.size_mib):
                os.write(fd, buf)
                done += MiB
                if every and done % every == 0 and done < self.size:
                    s = time.monotonic()
                    os.fdatasync(fd)
                    in_sync += time.monotonic() - s
            s = time.monotonic()
            os.fdatasync(fd)
            in_sync += time.monotonic() - s
            return time.monotonic() - t, in_sync
        finally:
            os.close(fd)
            os.unlink(path)

    def pgbench_tx(self):
        """Mean latency (ms) of one epoch-conditional write transaction of
        the shape the lease spec gives a checkpoint (BEGIN + writers' lock;
        UPDATE ... WHERE epoch; COMMIT: three round trips), pgbench, one
        client, on a table of its own."""
        self.pg.psql('CREATE TABLE IF NOT EXISTS rs_bench_ckpt (id int '
                     'PRIMARY KEY, epoch bigint, off bigint, lease '
                     'timestamptz); INSERT INTO rs_bench_ckpt VALUES '
                     '(1, 1, 0, now()) ON CONFLICT DO NOTHING')
        script = self.env.gen / 'ckpt.sql'
        script.write_text(
            'BEGIN\\; SELECT pg_advisory_xact_lock(1381190980, 2);\n'
            'UPDATE rs_bench_ckpt SET off = off + 16777216, lease = now() + '
            "interval '10 s' WHERE id = 1 AND epoch = 1;\n"
            'COMMIT;\n')
        r = subprocess.run([str(PG_BIN / 'pgbench'), '-n', '-c', '1', '-T',
                            str(self.a.pgbench_secs), '-f', str(script),
                            '-h', self.pg.host, '-p', str(self.pg.port),
                            '-U', 'rs', 'rs'], capture_output=True, text=True,
                           timeout=120)
        m = re.search(r'latency average = ([\d.]+) ms', r.stdout)
        self.pg.psql('DROP TABLE rs_bench_ckpt')
        if not m:
            raise RuntimeError(f'pgbench: {r.stdout}{r.stderr}')
        return float(m.group(1))

    def checkpoint_parts(self, values):
        """The two parts of a checkpoint this build can show without the
        directive: fdatasync every N bytes of a --size-mib write (on the
        file system of the shared upload directory) against one
        fdatasync at the end, and one epoch-conditional write transaction
        (pgbench). Interleaved rounds; per GiB."""
        path = Path(self.shared) / f'.fsync-probe-{os.getpid()}'
        every = {'end': 0, **{v: parse_size(v) for v in values}}
        runs = {k: [] for k in every}
        tx = []
        for rnd in range(self.a.rounds):
            for k in self.order(rnd, list(every)):
                runs[k].append(self.fsync_run(path, every[k]))
            tx.append(self.pgbench_tx())
        gib = self.size / GiB
        out = {'fsync': {k: [dict(wall=w, in_sync=s) for w, s in r]
                         for k, r in runs.items()},
               'tx_ms': tx, 'per_gib': {}}
        log(f'ckpt   one epoch-conditional write transaction (pgbench, 3 '
            f'round trips): median {med(tx):.2f} ms')
        log(f'ckpt   one fdatasync at the end of {self.a.size_mib} MiB: '
            f'{med([s for _, s in runs["end"]]) * 1000:.0f} ms inside it, '
            f'{med([w for w, _ in runs["end"]]) * 1000:.0f} ms wall')
        for v in values:
            n = GiB / every[v]
            sync = med([s / gib for _, s in runs[v]])
            extra = med([(a[1] - b[1]) / gib for a, b in
                         zip(runs[v], runs['end'])])
            wall = med([(a[0] - b[0]) / gib for a, b in
                        zip(runs[v], runs['end'])])
            txs = n * med(tx) / 1000
            out['per_gib'][v] = dict(checkpoints=n, in_sync_s=sync,
                                     sync_extra_s=extra, wall_extra_s=wall,
                                     tx_s=txs, estimate_s=max(0, extra) + txs)
            log(f'ckpt   every {v:4}: {n:5.0f} checkpoints/GiB; inside '
                f'fdatasync {sync * 1000:6.0f} ms/GiB ({extra * 1000:+6.0f} '
                f'vs once; wall {wall * 1000:+6.0f}), state writes '
                f'{txs * 1000:6.1f} ms/GiB; estimate '
                f'{(max(0, extra) + txs) * 1000:.0f} ms per GiB of one '
                f'stream')
        return out


# ---------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--cases', default=','.join(ALL_CASES))
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--size-mib', type=int, default=512)
    ap.add_argument('--media', choices=('disk', 'tmpfs'), default='disk')
    ap.add_argument('--heads', type=int, default=4000)
    ap.add_argument('--head-conc', type=int, default=4)
    ap.add_argument('--small-n', type=int, default=1000)
    ap.add_argument('--small-kib', type=int, default=64)
    ap.add_argument('--small-conc', type=int, default=16)
    ap.add_argument('--trip-reps', type=int, default=20)
    ap.add_argument('--trip-large', type=int, default=3,
                    help='large uploads in the trips case (of --trip-reps '
                    'POSTs: 2x this many are used)')
    ap.add_argument('--checkpoints', default='1M,16M,64M')
    ap.add_argument('--pgbench-secs', type=int, default=3)
    a = ap.parse_args()
    cases = [c for c in a.cases.split(',') if c]
    unknown = set(cases) - set(ALL_CASES)
    if unknown:
        ap.error(f'unknown cases {sorted(unknown)}; known: {ALL_CASES}')
    why = pg_available()
    if why:
        sys.exit(f'cluster_bench: {why}')
    if a.size_mib % 2:
        ap.error('--size-mib must be even (the trips case sends halves)')
    t0 = time.monotonic()
    b = Bench(a)
    try:
        b.start()
        for c in cases:
            try:
                getattr(b, f'case_{c}')()
            except Exception as e:      # report it, run the other cases
                log(f'{c}: FAILED: {e!r}')
                b.results['cases'].setdefault('failed', {})[c] = repr(e)
    finally:
        b.stop()
        b.results['machine'] = machine()
        mod = Path(os.environ.get('RS_MODULE')
                   or REPO / '.libs' / 'mod_resumable.so')
        b.results['machine']['module'] = (
            f'{mod} (sha256 {hashlib.sha256(mod.read_bytes()).hexdigest()[:16]}'
            f'..., built {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(mod.stat().st_mtime))})')
        b.results['machine']['postgresql'] = subprocess.run(
            [str(PG_BIN / 'postgres'), '--version'], capture_output=True,
            text=True).stdout.strip()
        b.results['seconds'] = time.monotonic() - t0
        OUT.mkdir(exist_ok=True)
        out = OUT / f'cluster-{time.strftime("%Y%m%d-%H%M%S")}.json'
        out.write_text(json.dumps(b.results, indent=1, default=str))
        if a.media == 'tmpfs' or not os.environ.get('RS_KEEP_GEN'):
            shutil.rmtree(b.env.gen, ignore_errors=True)
    report(b.results)
    log(markdown(b.results))
    log(f'JSON: {out}')


def report(res):
    m = res['machine']
    log(f'\nCPU: {m["cpu"]}, {m["cores"]} cores; load at end '
        f'{m["load_at_end"]:.1f}; {m["postgresql"]}; mod_resumable '
        f'{m["mod_resumable"]}; {res["seconds"]:.0f} s\nmodule: '
        f'{m["module"]}')
    c = res['cases']
    for case, keys in (('single', ('mbs', 'httpd_cpu_gib', 'pg_cpu_gib',
                                   'cpu_gib')),
                       ('head', ('rps', 'httpd_cpu_us', 'pg_cpu_us',
                                 'cpu_us')),
                       ('small', ('per_s', 'lat_ms', 'p99_ms',
                                  'httpd_cpu_ms', 'pg_cpu_ms', 'cpu_ms'))):
        if case not in c:
            continue
        log(f'\n{case}: medians ({", ".join(keys)})')
        for n, v in c[case]['median'].items():
            log(f'  {n:14} ' + '  '.join(f'{k} {v[k]:.2f}' for k in keys
                                         if k in v)
                + ('' if v.get('intact', True) else '  NOT INTACT'))
        for r, v in c[case]['ratios'].items():
            log(f'  ratio {r:26} ' + '  '.join(f'{k} {x:.2f}'
                                               for k, x in v.items()))
    if 'checkpoint' in c and 'directive' in c['checkpoint']:
        d = c['checkpoint']['directive']
        log('\ncheckpoint: medians')
        for v, x in d['median'].items():
            log(f'  {v:5} ' + '  '.join(f'{k} {y:.2f}' for k, y in x.items()))


def machine():
    """CPU (the model name lscpu shows), cores, memory, load, versions."""
    def first(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True,
                                  timeout=30).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return '?'
    cpu = '?'
    with open('/proc/cpuinfo') as f:
        for line in f:
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
    with open('/proc/meminfo') as f:
        mem = int(f.readline().split()[1]) // 1024
    return {
        'date': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
        'kernel': os.uname().release, 'cpu': cpu, 'cores': os.cpu_count(),
        'memory_mib': mem, 'load_at_end': os.getloadavg()[0],
        'mod_resumable': first(['git', '-C', str(REPO), 'rev-parse',
                                '--short', 'HEAD']),
        'httpd': first(['apache2', '-v']).split(':', 1)[-1].strip(),
    }


def markdown(res):
    """The figures as BENCHMARKS.md tables (medians; ratios are medians of
    the per-round ratios)."""
    c, L = res['cases'], ['']
    runs = res['args']['rounds']
    cols = {
        'single': [('mbs', 'MB/s', 0), ('httpd_cpu_gib', 'httpd CPU s/GiB', 2),
                   ('pg_cpu_gib', 'PostgreSQL CPU s/GiB', 2),
                   ('cpu_gib', 'server CPU s/GiB', 2)],
        'head': [('rps', 'HEAD/s', 0), ('httpd_cpu_us', 'httpd CPU us/HEAD', 0),
                 ('pg_cpu_us', 'PostgreSQL CPU us/HEAD', 0),
                 ('cpu_us', 'server CPU us/HEAD', 0)],
        'small': [('per_s', 'uploads/s', 0), ('mbs', 'MB/s', 1),
                  ('lat_ms', 'latency median ms', 1), ('p90_ms', 'p90 ms', 1),
                  ('p99_ms', 'p99 ms', 1),
                  ('httpd_cpu_ms', 'httpd CPU ms/upload', 2),
                  ('pg_cpu_ms', 'PostgreSQL CPU ms/upload', 2),
                  ('cpu_ms', 'server CPU ms/upload', 2)]}
    for case, cs in cols.items():
        if case not in c:
            continue
        L += [f'{case} ({runs} rounds)', '',
              '| contender | ' + ' | '.join(h for _, h, _ in cs) + ' |',
              '|---|' + '---:|' * len(cs)]
        for n, v in c[case]['median'].items():
            L.append(f'| {n} | ' + ' | '.join(f'{v[k]:.{d}f}' for k, _, d in cs)
                     + ' |')
        L += ['', '| median of per-round ratios | ' + ' | '.join(
            h for _, h, _ in cs) + ' |', '|---|' + '---:|' * len(cs)]
        for r, v in c[case]['ratios'].items():
            L.append(f'| {r} | ' + ' | '.join(
                f'{v[k]:.2f}' if k in v and v[k] == v[k] else '—'
                for k, _, _ in cs) + ' |')
        L.append('')
    if 'trips' in c:
        L += ['| request (node 0, pgsql) | round trips | transactions | of '
              'them write | statements |', '|---|---:|---:|---:|---|']
        for n, v in c['trips'].items():
            L.append(f'| {n} | {v["round_trips"]:.1f} | '
                     f'{v["transactions"]:.1f} | {v["writes"]:.1f} | '
                     + ', '.join(f'{k} {x:g}' for k, x in
                                 sorted(v['kinds'].items())) + ' |')
        L.append('')
    ck = c.get('checkpoint', {})
    if 'parts' in ck:
        L += ['| checkpoint every | checkpoints/GiB | inside fdatasync '
              'ms/GiB | vs one fdatasync ms/GiB | state writes ms/GiB | '
              'estimate ms/GiB |', '|---|---:|---:|---:|---:|---:|']
        for v, x in ck['parts']['per_gib'].items():
            L.append(f'| {v} | {x["checkpoints"]:.0f} | '
                     f'{x["in_sync_s"] * 1000:.0f} | '
                     f'{x["sync_extra_s"] * 1000:+.0f} | '
                     f'{x["tx_s"] * 1000:.1f} | '
                     f'{x["estimate_s"] * 1000:.0f} |')
        L.append('')
    return '\n'.join(L)


if __name__ == '__main__':
    main()
