"""Gluster: a private GlusterFS volume with one FUSE client per httpd node,
for the cluster tests' FUSE tier (test_1010).

- glusterd runs as root with its own working directory, CLI socket and
  logs under <base>/ (never /var/lib/glusterd); only its management port
  is fixed, 127.0.0.1:24007, because a brick process (glusterfsd) fetches
  its volfile from that port whatever glusterd listens on.
- One volume `rs<pid>` with a single brick <base>/brick on host 127.1
  (BRICK_HOST), so every connection of glusterd, the brick and the clients
  stays on 127.0.0.1. What glusterd keeps outside <base> (its run files in
  /var/run/gluster/vols/<volume>, the brick's log in
  /var/log/glusterfs/bricks/) is removed at stop.
- Volume options: VOLUME_OPTIONS (README "Cluster", storage): the client
  side caches that could show one client stale metadata or data written by
  another are off. Clients: CLIENT_OPTIONS (the kernel's FUSE attribute,
  entry and page caches off for the same reason).
- The test process mounts its own client (the "view") at the shared path;
  each node runs its httpd in a private mount namespace (unshare -m
  --propagation private) where it lazily unmounts the inherited view and
  mounts its OWN client at the same path before it execs httpd, so records
  (which store the area's absolute directory) are valid on every node and
  every node writes through its own FUSE client. The client dies with the
  namespace's last process; client_pids() finds it (by its log file)
  so it is killed by pid when the node is restarted or stopped.
- stop() unmounts and stops everything, bounded, also after failures; a
  leftover of a killed run (processes and mounts under test/gen/<pid> of a
  pid that is gone) is cleaned up by pid before a new start.
"""
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from .cluster import RsCluster

GLUSTERD = shutil.which('glusterd') or '/usr/sbin/glusterd'
GLUSTER = shutil.which('gluster') or '/usr/sbin/gluster'
GLUSTERFS = shutil.which('glusterfs') or '/usr/sbin/glusterfs'
MGMT_PORT = 24007

# Coherence between clients (measured, README "Cluster", storage): right
# after one client's write + fdatasync another client saw the old size and
# short data in 27 of 30 tries with the defaults, and still with only
# stat-prefetch off (the FUSE attribute cache, 1 s) or only
# attribute-timeout=0 (md-cache); in 0 of 30 with both. In-place rewrites
# of a file another client had read stayed invisible to it (its page cache,
# kept across opens) with every performance option off, even a second
# later, until fopen-keep-cache=off. The other client caches are off too:
# a cluster must not depend on which of them fdatasync happens to flush.
VOLUME_OPTIONS = {
    'performance.stat-prefetch': 'off',
    'performance.quick-read': 'off',
    'performance.io-cache': 'off',
    'performance.read-ahead': 'off',
    'performance.write-behind': 'off',
    'performance.open-behind': 'off',
    'performance.readdir-ahead': 'off',
    'network.ping-timeout': '5',
    # a client cut from the brick loses its locks there at once (another
    # client takes them) and is not told: reconnected, it used its locked
    # descriptor as before. With strict-locks a descriptor that held locks
    # fails (EBADFD) after the reconnect, so the loss can be seen; others
    # (the data file's) go on working: test_1010_07
    'client.strict-locks': 'on',
}
# the client (glusterfs) is run directly rather than through mount -t
# glusterfs: mount.glusterfs 10.3 turns fopen-keep-cache=off into
# --fopen-keep-cache==off, which glusterfs refuses
CLIENT_OPTIONS = ['--fopen-keep-cache=off', '--attribute-timeout=0',
                  '--entry-timeout=0', '--negative-timeout=0']


class GlusterUnusable(RuntimeError):
    """FUSE or glusterd cannot be used here (the tier is skipped)."""


def _run(argv, timeout=30, check=True):
    r = subprocess.run([str(a) for a in argv], capture_output=True,
                       text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f'{" ".join(map(str, argv))}: exit {r.returncode}'
                           f'\n{r.stdout}{r.stderr}')
    return r


def _cmdline(pid):
    try:
        with open(f'/proc/{pid}/cmdline', 'rb') as f:
            return [a.decode(errors='replace') for a in f.read().split(b'\0')]
    except OSError:
        return []


def _pids_with_arg(pred):
    """pids of processes (not zombies) one of whose arguments matches."""
    out = []
    for d in os.listdir('/proc'):
        if d.isdigit() and any(pred(a) for a in _cmdline(d)):
            try:
                with open(f'/proc/{d}/stat') as f:
                    if f.read().rsplit(')', 1)[1].split()[0] in 'ZX':
                        continue
            except (OSError, IndexError):
                continue
            out.append(int(d))
    return out


def _kill_wait(pids, timeout=10):
    """SIGTERM, then SIGKILL after timeout; each pid is ours."""
    def alive(p):
        try:
            with open(f'/proc/{p}/stat') as f:
                return f.read().rsplit(')', 1)[1].split()[0] not in 'ZX'
        except (OSError, IndexError):
            return False
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        for p in pids:
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(alive(p) for p in pids):
            time.sleep(0.05)
        pids = [p for p in pids if alive(p)]
        if not pids:
            return


def _mounts_under(prefix):
    out = []
    try:
        with open('/proc/mounts') as f:
            for line in f:
                mp = line.split()[1].replace('\\040', ' ')
                if mp.startswith(str(prefix)):
                    out.append(mp)
    except OSError:
        pass
    return out


def _umount(path):
    r = _run(['umount', path], timeout=30, check=False)
    if r.returncode != 0:
        _run(['umount', '-l', path], timeout=30, check=False)


# gluster refuses "127.0.0.1" and "localhost" as a brick host by their
# spelling; "127.1" is the same address (inet_aton), so glusterd, the brick
# and every client connect to 127.0.0.1 only, whatever the host name is
BRICK_HOST = '127.1'


def gluster_available():
    """None when the tier can run here, else the reason (a visible skip)."""
    if os.geteuid() != 0:
        return 'needs root (glusterd, mount -t glusterfs, mount namespaces)'
    for tool in (GLUSTERD, GLUSTER, GLUSTERFS):
        if not Path(tool).exists():
            return f'GlusterFS not installed ({tool} missing: glusterfs-server)'
    if not shutil.which('unshare'):
        return 'unshare (util-linux) missing'
    try:
        os.close(os.open('/dev/fuse', os.O_RDWR))
    except OSError as ex:
        return f'FUSE unusable here (/dev/fuse: {ex.strerror})'
    return None


def clean_stale(gen_base):
    """Processes and mounts left by a killed run under gen_base/<pid>/ whose
    pid is gone (its glusterd, brick and clients, the httpd nodes of its
    GlusterCluster): unmount, kill by pid, drop its glusterd run files."""
    gen_base = str(gen_base).rstrip('/') + '/'
    rx = re.compile(re.escape(gen_base) + r'(\d+)/')

    def stale(arg):
        m = rx.search(arg)
        return bool(m) and not Path(f'/proc/{m.group(1)}').exists()

    def ours(pid):      # gluster's, and httpd nodes of a gluster tier
        argv = _cmdline(pid)
        return argv and (Path(argv[0]).name.startswith('gluster') or any(
            '/gluster-cluster/' in a for a in argv))
    for mp in _mounts_under(gen_base):
        if stale(mp + '/'):
            _umount(mp)
    pids = [p for p in _pids_with_arg(stale) if ours(p)]
    if pids:
        _kill_wait(pids)
    for d in Path('/var/run/gluster/vols').glob('rs[0-9]*'):
        if not Path(f'/proc/{d.name[2:]}').exists():
            shutil.rmtree(d, ignore_errors=True)


class Gluster:

    def __init__(self, base, volume=None):
        self.base = Path(base)
        self.volume = volume or f'rs{os.getpid()}'
        self.wd = self.base / 'glusterd'
        self.run_dir = self.base / 'run'
        self.logs = self.base / 'logs'
        self.brick = self.base / 'brick'
        self.vol_file = self.base / 'glusterd.vol'
        self.pid_file = self.run_dir / 'glusterd.pid'
        self.cli_sock = self.run_dir / 'cli.socket'
        self.host = BRICK_HOST
        self.mounts = []            # this namespace's client mounts
        self.started = False

    # ---- glusterd and the volume ---------------------------------------------
    def cli(self, *args, timeout=60, check=True):
        return _run([GLUSTER, '--mode=script',
                     f'--glusterd-sock={self.cli_sock}',
                     f'--log-file={self.logs}/cli.log'] + list(args),
                    timeout=timeout, check=check)

    def _write_vol(self):
        self.vol_file.write_text(
            'volume management\n'
            '    type mgmt/glusterd\n'
            f'    option working-directory {self.wd}\n'
            f'    option glusterd-sockfile {self.cli_sock}\n'
            '    option transport-type socket\n'
            f'    option transport.socket.listen-port {MGMT_PORT}\n'
            '    option transport.socket.bind-address 127.0.0.1\n'
            '    option ping-timeout 0\n'
            '    option event-threads 1\n'
            'end-volume\n')

    def glusterd_pid(self):
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if Path(f'/proc/{pid}').exists() else None

    def start(self):
        clean_stale(_gen_base(self.base))
        if self.base.exists():
            shutil.rmtree(self.base)
        for d in (self.wd, self.run_dir, self.logs, self.brick):
            d.mkdir(parents=True)
        self._write_vol()
        probe = socket.socket()
        try:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(('127.0.0.1', MGMT_PORT))
        except OSError:
            raise GlusterUnusable(f'127.0.0.1:{MGMT_PORT} is taken (another '
                                  'glusterd?): the tier needs its own there')
        finally:
            probe.close()
        self.started = True
        r = _run([GLUSTERD, '-f', self.vol_file, '-p', self.pid_file,
                  '-l', self.logs / 'glusterd.log',
                  '-S', self.run_dir / 'glusterd.socket'], check=False)
        if r.returncode != 0:
            raise GlusterUnusable(f'glusterd does not start (exit '
                                  f'{r.returncode}): {r.stderr.strip()}')
        if not self._wait(lambda: self.cli('volume', 'list', timeout=10,
                                            check=False).returncode == 0, 20):
            raise RuntimeError('glusterd does not answer:\n' + self._tail())
        self.cli('volume', 'create', self.volume,
                 f'{self.host}:{self.brick}', 'force')
        for k, v in VOLUME_OPTIONS.items():
            self.cli('volume', 'set', self.volume, k, v)
        self.cli('volume', 'start', self.volume, 'force')
        if not self._wait(self._brick_online, 20):
            raise RuntimeError('the brick is not online:\n' + self._tail())
        return self

    def _brick_online(self):
        r = self.cli('volume', 'status', self.volume, '--xml', timeout=10,
                     check=False)
        return r.returncode == 0 and re.search(
            f'<path>{re.escape(str(self.brick))}</path>.*?'
            r'<status>1</status>', r.stdout, re.S)

    @staticmethod
    def _wait(cond, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if cond():
                    return True
            except (subprocess.TimeoutExpired, OSError):
                pass            # (a FUSE mount that is not up yet)
            time.sleep(0.1)
        return False

    def _tail(self):
        try:
            return (self.logs / 'glusterd.log').read_text(
                errors='replace')[-3000:]
        except OSError:
            return ''

    # ---- clients -------------------------------------------------------------
    def client_argv(self, path, name):
        """The FUSE client `name` mounting the volume at path."""
        return ([GLUSTERFS] + CLIENT_OPTIONS
                + [f'--log-file={self.logs}/client-{name}.log',
                   f'--process-name=fuse.{name}',
                   '--volfile-server=127.0.0.1',
                   f'--volfile-id=/{self.volume}', str(path)])

    def mount(self, path, name='view'):
        """A client of the test process at path (this namespace)."""
        Path(path).mkdir(parents=True, exist_ok=True)
        r = _run(self.client_argv(path, name), timeout=60, check=False)
        if r.returncode != 0 or not self._wait(
                lambda: os.stat(path).st_ino == 1, 20):    # gluster's root
            self.kill_client(name)
            raise GlusterUnusable(f'the FUSE client does not mount (exit '
                                  f'{r.returncode}): {(r.stderr or r.stdout).strip()} '
                                  f'{self._client_log(name)}')
        self.mounts.append(str(path))
        return Path(path)

    def _client_log(self, name):
        try:
            return (self.logs / f'client-{name}.log').read_text(
                errors='replace')[-1500:]
        except OSError:
            return ''

    def node_wrap(self, path, name):
        """A function turning an httpd start argv into one that runs it in
        a private mount namespace with its own client mounted at path (the
        test's view, inherited, is lazily unmounted there first; the wait
        for the mount is bounded: 20 s)."""
        def wrap(argv):
            self.kill_client(name)      # of this node's previous namespace
            q = shlex.quote(str(path))
            client = ' '.join(map(shlex.quote, self.client_argv(path, name)))
            sh = (f'umount -l {q} 2>/dev/null; {client} || exit 97; '
                  f'i=0; while [ "$(stat -c %i {q})" != 1 ]; do '
                  'i=$((i+1)); [ $i -gt 200 ] && exit 98; sleep 0.1; done; '
                  'exec "$@"')
            return (['unshare', '-m', '--propagation', 'private', '--',
                     'sh', '-c', sh, 'sh'] + list(argv))
        return wrap

    def umount(self, path, name):
        _umount(str(path))
        if str(path) in self.mounts:
            self.mounts.remove(str(path))
        self.kill_client(name)

    def brick_port(self):
        r = self.cli('volume', 'status', self.volume, '--xml', timeout=10)
        m = re.search(r'<port>(\d+)</port>', r.stdout)
        return int(m.group(1)) if m else None

    def cut_client(self, name):
        """Cut client `name`'s TCP connections to the brick (ss -K: a
        network blip; the client reconnects). Returns how many were cut."""
        port = self.brick_port()
        pids = self.client_pids(name)
        r = _run(['ss', '-tnpH', 'dport', '=', f':{port}'], check=False)
        sports = [line.split()[3].rsplit(':', 1)[1]
                  for line in r.stdout.splitlines()
                  if any(f'pid={p},' in line for p in pids)]
        cut = 0
        for sp in sports:
            _run(['ss', '-K', '-tn', 'sport', '=', f':{sp}', 'and', 'dport',
                  '=', f':{port}'], check=False)
            left = _run(['ss', '-tnH', 'sport', '=', f':{sp}', 'and',
                         'dport', '=', f':{port}'], check=False).stdout
            cut += 0 if 'ESTAB' in left or left.strip() else 1
        return cut

    def client_pids(self, name):
        log = f'--log-file={self.logs}/client-{name}.log'
        return _pids_with_arg(lambda a: a == log)

    def kill_client(self, name):
        pids = self.client_pids(name)
        if pids:
            _kill_wait(pids)

    # ---- teardown ------------------------------------------------------------
    def stop(self):
        """Unmount and stop everything (bounded; also after failures)."""
        for mp in reversed(self.mounts):
            _umount(mp)
        self.mounts = []
        clients = _pids_with_arg(lambda a: a.startswith(
            f'--log-file={self.logs}/client-'))
        if clients:
            _kill_wait(clients)
        if not self.started:
            return
        self.started = False
        if self.glusterd_pid():
            try:
                self.cli('volume', 'stop', self.volume, 'force', timeout=30,
                         check=False)
                self.cli('volume', 'delete', self.volume, timeout=30,
                         check=False)
            except subprocess.TimeoutExpired:
                pass
        bricks = _pids_with_arg(lambda a: a == str(self.brick))
        pid = self.glusterd_pid()
        _kill_wait(bricks + ([pid] if pid else []))
        shutil.rmtree(f'/var/run/gluster/vols/{self.volume}',
                      ignore_errors=True)
        brick_log = str(self.brick).strip('/').replace('/', '-') + '.log'
        Path('/var/log/glusterfs/bricks', brick_log).unlink(missing_ok=True)


def _gen_base(path):
    """test/gen of a path below test/gen/<pid>/..."""
    p = Path(path)
    for parent in p.parents:
        if parent.name == 'gen':
            return parent
    return p.parent


class GlusterCluster(RsCluster):
    """RsCluster whose shared directory is a Gluster volume: the test
    process reads it through its own client, every node writes through its
    own (each httpd in its own mount namespace, see Gluster.node_wrap)."""

    def __init__(self, env, pg_params, gluster, n=2):
        super().__init__(env, pg_params, n, name='gluster-cluster')
        self.gluster = gluster

    def setup(self):
        for e in self.nodes + [self.front]:
            e.setup(build=False)
        path = self.base / 'shared'
        self.gluster.mount(path, 'view')
        self.shared = self.env.mkdir_www(path)
        for i, node in enumerate(self.nodes):
            node.start_wrap = self.gluster.node_wrap(path, f'node{i}')
        return self

    def node_client(self, i):
        """pids of node i's FUSE client (glusterfs)."""
        return self.gluster.client_pids(f'node{i}')

    def stop(self):
        super().stop()
        for i in range(len(self.nodes)):
            self.gluster.kill_client(f'node{i}')
