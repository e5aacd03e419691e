"""RsEnv: a generated httpd instance with mod_resumable, for the pytest suite.

One RsEnv per pytest session. It owns a fresh gen dir test/gen/<pid>/, a free
port on 127.0.0.1, the generated httpd.conf and the error log checks.
Every wait here is bounded in time.
"""
import glob
import grp
import os
import pwd
import random
import re
import shutil
import random
import signal
import socket
import subprocess
import time
from pathlib import Path

from .client import RsClient, Tus, set_default_base

APACHE = os.environ.get('RS_APACHE', '/usr/sbin/apache2')
MODULES_DIR = os.environ.get('RS_MODULES_DIR', '/usr/lib/apache2/modules')
# Sanitizer runs (make asan-test): RS_MODULE is the module httpd loads
# instead of .libs/mod_resumable.so (the harness does not build it),
# RS_PRELOAD the sanitizer runtime httpd runs with (LD_PRELOAD). Reports go
# to gen/sanitizer/report.<pid>; check_log() turns them into failures.
RS_MODULE = os.environ.get('RS_MODULE')
RS_PRELOAD = os.environ.get('RS_PRELOAD')

# httpd modules every generated config loads (mpm first)
BASE_MODULES = ['mpm_event', 'authz_core', 'authz_host', 'authn_core',
                'authn_file', 'auth_basic', 'authz_user', 'mime', 'dir',
                'headers', 'reqtimeout', 'setenvif', 'status', 'http2']

BAD_LEVELS = {'emerg', 'alert', 'crit', 'error', 'warn'}
# always fatal, whatever the level (AH00052 "child pid N exit signal ...")
FATAL_WORDS = ('Segmentation fault', 'exit signal')
# known-benign httpd lines, for the whole package
PACKAGE_ALLOW_TAGS = {
    'AH00558',   # could not reliably determine the server's FQDN
}
PACKAGE_ALLOW_PATTERNS = []

RE_LOG = re.compile(r'^\[[^\]]*\] \[(?:([\w.-]*):)?(\w+)\]')
RE_TAG = re.compile(r'\b((?:RS|AH)\d{5}):')


class RsArea:
    """One upload area of the generated config.

    kind='location'  <Location path> SetHandler resumable; ResumableDir dir
    kind='directory' <Directory docroot/path> SetHandler resumable (no
                     ResumableDir: the area is that directory)
    kind='htaccess'  <Directory docroot/path> AllowOverride ...; the
                     directives (and SetHandler) go to its .htaccess file
    dir: None (derived from path), a bare name (env.area_dir(name)) or an
    absolute path. `section` holds extra lines for the section itself
    (e.g. auth) that never go into .htaccess. `files` maps file names to
    contents written into the area dir (e.g. a static file).
    """

    def __init__(self, path, dir=None, directives=(), kind='location',
                 handler='resumable', resumable_dir=True, section=(),
                 allow_override='All', htaccess=None, files=None):
        assert kind in ('location', 'directory', 'htaccess'), kind
        self.path = path if path.endswith('/') else path + '/'
        self.dir = dir
        self.directives = list(directives)
        self.kind = kind
        self.handler = handler
        self.resumable_dir = resumable_dir
        self.section = list(section)
        self.allow_override = allow_override
        self.htaccess = htaccess
        self.files = dict(files or {})

    def resolve(self, env):
        name = self.path.strip('/').replace('/', '_') or 'root'
        if self.kind == 'location':
            if self.dir is None:
                self.dir = env.area_dir(name)
            elif '/' not in str(self.dir):
                self.dir = env.area_dir(str(self.dir))
        else:
            if self.dir is None:
                self.dir = env.docroot / self.path.strip('/')
            self.dir = Path(self.dir)
            self.dir.mkdir(parents=True, exist_ok=True)
            env.chown_www(self.dir)
        self.dir = Path(self.dir)
        for fname, content in self.files.items():
            p = self.dir / fname
            p.write_bytes(content if isinstance(content, bytes) else content.encode())
            env.chown_www(p)
        return self

    def conf(self):
        lines = []
        if self.kind == 'location':
            lines.append(f'<Location "{self.path}">')
            if self.handler:
                lines.append(f'    SetHandler {self.handler}')
            if self.resumable_dir:
                lines.append(f'    ResumableDir "{self.dir}"')
            lines += [f'    {d}' for d in self.section + self.directives]
            lines.append('</Location>')
        elif self.kind == 'directory':
            lines.append(f'<Directory "{self.dir}">')
            if self.handler:
                lines.append(f'    SetHandler {self.handler}')
            lines += [f'    {d}' for d in self.section + self.directives]
            lines.append('</Directory>')
        else:
            lines.append(f'<Directory "{self.dir}">')
            lines.append(f'    AllowOverride {self.allow_override}')
            lines += [f'    {d}' for d in self.section]
            lines.append('</Directory>')
            text = self.htaccess
            if text is None:
                text = ''.join(f'{d}\n' for d in
                               ([f'SetHandler {self.handler}'] if self.handler else [])
                               + self.directives)
            (self.dir / '.htaccess').write_text(text)
        return '\n'.join(lines) + '\n'


def _pid_alive(pid):
    try:
        with open(f'/proc/{pid}/stat') as f:
            state = f.read().rsplit(')', 1)[1].split()[0]
        return state not in ('Z', 'X')
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def _proc_children(ppid):
    kids = []
    for stat in glob.glob('/proc/[0-9]*/stat'):
        try:
            with open(stat) as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == ppid and fields[0] not in ('Z', 'X'):
            kids.append(int(stat.split('/')[2]))
    return sorted(kids)


def _detach_mounts(path):
    """umount -l every mount below path, deepest first (a killed run's
    tmpfs or FUSE mounts: rmtree must not walk into them, nor hang on a
    FUSE client that is gone)."""
    prefix = str(path).rstrip('/') + '/'
    try:
        with open('/proc/mounts') as f:
            mps = [line.split()[1].replace('\\040', ' ') for line in f]
    except OSError:
        return
    for mp in sorted((m for m in mps if m.startswith(prefix)), reverse=True):
        subprocess.run(['umount', '-l', mp], capture_output=True, timeout=30)


def _bindable(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(('127.0.0.1', port))
        return s.getsockname()[1]
    except OSError:
        return None
    finally:
        s.close()


def wait_for(cond, timeout=20, step=0.05):
    """Poll cond() until it is truthy or timeout seconds passed (bounded);
    returns its last value."""
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() > end:
            return v
        time.sleep(step)


def _listeners(port):
    """Who listens on port (ss), for a failure message."""
    try:
        r = subprocess.run(['ss', '-ltnp', f'sport = :{port}'],
                           capture_output=True, text=True, timeout=10)
        return r.stdout
    except (OSError, subprocess.SubprocessError) as ex:
        return str(ex)


def _free_port():
    """A free port below the ephemeral range when possible: a server that
    stops and starts again on an ephemeral port can find it taken by an
    outgoing connection of any process of the machine in between."""
    try:
        with open('/proc/sys/net/ipv4/ip_local_port_range') as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 0
    rnd = random.SystemRandom()
    for _ in range(100 if low > 12000 else 0):
        port = _bindable(rnd.randrange(10000, low))
        if port:
            return port
    return _bindable(0)


class RsEnv:

    def __init__(self, repo=None, gen=None, port=None):
        self.repo = Path(repo or Path(__file__).resolve().parents[2])
        self.gen = Path(gen or self.repo / 'test' / 'gen' / str(os.getpid()))
        self.port = port or _free_port()
        self.host = '127.0.0.1'
        self.url = f'http://{self.host}:{self.port}'
        self.module_path = (Path(RS_MODULE) if RS_MODULE
                            else self.repo / '.libs' / 'mod_resumable.so')
        self.apache = APACHE
        self.conf_path = self.gen / 'conf' / 'httpd.conf'
        self.logs = self.gen / 'logs'
        self.error_log = self.logs / 'error_log'
        self.access_log = self.logs / 'access_log'
        self.pid_file = self.logs / 'httpd.pid'
        self.docroot = self.gen / 'htdocs'
        self.state_dir = self.gen / 'state'
        self.statedb = self.state_dir / 'state'
        self.as_root = os.geteuid() == 0
        self.www_user = os.environ.get('RS_USER', 'www-data')
        self.www_group = os.environ.get('RS_GROUP', 'www-data')
        self.running_conf = None    # conf text the running server was started with
        self.last_conf = None       # text last written by install()
        self._log_pos = 0
        self._pending_bad = []
        self.last_fail_output = ''
        # argv -> argv for `-k start` (pyrs/gluster.py: a private mount
        # namespace with the node's own FUSE client), None: as is
        self.start_wrap = None
        self._class_allow = ([], [])
        self._test_allow = ([], [])
        # RS_STATE=pgsql: the default state database is PostgreSQL through
        # mod_dbd (ResumableStateDB dbd:); pg_params is its DBDParams, set
        # by the session fixture (test/conftest.py) or RS_PG_PARAMS
        self.pg_params = os.environ.get('RS_PG_PARAMS') \
            if os.environ.get('RS_STATE') == 'pgsql' else None
        self.client = RsClient(self.url)
        set_default_base(self.url)

    # ---- setup --------------------------------------------------------------
    def setup(self, build=True):
        if build:
            self.build()
        self._clean_stale_gens()
        if self.gen.exists():
            shutil.rmtree(self.gen)
        for d in (self.gen / 'conf', self.logs, self.docroot, self.state_dir,
                  self.gen / 'run', self.gen / 'areas'):
            d.mkdir(parents=True, exist_ok=True)
        self.chown_www(self.state_dir)
        self.chown_www(self.gen / 'areas')
        (self.docroot / 'index.html').write_text(
            '<html><body><h1>mod_resumable test</h1></body></html>\n')
        (self.docroot / 'static.txt').write_text('static text\n')
        self.error_log.touch()
        return self

    def _clean_stale_gens(self):
        """Remove gen dirs of earlier sessions whose process is gone."""
        base = self.repo / 'test' / 'gen'
        if not base.is_dir():
            return
        for d in base.iterdir():
            if d.is_dir() and d.name.isdigit() and d != self.gen \
                    and not os.path.exists(f'/proc/{d.name}'):
                _detach_mounts(d)
                shutil.rmtree(d, ignore_errors=True)

    def build(self):
        """Run make when the module is missing or older than its sources."""
        if RS_MODULE:
            return
        srcs = [self.repo / 'mod_resumable.c', self.repo / 'Makefile',
                self.repo / 'Makefile.apxs', self.repo / 'exports.map']
        srcs += [Path(p) for p in glob.glob(str(self.repo / 'src' / '*.c'))]
        srcs += [Path(p) for p in glob.glob(str(self.repo / 'include' / '*.h'))]
        newest = max((p.stat().st_mtime for p in srcs if p.exists()), default=0)
        if self.module_path.exists() and self.module_path.stat().st_mtime >= newest:
            return
        r = subprocess.run(['make', '-C', str(self.repo)], capture_output=True,
                           text=True, timeout=600)
        if r.returncode != 0 or not self.module_path.exists():
            raise RuntimeError(
                f'building mod_resumable failed (make -C {self.repo}, exit '
                f'{r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}')

    def chown_www(self, path):
        if self.as_root:
            try:
                os.chown(path, pwd.getpwnam(self.www_user).pw_uid,
                         grp.getgrnam(self.www_group).gr_gid)
            except (KeyError, FileNotFoundError):
                pass

    def area_dir(self, name):
        """gen/areas/<name>: created and owned by the httpd user."""
        d = self.gen / 'areas' / name
        d.mkdir(parents=True, exist_ok=True)
        self.chown_www(d)
        return d

    def mkdir_www(self, path):
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.chown_www(path)
        return path

    def tus(self, area='/files/', **kw):
        return Tus(self.client, area, **kw)

    # ---- config -------------------------------------------------------------
    def default_areas(self):
        return [RsArea('/files/', dir=self.area_dir('files'),
                       directives=['ResumableExpire 1h'])]

    def install_default(self):
        return self.install(areas=self.default_areas())

    def conf_text(self, areas=None, server_extra='', extra='', loglevel=None,
                  h2=False, statedb=True, sweep='1', load_module=True,
                  modules=None):
        areas = [a.resolve(self) for a in (areas or [])]
        if loglevel is None:
            loglevel = 'warn resumable:debug' if load_module else 'warn'
        mods = BASE_MODULES if modules is None else modules
        L = [
            '# generated by test/pyrs/env.py',
            f'ServerRoot "{self.gen}"',
            f'DefaultRuntimeDir "{self.gen}/run"',
            f'PidFile "{self.pid_file}"',
            f'Listen {self.host}:{self.port}',
            f'ServerName {self.host}',
        ]
        L += [f'LoadModule {m}_module "{MODULES_DIR}/mod_{m}.so"' for m in mods]
        if load_module:
            L.append(f'LoadModule resumable_module "{self.module_path}"')
        if self.as_root:
            L += [f'User {self.www_user}', f'Group {self.www_group}']
        L += [
            f'ErrorLog "{self.error_log}"',
            f'LogLevel {loglevel}',
            'LogFormat "%h %l %u %t \\"%r\\" %>s %b %D pid=%P" rs',
            f'CustomLog "{self.access_log}" rs',
            'Timeout 10',
            'KeepAlive On',
            'StartServers 2',
            'ServerLimit 4',
            'ThreadsPerChild 16',
            'MaxRequestWorkers 64',
            'MinSpareThreads 16',
            'MaxSpareThreads 64',
            'TypesConfig /etc/mime.types',
            'DirectoryIndex index.html',
            f'Protocols {"h2c http/1.1" if h2 else "http/1.1"}',
            f'DocumentRoot "{self.docroot}"',
            '<Directory />',
            '    AllowOverride None',
            '    Require all denied',
            '</Directory>',
            f'<Directory "{self.docroot}">',
            '    AllowOverride None',
            '    Require all granted',
            '</Directory>',
            '<Location "/server-status">',
            '    SetHandler server-status',
            '    Require ip 127.0.0.1',
            '</Location>',
        ]
        if load_module:
            if statedb is True and self.pg_params:
                L += [f'LoadModule dbd_module "{MODULES_DIR}/mod_dbd.so"',
                      'DBDriver pgsql', f'DBDParams "{self.pg_params}"',
                      'ResumableStateDB dbd:']
            elif statedb is True:
                L.append(f'ResumableStateDB "{self.statedb}"')
            elif statedb:
                L.append(f'ResumableStateDB {statedb}')
            if sweep:
                L.append(f'ResumableSweepInterval {sweep}')
        if server_extra:
            L.append(server_extra)
        for a in areas:
            L.append(a.conf())
        if extra:
            L.append(extra)
        return '\n'.join(L) + '\n'

    def install(self, areas=None, server_extra='', extra='', conf_path=None, **kw):
        """Write the config (default gen/conf/httpd.conf); returns its path.

        kw: loglevel, h2, statedb (True=default path, False=none, or a
        '[TYPE:]PATH' string), sweep ('1' default, None = not set),
        load_module, modules (list of base httpd modules to load).
        """
        text = self.conf_text(areas=areas, server_extra=server_extra,
                              extra=extra, **kw)
        path = Path(conf_path) if conf_path else self.conf_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if path == self.conf_path:
            self.last_conf = text
        return path

    def configtest(self, conf_path=None):
        """apache2 -t on the config: (exit code, stdout+stderr)."""
        r = subprocess.run([self.apache, '-t', '-d', str(self.gen), '-f',
                            str(conf_path or self.conf_path)],
                           capture_output=True, text=True, timeout=60,
                           env=self.httpd_env())
        return r.returncode, r.stdout + r.stderr

    def apache_fail(self, timeout=10):
        """Nonzero when httpd refuses the installed config, at -t or at start
        (post_config). A server that starts is stopped again and 0 returned."""
        rc, out = self.configtest()
        if rc != 0:
            self.last_fail_output = out
            return rc
        # lines so far are checked as usual; those of the refused start are
        # expected and skipped
        self._pending_bad += self.check_log()
        rc = self.start(check=False, timeout=timeout)
        if rc == 0:
            self.stop()
        else:
            self.skip_log()
        return rc

    # ---- process control ----------------------------------------------------
    def _apachectl(self, cmd):
        argv = [self.apache, '-d', str(self.gen), '-f', str(self.conf_path),
                '-k', cmd]
        if cmd == 'start' and self.start_wrap:
            argv = self.start_wrap(argv)
        return subprocess.run(argv,
                              capture_output=True, text=True, timeout=60,
                              env=self.httpd_env())

    def pid(self):
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _pid_alive(pid) else None

    def children(self):
        """pids of the child processes of the running httpd parent."""
        pid = self.pid()
        return _proc_children(pid) if pid else []

    def is_live(self, timeout=1.0):
        try:
            with socket.create_connection((self.host, self.port), timeout=timeout) as s:
                s.settimeout(timeout)
                s.sendall(b'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n')
                return s.recv(12).startswith(b'HTTP/1.')
        except OSError:
            return False

    def wait_live(self, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.pid() and self.is_live():
                return True
            time.sleep(0.1)
        return False

    def start(self, check=True, timeout=15):
        """Start httpd with the installed config; wait until the port answers.
        Returns 0 on success, else nonzero (or raises when check); the
        reason is kept in self.last_fail_output."""
        if self.pid():
            self.stop()
        self._wait_port_free(15)
        pos = self._log_size()
        r = self._apachectl('start')
        if r.returncode == 0:
            deadline = time.time() + timeout
            while time.time() < deadline:
                if self.pid() and self.is_live():
                    self.running_conf = self.last_conf
                    return 0
                if 'AH00016' in self._read_log(pos):    # Configuration Failed
                    break
                time.sleep(0.1)
        msg = (f'httpd failed to start (exit {r.returncode}):\n{r.stdout}{r.stderr}'
               f'\nerror_log:\n{self._read_log(pos)[-4000:]}')
        if 'AH00072' in msg:
            msg += '\nlisteners on the port:\n' + _listeners(self.port)
        self.stop()
        self.last_fail_output = msg
        if check:
            raise RuntimeError(msg)
        return r.returncode or 1

    def _wait_port_free(self, timeout):
        """Until our port can be bound (a process of the instance before,
        still closing its listener, holds it for a moment)."""
        deadline = time.time() + timeout
        while True:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((self.host, self.port))
                return True
            except OSError:
                if time.time() >= deadline:
                    return False
                time.sleep(0.1)
            finally:
                s.close()

    def _wait_gone(self, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if not self.pid():
                return True
            time.sleep(0.1)
        return not self.pid()

    def stop(self):
        pid = self.pid()
        if not pid:
            self.running_conf = None
            return 0
        kids = self.children()
        self._apachectl('stop')
        if not self._wait_gone(20):
            # our own processes only, by pid
            for p in [pid] + kids:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self._wait_gone(5)
        deadline = time.time() + 10
        while time.time() < deadline and any(_pid_alive(k) for k in kids):
            time.sleep(0.1)
        self.running_conf = None
        return 0

    def _signal_restart(self, cmd, timeout):
        if not self.pid():
            return self.start()
        pos = self._log_size()
        r = self._apachectl(cmd)
        if r.returncode != 0:
            raise RuntimeError(f'{cmd} failed: {r.stdout}{r.stderr}')
        deadline = time.time() + timeout
        while time.time() < deadline:
            if 'resuming normal operations' in self._read_log(pos):
                break
            time.sleep(0.1)
        else:
            raise RuntimeError(f'httpd did not come back after {cmd}:\n'
                               f'{self._read_log(pos)[-3000:]}')
        if not self.wait_live(max(1, deadline - time.time())):
            raise RuntimeError(f'httpd not answering after {cmd}')
        self.running_conf = self.last_conf
        return 0

    def restart(self, timeout=20):
        return self._signal_restart('restart', timeout)

    def graceful(self, timeout=20):
        return self._signal_restart('graceful', timeout)

    def wait_children(self, exclude=(), timeout=15):
        """Wait until a child not in `exclude` serves; returns new pids."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            new = [c for c in self.children() if c not in exclude]
            if new and self.is_live():
                return new
            time.sleep(0.1)
        return []

    def child_for_connection(self, sock):
        """pid of the httpd child holding the server side of a client socket."""
        cport = sock.getsockname()[1]
        want = f'{socket.htonl(0x7f000001):08X}:{self.port:04X}'
        want_rem = f'{socket.htonl(0x7f000001):08X}:{cport:04X}'
        inode = None
        try:
            with open('/proc/net/tcp') as f:
                for line in f.readlines()[1:]:
                    parts = line.split()
                    if parts[1] == want and parts[2] == want_rem:
                        inode = parts[9]
                        break
        except OSError:
            return None
        if not inode or inode == '0':
            return None
        target = f'socket:[{inode}]'
        for kid in self.children():
            for fd in glob.glob(f'/proc/{kid}/fd/*'):
                try:
                    if os.readlink(fd) == target:
                        return kid
                except OSError:
                    continue
        return None

    # ---- error log ----------------------------------------------------------
    def _log_size(self):
        try:
            return self.error_log.stat().st_size
        except FileNotFoundError:
            return 0

    def _read_log(self, pos):
        try:
            with open(self.error_log, 'rb') as f:
                f.seek(pos)
                return f.read().decode('utf-8', 'replace')
        except FileNotFoundError:
            return ''

    def log_lines(self, since=0):
        return self._read_log(since).splitlines()

    def log_mark(self):
        return self._log_size()

    def allow_errors(self, tags=(), patterns=()):
        """Allow error log lines in the current test by tag (RS01234, AH01234)
        or by regex pattern."""
        self._test_allow[0].extend(tags)
        self._test_allow[1].extend(patterns)

    @staticmethod
    def bad_lines(text, tags=(), patterns=()):
        tags = set(tags) | PACKAGE_ALLOW_TAGS
        pats = [re.compile(p) for p in list(patterns) + PACKAGE_ALLOW_PATTERNS]
        bad = []
        for line in text.splitlines():
            if not line.strip():
                continue
            m = RE_LOG.match(line)
            fatal = any(w in line for w in FATAL_WORDS)
            if m:
                if m.group(2) not in BAD_LEVELS and not fatal:
                    continue
            # unformatted lines are stderr of a process: suspicious too
            if any(t in tags for t in RE_TAG.findall(line)):
                continue
            if any(p.search(line) for p in pats):
                continue
            bad.append(line)
        return bad

    def begin_class(self, allow=None):
        allow = allow or {}
        self._class_allow = (list(allow.get('tags', ())),
                             list(allow.get('patterns', ())))

    def begin_test(self):
        self._test_allow = ([], [])

    def check_log(self, include_test=True):
        """Offending error log lines since the last check; advances the mark
        (over complete lines only)."""
        try:
            with open(self.error_log, 'rb') as f:
                f.seek(self._log_pos)
                raw = f.read()
        except FileNotFoundError:
            return []
        raw = raw[:raw.rfind(b'\n') + 1]
        self._log_pos += len(raw)
        text = raw.decode('utf-8', 'replace')
        tags = self._class_allow[0] + (self._test_allow[0] if include_test else [])
        pats = self._class_allow[1] + (self._test_allow[1] if include_test else [])
        return self.bad_lines(text, tags, pats) + self.sanitizer_reports()

    # ---- sanitizer runs (RS_PRELOAD) -----------------------------------------
    def httpd_env(self):
        """Environment of httpd: None (inherit) unless RS_PRELOAD is set."""
        if not RS_PRELOAD:
            return None
        d = self.mkdir_www(self.gen / 'sanitizer')
        opts = f'log_path={d}/report:print_stacktrace=1'
        e = dict(os.environ)
        e['LD_PRELOAD'] = RS_PRELOAD
        e['ASAN_OPTIONS'] = (opts + ':detect_leaks=0:halt_on_error=0'
                             ':verify_asan_link_order=0')
        e['UBSAN_OPTIONS'] = opts + ':halt_on_error=0'
        return e

    def sanitizer_reports(self):
        """Lines of new sanitizer reports (each report file is read once,
        then renamed to *.seen)."""
        d = self.gen / 'sanitizer'
        if not RS_PRELOAD or not d.is_dir():
            return []
        out = []
        for f in sorted(d.glob('report.*')):
            if f.suffix == '.seen':
                continue
            text = f.read_text(errors='replace')
            f.rename(f.with_name(f.name + '.seen'))
            out += [f'sanitizer ({f.name}): {line}'
                    for line in text.splitlines() if line.strip()]
        return out

    def end_test(self):
        bad = self._pending_bad + self.check_log(include_test=True)
        self._pending_bad = []
        self._test_allow = ([], [])
        return bad

    def skip_log(self):
        """Move the check mark to the end of the log (nothing is checked)."""
        self._log_pos = self._log_size()

    # ---- files --------------------------------------------------------------
    @staticmethod
    def staging_dir(area_dir):
        return Path(area_dir) / '.resumable'

    def staged_files(self, area_dir, upload_id):
        """Files below <area>/.resumable/ whose name contains the upload id."""
        out = []
        for root, _dirs, files in os.walk(self.staging_dir(area_dir)):
            out += [Path(root) / f for f in files if upload_id in f]
        return sorted(out)

    def staged_data_file(self, area_dir, upload_id):
        """The largest staged file of the id (the data file, not its info)."""
        files = self.staged_files(area_dir, upload_id)
        if not files:
            return None
        data = [f for f in files if not re.search(r'\.(info|json|meta|lock)$', f.name)]
        return max(data or files, key=lambda f: f.stat().st_size)

    @staticmethod
    def visible_files(area_dir):
        """Finished files: regular files directly in the area dir, minus
        dot files (.resumable, .htaccess)."""
        return sorted(p.name for p in Path(area_dir).iterdir()
                      if p.is_file() and not p.name.startswith('.'))

    @staticmethod
    def sha256_file(path):
        from .client import sha256_file
        return sha256_file(path)
