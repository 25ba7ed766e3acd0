// Package client talks to Kafka clusters: connections (TCP, TLS, SASL),
// version negotiation, pipelined requests, cluster metadata, admin calls
// and a zero-copy fetcher.
//
// # Files
//
//   - conn.go: Conn, one connection to one broker. Requests are written in
//     order with writev (a Produce's batches are not copied), several in
//     flight; responses are matched first-in first-out and checked by
//     correlation id, read into pooled buffers (pool.go) sized from their
//     length prefix, bounded by a maximum size.
//   - dial.go: Dialer: TCP or TLS, ApiVersions (with the KIP-511 fallback
//     for brokers that do not know the version asked), SASL through package
//     sasl.
//   - cluster.go: Client: bootstrap, metadata cache, per-broker connections
//     re-dialled after failures, leader lookup, backoff.
//   - offsets.go, admin*.go: admin calls, batched per broker, all brokers at
//     once.
//   - fetcher.go: Fetcher: one fetch loop per leader, raw batches handed out
//     as views of the response buffer, memory bounded by a FIFO byte budget.
//
// # Invariants
//
//   - A Conn does one request and response at a time per call and never
//     retries; retries, routing and re-dialling happen a layer up, as
//     net/http's Client sits above its RoundTripper.
//   - A broker answers a connection's requests in order. A response whose
//     correlation id is not the oldest pending call's is a protocol
//     violation: the connection fails, with every pending call.
//   - A caller that stops waiting (context) does not break the connection:
//     the late response is read and released. Only the request timeout
//     declares a broker dead.
//   - Whoever receives a Response or a Fetch releases it; nothing from it
//     may be used after.
//   - The fetcher's next offset for a partition is past the last complete
//     batch it returned; a truncated trailing batch is fetched again.
package client
