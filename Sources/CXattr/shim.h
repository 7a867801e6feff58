#ifndef BLOBSTORE_CXATTR_SHIM_H
#define BLOBSTORE_CXATTR_SHIM_H
// Extended attributes (Swift's Glibc module does not bring sys/xattr.h).
#include <sys/xattr.h>
#endif
