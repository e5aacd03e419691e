"""RsCluster: N httpd nodes with mod_resumable sharing one PostgreSQL state
database (ResumableStateDB dbd:) and one upload directory, behind a front
httpd with mod_proxy_balancer (lbmethod=byrequests, no stickiness), so
consecutive requests through the front land on different nodes.

Each node and the front is an RsEnv of its own (own gen dir, port, log,
pid file) under <session gen>/cluster/; the session env keeps its role as
the default client base. Every wait is bounded (RsEnv's).
"""
import re
import time
from pathlib import Path

from .client import RsClient, set_default_base
from .env import BASE_MODULES, RsArea, RsEnv

FRONT_MODULES = BASE_MODULES + ['proxy', 'proxy_http', 'proxy_balancer',
                                'slotmem_shm', 'lbmethod_byrequests']


class RsCluster:

    def __init__(self, env, pg_params, n=2, name='cluster'):
        self.env = env
        self.base = Path(env.gen) / name
        self.pg_params = pg_params
        self.nodes = []
        for i in range(n):
            node = RsEnv(gen=self.base / f'node{i}')
            node.pg_params = pg_params
            self.nodes.append(node)
        self.front = RsEnv(gen=self.base / 'front')
        set_default_base(env.url)       # RsEnv() moved it: restore
        self.url = self.front.url
        self.client = self.front.client
        self.shared = None

    def setup(self):
        for e in self.nodes + [self.front]:
            e.setup(build=False)
        self.shared = self.env.mkdir_www(self.base / 'shared')
        return self

    def area_dir(self, name):
        return self.env.mkdir_www(self.shared / name)

    def areas(self, expire='1h', extra=()):
        """/files/ (tus, IETF) and /short/ (expires after 2 s), both in
        the shared directory, Location built from X-Forwarded-Host."""
        common = ['ResumableTrustForwarded On']
        return [RsArea('/files/', dir=self.area_dir('files'),
                       directives=[f'ResumableExpire {expire}'] + common
                       + list(extra)),
                RsArea('/short/', dir=self.area_dir('short'),
                       directives=['ResumableExpire 2s'] + common)]

    def start(self, areas=None, extra='', server_extra='', sweep='1',
              modules_extra=()):
        for node in self.nodes:
            node.install(areas=areas or self.areas(), extra=extra,
                         server_extra=server_extra, sweep=sweep,
                         modules=BASE_MODULES + list(modules_extra))
            node.start()
        return self.start_front()

    def start_front(self):
        """The mod_proxy_balancer front over the nodes (no stickiness)."""
        members = '\n'.join(f'    BalancerMember "{n.url}" retry=1'
                            for n in self.nodes)
        self.front.install(load_module=False, modules=FRONT_MODULES, extra=(
            '<Proxy "balancer://rs">\n'
            f'{members}\n'
            '    ProxySet lbmethod=byrequests\n'
            '</Proxy>\n'
            'ProxyPass "/server-status" "!"\n'
            'ProxyPass "/" "balancer://rs/"\n'))
        self.front.start()
        return self

    def stop(self):
        for e in [self.front] + self.nodes:
            e.stop()

    def node_clients(self):
        return [RsClient(n.url) for n in self.nodes]

    def served_by(self, method, since):
        """Per node: how many `method` requests (or request lines starting
        so) its access log has past the sizes in `since` (from marks())."""
        out = []
        for n, pos in zip(self.nodes, since):
            text = n.access_log.read_bytes()[pos:].decode(errors='replace') \
                if n.access_log.exists() else ''
            out.append(sum(1 for line in text.splitlines()
                           if f'"{method} ' in line))
        return out

    def wait_balanced(self, timeout=10):
        """Until requests through the front reach every node again (after
        a node was down, the balancer retries it after `retry`)."""
        deadline = time.monotonic() + timeout
        marks = self.marks()
        while time.monotonic() < deadline:
            self.client.get('/index.html?balanced')
            if min(self.served_by('GET /index.html?balanced', marks)) > 0:
                return True
            time.sleep(0.2)
        return False

    def marks(self):
        return [n.access_log.stat().st_size if n.access_log.exists() else 0
                for n in self.nodes]

    def log_lines(self, pattern):
        """Lines of every node's error log containing pattern."""
        out = []
        for n in self.nodes:
            text = n.error_log.read_text(errors='replace') \
                if n.error_log.exists() else ''
            out += [line for line in text.splitlines() if pattern in line]
        return out

    def begin_test(self):
        for e in self.nodes + [self.front]:
            e.begin_test()

    def allow_errors(self, **kw):
        for e in self.nodes + [self.front]:
            e.allow_errors(**kw)

    def end_test(self):
        bad = []
        for e in self.nodes + [self.front]:
            bad += [f'{e.gen.name}: {b}' for b in e.end_test()]
        return bad

    # ---- the state database as resumablectl sees it -----------------------

    def ctl(self, *args):
        """(exit code, output) of `resumablectl -d dbd:<params> args`."""
        from .ctl import resumablectl
        return resumablectl(self.env, 'dbd:' + self.pg_params, *args)

    def show(self, upload_id):
        """`resumablectl show` of an upload as a dict; 'segments' is a
        list of (epoch, start, len), 'lease_pid' the holder's pid or None."""
        rc, out = self.ctl('show', upload_id)
        assert rc == 0, out
        info = {'segments': [], 'lease_pid': None, 'raw': out}
        for line in out.splitlines():
            key, _, val = line.partition(':')
            val = val.strip()
            if key == 'segment':
                m = re.match(r'e(\d+) start=(\d+) len=(\d+)', val)
                info['segments'].append(tuple(int(x) for x in m.groups()))
            elif key == 'lease' and val != 'free':
                # "<boot id>:<pid>:<start> until <time>"
                owner = val.split()[0].split(':')
                info['lease_pid'] = int(owner[1])
                info['lease'] = val
            else:
                info[key.strip()] = val
        return info

    def durable_bytes(self, area_dir, upload_id):
        """The committed bytes of an active cluster upload: each segment
        file's first `len` bytes, in order (what HEAD's offset counts)."""
        info = self.show(upload_id)
        out = b''
        for epoch, start, length in info['segments']:
            f = Path(area_dir) / '.resumable' / f'{upload_id}.e{epoch}'
            data = f.read_bytes()[:length] if f.exists() else b''
            assert len(data) == length, (f, len(data), length)
            assert len(out) == start, (start, len(out))
            out += data
        return out

    def verify(self):
        """`resumablectl verify` must find no problem."""
        rc, out = self.ctl('verify')
        assert rc == 0, out
        return out

    # ---- fixture bodies the cluster suites share ---------------------------

    def stop_checked(self):
        """Stop every server; their error logs (outside the tests' own
        windows) must hold nothing unexpected."""
        self.stop()
        bad = []
        for e in self.nodes + [self.front]:
            bad += e.check_log(include_test=False)
        assert not bad, 'error log at cluster stop:\n' + '\n'.join(bad)

    def log_window(self, after=None):
        """For an autouse fixture (`yield from cluster.log_window()`): the
        error logs of every server during one test; after: a check to run
        when the test ended (e.g. DurableCheck.check), inside the window."""
        self.begin_test()
        yield
        bad = []
        try:
            if after:
                after()
        except AssertionError as ex:
            bad.append(f'after the case: {ex}')
        bad += self.end_test()
        assert not bad, 'cluster error logs:\n' + '\n'.join(bad)


def private_pg(env, name):
    """For a module fixture (`yield from private_pg(env, name)`): a private
    PostgreSQL in <gen>/<name>, or None when the session runs on its own
    one already (RS_STATE=pgsql)."""
    from .env import _free_port
    from .pg import PgCluster
    if env.pg_params:
        yield None
        return
    c = PgCluster(env.gen / name, _free_port()).init().start()
    try:
        yield c
    finally:
        c.stop()


def start_patch(cluster, node, data, first, area='/files/'):
    """A tus upload of data created on node (index) and a PATCH of all of
    it whose body stops after `first` bytes: (url, open socket)."""
    from .client import OCTET, Tus
    tus = Tus(RsClient(cluster.nodes[node].url), area)
    url = tus.create(length=len(data))
    h = dict(tus.base_headers)
    h.update({'Upload-Offset': '0', 'Content-Type': OCTET})
    return url, tus.client.send_partial('PATCH', url, h, data[:first],
                                        len(data))
