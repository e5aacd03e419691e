/* Licensed under the Apache License, Version 2.0. */
#ifndef RS_VERSION_H
#define RS_VERSION_H

/* Version of mod_resumable (semantic versioning). */
#define RS_VERSION "0.1.0"
#define RS_VERSION_NUM 0x000100

#endif
