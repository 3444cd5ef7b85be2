package verify

import "github.com/minio/crc64nvme"

// crc64NVMEPoly is the CRC-64/NVME polynomial (0xad93d23594c93659) in the
// reversed bit order hash/crc64 expects. S3's CRC64NVME is this CRC with
// init and final XOR all ones, reflected; it is neither crc64.ISO nor
// crc64.ECMA. The tests check the fast implementation below against
// hash/crc64 with this table.
const crc64NVMEPoly = 0x9a6c9329ac4bc9b5

// crc64NVMEUpdate continues crc over p, like crc64.Update with the NVME table.
//
// It is github.com/minio/crc64nvme (already in the build through minio-go),
// which folds with carry-less multiplication (PCLMULQDQ / AVX-512 VPCLMULQDQ
// on amd64, PMULL on arm64) and falls back to slicing-by-8 elsewhere. A
// table-driven CRC-64 runs at about SHA-256's speed, so a version whose
// object carries a CRC64NVME checksum (what minio-go and the AWS SDKs add by
// default) was hashed at half speed; folding makes the CRC nearly free.
func crc64NVMEUpdate(crc uint64, p []byte) uint64 { return crc64nvme.Update(crc, p) }
