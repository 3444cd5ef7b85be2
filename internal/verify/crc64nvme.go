package verify

import "hash/crc64"

// crc64NVMEPoly is the CRC-64/NVME polynomial (0xad93d23594c93659) in the
// reversed bit order hash/crc64 expects. S3's CRC64NVME is this CRC with
// init and final XOR all ones, reflected, which is what crc64's update does
// with this table; it is neither crc64.ISO nor crc64.ECMA.
const crc64NVMEPoly = 0x9a6c9329ac4bc9b5

// crc64Slicing8 is slicing-by-8 for one polynomial. hash/crc64 has it too, but
// only keeps the tables for ISO and ECMA: for any other polynomial it rebuilds
// a 16 KiB table on every Update call of 2 KiB or more, i.e. once per buffer
// here. Building it once is the whole point of this type.
type crc64Slicing8 [8]crc64.Table

func newCRC64Slicing8(poly uint64) *crc64Slicing8 {
	var t crc64Slicing8
	t[0] = *crc64.MakeTable(poly)
	for i := range 256 {
		crc := t[0][i]
		for j := 1; j < 8; j++ {
			crc = t[0][crc&0xff] ^ (crc >> 8)
			t[j][i] = crc
		}
	}
	return &t
}

// update continues crc over p, like crc64.Update.
func (t *crc64Slicing8) update(crc uint64, p []byte) uint64 {
	crc = ^crc
	for len(p) >= 8 {
		crc ^= uint64(p[0]) | uint64(p[1])<<8 | uint64(p[2])<<16 | uint64(p[3])<<24 |
			uint64(p[4])<<32 | uint64(p[5])<<40 | uint64(p[6])<<48 | uint64(p[7])<<56
		crc = t[7][crc&0xff] ^
			t[6][(crc>>8)&0xff] ^
			t[5][(crc>>16)&0xff] ^
			t[4][(crc>>24)&0xff] ^
			t[3][(crc>>32)&0xff] ^
			t[2][(crc>>40)&0xff] ^
			t[1][(crc>>48)&0xff] ^
			t[0][crc>>56]
		p = p[8:]
	}
	for _, b := range p {
		crc = t[0][byte(crc)^b] ^ (crc >> 8)
	}
	return ^crc
}
