#!/bin/sh
# docker-connector .rpm %post ($1: 1 install, 2 upgrade). Without systemd
# (a container, a CI machine) only the enablement is recorded, for a later
# boot; nothing here may fail the transaction for want of systemd.
set -e

if [ -d /run/systemd/system ]; then
    # Make systemd read the new or changed unit file.
    systemctl daemon-reload || :
fi
# The restart on upgrade is in %postun, which runs after the old package's
# files are gone; doing it here as well would restart twice.
if [ "$1" -eq 1 ] && command -v systemctl >/dev/null; then
    # Works offline too: it only creates the multi-user.target.wants link.
    systemctl --no-reload enable docker-connector.service || :
    if [ -d /run/systemd/system ]; then
        # A failure to start (port taken, say) is the service's, not the
        # package's: the unit's status tells the administrator why.
        systemctl start docker-connector.service ||
            echo "docker-connector: the service did not start; see systemctl status docker-connector" >&2
    fi
fi
