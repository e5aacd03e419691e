"""A network namespace of the test's own with two veth pairs, for a cluster
node that can be cut from PostgreSQL while the front still reaches it.

    root namespace                     namespace <name>
    <front host end> 10.A.B.1/30  <->  10.A.B.2/30  (httpd node listens here)
    <pg host end>    10.A.B.5/30  <->  10.A.B.6/30  (node -> PostgreSQL)

`cut()` takes the PostgreSQL pair's host end down (packets vanish, no
FIN, no RST: a partition), `heal()` brings it up again. Only addresses
inside this namespace and the host ends of its own pairs are used. Every
command is bounded; `remove()` deletes the namespace (and with it both
pairs).

NsEnv is an RsEnv whose httpd runs inside the namespace (apachectl through
`ip netns exec`), listening on the namespace's front address.
"""
import os
import subprocess

from .env import RsEnv

IP = '/usr/sbin/ip' if os.path.exists('/usr/sbin/ip') else 'ip'


def _ip(*args, ns=None, check=True):
    argv = [IP] + (['netns', 'exec', ns, IP] if ns else []) + list(args)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    if check and r.returncode != 0:
        raise RuntimeError(f'{" ".join(argv)}: {r.stderr.strip()}')
    return r


def netns_unavailable():
    """None when this process can make network namespaces, else why."""
    if os.geteuid() != 0:
        return 'network namespaces need root (ip netns add)'
    name = f'rsprobe{os.getpid()}'
    try:
        r = subprocess.run([IP, 'netns', 'add', name], capture_output=True,
                           text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f'ip netns add failed: {e}'
    if r.returncode != 0:
        return f'ip netns add failed: {r.stderr.strip()}'
    subprocess.run([IP, 'netns', 'del', name], capture_output=True,
                   timeout=20)
    return None


def _subnet_free(prefix):
    r = _ip('-4', 'addr', 'show', check=False)
    return prefix not in r.stdout


class NetNs:

    def __init__(self, tag):
        self.name = f'rs{tag}'
        n = os.getpid()
        for k in range(64):
            a, b = 100 + (n + k) % 100, (n // 100 + 7 * k) % 250
            if _subnet_free(f'10.{a}.{b}.'):
                break
        self.net = f'10.{a}.{b}'
        self.front_host, self.node_addr = f'{self.net}.1', f'{self.net}.2'
        self.pg_host, self.node_pg_addr = f'{self.net}.5', f'{self.net}.6'
        short = str(n % 100000)
        self.if_front = f'rs{short}f'        # host ends (<= 15 chars)
        self.if_pg = f'rs{short}p'
        self.made = False

    def create(self):
        _ip('netns', 'add', self.name)
        self.made = True
        _ip('link', 'add', self.if_front, 'type', 'veth', 'peer', 'name',
            'ethf', 'netns', self.name)
        _ip('link', 'add', self.if_pg, 'type', 'veth', 'peer', 'name',
            'ethp', 'netns', self.name)
        _ip('addr', 'add', f'{self.front_host}/30', 'dev', self.if_front)
        _ip('addr', 'add', f'{self.pg_host}/30', 'dev', self.if_pg)
        _ip('link', 'set', self.if_front, 'up')
        _ip('link', 'set', self.if_pg, 'up')
        _ip('addr', 'add', f'{self.node_addr}/30', 'dev', 'ethf', ns=self.name)
        _ip('addr', 'add', f'{self.node_pg_addr}/30', 'dev', 'ethp',
            ns=self.name)
        for dev in ('lo', 'ethf', 'ethp'):
            _ip('link', 'set', dev, 'up', ns=self.name)
        return self

    def cut(self):
        _ip('link', 'set', self.if_pg, 'down')

    def heal(self):
        _ip('link', 'set', self.if_pg, 'up')

    def remove(self):
        if self.made:
            _ip('netns', 'del', self.name, check=False)
            _ip('link', 'del', self.if_front, check=False)
            _ip('link', 'del', self.if_pg, check=False)
            self.made = False


class NsEnv(RsEnv):
    """An httpd node inside a NetNs, reachable at its front address."""

    def __init__(self, ns, gen):
        super().__init__(gen=gen)
        self.ns = ns
        self.host = ns.node_addr
        self.url = f'http://{self.host}:{self.port}'
        from .client import RsClient
        self.client = RsClient(self.url)

    def _apachectl(self, cmd):
        return subprocess.run([IP, 'netns', 'exec', self.ns.name, self.apache,
                               '-d', str(self.gen), '-f', str(self.conf_path),
                               '-k', cmd], capture_output=True, text=True,
                              timeout=60, env=self.httpd_env())

    def _wait_port_free(self, timeout):
        return True     # its own namespace: nothing else listens there
