"""1002: the protocol suites once more, on the pgsql state provider.

Runs a representative set of the protocol test files (tus creation,
termination, concatenation and composition, expiry, resume; IETF; the
seed protocols offset, slice, md5, flow) in a nested pytest with
RS_STATE=pgsql: the harness then starts a private PostgreSQL cluster and
every generated config uses `ResumableStateDB dbd:` with mod_dbd's
DBDriver pgsql/DBDParams (test/pyrs/env.py, test/conftest.py). The same
files run on the dbm provider in the normal suite. Skipped with the reason
where PostgreSQL or the apr_dbd pgsql driver is missing, and inside a
run that is already RS_STATE=pgsql.
"""
import os
import subprocess
import sys

import pytest

from pyrs.pg import pg_available

FILES = ['test_210_creation.py', 'test_220_termination.py',
         'test_230_concat.py', 'test_235_compose.py',
         'test_240_expiration.py', 'test_400_resume.py', 'test_700_ietf.py',
         'test_800_offset.py', 'test_810_slice.py', 'test_820_md5.py',
         'test_830_flow.py']

WHY = pg_available() or (
    'already running on pgsql' if os.environ.get('RS_STATE') == 'pgsql'
    else None)


@pytest.mark.slow
@pytest.mark.skipif(WHY is not None, reason=WHY or '')
def test_rs_1002_protocol_suites_on_pgsql(env):
    here = os.path.dirname(os.path.abspath(__file__))
    e = dict(os.environ, RS_STATE='pgsql', RS_NO_BUILD='1')
    e.pop('RS_PG_PARAMS', None)
    r = subprocess.run([sys.executable, '-m', 'pytest', '-q',
                        '-p', 'no:cacheprovider', '-x']
                       + [os.path.join(here, f) for f in FILES],
                       cwd=str(env.repo), env=e, capture_output=True,
                       text=True, timeout=1500)
    tail = (r.stdout + r.stderr)[-6000:]
    assert r.returncode == 0, tail
    assert ' passed' in tail and ' failed' not in tail, tail
