package protocol

import (
	"errors"
	"fmt"
)

// KafkaError is an error code returned by a broker. Values are shared and
// immutable; compare them with errors.Is against the variables below, or
// read the code with errors.As.
type KafkaError struct {
	Code int16
	Name string // the protocol's name, e.g. NOT_LEADER_OR_FOLLOWER
	// Retriable reports whether the same request may succeed if retried,
	// possibly after refreshing metadata.
	Retriable bool
}

func (e *KafkaError) Error() string { return fmt.Sprintf("kafka error %d %s", e.Code, e.Name) }

// ErrorForCode returns the error for a response's error code: nil for 0,
// otherwise a *KafkaError (named UNKNOWN_ERROR_CODE_n for a code this
// build does not know). It never returns a typed nil.
func ErrorForCode(code int16) error {
	if code == 0 {
		return nil
	}
	if e, ok := errorTable[code]; ok {
		return e
	}
	return &KafkaError{Code: code, Name: fmt.Sprintf("UNKNOWN_ERROR_CODE_%d", code)}
}

// IsRetriable reports whether err, or an error it wraps, is a retriable
// Kafka error.
func IsRetriable(err error) bool {
	var ke *KafkaError
	return errors.As(err, &ke) && ke.Retriable
}

// Errors the client layers branch on.
var (
	ErrUnknownServerError      = errorTable[-1]
	ErrOffsetOutOfRange        = errorTable[1]
	ErrCorruptMessage          = errorTable[2]
	ErrUnknownTopicOrPartition = errorTable[3]
	ErrLeaderNotAvailable      = errorTable[5]
	ErrNotLeaderOrFollower     = errorTable[6]
	ErrRequestTimedOut         = errorTable[7]
	ErrNotCoordinator          = errorTable[16]
	ErrCoordinatorNotAvailable = errorTable[15]
	ErrCoordinatorLoading      = errorTable[14]
	ErrUnsupportedVersion      = errorTable[35]
	ErrFencedLeaderEpoch       = errorTable[74]
	ErrUnknownLeaderEpoch      = errorTable[75]
	ErrOutOfOrderSequence      = errorTable[45]
	ErrDuplicateSequence       = errorTable[46]
	ErrInvalidProducerEpoch    = errorTable[47]
	ErrUnknownProducerID       = errorTable[59]
	ErrProducerFenced          = errorTable[90]
	ErrUnknownTopicID          = errorTable[100]
)
