#!/usr/bin/env bash
# What the tests need beyond the build's Debian packages (`make deps`), each installed only
# when missing, so a rerun changes nothing. `make test` runs this; CI runs `make test`.
set -euo pipefail
apt_install() { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"; }
# Real registry clients for RegistryClientTests: skopeo from Debian, the oras Python SDK.
command -v skopeo >/dev/null 2>&1 || apt_install skopeo
# The engines: a Docker Engine (20.10, with containerd 1.6 and runc) and podman 4.3. Each
# test starts its own daemon with its state in a temporary folder and stops it at teardown.
if ! command -v dockerd >/dev/null 2>&1 || ! command -v podman >/dev/null 2>&1; then
	apt_install docker.io containerd runc podman
fi
python3 -c 'import oras' >/dev/null 2>&1 || python3 -m pip install --quiet --disable-pip-version-check oras
# Cluster mode's index (PostgresIndexTests, ClusterStoreTests): PostgreSQL 15; each test
# runs its own server in a temporary folder, so Debian's service is not needed.
[ -x /usr/lib/postgresql/15/bin/postgres ] || apt_install postgresql-15
# Ceph (Debian's 16.2: mon, OSD, radosgw) for S3ClientCephTests, which start a single-node
# cluster with shared/services/start-ceph.sh; the list is the one that script's header gives.
command -v radosgw >/dev/null 2>&1 || apt_install ceph-mon ceph-osd ceph-mgr radosgw ceph-common uuid-runtime curl
