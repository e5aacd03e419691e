"""pytest fixtures of the mod_resumable suite (harness in test/pyrs/).

env         session: RsEnv (builds the module if needed, gen dir, port)
rs_default  class: default config (area /files/, ResumableExpire 1h) running
CONF        class attribute: dict of env.install() arguments, or a callable
            env -> dict; an autouse class fixture installs it, starts httpd
            before the class and stops it after
ALLOW_ERRORS class attribute: dict(tags=[...], patterns=[...]) allowed in
            the error log for the whole class (env.allow_errors() per test)
After every test the error log is checked: warn and worse lines fail it.
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pyrs.env import RsEnv, RsArea, _free_port  # noqa: E402,F401
from pyrs.pg import PgCluster, pg_available  # noqa: E402


def start_pg(base):
    """A private PostgreSQL cluster under base (started; caller stops)."""
    why = pg_available()
    if why:
        raise RuntimeError(f'RS_STATE=pgsql: {why}')
    return PgCluster(base, _free_port()).init().start()


@pytest.fixture(scope='session')
def env():
    e = RsEnv()
    pg = None
    try:
        e.setup(build=os.environ.get('RS_NO_BUILD') != '1')
        if os.environ.get('RS_STATE') == 'pgsql' and not e.pg_params:
            pg = start_pg(e.gen / 'pg')     # RS_STATE=pgsql: see pyrs/pg.py
            e.pg_params = pg.dbd_params()
    except RuntimeError as ex:
        pytest.fail(str(ex), pytrace=False)
    yield e
    e.stop()
    if pg:
        pg.stop()
    bad = e.check_log(include_test=False)
    if bad:
        pytest.fail('error log at shutdown:\n' + '\n'.join(bad), pytrace=False)


@pytest.fixture(scope='class', autouse=True)
def _rs_class_conf(request, env):
    cls = request.cls
    env.begin_class(getattr(cls, 'ALLOW_ERRORS', None) if cls else None)
    conf = getattr(cls, 'CONF', None) if cls else None
    started = False
    if conf is not None:
        if callable(conf):
            conf = conf(env)
        env.install(**conf)
        env.start()
        started = True
    yield
    if started:
        env.stop()
        bad = env.check_log(include_test=False)
        if bad:
            pytest.fail('error log after stop:\n' + '\n'.join(bad), pytrace=False)


@pytest.fixture(scope='class')
def rs_default(env):
    """The default config, running. Kept running across classes that use
    it (restarted only when another config ran in between)."""
    env.install_default()
    if not env.pid() or env.running_conf != env.last_conf:
        env.start()
    yield env


@pytest.fixture(autouse=True)
def _rs_error_log(env):
    env.begin_test()
    yield
    bad = env.end_test()
    if bad:
        pytest.fail('error log has unexpected lines:\n' + '\n'.join(bad),
                    pytrace=False)


@pytest.fixture
def tus(env):
    """Tus helper on /files/ of the running server."""
    return env.tus('/files/')
