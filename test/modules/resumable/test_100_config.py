"""1xx: configuration directives, valid and invalid forms (apache2 -t)."""
import pytest

from pyrs.client import make_data, sha256
from pyrs.env import RsArea


def check_conf(env, server=(), area=(), outside=''):
    """apache2 -t of a config with one /files/ area carrying `area`
    directives, `server` directives at server level and `outside` raw text.
    Uses its own conf file so a running server is not disturbed."""
    conf = env.gen / 'conf' / 'check.conf'
    env.install(areas=[RsArea('/files/', dir='cfg', directives=list(area))],
                server_extra='\n'.join(server), extra=outside, conf_path=conf)
    return env.configtest(conf)


AREA_VALID = [
    'ResumableMaxSize 1024', 'ResumableMaxSize 10K', 'ResumableMaxSize 5M',
    'ResumableMaxSize 1G', 'ResumableMaxSize 2T',
    'ResumableExpire 3600', 'ResumableExpire 30s', 'ResumableExpire 10m',
    'ResumableExpire 2h', 'ResumableExpire 7d', 'ResumableExpire Off',
    'ResumableProtocols tus', 'ResumableProtocols all',
    'ResumableSync On', 'ResumableSync Off',
    'ResumableCORSOrigins *', 'ResumableCORSOrigins https://app.example',
    'ResumableCORSOrigins https://a.example http://b.example:8080',
    'ResumableTrustForwarded On', 'ResumableTrustForwarded Off',
    'ResumableLockWait 5', 'ResumableLockWait 5s', 'ResumableLockWait 1m',
    'ResumableStallTime 2', 'ResumableStallTime 2s', 'ResumableStallTime 1m',
    'ResumableInlineTypes image/png text/plain', 'ResumableInlineTypes image/jpeg',
    'ResumableDenyExtensions php cgi', 'ResumableDenyExtensions .php',
    'ResumableDenyExtensions None',
    'ResumablePublish Private', 'ResumablePublish Public',
    'ResumablePublish public',
]

SERVER_VALID = [
    'ResumableSweepInterval 1', 'ResumableSweepInterval 30s',
    'ResumableSweepInterval 5m', 'ResumableSweepInterval 1h',
    'ResumableWriteBuffer 4096', 'ResumableWriteBuffer 64K',
    'ResumableWriteBuffer 1M',
    'ResumableReadSize 256K', 'ResumableReadSize 16K', 'ResumableReadSize 2M',
    'ResumableReadSize Off', 'ResumableReadSize 0',
    'ResumableSplice On', 'ResumableSplice Off', 'ResumableSplice off',
    'ResumableMaxSize 1M',
    'Mutex default resumable-statedb',
]

# (directive line, where, directive name expected in the output)
INVALID = [
    ('ResumablePublish', 'area'), ('ResumablePublish yes', 'area'),
    ('ResumablePublish Public Private', 'area'),
    ('ResumableMaxSize abc', 'area'), ('ResumableMaxSize -1', 'area'),
    ('ResumableMaxSize 10X', 'area'), ('ResumableMaxSize 5Q', 'area'),
    ('ResumableMaxSize', 'area'), ('ResumableMaxSize 1M 2M', 'area'),
    ('ResumableExpire -5', 'area'), ('ResumableExpire abc', 'area'),
    ('ResumableExpire 10y', 'area'), ('ResumableExpire 3q', 'area'),
    ('ResumableExpire', 'area'),
    ('ResumableProtocols foo', 'area'), ('ResumableProtocols tus foo', 'area'),
    ('ResumableProtocols', 'area'),
    ('ResumableSync maybe', 'area'), ('ResumableSync', 'area'),
    ('ResumableTrustForwarded yes', 'area'), ('ResumableTrustForwarded', 'area'),
    ('ResumableCORSOrigins', 'area'),
    ('ResumableLockWait -1', 'area'), ('ResumableLockWait abc', 'area'),
    ('ResumableLockWait 3x', 'area'), ('ResumableLockWait', 'area'),
    ('ResumableStallTime -1', 'area'), ('ResumableStallTime abc', 'area'),
    ('ResumableStallTime 3x', 'area'), ('ResumableStallTime', 'area'),
    ('ResumableInlineTypes', 'area'),
    ('ResumableDenyExtensions', 'area'), ('ResumableDenyExtensions php/x', 'area'),
    ('ResumableDenyExtensions php None', 'area'),
    ('ResumableDenyExtensions "a b"', 'area'),
    ('ResumableDir', 'area'), ('ResumableDir ""', 'area'),
    ('ResumableStateDB /tmp/rs-state-in-location', 'area'),
    ('ResumableStateDB foo:/tmp/rs-state', 'server'),
    ('ResumableStateDB', 'server'), ('ResumableStateDB ""', 'server'),
    ('ResumableSweepInterval 5', 'area'), ('ResumableSweepInterval -1', 'server'),
    ('ResumableSweepInterval abc', 'server'), ('ResumableSweepInterval 5x', 'server'),
    ('ResumableSweepInterval', 'server'),
    ('ResumableWriteBuffer 64K', 'area'), ('ResumableWriteBuffer abc', 'server'),
    ('ResumableWriteBuffer -1', 'server'), ('ResumableWriteBuffer 1Q', 'server'),
    ('ResumableWriteBuffer', 'server'),
    ('ResumableReadSize 1M', 'area'), ('ResumableReadSize 8K', 'server'),
    ('ResumableReadSize 3M', 'server'), ('ResumableReadSize abc', 'server'),
    ('ResumableReadSize -1', 'server'), ('ResumableReadSize', 'server'),
    ('ResumableSplice On', 'area'), ('ResumableSplice yes', 'server'),
    ('ResumableSplice', 'server'),
]


class TestConfigSyntax:

    @pytest.mark.parametrize('line', AREA_VALID)
    def test_rs_100_01_area_valid(self, env, line):
        rc, out = check_conf(env, area=[line])
        assert rc == 0, f'{line!r} refused:\n{out}'

    @pytest.mark.parametrize('line', SERVER_VALID)
    def test_rs_100_02_server_valid(self, env, line):
        rc, out = check_conf(env, server=[line])
        assert rc == 0, f'{line!r} refused:\n{out}'

    @pytest.mark.parametrize('line,where', INVALID)
    def test_rs_100_03_invalid(self, env, line, where):
        if where == 'area':
            rc, out = check_conf(env, area=[line])
        else:
            rc, out = check_conf(env, server=[line])
        assert rc != 0, f'{line!r} ({where}) accepted:\n{out}'
        name = line.split()[0]
        assert name in out, f'{line!r}: output does not name {name}:\n{out}'

    @pytest.mark.parametrize('typ', ['sdbm', 'gdbm', 'db', 'default'])
    def test_rs_100_04_statedb_types_syntax(self, env, typ):
        rc, out = check_conf(env, server=[f'ResumableStateDB {typ}:{env.gen}/state/t-{typ}'])
        assert rc == 0, out

    def test_rs_100_05_dir_with_space(self, env):
        d = env.area_dir('dir with space')
        conf = env.gen / 'conf' / 'check.conf'
        env.install(areas=[RsArea('/files/', dir=d)], conf_path=conf)
        rc, out = env.configtest(conf)
        assert rc == 0, out

    def test_rs_100_06_dir_in_directory_section(self, env):
        d = env.area_dir('cfg-dir-section')
        rc, out = check_conf(env, outside=f'<Directory "{env.docroot}/cfgd">\n'
                                           f'  SetHandler resumable\n'
                                           f'  ResumableDir "{d}"\n</Directory>\n')
        assert rc == 0, out

    def test_rs_100_07_many_uploads_tuning(self, env):
        """The event MPM sizing shown in conf/ (and used by the benchmark
        for 1,000 concurrent uploads) is a valid configuration."""
        rc, out = check_conf(env, outside=f'Include {env.repo}/conf/many-uploads.conf\n')
        assert rc == 0, out
        assert 'AH00' not in out, out


def all_valid_conf(env):
    return dict(
        server_extra='\n'.join(['ResumableWriteBuffer 64K', 'ResumableMaxSize 1G',
                                'Mutex default resumable-statedb']),
        areas=[RsArea('/files/', dir='allvalid', directives=[
            'ResumableMaxSize 100M', 'ResumableExpire 2h', 'ResumableProtocols tus',
            'ResumableSync On', 'ResumableCORSOrigins https://app.example',
            'ResumableTrustForwarded Off', 'ResumableLockWait 5s',
            'ResumableStallTime 2s', 'ResumableInlineTypes image/png text/plain',
            'ResumablePublish Private'])])


class TestConfigStart:
    """Valid configs start and serve."""
    CONF = all_valid_conf

    def test_rs_100_10_all_directives_start(self, env):
        r = env.tus().options()
        assert r.status in (200, 204) and r.headers.get('Tus-Version') == '1.0.0'
        data = make_data(5000, seed=10)
        url = env.tus().upload(data)
        assert sha256(env.client.get(url).body) == sha256(data)


class TestStateDBTypes:

    @pytest.mark.parametrize('typ', ['sdbm', 'gdbm', 'db', 'default', None])
    def test_rs_100_11_statedb_type_starts(self, env, typ):
        path = env.gen / 'state' / f'db-{typ}'
        env.install(areas=[RsArea('/files/', dir=f'statedb-{typ}')],
                    statedb=f'{typ}:{path}' if typ else str(path))
        try:
            env.start()
            tus = env.tus()
            data = make_data(3000, seed=11)
            url = tus.create(length=len(data))
            assert tus.patch(url, 0, data[:1000]).status == 204
            env.restart()
            assert tus.offset(url) == 1000
            tus.upload_rest(url, data, 1000)
            assert sha256(tus.get(url).body) == sha256(data)
        finally:
            env.stop()


class TestConfigFails:

    def test_rs_100_20_apache_fail_on_bad_directive(self, env):
        env.install(areas=[RsArea('/files/', dir='cfgfail',
                                  directives=['ResumableMaxSize lots'])])
        assert env.apache_fail() != 0
        assert 'ResumableMaxSize' in env.last_fail_output
