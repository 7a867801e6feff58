#ifndef BLOBSTORE_CZSTD_SHIM_H
#define BLOBSTORE_CZSTD_SHIM_H
#include <zstd.h>
#endif
