"""71x: tus-js-client (Node) in its IETF modes against mod_resumable.

protocol 'ietf-draft-03' sends Upload-Draft-Interop-Version 5, 'ietf-draft-05'
sends 6 (and application/partial-upload). The driver is test/js/tus_client.mjs;
helpers and the node fixture come from test_900_tusjs.
"""
import pytest

from test_900_tusjs import (MiB, allow_client_abort, assert_download, assert_ok,  # noqa: F401
                            http, make_file, node_bin, run_client)

PROTOCOLS = ['ietf-draft-03', 'ietf-draft-05']


@pytest.mark.usefixtures('rs_default')
class TestIetfTusJs:

    @pytest.fixture(autouse=True)
    def _setup(self, env, node_bin):
        self.env = env
        self.node = node_bin
        self.endpoint = f'{env.url}/files/'

    @pytest.mark.parametrize('protocol', PROTOCOLS)
    def test_rs_710_01_plain(self, protocol):
        path = make_file(self.env, f'ietf-plain-{protocol}.bin', 2 * MiB + 17)
        name = f'ietf-plain-{protocol}.bin'
        res = run_client(self.node, self.endpoint, path, 'plain', protocol=protocol,
                         metadata={'filename': name})
        assert_ok(res)
        assert_download(res, path, name)

    @pytest.mark.parametrize('protocol', PROTOCOLS)
    def test_rs_710_02_interrupt_resume(self, protocol, tmp_path):
        """abort at ~40 %, resume with a new Upload via HEAD; sha256 compare"""
        size = 3 * MiB
        path = make_file(self.env, f'ietf-interrupt-{protocol}.bin', size)
        name = f'ietf-interrupt-{protocol}.bin'
        res = run_client(self.node, self.endpoint, path, 'interrupt',
                         chunk_size=256 * 1024, protocol=protocol,
                         url_storage=tmp_path / 'urls.json', metadata={'filename': name})
        if res.get('firstUrl'):
            allow_client_abort(self.env, res['firstUrl'])
        assert_ok(res)
        assert res['resumed'] is True, res
        assert res['uploadUrl'] == res['firstUrl']
        assert 0 < res['resumeOffset'] < size, res
        assert res['resumeOffset'] + res['bytes'] == size, res
        assert_download(res, path, name)

    @pytest.mark.parametrize('protocol', PROTOCOLS)
    def test_rs_710_03_during_creation(self, protocol):
        size = 2 * MiB + 5
        path = make_file(self.env, f'ietf-creation-{protocol}.bin', size)
        name = f'ietf-creation-{protocol}.bin'
        res = run_client(self.node, self.endpoint, path, 'during-creation',
                         chunk_size=MiB, protocol=protocol, metadata={'filename': name})
        assert_ok(res)
        assert res['creationOffset'] == MiB, res
        assert_download(res, path, name)

    @pytest.mark.parametrize('protocol', PROTOCOLS)
    def test_rs_710_04_terminate(self, protocol):
        path = make_file(self.env, f'ietf-terminate-{protocol}.bin', 3 * MiB)
        res = run_client(self.node, self.endpoint, path, 'terminate',
                         chunk_size=512 * 1024, protocol=protocol)
        if res.get('uploadUrl'):
            allow_client_abort(self.env, res['uploadUrl'])
        assert_ok(res)
        assert res['status'] == 204, res
        version = '5' if protocol == 'ietf-draft-03' else '6'
        status, _, _ = http('HEAD', res['uploadUrl'],
                            headers={'Upload-Draft-Interop-Version': version})
        assert status == 404, status
