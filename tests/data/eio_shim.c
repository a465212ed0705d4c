/* LD_PRELOAD shim for tests/test_files_bad_input.py: a disk that fails with EIO past a byte (see below). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* read() and pread() on the file named by EIO_PATH fail with EIO from byte EIO_AT (to EIO_END, where set), as a
   failing disk does; the pages of a mapping of it that hold those bytes are made unreadable (a fault kills the process, as the SIGBUS of a failed
   page-in does). */
static int target(int fd) {
    const char *want = getenv("EIO_PATH");
    char link[64], got[4096];
    if (!want) return 0;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, got, sizeof got - 1);
    if (n < 0) return 0;
    got[n] = 0;
    return strcmp(got, want) == 0;
}

/* The bad stretch: from EIO_AT to EIO_END (or the end of the file where EIO_END is not set). */
static off_t bad_end(void) {
    const char *end = getenv("EIO_END");
    return end ? (off_t)atoll(end) : (off_t)1 << 62;
}

static ssize_t clip(int fd, off_t pos, size_t *n) {
    off_t at = (off_t)atoll(getenv("EIO_AT"));
    if (!target(fd) || pos < 0 || pos + (off_t)*n <= at || pos >= bad_end()) return 0;
    if (pos < at) { *n = (size_t)(at - pos); return 0; }
    errno = EIO;
    return -1;
}

ssize_t read(int fd, void *buf, size_t n) {
    static ssize_t (*real)(int, void *, size_t);
    if (!real) real = (ssize_t (*)(int, void *, size_t))dlsym(RTLD_NEXT, "read");
    if (clip(fd, lseek(fd, 0, SEEK_CUR), &n)) return -1;
    return real(fd, buf, n);
}

ssize_t pread(int fd, void *buf, size_t n, off_t pos) {
    static ssize_t (*real)(int, void *, size_t, off_t);
    if (!real) real = (ssize_t (*)(int, void *, size_t, off_t))dlsym(RTLD_NEXT, "pread");
    if (clip(fd, pos, &n)) return -1;
    return real(fd, buf, n, pos);
}

ssize_t pread64(int fd, void *buf, size_t n, off_t pos) { return pread(fd, buf, n, pos); }

static void *(*real_mmap)(void *, size_t, int, int, int, off_t);

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    if (!real_mmap) real_mmap = (void *(*)(void *, size_t, int, int, int, off_t))dlsym(RTLD_NEXT, "mmap");
    void *p = real_mmap(addr, len, prot, flags, fd, off);
    if (p != MAP_FAILED && fd >= 0 && target(fd)) {
        long page = sysconf(_SC_PAGESIZE);
        off_t first = ((off_t)atoll(getenv("EIO_AT")) - off) / page * page, last = bad_end() - off;
        if (first < 0) first = 0;
        if (last > (off_t)len) last = (off_t)len;
        if (first < last) mprotect((char *)p + first, (size_t)(last - first), PROT_NONE);
    }
    return p;
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    return mmap(addr, len, prot, flags, fd, off);
}
