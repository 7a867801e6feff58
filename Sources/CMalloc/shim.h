#ifndef BLOBSTORE_CMALLOC_SHIM_H
#define BLOBSTORE_CMALLOC_SHIM_H
#include <malloc.h>
// glibc gives each thread that allocates its own heap (up to 8 per core) and keeps what is
// freed there; with chunk buffers of up to a few MiB allocated on many dispatch threads, a
// long-running server's RSS would creep up. Two heaps and a fixed mmap threshold (buffers of
// 1 MiB and more go straight back to the kernel) keep it flat.
static inline void blobstore_tune_malloc(void) {
    mallopt(M_ARENA_MAX, 2);
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
}
#endif
