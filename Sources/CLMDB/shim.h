#ifndef BLOBSTORE_CLMDB_SHIM_H
#define BLOBSTORE_CLMDB_SHIM_H
#include <lmdb.h>
#endif
