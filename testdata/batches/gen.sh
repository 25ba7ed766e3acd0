#!/usr/bin/env bash
# gen.sh regenerates the record-batch fixtures in testdata/batches: raw
# record batches written by other Kafka clients, with the records each
# writer sent (see README.md beside this file for the list and the format).
#
# What it needs (Debian bookworm):
#   apt-get install -y kcat python3-kafka python3-confluent-kafka \
#       python3-snappy python3-lz4 python3-zstandard
#   Go (the module's go.mod version). The Python parts run with Debian's
#   /usr/bin/python3: the python3 first on PATH may be a pyenv one that does
#   not see apt's modules (override with PYTHON=...).
#
# What it does, all on 127.0.0.1 only:
#   1. builds internal/cmd/kfakeserver and internal/cmd/batchcapture into a
#      temporary directory;
#   2. starts kfakeserver (franz-go's kfake, one broker, port $KFAKE_PORT,
#      default 19092) with every fixture topic seeded (1 partition each,
#      kgo-many 2) and -advertise-produce-v0: librdkafka 2.0.2 sends gzip,
#      snappy and lz4 batches UNCOMPRESSED to a broker whose lowest Produce
#      version is 3 (kfake, Kafka 4.x; librdkafka issue #4956);
#   3. produces with kcat (librdkafka), franz-go kgo, confluent-kafka and
#      kafka-python;
#   4. captures every topic with `batchcapture capture`: the raw Fetch bytes
#      to <topic>.p<partition>.bin and the records a kgo consumer reads back
#      (control records included) to <topic>.json;
#   5. builds the legacy message sets (magic 0 and 1) without a broker, with
#      kafka-python's LegacyRecordBatchBuilder: legacy-v<magic>-<codec>.bin
#      and .json;
#   6. stops the server and runs go test ./internal/testfixtures, which
#      decodes every fixture three ways and compares with its JSON.
# It writes to a temporary directory and, only when every fixture was
# written, replaces every *.bin and *.json here with them, so a run leaves
# exactly the fixtures it wrote (and a failed run leaves the old ones). Keys, values, headers, timestamps (except kcat's, which
# cannot be set) and batch boundaries are fixed; producer ids (chosen at
# random by kfake), kcat's timestamps and kafka-python's gzip header time
# differ from run to run.
#
# Usage: testdata/batches/gen.sh   (from anywhere)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
PYTHON=${PYTHON:-/usr/bin/python3}
KFAKE_PORT=${KFAKE_PORT:-19092}
broker=127.0.0.1:$KFAKE_PORT

die() { echo "gen.sh: $*" >&2; exit 1; }
command -v go >/dev/null || die "go not found"
command -v kcat >/dev/null || die "kcat not found (apt-get install -y kcat)"
[[ -x $PYTHON ]] || die "$PYTHON not found"
"$PYTHON" -c 'import kafka, confluent_kafka, snappy, lz4.frame, zstandard' 2>/dev/null ||
	die "$PYTHON lacks modules (apt-get install -y python3-kafka python3-confluent-kafka python3-snappy python3-lz4 python3-zstandard)"

codecs=(none gzip snappy lz4 zstd)
topics=()
for c in "${codecs[@]}"; do topics+=("kcat-$c" "kgo-$c" "confluent-$c" "kafkapy-$c"); done
topics+=(kcat-idempotent kcat-txn kgo-idempotent kgo-txn confluent-txn)
seed=$(IFS=,; echo "${topics[*]/%/:1},kgo-many:2")

work=$(mktemp -d)
server_pid=
cleanup() {
	if [[ -n $server_pid ]]; then
		kill "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

echo "gen.sh: building kfakeserver and batchcapture"
(cd "$root" && go build -o "$work/kfakeserver" ./internal/cmd/kfakeserver && go build -o "$work/batchcapture" ./internal/cmd/batchcapture)

out=$work/out # the new fixtures, moved here only when all were written
mkdir "$out"

"$work/kfakeserver" -ports "$KFAKE_PORT" -seed-topics "$seed" -advertise-produce-v0 >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
	grep -q '^ready$' "$work/server.log" 2>/dev/null && break
	kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; die "kfakeserver exited"; }
	sleep 0.1
done
grep -q '^ready$' "$work/server.log" || die "kfakeserver not ready"
echo "gen.sh: kfakeserver (pid $server_pid) on $broker"

# --- versions ------------------------------------------------------------------
kcat_version=$(kcat -V 2>&1 | sed -n 's/^Version \([^ ]*\) .*librdkafka \([^ ]*\) .*/kcat \1 (librdkafka \2)/p')
[[ -n $kcat_version ]] || die "cannot read kcat -V"
franz_version=$(cd "$root" && go list -m -f '{{.Version}}' github.com/twmb/franz-go)
confluent_version=$("$PYTHON" -c 'import confluent_kafka as c; print("confluent-kafka %s (librdkafka %s)" % (c.version()[0], c.libversion()[0]))')
kafkapy_version=$("$PYTHON" -c 'import kafka; print("kafka-python " + kafka.__version__)')
echo "gen.sh: $kcat_version; franz-go $franz_version; $confluent_version; $kafkapy_version"

# --- the Python side (confluent-kafka, kafka-python, legacy message sets) -------
cat >"$work/fixtures.py" <<'PY'
"""Producers for gen.sh; see the comments there. Usage:
    fixtures.py confluent BROKER TOPIC CODEC|txn
    fixtures.py kafkapy BROKER TOPIC CODEC
    fixtures.py legacy OUTDIR
"""
import base64, hashlib, json, os, struct, sys, zlib

BASE_TS = 1700000000000  # as in internal/cmd/batchcapture: 2023-11-14T22:13:20Z


def standard_batches(null_headers=True):
    """The standard record set (the same as batchcapture's for kgo), as two
    batches of (key, value, headers, timestamp). With null_headers False,
    headers with a null value are left out (kafka-python cannot send them)."""
    def hs(*pairs):
        return [(k, v) for k, v in pairs if null_headers or v is not None]
    a = [
        (b"key-0", b"value-0", hs(("h1", b"x"), ("h-null", None), ("h-empty", b"")), BASE_TS),
        (None, b"value with a null key", [], BASE_TS + 1),
        (b"key-2", None, [("h1", b"tombstone")], BASE_TS + 2),
        (b"key-3", b"", [], BASE_TS + 3),
        (b"", b"empty key", [], BASE_TS + 4),
        (b"key-5", b"ktape compressible payload. " * 16,
         [("dup", b"1"), ("dup", b"2"), ("trace", b"0123abcd")], BASE_TS + 5),
        (bytes([0, 1, 0xFE, 0xFF]), bytes(range(256)), [("bin", bytes([0, 0xFF]))], BASE_TS - 1000),
        (b"key-7", "héllo wörld ✓".encode(), [], BASE_TS + 7),
    ]
    b = [
        (b"key-8", b"second batch: " + b"abcdefgh" * 24, [], BASE_TS + 100),
        (None, None, [], BASE_TS + 101),
        (b"key-10", b"last", hs(("h-null", None)), BASE_TS + 102),
    ]
    return [a, b]


def confluent(broker, topic, mode):
    from confluent_kafka import Producer
    conf = {"bootstrap.servers": broker, "linger.ms": 200, "batch.num.messages": 10000}
    if mode == "txn":
        conf["transactional.id"] = "ktape-confluent-txn"
    else:
        conf["compression.codec"] = mode
    p = Producer(conf)
    # Load the topic's metadata first: messages produced while the leader
    # is still unknown can be sent in more than one batch.
    p.list_topics(topic, timeout=30)
    errors = []

    def report(err, msg):
        if err is not None:
            errors.append(err)

    def send(batch):
        for k, v, h, ts in batch:
            p.produce(topic, value=v, key=k, partition=0, headers=h, timestamp=ts, on_delivery=report)
        if p.flush(30) != 0:
            sys.exit("confluent: messages left unsent")

    a, b = standard_batches()
    if mode == "txn":
        # A committed transaction, then an aborted one whose records were
        # written before the abort (flush first: abort purges unsent ones).
        p.init_transactions(30)
        p.begin_transaction()
        send(a)
        p.commit_transaction(30)
        p.begin_transaction()
        send(b)
        p.abort_transaction(30)
    else:
        send(a)
        send(b)
    if errors:
        sys.exit("confluent: %s" % errors)


def kafkapy(broker, topic, codec):
    from kafka import KafkaProducer
    # api_version pinned: its auto-detection probe sometimes times out here.
    p = KafkaProducer(bootstrap_servers=broker, api_version=(2, 5, 0), linger_ms=200, batch_size=1 << 20,
                      compression_type=None if codec == "none" else codec)
    p.partitions_for(topic)  # load the metadata before producing
    for batch in standard_batches(null_headers=False):
        # kafka-python refuses a record whose key and value are both null.
        fs = [p.send(topic, key=k, value=v, headers=h, partition=0, timestamp_ms=ts)
              for k, v, h, ts in batch if k is not None or v is not None]
        p.flush(30)
        for f in fs:
            f.get(30)
    p.close(30)


# --- legacy message sets ---------------------------------------------------------

def b64(x):
    return None if x is None else base64.b64encode(bytes(x)).decode()


def fixture_json(doc):
    """Indented JSON with one record per line, like testfixtures.Marshal."""
    recs = []
    for p in doc["partitions"]:
        for b in p["batches"]:
            ph = []
            for r in b["records"]:
                ph.append("\0record-%d\0" % len(recs))
                recs.append(json.dumps(r, separators=(",", ":"), ensure_ascii=False))
            b["records"] = ph
    out = json.dumps(doc, indent=2, ensure_ascii=False)
    for i, r in enumerate(recs):
        out = out.replace(json.dumps("\0record-%d\0" % i), r, 1)
    return out + "\n"


def legacy(outdir):
    """Message sets as a broker stores them and returns them in Fetch v0-v3:
    log entries (offset int64, size int32, message) back to back.

    Uncompressed: one entry per message, offset field = the message's offset.
    Compressed: one wrapper entry per batch, built by kafka-python's
    LegacyRecordBatchBuilder, then changed as Kafka's broker does when it
    appends (LogValidator): the wrapper's offset field becomes the offset of
    its last inner message; inner offsets are relative (0..n-1) for magic 1
    and absolute for magic 0; for magic 1 the wrapper timestamp becomes the
    largest inner timestamp (CreateTime) and its CRC is recomputed.
    (For magic 0 a real broker recompresses with its own codec; here the
    payload is kafka-python's.) gzip payloads carry mtime 0 in their header
    (kafka-python stamps the current time) so the files do not change from
    run to run."""
    import gzip, io
    import kafka
    import kafka.record.legacy_records as legacy_records
    from kafka.record.legacy_records import LegacyRecordBatchBuilder
    from kafka.record.memory_records import MemoryRecords

    def gzip_encode_mtime0(payload, compresslevel=None):
        # kafka.codec.gzip_encode, except that the gzip header's time is 0
        # rather than now, so that the fixture is the same on every run.
        buf = io.BytesIO()
        with gzip.GzipFile(fileobj=buf, mode="w", compresslevel=compresslevel or 9, mtime=0) as g:
            g.write(payload)
        return buf.getvalue()
    legacy_records.gzip_encode = gzip_encode_mtime0

    codecs = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3}
    names = {v: k for k, v in codecs.items()}
    sets = []
    for magic in (0, 1):
        for codec in ("none", "gzip", "snappy", "lz4"):
            if magic == 0 and codec == "lz4":
                continue  # v0 LZ4 framing was broken (KIP-57); no fixture
            sets.append((magic, codec))

    for magic, codec in sets:
        name = "legacy-v%d-%s" % (magic, codec)
        batches = standard_batches()
        log = bytearray()
        jbatches = []
        offset = 0
        if codec == "none":  # every message is its own entry
            batches = [[r] for batch in batches for r in batch]
        for batch in batches:
            first = offset
            last = offset + len(batch) - 1
            compressed = codec != "none"
            builder = LegacyRecordBatchBuilder(magic=magic, compression_type=codecs[codec], batch_size=1 << 20)
            records = []
            for i, (k, v, _h, ts) in enumerate(batch):
                inner = i if (compressed and magic == 1) else first + i
                if builder.append(inner, timestamp=ts, key=k, value=v) is None:
                    sys.exit("legacy: builder refused a record")
                records.append({"offset": first + i, "timestamp": ts if magic == 1 else -1,
                                "key": b64(k), "value": b64(v), "headers": []})
            entry = bytearray(builder.build())
            # entry: offset(8) size(4) crc(4) magic(1) attributes(1) [timestamp(8)] key value
            size = struct.unpack_from(">i", entry, 8)[0]
            if size + 12 != len(entry):
                sys.exit("legacy: builder produced %d bytes, size field says %d" % (len(entry), size + 12))
            struct.pack_into(">q", entry, 0, last)
            max_ts = max(ts for _k, _v, _h, ts in batch) if magic == 1 else -1
            if compressed and magic == 1:
                struct.pack_into(">q", entry, 18, max_ts)
                struct.pack_into(">I", entry, 12, zlib.crc32(bytes(entry[16:])) & 0xFFFFFFFF)
            crc = struct.unpack_from(">I", entry, 12)[0]
            if crc != zlib.crc32(bytes(entry[16:])) & 0xFFFFFFFF:
                sys.exit("legacy: bad CRC")
            jbatches.append({
                "position": len(log), "size": len(entry),
                "base_offset": first, "last_offset": last,
                "partition_leader_epoch": -1, "magic": magic, "crc": crc,
                "codec": codec, "timestamp_type": "create",
                "transactional": False, "control": False,
                "producer_id": -1, "producer_epoch": -1, "base_sequence": -1,
                "record_count": len(batch),
                "first_timestamp": batch[0][3] if magic == 1 else -1,
                "max_timestamp": max_ts,
                "records": records,
            })
            log += entry
            offset = last + 1

        # Read the log back with kafka-python's own reader (what a client
        # sees from a Fetch v0-v3): offsets, timestamps, keys, values.
        got = []
        mr = MemoryRecords(bytes(log))
        while True:
            b = mr.next_batch()
            if b is None:
                break
            for r in b:
                got.append((r.offset, r.timestamp if magic == 1 else -1,
                            None if r.key is None else bytes(r.key), None if r.value is None else bytes(r.value)))
        want = [(r["offset"], r["timestamp"],
                 None if r["key"] is None else base64.b64decode(r["key"]),
                 None if r["value"] is None else base64.b64decode(r["value"]))
                for b in jbatches for r in b["records"]]
        if got != want:
            sys.exit("legacy %s: kafka-python reads back\n%r\nexpected\n%r" % (name, got, want))

        fname = name + ".bin"
        with open(os.path.join(outdir, fname), "wb") as f:
            f.write(log)
        doc = {
            "name": name,
            "writer": "kafka-python %s LegacyRecordBatchBuilder(magic=%d, compression_type=%d), "
                      "log entries laid out as a broker stores them" % (kafka.__version__, magic, codecs[codec]),
            "magic": magic,
            "notes": ("built without a broker; offsets, wrapper offset%s as Kafka's broker writes them: "
                      "inner offsets %s" % (" and wrapper timestamp" if magic == 1 else "",
                                            "relative (0..n-1)" if magic == 1 else "absolute"))
                     if codec != "none" else "built without a broker; one log entry per message",
            "partitions": [{
                "partition": 0, "file": fname, "size": len(log),
                "sha256": hashlib.sha256(log).hexdigest(),
                "high_watermark": offset, "last_stable_offset": offset, "log_start_offset": 0,
                "aborted_transactions": [], "batches": jbatches,
            }],
        }
        with open(os.path.join(outdir, name + ".json"), "w", encoding="utf-8") as f:
            f.write(fixture_json(doc))
        print("built %s: %d entries, %d records" % (name, len(jbatches), len(want)))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "confluent":
        confluent(*sys.argv[2:5])
    elif cmd == "kafkapy":
        kafkapy(*sys.argv[2:5])
    elif cmd == "legacy":
        legacy(sys.argv[2])
    else:
        sys.exit("unknown command " + cmd)
PY
py() { "$PYTHON" "$work/fixtures.py" "$@"; }

# --- kcat (librdkafka) ----------------------------------------------------------
# kcat cannot set timestamps or per-message headers: each invocation is one
# batch (linger.ms), the first with keys split at ':' and three headers on
# every message (h-null has a null value: -H without '='), the second with
# -Z (empty key or value sent as null). kcat skips empty input lines. Both
# batches hold a compressible value: librdkafka sends a batch uncompressed
# when compressing does not shrink it.
kcat_batch1() {
	printf '%s\n' 'key-0:value-0' 'key-1:' ':empty key' 'no key delimiter, so a null key' \
		"key-4:$(printf 'ktape compressible payload. %.0s' {1..16})" 'key-5:héllo wörld ✓'
}
kcat_batch2() {
	printf '%s\n' 'key-6:' ':' "key-8:second batch $(printf 'abcdefgh%.0s' {1..24})" 'key-9:last'
}
kcat_produce() { # topic, extra kcat args...
	local t=$1
	shift
	kcat_batch1 | kcat -b "$broker" -P -t "$t" -p 0 -K: -H h1=x -H h-null -H h-empty= -X linger.ms=200 "$@"
	kcat_batch2 | kcat -b "$broker" -P -t "$t" -p 0 -K: -Z -X linger.ms=200 "$@"
}
for c in "${codecs[@]}"; do
	kcat_produce "kcat-$c" -z "$c"
done
kcat_produce kcat-idempotent -X enable.idempotence=true
# Two kcat runs with the same transactional.id: two committed transactions,
# the second with the producer epoch bumped.
kcat_produce kcat-txn -X transactional.id=ktape-kcat-txn
echo "gen.sh: kcat done"

# --- franz-go kgo ---------------------------------------------------------------
"$work/batchcapture" produce-kgo -brokers "$broker"
echo "gen.sh: kgo done"

# --- confluent-kafka, kafka-python ----------------------------------------------
for c in "${codecs[@]}"; do
	py confluent "$broker" "confluent-$c" "$c"
	py kafkapy "$broker" "kafkapy-$c" "$c"
done
py confluent "$broker" confluent-txn txn
echo "gen.sh: python clients done"

# --- capture ----------------------------------------------------------------------
cap() { "$work/batchcapture" capture -brokers "$broker" -out "$out" "$@"; }
for c in "${codecs[@]}"; do
	cap -writer "$kcat_version: kcat -P -z $c -X linger.ms=200, two runs" \
		-notes "timestamps are the producer's wall clock; run 1: -K: -H h1=x -H h-null -H h-empty=; run 2: -K: -Z" "kcat-$c"
	cap -writer "franz-go kgo $franz_version: ProducerBatchCompression($c), DisableIdempotentWrite, ManualFlushing" "kgo-$c"
	cap -writer "$confluent_version: compression.codec=$c, linger.ms=200, flush per batch" "confluent-$c"
	cap -writer "$kafkapy_version: compression_type=$c, linger_ms=200, flush per batch" \
		-notes "kafka-python 2.0.2 rejects null header values (KafkaProducer.send asserts bytes) and records whose key and value are both null, so its records carry no h-null header and the standard set's null-key null-value record is missing" "kafkapy-$c"
done
cap -writer "$kcat_version: kcat -P -X enable.idempotence=true -X linger.ms=200, two runs" \
	-notes "timestamps are the producer's wall clock; each run is a new producer id" kcat-idempotent
cap -writer "$kcat_version: kcat -P -X transactional.id=ktape-kcat-txn -X linger.ms=200, two runs" \
	-notes "timestamps are the producer's wall clock; each run commits one transaction; the second run bumps the epoch" kcat-txn
cap -writer "franz-go kgo $franz_version: default producer (idempotent, snappy), ManualFlushing" kgo-idempotent
cap -writer "franz-go kgo $franz_version: TransactionalID(ktape-kgo-txn), NoCompression, ManualFlushing" \
	-notes "three transactions: committed (8 records), aborted (3 records), committed (2 records)" kgo-txn
cap -writer "franz-go kgo $franz_version: DisableIdempotentWrite, ManualFlushing; partition 0 NoCompression, partition 1 ZstdCompression" \
	-notes "500 records in one batch per partition" kgo-many
cap -writer "$confluent_version: transactional.id=ktape-confluent-txn, linger.ms=200" \
	-notes "a committed transaction (8 records), then an aborted one (3 records, flushed before abort_transaction)" confluent-txn

# --- legacy message sets --------------------------------------------------------
py legacy "$out"

kill "$server_pid"
wait "$server_pid" 2>/dev/null || true
server_pid=

rm -f "$here"/*.bin "$here"/*.json
mv "$out"/* "$here"/

echo "gen.sh: checking the fixtures (go test ./internal/testfixtures)"
(cd "$root" && go test -count=1 ./internal/testfixtures)

echo "gen.sh: fixtures in $here:"
(cd "$here" && ls -l -- *.bin *.json | awk '{printf "  %8d  %s\n", $5, $9}')
echo "gen.sh: total $(cat "$here"/*.bin "$here"/*.json | wc -c) bytes"
