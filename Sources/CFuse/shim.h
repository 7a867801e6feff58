#ifndef BLOBSTORE_CFUSE_SHIM_H
#define BLOBSTORE_CFUSE_SHIM_H
#define FUSE_USE_VERSION 31
#include <fuse.h>
#include <errno.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#endif
