#!/bin/sh
# docker-connector .rpm %pre ($1: 1 install, 2 upgrade). rpm runs it with
# /bin/sh. The user exists before the files are unpacked, so rpm can give
# /etc/docker-connector/Rocket.toml to the docker-connector group.
set -e

# The same steps as the .deb's postinst (packaging/debian/postinst), each one
# a no-op when done before. A system user and group of its own, no home, no
# shell: it only runs the unit. The docker group (created here when docker is
# not installed yet; docker's packages accept an existing one) is what lets
# it use the engine's socket.
getent group docker >/dev/null || groupadd --system docker
getent group docker-connector >/dev/null || groupadd --system docker-connector
getent passwd docker-connector >/dev/null ||
    useradd --system --gid docker-connector --no-create-home \
        --home-dir /var/lib/docker-connector --shell /usr/sbin/nologin \
        --comment "docker-connector service" docker-connector
usermod --append --groups docker docker-connector
