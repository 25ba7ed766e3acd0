//go:build !linux

package main

// quietTerminal does nothing here: term.ReadPassword turns echo off
// itself, once the prompt is shown.
func quietTerminal(fd int) (restore func(), err error) { return nil, nil }
