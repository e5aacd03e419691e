"""PgCluster: a private PostgreSQL 15 cluster for the cluster tests.

initdb into <gen>/pg/data, listening on 127.0.0.1 only (a free port) and on
a private socket dir, trust authentication for 127.0.0.1 and the socket,
started and stopped by the suite. As root the cluster runs as the
`postgres` user (PostgreSQL refuses root). Every wait is bounded.
"""
import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

PG_BIN = Path(os.environ.get('RS_PG_BIN', '/usr/lib/postgresql/15/bin'))
PSQL = shutil.which('psql') or str(PG_BIN / 'psql')
DB_USER = 'rs'
DB_NAME = 'rs'


def pg_available():
    """None when PostgreSQL and the apr_dbd pgsql driver are installed,
    else the reason (for a visible skip)."""
    if not (PG_BIN / 'initdb').exists():
        return f'PostgreSQL not installed ({PG_BIN}/initdb missing)'
    drivers = list(Path('/usr/lib').glob('*/apr-util-1/apr_dbd_pgsql*.so'))
    if not drivers:
        return 'apr_dbd pgsql driver missing (libaprutil1-dbd-pgsql)'
    return None


class PgCluster:

    def __init__(self, base, port):
        self.base = Path(base)
        self.data = self.base / 'data'
        self.sock = self.base / 'sock'
        self.log = self.base / 'postgres.log'
        self.port = port
        self.host = '127.0.0.1'
        self.as_root = os.geteuid() == 0
        self.running = False

    # libpq conninfo for psql and resumablectl (TCP, 127.0.0.1)
    def params(self, dbname=DB_NAME):
        return (f'host={self.host} port={self.port} user={DB_USER} '
                f'dbname={dbname} connect_timeout=5 keepalives_idle=10')

    def dbd_params(self, dbname=DB_NAME):
        """DBDParams for the httpd nodes: the private socket dir. mod_dbd's
        many TCP connections would take ephemeral source ports, and a
        stopped httpd's port (itself an ephemeral one) could be taken by
        one of them before it binds again."""
        return (f'host={self.sock} port={self.port} user={DB_USER} '
                f'dbname={dbname} connect_timeout=5')

    def _run(self, argv, timeout=60, check=True):
        if self.as_root:
            argv = ['runuser', '-u', 'postgres', '--'] + [str(a) for a in argv]
        r = subprocess.run([str(a) for a in argv], capture_output=True,
                           text=True, timeout=timeout, cwd=str(self.base))
        if check and r.returncode != 0:
            raise RuntimeError(f'{argv}: exit {r.returncode}\n{r.stdout}\n'
                               f'{r.stderr}\n{self._log_tail()}')
        return r

    def _log_tail(self):
        try:
            return self.log.read_text(errors='replace')[-3000:]
        except OSError:
            return ''

    def init(self):
        if self.base.exists():
            shutil.rmtree(self.base)
        self.sock.mkdir(parents=True)
        if self.as_root:
            pw = pwd.getpwnam('postgres')
            for d in (self.base, self.sock):
                os.chown(d, pw.pw_uid, pw.pw_gid)
        self._run([PG_BIN / 'initdb', '-D', self.data, '-U', DB_USER,
                   '-A', 'trust', '-E', 'UTF8', '--no-sync'], timeout=120)
        (self.data / 'pg_hba.conf').write_text(
            'local all all trust\n'
            'host all all 127.0.0.1/32 trust\n')
        with open(self.data / 'postgresql.conf', 'a') as f:
            f.write(f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                    f"unix_socket_directories = '{self.sock}'\n"
                    'max_connections = 300\n'
                    'shared_buffers = 32MB\n'
                    'tcp_keepalives_idle = 2\ntcp_keepalives_interval = 1\n'
                    'tcp_keepalives_count = 2\n')
        return self

    def start(self):
        self._run([PG_BIN / 'pg_ctl', '-D', self.data, '-l', self.log, '-w',
                   '-t', '60', 'start'], timeout=90)
        self.running = True
        self.psql("SELECT 1", dbname='postgres')
        if self.psql(f"SELECT 1 FROM pg_database WHERE datname = "
                     f"'{DB_NAME}'", dbname='postgres') != '1':
            self.psql(f'CREATE DATABASE {DB_NAME}', dbname='postgres')
        return self

    def stop(self):
        if self.running:
            self._run([PG_BIN / 'pg_ctl', '-D', self.data, '-m', 'fast',
                       '-w', '-t', '60', 'stop'], timeout=90, check=False)
            self.running = False

    def restart(self):
        self._run([PG_BIN / 'pg_ctl', '-D', self.data, '-m', 'fast', '-w',
                   '-t', '60', '-l', self.log, 'restart'], timeout=90)

    def psql(self, sql, dbname=DB_NAME, timeout=30):
        """Run sql; returns the unaligned, tuples-only output (stripped)."""
        r = subprocess.run([PSQL, self.params(dbname), '-v', 'ON_ERROR_STOP=1',
                            '-Atqc', sql], capture_output=True, text=True,
                           timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f'psql {sql!r}: {r.stderr}')
        return r.stdout.strip()

    def reset_db(self):
        """Drop the module's tables (a fresh state database)."""
        self.psql('DROP TABLE IF EXISTS resumable_kv, resumable_schema')

    def wait_ready(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                self.psql('SELECT 1')
                return True
            except (RuntimeError, subprocess.TimeoutExpired):
                time.sleep(0.2)
        return False
