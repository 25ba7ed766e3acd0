package protocol_test

import (
	"fmt"

	"github.com/ktape/ktape/protocol"
)

// A tiny API declared for the examples; real ones live in protocol/api.
var echo = protocol.NewAPI(protocol.APIDef{
	Key: 1000, Name: "Echo", MinVersion: 0, MaxVersion: 1, FlexibleVersion: 1,
	Request: []protocol.Field{
		protocol.String("Greeting"),
		protocol.Array("Topics",
			protocol.String("Name"),
			protocol.Int32s("Partitions"),
		),
		protocol.Int32("TimeoutMs").V(1).Default(-1),
	},
	Response: []protocol.Field{protocol.Int16("ErrorCode")},
})

// Build a message as a Record, then read it back through a zero-copy View.
func Example() {
	req := echo.Request
	greeting, topics := req.Handle("Greeting"), req.Handle("Topics")
	name, partitions := req.Child(topics).Handle("Name"), req.Child(topics).Handle("Partitions")

	r := protocol.NewRecord(req).Set(greeting, "hello")
	t := r.Append(topics)
	t.Set(name, "orders")
	t.Set(partitions, []int32{0, 1, 2})

	body, err := r.AppendTo(nil, 1)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%d bytes (Size says %d)\n", len(body), r.Size(1))

	var d protocol.Decoder
	v, err := d.Decode(req, 1, body)
	if err != nil {
		panic(err)
	}
	ts := v.Array(topics)
	first := ts.At(0)
	parts := first.Array(partitions)
	fmt.Printf("%s: %s has %d partitions, timeout %d\n",
		v.StringBytes(greeting), first.StringBytes(name), parts.Len(), v.Int32(req.Handle("TimeoutMs")))
	// Output:
	// 33 bytes (Size says 33)
	// hello: orders has 3 partitions, timeout -1
}

// Malformed input is an error naming the field and byte offset.
func ExampleDecoder_Decode_error() {
	var d protocol.Decoder
	// Greeting of length 5 ("hello"), then an array claiming 1000 topics.
	body := []byte{0, 5, 'h', 'e', 'l', 'l', 'o', 0, 0, 0x03, 0xe8}
	_, err := d.Decode(echo.Request, 0, body)
	fmt.Println(err)
	// Output:
	// protocol: decode EchoRequest v0: Topics at byte 7: 1000 elements of at least 6 bytes exceed the 0 bytes left
}

// ErrorForCode turns a response's error code into an error.
func ExampleErrorForCode() {
	err := protocol.ErrorForCode(6)
	fmt.Println(err, protocol.IsRetriable(err))
	fmt.Println(protocol.ErrorForCode(0) == nil)
	// Output:
	// kafka error 6 NOT_LEADER_OR_FOLLOWER true
	// true
}
