"""1001: ResumableStateDB dbd: on one node, against a private PostgreSQL.

The schema is created on the first start (versioned); what the module
refuses at start (no mod_dbd, no DBDriver pgsql, an unreachable database,
a schema newer than the module, ResumableSync Off, anything after "dbd:"),
each with a tagged line; a database that goes away while httpd runs gives
503 with a tagged line, and the node recovers when it is back;
resumablectl reads and creates the schema through dbd:CONNINFO.
"""
import pytest

from pyrs.client import make_data, sha256, upload_id
from pyrs.ctl import resumablectl
from pyrs.env import MODULES_DIR, RsArea, _free_port
from pyrs.pg import PgCluster, pg_available

WHY = pg_available()
pytestmark = pytest.mark.skipif(WHY is not None, reason=WHY or '')


@pytest.fixture(scope='module')
def pg(env):
    c = PgCluster(env.gen / 'pg-config', _free_port()).init().start()
    yield c
    c.stop()


def dbd_lines(params, load=True):
    return '\n'.join(([f'LoadModule dbd_module "{MODULES_DIR}/mod_dbd.so"']
                      if load else [])
                     + ['DBDriver pgsql', f'DBDParams "{params}"'])


def install(env, params, area=(), load=True, statedb='dbd:'):
    return env.install(
        areas=[RsArea('/files/', dir='cluster-cfg',
                      directives=['ResumableExpire 1h'] + list(area))],
        server_extra=dbd_lines(params, load), statedb=statedb)


def refused(env):
    assert env.apache_fail() != 0, 'httpd started'
    return env.last_fail_output


class TestClusterConfig:

    def test_rs_1001_01_schema_created_and_used(self, env, pg):
        pg.reset_db()
        install(env, pg.dbd_params())
        env.start()
        assert pg.psql('SELECT version FROM resumable_schema') == '1'
        data = make_data(5000, seed=10011)
        tus = env.tus()
        url = tus.upload(data, chunk_size=2000)
        assert sha256(tus.get(url).body) == sha256(data)
        uid = upload_id(url)
        assert pg.psql(f"SELECT count(*) FROM resumable_kv WHERE "
                       f"k = convert_to('u:{uid}', 'UTF8')") == '1'
        assert not env.statedb.exists()         # no sdbm file made
        rc, out = resumablectl(env, 'dbd:' + pg.params(), 'list')
        assert rc == 0 and uid in out, out
        rc, out = resumablectl(env, 'dbd:' + pg.params(), 'verify')
        assert rc == 0, out
        env.stop()

    def test_rs_1001_02_resumablectl_schema(self, env, pg):
        pg.reset_db()
        rc, out = resumablectl(env, 'dbd:' + pg.params(), 'schema')
        assert rc == 0 and 'version 1 (was 0)' in out, out
        rc, out = resumablectl(env, 'dbd:' + pg.params(), 'schema')
        assert rc == 0 and 'version 1 (was 1)' in out, out
        rc, out = resumablectl(env, env.state_dir / 'sdbm-db', 'schema')
        assert rc == 2 and 'needs -d dbd:' in out, out

    def test_rs_1001_03_sync_off_refused(self, env, pg):
        install(env, pg.dbd_params(), area=['ResumableSync Off'])
        out = refused(env)
        assert 'RS09810' in out and 'ResumableSync' in out, out

    def test_rs_1001_04_needs_mod_dbd(self, env, pg):
        install(env, pg.dbd_params(), load=False)
        env.install(areas=[RsArea('/files/', dir='cluster-cfg')],
                    statedb='dbd:')
        out = refused(env)
        assert 'RS09810' in out and 'mod_dbd' in out, out

    def test_rs_1001_05_needs_driver_and_params(self, env, pg):
        env.install(areas=[RsArea('/files/', dir='cluster-cfg')],
                    server_extra=f'LoadModule dbd_module '
                                 f'"{MODULES_DIR}/mod_dbd.so"',
                    statedb='dbd:')
        out = refused(env)
        assert 'RS09810' in out and 'DBDriver pgsql' in out, out

    def test_rs_1001_06_unreachable_database(self, env, pg):
        install(env, f'host=127.0.0.1 port={_free_port()} user=rs dbname=rs '
                     'connect_timeout=2')
        out = refused(env)
        assert 'RS09804' in out and 'RS09810' in out, out

    def test_rs_1001_07_schema_too_new(self, env, pg):
        pg.reset_db()
        resumablectl(env, 'dbd:' + pg.params(), 'schema')
        pg.psql('UPDATE resumable_schema SET version = 99')
        try:
            install(env, pg.dbd_params())
            out = refused(env)
            assert 'RS09807' in out and 'RS09810' in out, out
        finally:
            pg.reset_db()

    def test_rs_1001_08_nothing_after_dbd(self, env, pg):
        install(env, pg.dbd_params(), statedb='dbd:host=x')
        rc, out = env.configtest()
        assert rc != 0 and 'expected nothing after dbd:' in out, out

    def test_rs_1001_09_database_down_503_then_back(self, env, pg):
        install(env, pg.dbd_params())
        env.start()
        tus = env.tus()
        url = tus.create(length=10)
        assert tus.patch(url, 0, b'01234').status == 204
        env.allow_errors(tags=['RS09801', 'RS09802', 'RS01002', 'RS04020',
                               'AH00630',
                               'AH00629', 'AH00633', 'AH00632', 'AH02654'],
                         patterns=[r'\[dbd:error\]', r'\[resumable:warn\]'])
        pg.stop()
        try:
            r = tus.head(url)
            assert r.status == 503, r
            r = tus.create_resp(length=10)
            assert r.status == 503, r
        finally:
            pg.start()
        assert pg.wait_ready()
        for _ in range(50):             # pooled connections reconnect
            r = tus.head(url)
            if r.status == 200:
                break
        assert r.status == 200 and r.headers['Upload-Offset'] == '5', r
        assert tus.patch(url, 5, b'56789').status == 204
        assert tus.get(url).body == b'0123456789'
        lines = '\n'.join(env.log_lines())
        assert 'RS09801' in lines or 'RS09802' in lines
        env.stop()
