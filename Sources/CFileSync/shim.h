#ifndef BLOBSTORE_CFILESYNC_SHIM_H
#define BLOBSTORE_CFILESYNC_SHIM_H
// sync_file_range (Swift's Glibc module leaves it out: it needs _GNU_SOURCE).
#include <unistd.h>
#include <sys/syscall.h>
// Starts writeback of a file range and returns without waiting for it: a later fsync then
// finds most pages already on disk. Advisory: the caller ignores failure.
static inline int blobstore_start_writeback(int fd, long long offset, long long length) {
    return (int)syscall(SYS_sync_file_range, fd, offset, length, 2 /* SYNC_FILE_RANGE_WRITE */);
}
#endif
