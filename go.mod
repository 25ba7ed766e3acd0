module github.com/ktape/ktape

go 1.26.0

require (
	github.com/spf13/cobra v1.10.2
	github.com/spf13/pflag v1.0.9
	github.com/twmb/franz-go/pkg/kmsg v1.15.0
)

require github.com/inconshreveable/mousetrap v1.1.0 // indirect
