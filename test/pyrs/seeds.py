"""conf/seeds.conf, the design documents' URL layouts, as a test config.

seeds_conf(env, name) -> dict for a class CONF: the file itself (never a
copy of its layout) included after `Define RS_SEEDS_DIR <area dir>`, with
mod_alias loaded for the /upload/ alias of finished files.
"""
from .env import BASE_MODULES


def seeds_dir(env, name='seeds'):
    return env.area_dir(name)


def seeds_conf(env, name='seeds', server_extra='', after=''):
    """after: config text placed after the include (e.g. a <Location>
    block adding a limit to one of the seeds' locations)."""
    conf = env.repo / 'conf' / 'seeds.conf'
    extra = (f'Define RS_SEEDS_DIR "{seeds_dir(env, name)}"\n'
             f'Include "{conf}"\n{after}')
    return dict(areas=[], server_extra=server_extra, extra=extra,
                modules=BASE_MODULES + ['alias'])


def form_body(parts, boundary='----WebKitFormBoundaryRsSeeds7MA4YWxk'):
    """multipart/form-data as browsers send FormData: parts in order, each
    (name, str) or (name, (filename, bytes, content_type)).
    Returns (content_type, body)."""
    out = b''
    for name, value in parts:
        out += b'--' + boundary.encode() + b'\r\n'
        if isinstance(value, tuple):
            fname, data, ctype = value
            out += (f'Content-Disposition: form-data; name="{name}"; '
                    f'filename="{fname}"\r\nContent-Type: {ctype}\r\n\r\n'
                    ).encode()
            out += data
        else:
            out += (f'Content-Disposition: form-data; name="{name}"\r\n\r\n'
                    ).encode() + str(value).encode()
        out += b'\r\n'
    out += b'--' + boundary.encode() + b'--\r\n'
    return f'multipart/form-data; boundary={boundary}', out


def post_form(env, path, parts, headers=None):
    ctype, body = form_body(parts)
    h = {'Content-Type': ctype}
    h.update(headers or {})
    return env.client.request('POST', path, h, body)
