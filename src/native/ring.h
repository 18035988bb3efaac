/*
 * An io_uring by raw system calls (no liburing, nothing to install): set up,
 * entered, its completions reaped. Shared by the sender (send-many.c) and the
 * reader (read-many.c); each keeps its own ring. Linux only.
 */
#ifndef MSGBUS_RING_H
#define MSGBUS_RING_H
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <linux/io_uring.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

struct ring {
  int fd;
  unsigned entries, *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
  struct io_uring_sqe *sqes;
  struct io_uring_cqe *cqes;
  void *sq_map, *cq_map;
  size_t sq_size, cq_size, sqes_size;
};

static inline void ring_close(struct ring *ring) {
  if (ring->sqes) munmap(ring->sqes, ring->sqes_size);
  if (ring->cq_map && ring->cq_map != ring->sq_map) munmap(ring->cq_map, ring->cq_size);
  if (ring->sq_map) munmap(ring->sq_map, ring->sq_size);
  if (ring->fd >= 0) close(ring->fd);
  free(ring);
}

static inline int ring_setup(unsigned entries, struct io_uring_params *params) {
  /* Newest flags first: SUBMIT_ALL (5.18) goes on past an entry that fails, SINGLE_ISSUER (6.0) spares the kernel some locking. */
  const unsigned flags[] = {IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER, IORING_SETUP_SUBMIT_ALL, 0};
  int fd = -1;
  for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
    memset(params, 0, sizeof *params);
    params->flags = flags[i];
    fd = (int)syscall(__NR_io_uring_setup, entries, params);
    if (fd >= 0 || errno != EINVAL) break;
  }
  return fd;
}

static inline void *map_ring(int fd, size_t size, off_t offset) {
  void *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, offset);
  return map == MAP_FAILED ? NULL : map;
}

/* NULL, with errno, when the kernel gives no ring. */
static inline struct ring *ring_open(unsigned entries) {
  struct io_uring_params p;
  int fd = ring_setup(entries, &p);
  if (fd < 0) return NULL;
  struct ring *ring = calloc(1, sizeof *ring);
  if (!ring) {
    close(fd);
    errno = ENOMEM;
    return NULL;
  }
  ring->fd = fd;
  ring->entries = p.sq_entries;
  ring->sq_size = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  ring->cq_size = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
  ring->sqes_size = p.sq_entries * sizeof(struct io_uring_sqe);
  int single = (p.features & IORING_FEAT_SINGLE_MMAP) != 0;
  if (single && ring->cq_size > ring->sq_size) ring->sq_size = ring->cq_size;
  char *sq = ring->sq_map = map_ring(fd, ring->sq_size, IORING_OFF_SQ_RING);
  char *cq = ring->cq_map = sq && single ? sq : map_ring(fd, ring->cq_size, IORING_OFF_CQ_RING);
  ring->sqes = map_ring(fd, ring->sqes_size, IORING_OFF_SQES);
  if (!sq || !cq || !ring->sqes) {
    int saved = errno;
    ring_close(ring);
    errno = saved;
    return NULL;
  }
  ring->sq_tail = (unsigned *)(sq + p.sq_off.tail);
  ring->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
  ring->sq_array = (unsigned *)(sq + p.sq_off.array);
  ring->cq_head = (unsigned *)(cq + p.cq_off.head);
  ring->cq_tail = (unsigned *)(cq + p.cq_off.tail);
  ring->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
  ring->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
  return ring;
}

static inline int ring_enter(struct ring *ring, unsigned submit, unsigned wait) {
  int entered;
  do entered = (int)syscall(__NR_io_uring_enter, ring->fd, submit, wait, wait ? IORING_ENTER_GETEVENTS : 0, NULL, 0);
  while (entered < 0 && errno == EINTR);
  return entered;
}

static inline uint32_t ring_reap(struct ring *ring, int32_t *results) {
  unsigned head = *ring->cq_head, reaped = 0;
  unsigned tail = atomic_load_explicit((_Atomic unsigned *)ring->cq_tail, memory_order_acquire);
  for (; head != tail; head++, reaped++) {
    struct io_uring_cqe *cqe = &ring->cqes[head & *ring->cq_mask];
    results[cqe->user_data] = cqe->res;
  }
  atomic_store_explicit((_Atomic unsigned *)ring->cq_head, head, memory_order_release);
  return reaped;
}

#endif
