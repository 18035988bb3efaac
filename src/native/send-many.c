/*
 * sendMany: the fan-out's system calls, many sockets a call.
 *
 * With one write per subscriber per message, a big fan-out spends most of its
 * time in those writes, and Node adds ~1.5 µs of its own to each (the
 * Writable stream, a WriteWrap, StreamBase, libuv): at 1,000 subscribers ×
 * 100 msg/s that was a third of the server's CPU. Here the writer hands a
 * slice of sockets and their bytes over in one call.
 *
 * On Linux the sends of a call go to the kernel together, through an
 * io_uring: one system call for the slice instead of one a socket. Entering
 * the kernel is what the sends still shared with any C server: ~1 µs each on
 * a VM with page-table isolation, against ~4 µs for the TCP work itself. Where
 * there is no io_uring (an old kernel, a seccomp profile that forbids it,
 * useRing never called), each socket is one send(2).
 *
 * useRing(): undefined once the sends go through an io_uring, else why not
 * (a line for the start-up log); the writer asks once, at start.
 *
 * sendMany(fds: Int32Array, buffers: Buffer[], which: Int32Array,
 *          count: number, results: Int32Array): undefined
 *
 * Socket i (i < count) is sent buffers[which[i]] whole; results[i] is the
 * bytes the kernel took (all of them, some, or none) or -errno. Never blocks
 * (MSG_DONTWAIT: in an io_uring that also means "fail with EAGAIN", never
 * "wait for room and send later", so every send is done when the call
 * returns) and raises no SIGPIPE (MSG_NOSIGNAL): what a socket did not take,
 * and every error, is for the caller to give to Node's own stream, which
 * queues the rest or fails the connection as it always does. The caller owns
 * the rules that make this safe (socket-writer.ts): only plain TCP sockets,
 * open, with nothing queued in Node in front of these bytes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <node_api.h>
#include "read-many.h"
#include "cork.h"
#ifdef __linux__
#include <unistd.h>
#include "ring.h"
#endif

/* Distinct buffers in one call: a slice of sockets is 16-64, and most share one frame. */
#define MAX_BUFFERS 256

static napi_value fail(napi_env env, const char *message) {
  napi_throw_type_error(env, NULL, message);
  return NULL;
}

static int typed_array(napi_env env, napi_value value, napi_typedarray_type want, int32_t **data, size_t *length) {
  bool is;
  napi_typedarray_type type;
  void *raw;
  if (napi_is_typedarray(env, value, &is) != napi_ok || !is) return 0;
  if (napi_get_typedarray_info(env, value, &type, length, &raw, NULL, NULL) != napi_ok || type != want) return 0;
  *data = raw;
  return 1;
}

#define SEND_FLAGS (MSG_DONTWAIT | MSG_NOSIGNAL)

static void send_each(const int32_t *fds, void *const *data, const size_t *length, const int32_t *which, uint32_t count, int32_t *results) {
  for (uint32_t i = 0; i < count; i++) {
    ssize_t sent;
    do sent = send(fds[i], data[which[i]], length[which[i]], SEND_FLAGS);
    while (sent < 0 && errno == EINTR);
    results[i] = sent < 0 ? -errno : (int32_t)sent;
  }
}

#ifdef __linux__
/* Sends a kernel entry at most: a flush slice is 16 sockets, a NativeBatch 64. */
#define RING_ENTRIES 64
/* A result no completion has filled yet. */
#define PENDING INT32_MIN

/*
 * Up to ring->entries sends in one kernel entry. Each completes during the
 * entry (MSG_DONTWAIT), so all are reaped before this returns. Returns how
 * many were done: fewer only when the kernel would not take them all, and
 * then the caller sends the rest itself and drops the ring.
 */
/* Puts count sends in the submission queue; the kernel sees them at the next ring_enter. */
static void ring_queue(struct ring *ring, const int32_t *fds, void *const *data, const size_t *length, const int32_t *which, uint32_t count, int32_t *results) {
  unsigned tail = *ring->sq_tail, mask = *ring->sq_mask;
  for (uint32_t i = 0; i < count; i++) {
    unsigned index = (tail + i) & mask;
    struct io_uring_sqe *sqe = &ring->sqes[index];
    memset(sqe, 0, sizeof *sqe);
    sqe->opcode = IORING_OP_SEND;
    sqe->fd = fds[i];
    sqe->addr = (uintptr_t)data[which[i]];
    sqe->len = (uint32_t)length[which[i]];
    sqe->msg_flags = SEND_FLAGS;
    sqe->user_data = i;
    ring->sq_array[index] = index;
    results[i] = PENDING;
  }
  atomic_store_explicit((_Atomic unsigned *)ring->sq_tail, tail + count, memory_order_release);
}

/*
 * Up to ring->entries sends in one kernel entry. Each completes during the
 * entry (MSG_DONTWAIT, checked by ring_check), so all are reaped before this
 * returns. Returns how many were done: fewer only when the kernel would not
 * take them all, and then the caller sends the rest itself and drops the ring.
 */
static uint32_t ring_send(struct ring *ring, const int32_t *fds, void *const *data, const size_t *length, const int32_t *which, uint32_t count, int32_t *results) {
  ring_queue(ring, fds, data, length, which, count, results);
  uint32_t submitted = 0, reaped = 0;
  int entered = ring_enter(ring, count, count);
  if (entered > 0) submitted = (uint32_t)entered;
  while (entered > 0 && submitted < count) {
    entered = ring_enter(ring, count - submitted, 0);
    if (entered > 0) submitted += (uint32_t)entered;
  }
  reaped += ring_reap(ring, results);
  while (reaped < submitted && ring_enter(ring, 0, submitted - reaped) >= 0) reaped += ring_reap(ring, results);
  /* Done in order of submission, so the ones not done are the last. */
  uint32_t done = 0;
  while (done < count && results[done] != PENDING) done++;
  return done;
}

/*
 * What the writer relies on, tried on a socket pair before the ring is used:
 * a send completes within the call that submits it, the bytes when there is
 * room, -EAGAIN when there is none. A kernel that instead parked the send
 * until there was room (or knows no IORING_OP_SEND, before 5.6) would block
 * the event loop or send bytes twice. NULL when all is as it should be.
 */
static const char *ring_check(struct ring *ring) {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) != 0) return "no socket pair to try it on";
  static char fill[4096];
  while (send(pair[0], fill, sizeof fill, SEND_FLAGS) > 0) {
  }
  int32_t fds[2] = {pair[0], pair[1]}, which[2] = {0, 0}, results[2];
  void *data[1] = {fill};
  size_t length[1] = {1};
  ring_queue(ring, fds, data, length, which, 2, results);
  int entered = ring_enter(ring, 2, 0);
  ring_reap(ring, results);
  close(pair[0]);
  close(pair[1]);
  if (entered != 2) return "sends were not taken";
  if (results[0] == PENDING) return "a send to a full socket would wait for room";
  if (results[1] == -EINVAL || results[1] == -EOPNOTSUPP) return "no IORING_OP_SEND (Linux 5.6)";
  if (results[0] != -EAGAIN || results[1] != 1) return "sends did not complete as send(2) would";
  return NULL;
}

static void ring_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  if (data) ring_close(data);
}
#endif

static napi_value use_ring(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value why;
#ifdef __linux__
  void *current = NULL;
  if (napi_get_instance_data(env, &current) == napi_ok && current) return NULL;
  struct ring *ring = ring_open(RING_ENTRIES);
  const char *problem = ring ? ring_check(ring) : strerror(errno);
  if (!problem && napi_set_instance_data(env, ring, ring_finalize, NULL) == napi_ok) return NULL;
  char text[160];
  snprintf(text, sizeof text, "io_uring: %s", problem ? problem : "cannot keep it");
  if (ring) ring_close(ring);
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &why);
#else
  napi_create_string_utf8(env, "io_uring: not on this system", NAPI_AUTO_LENGTH, &why);
#endif
  return why;
}

static napi_value send_many(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 5) return fail(env, "sendMany: 5 arguments");

  int32_t *fds, *which, *results;
  size_t fds_length, which_length, results_length;
  uint32_t count, buffer_count;
  if (!typed_array(env, argv[0], napi_int32_array, &fds, &fds_length)) return fail(env, "sendMany: fds must be an Int32Array");
  if (!typed_array(env, argv[2], napi_int32_array, &which, &which_length)) return fail(env, "sendMany: which must be an Int32Array");
  if (!typed_array(env, argv[4], napi_int32_array, &results, &results_length)) return fail(env, "sendMany: results must be an Int32Array");
  if (napi_get_value_uint32(env, argv[3], &count) != napi_ok) return fail(env, "sendMany: count must be a number");
  if (count > fds_length || count > which_length || count > results_length) return fail(env, "sendMany: count past the arrays' end");
  if (napi_get_array_length(env, argv[1], &buffer_count) != napi_ok || buffer_count > MAX_BUFFERS) return fail(env, "sendMany: buffers must be an array of at most 256");

  void *data[MAX_BUFFERS];
  size_t length[MAX_BUFFERS];
  for (uint32_t b = 0; b < buffer_count; b++) {
    napi_value buffer;
    bool is;
    if (napi_get_element(env, argv[1], b, &buffer) != napi_ok || napi_is_buffer(env, buffer, &is) != napi_ok || !is) return fail(env, "sendMany: buffers must hold Buffers");
    if (napi_get_buffer_info(env, buffer, &data[b], &length[b]) != napi_ok) return fail(env, "sendMany: unreadable buffer");
  }

  for (uint32_t i = 0; i < count; i++) {
    if (which[i] < 0 || (uint32_t)which[i] >= buffer_count) return fail(env, "sendMany: which[i] names no buffer");
  }

  uint32_t done = 0;
#ifdef __linux__
  struct ring *ring = NULL;
  napi_get_instance_data(env, (void **)&ring);
  while (ring && done < count) {
    uint32_t part = count - done < ring->entries ? count - done : ring->entries;
    uint32_t sent = ring_send(ring, fds + done, data, length, which + done, part, results + done);
    done += sent;
    if (sent < part) {
      /* The kernel would not take them all: the rest go by send(2), and so does everything after. */
      napi_set_instance_data(env, NULL, NULL, NULL);
      ring_close(ring);
      ring = NULL;
    }
  }
#endif
  send_each(fds + done, data, length, which + done, count - done, results + done);
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "sendMany", NAPI_AUTO_LENGTH, send_many, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "sendMany", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "useRing", NAPI_AUTO_LENGTH, use_ring, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "useRing", fn) != napi_ok) return NULL;
  if (read_many_register(env, exports) != napi_ok) return NULL;
  if (cork_register(env, exports) != napi_ok) return NULL;
  return exports;
}
