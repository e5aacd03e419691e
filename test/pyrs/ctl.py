"""resumablectl for the tests (test_91x-93x): built on first use with make
(so a stale or missing tool never tests old code), then run on a state
database. Every call is bounded in time."""
import subprocess

_built = {}


def ctl_path(env):
    path = env.repo / 'tools' / 'resumablectl'
    if not _built.get(str(path)):
        r = subprocess.run(['make', '-C', str(env.repo), 'tools/resumablectl'],
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise RuntimeError(f'building resumablectl failed:\n{r.stdout[-2000:]}'
                               f'\n{r.stderr[-3000:]}')
        _built[str(path)] = True
    return path


def resumablectl(env, db, *args):
    """(exit code, stdout + stderr) of `resumablectl -d db args...`.
    RS_STATE=pgsql: the session's default database is PostgreSQL's."""
    if env.pg_params and str(db) == str(env.statedb):
        db = 'dbd:' + env.pg_params
    r = subprocess.run([str(ctl_path(env)), '-d', str(db)] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr
