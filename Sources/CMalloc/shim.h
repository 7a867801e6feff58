#ifndef BLOBSTORE_CMALLOC_SHIM_H
#define BLOBSTORE_CMALLOC_SHIM_H
#include <malloc.h>
// glibc gives each thread that allocates its own heap (up to 8 per core) and keeps what is
// freed there; with chunk buffers of up to a few MiB allocated on many dispatch threads, a
// long-running server's RSS would creep up. Two heaps bound that. (The mmap threshold stays
// adaptive: forcing big buffers to mmap would cost page faults on every read window.)
static inline void blobstore_tune_malloc(void) {
    mallopt(M_ARENA_MAX, 2);
}
// Hands the free pages inside the heaps back to the kernel: after a burst of uploads the
// heaps hold tens of MiB per writer that nothing uses until the next burst.
static inline void blobstore_trim_malloc(void) {
    malloc_trim(0);
}
#endif
