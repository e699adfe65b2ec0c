#!/usr/bin/python3
"""swift-launch.py SWIFT_CONF KIND SERVER_CONF - run one Swift WSGI server.

The Debian /usr/bin/swift-*-server scripts always read /etc/swift/swift.conf (hash
prefix/suffix, storage policies, constraints); a server's swift_dir setting only moves
the rings.  This launcher does what those scripts do after pointing Swift at our own
swift.conf first, so nothing below /etc/swift is read or written.
KIND is account, container, object or proxy.
"""
import sys

from swift.common import utils

utils.SWIFT_CONF_FILE = sys.argv[1]

from swift.common import constraints, storage_policy  # noqa: E402

storage_policy.reload_storage_policies()
constraints.reload_constraints()

from swift.common.wsgi import run_wsgi  # noqa: E402

kind, conf = sys.argv[2], sys.argv[3]
kwargs = {}
if kind == 'object':
    from swift.obj import server
    kwargs['global_conf_callback'] = server.global_conf_callback
sys.exit(run_wsgi(conf, kind + '-server', verbose=True, **kwargs))
