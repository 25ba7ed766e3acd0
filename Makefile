# ktape developer targets. `make test` is the whole test suite (what CI runs).

GO       ?= go
FUZZTIME ?= 30s

.PHONY: build test bench bench-produce bench-backup bench-restore reliability-load fuzz vet fmt-check demo clean

## build: compile the ktape binary into bin/ktape
build:
	$(GO) build -o bin/ktape ./cmd/ktape

## test: the whole test suite, installing what it needs (scripts/test.sh)
test:
	./scripts/test.sh

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

## reliability-load: the load test's long form: 1,000 partitions backed up from bench/source and restored into bench/sink, 1 GiB then 10 GiB, proving nothing lost or duplicated, memory flat, no goroutine or fd leak; prints a summary (KTAPE_LOAD_BYTES=20GiB, KTAPE_LOAD_MEMORY=256MiB, KTAPE_LOAD_PARTITIONS=N to vary)
reliability-load:
	KTAPE_LONG=1 $(GO) test -count=1 -run '^TestLoad$$' -v -timeout 60m ./cmd/ktape

## fuzz: each fuzz target in turn, for FUZZTIME each (make fuzz FUZZTIME=5m)
fuzz:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

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

## clean: remove build output
clean:
	rm -rf bin
