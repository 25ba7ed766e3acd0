// Command sink is a fake Kafka broker for producer and restore benchmarks:
// it acknowledges every record batch produced to it and throws the bytes
// away. What it serves, its flags and its output are in the doc of package
// github.com/ktape/ktape/bench/sink.
package main

import (
	"os"

	"github.com/ktape/ktape/bench/sink"
)

func main() { os.Exit(sink.Run(os.Args[1:], os.Stdout, os.Stderr)) }
