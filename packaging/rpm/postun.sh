#!/bin/sh
# docker-connector .rpm %postun ($1: 0 removal, 1 upgrade, when it runs for
# the old package). rpm has no purge: an erase keeps the definitions in
# /var/lib/docker-connector, a changed /etc/docker-connector/Rocket.toml (as
# Rocket.toml.rpmsave) and the docker-connector user, so a reinstall carries
# on where it stopped; remove them by hand to forget everything.
set -e

if [ "$1" -eq 0 ]; then
    # The package cannot own directories (see Cargo.toml), so rpm leaves them
    # behind; rmdir removes them only when nothing (an .rpmsave) is left.
    # docs/ first: its parent is empty only without it.
    rmdir /usr/share/doc/docker-connector/docs 2>/dev/null || :
    rmdir /usr/share/doc/docker-connector /etc/docker-connector 2>/dev/null || :
fi

if [ -d /run/systemd/system ]; then
    # Forget the removed unit, or read the upgraded one.
    systemctl daemon-reload || :
    if [ "$1" -ge 1 ]; then
        # Upgrade: run the new binary, if the service was running at all.
        systemctl try-restart docker-connector.service || :
    fi
fi
