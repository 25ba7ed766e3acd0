// Package client talks to Kafka clusters: connections (TCP, TLS, SASL),
// version negotiation and pipelined requests. Cluster metadata, routing,
// admin calls and the zero-copy fetcher build on it.
//
// A Conn does one thing: send requests to one broker and match their
// responses, several in flight at once. Retries, routing and re-dialling
// sit a layer up, in the cluster code, as net/http's Client sits above its
// RoundTripper.
package client
