# ktape developer targets. `make test` is the whole test suite (what CI runs).

GO       ?= go
FUZZTIME ?= 30s

# The fault tests (make test-faults); they run in `make test` too, but for
# the long forms.
FAULT_TESTS = TestBackupSurvivesBrokerFaults|TestBackupRetentionAdvancesDuringRun|TestBackupPersistentFaultFailsClearly|TestBackupSurvivesBrokerRestartWithPersistedData|TestBackupOutOfSpace|TestBackupReadOnlyRepository|TestRestoreSurvivesBrokerFaults|TestRestorePersistentFaultFailsClearly|TestRestoreSurvivesBrokerRestartWithPersistedData|TestBackupRestoreThroughFlakyS3|TestFlakyS3PersistentFaults|TestTruncatedBodiesRetriedNeverTaken|TestCreateOutOfSpaceLeavesNothing|TestFaults|TestScheduleSeededAndMatched|TestCutter|TestBackupWriteDenied

.PHONY: build test test-faults bench bench-produce bench-backup bench-restore bench-workers fuzz vet fmt-check demo clean \
	reliability reliability-crash reliability-crash-s3 reliability-workers reliability-faults reliability-corrupt reliability-fuzz reliability-load reliability-group

## build: compile the ktape binary into bin/ktape
build:
	$(GO) build -o bin/ktape ./cmd/ktape

## test: the whole test suite, installing what it needs (scripts/test.sh)
test:
	./scripts/test.sh

## test-faults: the broker and storage fault tests (kfake faults, flaky S3, full and read-only file systems), with -race
test-faults:
	$(GO) test -race -count=1 -run '^($(FAULT_TESTS))$$' ./backup ./restore ./storage ./internal/faultproxy ./internal/kfaketest ./cmd/ktape

## reliability-faults: the fault tests' long form: test-faults plus a produce request timeout of 30 s and S3 at triple the fault rates (KTAPE_LONG=1)
reliability-faults:
	KTAPE_LONG=1 $(MAKE) test-faults

## bench: all benchmarks, no tests
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

## bench-produce: producer clients (ktape and peers) against a fake broker, JSON lines (ARGS='-impl kgo -value-bytes 100')
bench-produce:
	$(GO) run ./bench/produce $(ARGS)

## bench-backup: whole-topic copies (ktape backup, kcat, a franz-go consumer, a raw fetch loop) from bench/source, JSON lines (ARGS='-partitions 8 -codec lz4'; -table to summarise)
bench-backup:
	$(GO) run ./bench/backup $(ARGS)

## bench-restore: topic restores (ktape restore, kcat -P and a franz-go producer replaying a file) into bench/sink or kfake, JSON lines (ARGS='-target sink,kfake -partitions 8'; -table to summarise)
bench-restore:
	$(GO) run ./bench/restore $(ARGS)

## bench-workers: a backup shared by 1, 2 and 3 ktape processes (--workers-group) from bench/source, 2 GiB, 64 partitions, lz4, 5 rounds; and a worker joining, and one killed, part-way: JSON lines (ARGS='-workers 1,2 -reps 3'; -table or -table -summary to summarise)
bench-workers:
	$(GO) run ./bench/workers $(ARGS)

## reliability-load: the load test's long form: 1,000 partitions backed up from bench/source and restored into bench/sink, 1 GiB then 10 GiB, proving nothing lost or duplicated, memory flat, no goroutine or fd leak; prints a summary (KTAPE_LOAD_BYTES=20GiB, KTAPE_LOAD_MEMORY=256MiB, KTAPE_LOAD_PARTITIONS=N to vary)
reliability-load:
	KTAPE_LONG=1 $(GO) test -count=1 -run '^TestLoad$$' -v -timeout 60m ./cmd/ktape

## fuzz: each fuzz target in turn, for FUZZTIME each (make fuzz FUZZTIME=5m)
fuzz:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

## reliability-corrupt: the corruption matrix with 200 random positions per damage kind (CORRUPT_SEED=N for another seed)
reliability-corrupt:
	KTAPE_CORRUPT_TRIALS=200 KTAPE_CORRUPT_SEED=$(or $(CORRUPT_SEED),1) $(GO) test -count=1 -v -run '^TestCorruptionMatrix$$' ./cmd/ktape

## vet: go vet on every package
vet:
	$(GO) vet ./...

## fmt-check: fail if any Go file is not gofmt-formatted
fmt-check:
	@out=$$(find . -name '*.go' -not -path './.git/*' -not -path '*/testdata/*' -print0 | xargs -0 -r gofmt -l); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

## demo: the main job with no Kafka installed: an embedded cluster backed up, verified and checked record by record (ARGS='--records 100000 --repo /tmp/demo')
demo:
	$(GO) run ./cmd/ktape demo $(ARGS)

CRASH_TRIALS  ?= 500
CRASH_SEED    ?= random
CRASH_SUMMARY ?= $(CURDIR)/bin/crash-summary.jsonl

## reliability-crash: crash trials, long form: CRASH_TRIALS (500) seeded trials per kind (snapshot, continuous, restore) stopped by SIGKILL/SIGTERM and resumed, repositories in local directories, seed CRASH_SEED (random, logged); one JSON line of figures per kind appended to CRASH_SUMMARY
reliability-crash:
	@mkdir -p $(dir $(CRASH_SUMMARY))
	KTAPE_CRASH_STORE=local KTAPE_CRASH_TRIALS=$(CRASH_TRIALS) KTAPE_CRASH_SEED=$(CRASH_SEED) KTAPE_CRASH_SUMMARY=$(CRASH_SUMMARY) \
		$(GO) test -count=1 -timeout 8h -run '^TestCrashTrials$$' ./cmd/ktape; \
		status=$$?; tail -n 3 $(CRASH_SUMMARY); exit $$status

CRASH_S3_TRIALS ?= 100

## reliability-crash-s3: crash trials on S3 (versitygw, a prefix per trial), long form: CRASH_S3_TRIALS (100) seeded trials per kind (snapshot, multipart: segments uploaded in parts with stops timed to the uploads, continuous, restore), seed CRASH_SEED; orphan objects and unfinished multipart uploads counted; one JSON line per kind appended to CRASH_SUMMARY
reliability-crash-s3:
	@mkdir -p $(dir $(CRASH_SUMMARY))
	KTAPE_CRASH_STORE=s3 KTAPE_CRASH_TRIALS=$(CRASH_S3_TRIALS) KTAPE_CRASH_SEED=$(CRASH_SEED) KTAPE_CRASH_SUMMARY=$(CRASH_SUMMARY) \
		$(GO) test -count=1 -timeout 8h -run '^TestCrashTrials$$' ./cmd/ktape; \
		status=$$?; tail -n 4 $(CRASH_SUMMARY); exit $$status

## reliability-group: group membership churn, long form: GROUP_CHURN (300) random joins, leaves, closes, static restarts and heartbeat faults from seed GROUP_CHURN_SEED (1), each checked for items held once and never twice at a time
reliability-group:
	KTAPE_GROUP_CHURN=$(or $(GROUP_CHURN),300) KTAPE_GROUP_CHURN_SEED=$(or $(GROUP_CHURN_SEED),1) $(GO) test -count=1 -v -timeout 2h -run '^TestGroupChurn$$' ./client

WORKERS_TRIALS  ?= 30
WORKERS_SEED    ?= random
WORKERS_SUMMARY ?= $(CURDIR)/bin/workers-summary.jsonl
WORKERS_LOG     ?= $(CURDIR)/bin/workers-trials.log

## reliability-workers: workers trials, long form: WORKERS_TRIALS (30) seeded trials each of a backup and a restore shared by 2-4 worker processes that are killed, stopped, started and restarted at random moments, each checked against a one-process run; seeds from WORKERS_SEED (random, logged); a line per trial, the whole log in WORKERS_LOG, one JSON line of figures per kind appended to WORKERS_SUMMARY
reliability-workers:
	@mkdir -p $(dir $(WORKERS_SUMMARY))
	KTAPE_WORKERS_TRIALS=$(WORKERS_TRIALS) KTAPE_WORKERS_SEED=$(WORKERS_SEED) KTAPE_WORKERS_SUMMARY=$(WORKERS_SUMMARY) \
		$(GO) test -count=1 -v -timeout 4h -run '^TestWorkersTrials$$' ./cmd/ktape > $(WORKERS_LOG) 2>&1; \
		status=$$?; grep -E 'seed [0-9]+:|summary:|FAIL|panic' $(WORKERS_LOG); tail -n 2 $(WORKERS_SUMMARY); exit $$status

## reliability-fuzz: every fuzz target for 5 minutes (FUZZTIME to change it)
reliability-fuzz:
	FUZZTIME=$(if $(filter command line,$(origin FUZZTIME)),$(FUZZTIME),5m) ./scripts/fuzz.sh

## reliability: every long form of RELIABILITY.md in turn (about an hour and three quarters on 2 cores, plus 5 minutes per fuzz target)
reliability: reliability-crash reliability-crash-s3 reliability-workers reliability-faults reliability-corrupt reliability-load reliability-group reliability-fuzz

## clean: remove build output
clean:
	rm -rf bin
