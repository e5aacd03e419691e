"""266: the md5 front end's last chunk answers before the chunk files go
(issue 15): the upload is completed with RS_UF_CHUNKS_LEFT, the chunk files
and the merge state are unlinked once the answer is written, and what a
kill between the answer and that cleanup leaves is removed by the expiry
sweep (here resumablectl expire, which runs the same sweep, with httpd
stopped), which clears the bit."""
from pyrs.client import make_data, sha256
from pyrs.ctl import resumablectl
from pyrs.env import wait_for
from pyrs.seeds import seeds_conf, seeds_dir as _seeds_dir

from test_820_md5 import begin, send

AREA = 'seeds-md5after'
CHUNK = 64 * 1024


def db_path(env):
    return env.gen / 'state266' / 'state'


def conf(env):
    env.mkdir_www(db_path(env).parent)
    c = seeds_conf(env, AREA)
    c.update(statedb=str(db_path(env)), sweep=None)
    return c


def staged(env):
    d = _seeds_dir(env, AREA) / '.resumable'
    return sorted(f.name for f in d.iterdir()
                  if '.c' in f.name or '.md5s' in f.name) if d.exists() else []


def upload(env, seed, n=5):
    """A whole md5 upload; returns (data, fileId, chunk files before the
    last chunk)."""
    data = make_data(n * CHUNK + 11, seed=seed)
    fid, chunks = begin(env, data, CHUNK, 1)
    before = staged(env)
    r, j = send(env, fid, *chunks[-1])
    assert r.status == 200 and j['code'] == 0 and j['data'] == [], j
    assert env.sha256_file(_seeds_dir(env, AREA) / f'{fid}.bin') == sha256(data)
    return data, fid, before


class TestMd5AfterAnswer:
    CONF = conf

    def test_rs_266_01_chunks_go_after_the_answer(self, env):
        _, _, before = upload(env, 2661)
        assert any('.md5s' in f for f in before) and len(before) >= 5, before
        assert wait_for(lambda: staged(env) == [], timeout=10) is True, staged(env)

    def test_rs_266_02_sweep_collects_what_a_kill_left(self, env):
        """The files a kill after the answer would leave (the chunks and the
        merge state) are removed by the sweep; once it has cleared the bit,
        it no longer looks at the upload."""
        _, _, before = upload(env, 2662)
        assert wait_for(lambda: staged(env) == [], timeout=10) is True
        env.stop()
        d = _seeds_dir(env, AREA) / '.resumable'
        for name in before:                  # as a kill -9 would leave them
            (d / name).write_bytes(b'left behind')
        rc, out = resumablectl(env, db_path(env), 'expire')
        assert rc == 0, out
        assert staged(env) == [], staged(env)
        (d / before[0]).write_bytes(b'not ours any more')
        rc, out = resumablectl(env, db_path(env), 'expire')
        assert rc == 0, out
        assert staged(env) == [before[0]]    # bit cleared: not swept again
        (d / before[0]).unlink()
        env.start()
