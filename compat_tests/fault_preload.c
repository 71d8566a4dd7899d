// Injects disk faults into the real broker for the compat tests: loaded with LD_PRELOAD, it makes
// fdatasync(2) fail with EIO for every file whose path contains $SLUICE_FAIL_FSYNC_PATH, as a disk
// that cannot write those blocks would. Everything else goes to the C library.
//
// Only the tests load it; the broker knows nothing about it.

#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int fdatasync(int fd) {
  static int (*real_fdatasync)(int) = NULL;
  if (real_fdatasync == NULL) real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
  const char* needle = getenv("SLUICE_FAIL_FSYNC_PATH");
  if (needle != NULL && *needle != '\0') {
    char link[64];
    char path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n > 0) {
      path[n] = '\0';
      if (strstr(path, needle) != NULL) {
        errno = EIO;
        return -1;
      }
    }
  }
  return real_fdatasync(fd);
}
