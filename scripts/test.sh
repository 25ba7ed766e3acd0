#!/usr/bin/env bash
# test.sh runs ktape's whole test suite on a Debian machine where only Go is
# installed: it installs what the tests need, then checks formatting, vets
# and runs every test with the race detector. `make test` and .ci/run call it.
#
# When a test starts to need a tool (kcat, python3-kafka, ...), add its
# Debian package to APT_PACKAGES, or add a step below that section.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v go >/dev/null || { echo "test.sh: go not found in PATH" >&2; exit 1; }

# --- Debian packages the tests need ------------------------------------------
# Installed only if missing. The interop tests (client/interop_test.go) run
# librdkafka (kcat, python3-confluent-kafka) and kafka-python with every
# codec, under Debian's /usr/bin/python3.
APT_PACKAGES=(kcat python3-kafka python3-confluent-kafka python3-snappy python3-lz4 python3-zstandard)

install_apt_packages() {
	local missing=() p
	for p in "${APT_PACKAGES[@]}"; do
		if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
			missing+=("$p")
		fi
	done
	if [[ ${#missing[@]} -eq 0 ]]; then
		return 0
	fi
	local sudo=()
	if [[ $(id -u) -ne 0 ]]; then
		sudo=(sudo)
	fi
	echo "test.sh: installing Debian packages: ${missing[*]}"
	"${sudo[@]}" apt-get update -qq
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
}

install_apt_packages

# --- tools the storage tests serve objects with --------------------------------
# Emulators of each object store, started on loopback by internal/s3test,
# internal/gcstest and internal/azuretest; the tests find them through the
# KTAPE_* variables exported here. Each is installed once into $TOOLS, outside
# the project's go.mod (their dependencies are not ktape's), then cached; the
# time each install took is printed. Seen on 2 busy cores with empty caches:
# versitygw about 95 s, fake-gcs-server 115 to 155 s, Azurite 25 to 55 s.
TOOLS=${KTAPE_TOOLS:-$HOME/.cache/ktape-tools}

# timed NAME CMD...: runs CMD and prints how long installing NAME took.
timed() {
	local name=$1 start=$SECONDS
	shift
	"$@"
	echo "test.sh: $name installed in $((SECONDS - start)) s"
}

# versitygw, an S3 server over a directory, for s3:// tests.
if [[ ! -x "$TOOLS/versitygw" ]]; then
	echo "test.sh: building versitygw v1.8.0 into $TOOLS"
	timed versitygw env GOBIN="$TOOLS" GOFLAGS= go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
fi
export KTAPE_VERSITYGW="$TOOLS/versitygw"

# fake-gcs-server, a GCS emulator (JSON API, resumable uploads,
# preconditions), for gs:// tests.
if [[ ! -x "$TOOLS/fake-gcs-server" ]]; then
	echo "test.sh: building fake-gcs-server v1.56.1 into $TOOLS"
	timed fake-gcs-server env GOBIN="$TOOLS" GOFLAGS= go install github.com/fsouza/fake-gcs-server@v1.56.1
fi
export KTAPE_FAKE_GCS_SERVER="$TOOLS/fake-gcs-server"

# Azurite, Microsoft's Azure Storage emulator, for azblob:// tests: a Node.js
# program from npm. 3.35.0 is the newest that runs on the machine's Node 20
# (3.36 wants Node 21, 3.37 Node 22). A machine without Node gets Debian's.
AZURITE="$TOOLS/azurite/node_modules/.bin/azurite-blob"
if [[ ! -x "$AZURITE" ]]; then
	if ! command -v npm >/dev/null; then
		APT_PACKAGES=(nodejs npm)
		install_apt_packages
	fi
	echo "test.sh: installing Azurite 3.35.0 into $TOOLS/azurite"
	mkdir -p "$TOOLS/azurite"
	timed Azurite npm install --prefix "$TOOLS/azurite" --omit=dev --no-audit --no-fund --loglevel=error azurite@3.35.0
fi
export KTAPE_AZURITE="$AZURITE"

# --- static checks -----------------------------------------------------------
echo "test.sh: gofmt"
unformatted=$(find . -name '*.go' -not -path './.git/*' -not -path '*/testdata/*' -print0 | xargs -0 -r gofmt -l)
if [[ -n "$unformatted" ]]; then
	echo "test.sh: these files need gofmt:" >&2
	echo "$unformatted" >&2
	exit 1
fi

echo "test.sh: go vet"
go vet ./...

# --- tests -------------------------------------------------------------------
# The race detector needs cgo (and so a C compiler); go turns cgo off when it
# finds none.
race=(-race)
if [[ "$(go env CGO_ENABLED)" != "1" ]]; then
	echo "test.sh: cgo is disabled (no C compiler?): running tests WITHOUT the race detector"
	race=()
fi

echo "test.sh: go test ${race[*]}"
go test "${race[@]}" -count=1 -timeout 30m ./...
