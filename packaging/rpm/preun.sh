#!/bin/sh
# docker-connector .rpm %preun ($1: 0 removal, 1 upgrade, when it runs for the
# old package). Only a removal stops and disables the unit; an upgrade keeps
# it running until %postun restarts it.
set -e

if [ "$1" -eq 0 ] && command -v systemctl >/dev/null; then
    # Removes the enablement link even where systemd is not running;
    # --now also stops the service where it is.
    if [ -d /run/systemd/system ]; then
        systemctl --no-reload disable --now docker-connector.service || :
    else
        systemctl --no-reload disable docker-connector.service || :
    fi
fi
