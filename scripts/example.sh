#!/bin/sh
# Sets smbwatch up and runs it on the capture the repository ships (examples/).
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup-venv.sh
.venv/bin/smbwatch events examples/lateral-movement.pcap --format table
