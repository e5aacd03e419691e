"""982: the Debian package libapache2-mod-resumable (make deb) and the man
pages generated from README.md.

The install test puts the package on this machine with dpkg and takes it
off again (remove, then purge), checking that nothing is left. It never
starts the system's apache2 (a policy-rc.d forbids it while the test runs,
as tools/test.sh does) and skips when a mod_resumable that no package owns
is installed already (a `make install`): it would be overwritten.
"""
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

PKG = 'libapache2-mod-resumable'
BUILD_TOOLS = ('dpkg-buildpackage', 'dh', 'dh_apache2', 'fakeroot', 'dpkg-deb')
FILES = ['./etc/apache2/mods-available/resumable.load',
         './etc/apache2/mods-available/resumable.conf',
         './usr/lib/apache2/modules/mod_resumable.so',
         './usr/sbin/resumablectl',
         './usr/share/man/man8/resumablectl.8.gz',
         './usr/share/man/man8/mod_resumable.8.gz',
         './usr/share/doc/libapache2-mod-resumable/copyright']
STATE_DIR = Path('/var/lib/apache2/resumable')
POLICY = Path('/usr/sbin/policy-rc.d')


def run(cmd, **kw):
    kw.setdefault('timeout', 120)
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def rs_version(env):
    text = (env.repo / 'include' / 'rs_version.h').read_text()
    return re.search(r'#define RS_VERSION "([^"]+)"', text).group(1)


@pytest.fixture(scope='module')
def deb(env):
    missing = [t for t in BUILD_TOOLS if not shutil.which(t)]
    if missing:
        pytest.skip(f'build tools missing: {" ".join(missing)} '
                    '(apt-get install debhelper dpkg-dev fakeroot apache2-dev)')
    r = run(['dpkg-checkbuilddeps'], cwd=env.repo)
    if r.returncode != 0:
        pytest.skip(f'build dependencies missing: {r.stderr.strip()}')
    out = env.gen / 'deb'
    r = run(['make', '-s', 'deb', f'DEB_DIR={out}'], cwd=env.repo, timeout=600)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    debs = sorted(out.glob(f'{PKG}_*.deb'))
    assert len(debs) == 1, list(out.iterdir())
    return debs[0]


def test_rs_982_01_man_pages_in_sync(env):
    r = run(['/usr/bin/python3', str(env.repo / 'tools' / 'gen_docs.py'), '--check'])
    assert r.returncode == 0, r.stderr
    man = (env.repo / 'man' / 'mod_resumable.8').read_text()
    readme = (env.repo / 'README.md').read_text()
    # every directive of the README's table is in the man page
    table = readme.split('## Directive reference', 1)[1].split('\n## ', 1)[0]
    names = re.findall(r'^\| `(\w+)', table, re.M)
    assert len(names) >= 15, names
    for n in names:
        assert f'\\fB{n}' in man, n
    if shutil.which('man'):
        for page in ('mod_resumable.8', 'resumablectl.8'):
            r = run(['man', '--warnings', '-l', str(env.repo / 'man' / page)],
                    env={**os.environ, 'MANWIDTH': '80', 'MAN_KEEP_STDERR': '1'})
            assert r.returncode == 0 and 'NAME' in r.stdout, r.stderr
            assert not r.stderr.strip(), (page, r.stderr)


def test_rs_982_02_package_contents(env, deb):
    r = run(['dpkg-deb', '-c', str(deb)])
    assert r.returncode == 0, r.stderr
    listing = {line.split()[-1]: line for line in r.stdout.splitlines()}
    for f in FILES:
        assert f in listing, f
    assert listing['./usr/sbin/resumablectl'].startswith('-rwxr-xr-x root/root')
    info = run(['dpkg-deb', '-f', str(deb), 'Package', 'Version', 'Depends',
                'Section', 'Architecture']).stdout
    fields = dict(line.split(': ', 1) for line in info.splitlines())
    assert fields['Package'] == PKG
    assert fields['Version'].split('-')[0] == rs_version(env), fields
    assert 'apache2-api-' in fields['Depends'], fields
    assert 'libjansson' in fields['Depends'], fields
    assert fields['Section'] == 'httpd'
    # the maintainer scripts: the state directory, its removal on purge,
    # the module disabled on remove; nothing enables it behind the admin
    postinst = run(['dpkg-deb', '-I', str(deb), 'postinst']).stdout
    assert 'install -d -m 0750 -o www-data -g www-data /var/lib/apache2/resumable' in postinst
    assert 'enmod' not in postinst, postinst
    postrm = run(['dpkg-deb', '-I', str(deb), 'postrm']).stdout
    assert re.search(r'purge.*\n\s*rm -rf /var/lib/apache2/resumable\n', postrm), postrm
    prerm = run(['dpkg-deb', '-I', str(deb), 'prerm']).stdout
    assert 'dismod' in prerm, prerm
    conffiles = run(['dpkg-deb', '-I', str(deb), 'conffiles']).stdout.split()
    assert sorted(conffiles) == ['/etc/apache2/mods-available/resumable.conf',
                                 '/etc/apache2/mods-available/resumable.load']
    # the module exports only its module record
    tmp = env.gen / 'deb' / 'x'
    shutil.rmtree(tmp, ignore_errors=True)
    assert run(['dpkg-deb', '-x', str(deb), str(tmp)]).returncode == 0
    nm = run(['nm', '-D', '--defined-only',
              str(tmp / 'usr/lib/apache2/modules/mod_resumable.so')]).stdout
    syms = {line.split()[-1] for line in nm.splitlines()
            if not line.split()[-1].startswith('_')}
    assert syms == {'resumable_module'}, syms
    r = run([str(tmp / 'usr/sbin/resumablectl')])
    assert r.returncode == 2 and 'usage: resumablectl' in r.stderr, r


def dpkg(*args):
    """dpkg, waiting (bounded) while another dpkg/apt holds its lock."""
    for _ in range(60):
        r = run(['dpkg', *args], timeout=300,
                env={**os.environ, 'DEBIAN_FRONTEND': 'noninteractive'})
        if r.returncode == 0 or 'lock' not in r.stderr:
            return r
        time.sleep(2)
    return r


def installed(name):
    r = run(['dpkg-query', '-W', '-f=${Status}', name])
    return r.returncode == 0 and 'installed' in r.stdout.split()


def dpkg_known(name):
    """dpkg still has a record of the package (even config-files only)."""
    r = run(['dpkg-query', '-W', '-f=${Status}', name])
    return r.returncode == 0 and 'not-installed' not in r.stdout


def test_rs_982_03_install_enable_purge(env, deb):
    if os.geteuid() != 0:
        pytest.skip('installing a package needs root')
    if not shutil.which('a2enmod') or not shutil.which('apache2ctl'):
        pytest.skip('apache2 (a2enmod, apache2ctl) is not installed')
    if installed(PKG):
        pytest.skip(f'{PKG} is installed on this machine: not touching it')
    so = Path('/usr/lib/apache2/modules/mod_resumable.so')
    if so.exists() or Path('/etc/apache2/mods-available/resumable.load').exists():
        pytest.skip('a mod_resumable no package owns is installed (make install)')
    if STATE_DIR.exists():
        pytest.skip(f'{STATE_DIR} exists already: not touching it')
    made_policy = not POLICY.exists()
    if made_policy:
        POLICY.write_text('#!/bin/sh\n# test_982: never start services\nexit 101\n')
        POLICY.chmod(0o755)
    try:
        r = dpkg('-i', str(deb))
        assert r.returncode == 0, (r.stdout, r.stderr)
        for f in FILES:
            assert Path(f[1:]).exists(), f
        st = STATE_DIR.stat()
        assert (st.st_uid, st.st_gid) == (33, 33) or \
            STATE_DIR.owner() == 'www-data', STATE_DIR.owner()
        assert (STATE_DIR / 'files').owner() == 'www-data'
        assert not Path('/etc/apache2/mods-enabled/resumable.load').exists(), \
            'installing must not enable the module'
        r = run(['man', '-w', 'resumablectl']) if shutil.which('man') else None
        assert r is None or r.stdout.strip().startswith('/usr/share/man/man8/')
        r = run(['a2enmod', 'resumable'])
        assert r.returncode == 0, r
        assert Path('/etc/apache2/mods-enabled/resumable.load').is_symlink()
        assert Path('/etc/apache2/mods-enabled/resumable.conf').is_symlink()
        r = run(['apache2ctl', 'configtest'])
        assert r.returncode == 0 and 'Syntax OK' in r.stderr, r
        r = run(['/usr/sbin/resumablectl', 'list'])
        assert r.returncode in (0, 2), r
        # remove: the module is disabled, the program gone, conffiles and
        # the state directory stay
        r = dpkg('-r', PKG)
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert not Path('/etc/apache2/mods-enabled/resumable.load').exists()
        assert not so.exists() and not Path('/usr/sbin/resumablectl').exists()
        assert Path('/etc/apache2/mods-available/resumable.conf').exists()
        assert STATE_DIR.is_dir()
        r = dpkg('-P', PKG)
        assert r.returncode == 0, (r.stdout, r.stderr)
        left = [f for f in FILES if Path(f[1:]).exists()]
        assert not left, left
        assert not STATE_DIR.exists()
        assert not dpkg_known(PKG)
        assert not list(Path('/etc/apache2/mods-enabled').glob('resumable.*'))
    finally:
        if dpkg_known(PKG):
            run(['a2dismod', '-q', 'resumable'])
            dpkg('-P', PKG)
        if made_policy:
            POLICY.unlink()
