package producer

import "encoding/binary"

// Murmur2 is the 32-bit MurmurHash2 variant the Java client uses to place
// keyed records (seed 0x9747b28c), so that ktape sends a key to the same
// partition as the Java client, librdkafka's murmur2 partitioner and
// franz-go.
func Murmur2(key []byte) int32 {
	const (
		seed = 0x9747b28c
		m    = 0x5bd1e995
		r    = 24
	)
	h := uint32(seed) ^ uint32(len(key))
	for len(key) >= 4 {
		k := binary.LittleEndian.Uint32(key)
		k *= m
		k ^= k >> r
		k *= m
		h = h*m ^ k
		key = key[4:]
	}
	switch len(key) {
	case 3:
		h ^= uint32(key[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(key[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(key[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

// PartitionForKey returns the partition of numPartitions a keyed record
// goes to: the Java client's toPositive(murmur2(key)) % numPartitions.
// Records without a key are placed by the caller (sticky or round robin).
func PartitionForKey(key []byte, numPartitions int32) int32 {
	return (Murmur2(key) & 0x7fffffff) % numPartitions
}
