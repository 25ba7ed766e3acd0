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

# --- tools built from source ---------------------------------------------------
# versitygw, an S3 server, for storage/'s S3 tests. Built outside the
# project's go.mod (its dependencies are not ktape's), once: about 95 s on
# 2 cores, then cached.
TOOLS=${KTAPE_TOOLS:-$HOME/.cache/ktape-tools}
if [[ ! -x "$TOOLS/versitygw" ]]; then
	echo "test.sh: building versitygw v1.8.0 into $TOOLS"
	GOBIN="$TOOLS" GOFLAGS= go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
fi
export KTAPE_VERSITYGW="$TOOLS/versitygw"

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
