"""23x: limits of concatenation (issue 11, parts 2 and 3). A final that
cannot be registered is refused and nothing of it is kept; a final that
answered 201 serves its bytes. Limits: a partial listed twice (400), more
than 100 partials in one final (400), a partial used by 100 finals that are
not published yet (423, room again once they are). The state work of a
final is one record write per distinct partial: each partial's waiter list
holds the final once, and it leaves the list when it is published.
Every wait and loop is bounded."""
import time


from pyrs.client import make_data, sha256, split_url, upload_id
from pyrs.ctl import resumablectl
from pyrs.env import RsArea, wait_for

MAX_PARTS = 100         # RS_ENGINE_MAX_PARTS
MAX_WAITERS = 100       # RS_ENGINE_MAX_WAITERS


def path_of(url):
    return split_url(url)[0]




def show(env, uid, field):
    """A field of `resumablectl show uid` (list fields split)."""
    rc, out = resumablectl(env, statedb(env), 'show', uid)
    assert rc == 0, out
    line = [ln for ln in out.splitlines() if ln.startswith(field + ':')][0]
    value = line.split(':', 1)[1].split()
    return [] if value == ['-'] else value


def records(env):
    """Upload ids in the state database."""
    rc, out = resumablectl(env, statedb(env), 'list')
    assert rc == 0, out
    return {ln.split()[0] for ln in out.splitlines()[1:] if ln.strip()}


def logged(env, mark, tag, text):
    """A line tagged tag, mentioning text, in the error log since mark."""
    return any(tag in ln and text in ln for ln in env.log_lines(mark))


def statedb(env):
    """A state database of its own: verify judges only these tests."""
    return env.state_dir / 'concat236'


def verified(env):
    rc, out = resumablectl(env, statedb(env), 'verify')
    return rc == 0 and ' 0 problems' in out


class TestConcatLimits:
    CONF = staticmethod(lambda env: dict(
        statedb=f'"{statedb(env)}"',
        areas=[RsArea('/files/', dir='concat236',
                      directives=['ResumableExpire 1h'])]))

    def partial(self, tus, data, upload=True):
        url = tus.create(length=len(data), concat='partial')
        if upload:
            tus.upload_rest(url, data, 0)
        return url

    def refused(self, env, tus, urls, status, text):
        """POST a final of urls: refused with status (saying text), and not
        one record more."""
        before = records(env)
        r = tus.create_resp(concat='final;' + ' '.join(path_of(u) for u in urls))
        assert r.status == status, r
        assert text in r.body.decode(), r
        assert 'Location' not in r.headers, r
        assert records(env) == before
        return r

    def test_rs_236_01_duplicate_refused(self, env, tus):
        a, b = make_data(3000, seed=2361), make_data(2000, seed=2362)
        ua, ub = self.partial(tus, a), self.partial(tus, b)
        mark = env.log_mark()
        self.refused(env, tus, [ua, ub, ua], 400, 'listed twice')
        assert wait_for(lambda: logged(env, mark, 'RS09203', upload_id(ua)))
        self.refused(env, tus, [ua, ua], 400, 'listed twice')
        # the amplification of issue 11: one partial listed 250 times
        self.refused(env, tus, [ua] * 250, 400, f'more than {MAX_PARTS}')
        self.refused(env, tus, [ua] * MAX_PARTS, 400, 'listed twice')
        assert show(env, upload_id(ua), 'waiters') == []
        # the same URL spelled absolute and as a path is the same upload
        r = tus.create_resp(concat=f'final;{ua} {path_of(ua)}')
        assert r.status == 400, r
        # once each: 201, the final listed once on each waiter list
        final = tus.create(concat=f'final;{path_of(ua)} {path_of(ub)}')
        for u in (ua, ub):
            assert show(env, upload_id(u), 'waiters') in ([upload_id(final)], [])
        r = tus.get(final)
        assert r.status == 200 and sha256(r.body) == sha256(a + b), r
        # published: it left the lists, the partials are free again
        assert wait_for(lambda: not show(env, upload_id(ua), 'waiters')
                        and not show(env, upload_id(ub), 'waiters')), \
            show(env, upload_id(ua), 'waiters')
        assert tus.delete(ua).status == 204
        r = tus.get(final)
        assert r.status == 200 and sha256(r.body) == sha256(a + b), r

    def test_rs_236_02_too_many_parts(self, env, tus):
        """101 partials: 400, nothing stored; 100: a final (waiting)."""
        urls = [self.partial(tus, b'x', upload=False) for _ in range(MAX_PARTS + 1)]
        self.refused(env, tus, urls, 400, f'more than {MAX_PARTS}')
        assert all(show(env, upload_id(u), 'waiters') == [] for u in urls[:3])
        final = tus.create(concat='final;' + ' '.join(path_of(u) for u in urls[1:]))
        assert show(env, upload_id(urls[1]), 'waiters') == [upload_id(final)]
        for u in urls[1:]:
            assert tus.patch(u, 0, b'x').status == 204
        r = tus.get(final)
        assert r.status == 200 and r.body == b'x' * MAX_PARTS, r

    def test_rs_236_03_waiter_limit(self, env, tus):
        """A partial used by 100 finals that wait (their other partial is
        not finished): the 101st is refused (423) and nothing is stored,
        the partial can not be deleted; once the finals are complete and
        published they leave its list and a new final is accepted. Every
        final that answered 201 serves its bytes."""
        a, b = make_data(1000, seed=2363), make_data(500, seed=2364)
        ua = self.partial(tus, a)
        ub = self.partial(tus, b, upload=False)
        value = f'final;{path_of(ua)} {path_of(ub)}'
        finals = [tus.create(concat=value) for _ in range(MAX_WAITERS)]
        assert len(show(env, upload_id(ua), 'waiters')) == MAX_WAITERS
        mark = env.log_mark()
        r = self.refused(env, tus, [ua, ub], 423, f'at most {MAX_WAITERS}')
        assert wait_for(lambda: logged(env, mark, 'RS09201', upload_id(ua)))
        assert len(show(env, upload_id(ua), 'waiters')) == MAX_WAITERS
        assert tus.delete(ua).status == 423     # the finals still need it
        assert tus.head(ua).status == 200
        r = tus.patch(ub, 0, b)                 # composes all 100
        assert r.status == 204, r
        assert wait_for(lambda: not show(env, upload_id(ua), 'waiters'),
                        timeout=60), len(show(env, upload_id(ua), 'waiters'))
        final = tus.create(concat=value)
        for f in finals + [final]:
            r = tus.get(f)
            assert r.status == 200 and r.body == a + b, (f, r)
        assert wait_for(lambda: verified(env))
