/*
 * The reader: the reads of many sockets, one call into JavaScript.
 *
 * test-sub holds thousands of subscriptions, and every message arrives on
 * each of them in a read of its own. Through Node a read costs ~2 µs of
 * libuv, StreamBase and a call into JavaScript on top of the kernel's work,
 * and a system call (~1 µs on a VM with page-table isolation): test-sub spent
 * more CPU a delivery than the server it measured. Here the sockets sit in an
 * epoll set of their own, which libuv watches as one file. When it is
 * readable, the ready sockets are read together (through an io_uring, one
 * system call for up to RING_ENTRIES of them; else a recv(2) each) into one
 * buffer, and JavaScript is called once with where each socket's bytes are.
 *
 * openReader(onReads: (count) => void, bytes: Buffer, info: Int32Array, ring: boolean): reader
 *   After a round of reads, onReads(count): read k is info[3k] (the socket's
 *   id), info[3k + 1] (where its bytes start in `bytes`) and info[3k + 2]
 *   (how many; 0 at the end of the stream, -errno on an error). Both arrays
 *   are reused by the next round. `ring`: through an io_uring where the
 *   kernel has one that reads as recv(2) would (ring_check), else recv(2).
 * addSocket(reader, fd, id): 0 or -errno. The fd stays the caller's: it
 *   leaves the set when the caller closes it (the kernel drops a closed file
 *   from every epoll set). No removal by fd number: by the time the caller
 *   hears its socket closed, the number may be another socket's.
 * readerRing(reader): undefined while the reads go through an io_uring,
 *   else why not (for test-sub's report).
 * forgetSocket(reader): a socket added is closed. While any is open the
 *   reader holds the process open, as a socket Node reads would. The reader
 *   lives as long as the object openReader returned.
 *
 * The module compiles this only where libuv's header is at hand (beside
 * Node's); without it there is no openReader and test-sub reads through Node.
 */
#include "read-many.h"

#if defined(__linux__) && __has_include(<uv.h>)
#include <stdint.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <uv.h>
#include "ring.h"

/* Sockets read a round at most, and the least room a read gets in the buffer. */
#define MAX_READY 1024
#define MIN_SLOT 2048
#define MAX_SLOT 65536
#define RING_ENTRIES 256
#define PENDING INT32_MIN

struct reader {
  napi_env env;
  napi_ref on_reads, bytes_ref, info_ref;
  napi_async_context context;
  char *bytes;
  size_t bytes_length, info_reads;
  int32_t *info;
  int epfd;
  unsigned watched;
  int closed;
  /* Why reads are not going through a ring, when they are not. */
  char no_ring[96];
  uv_poll_t poll;
  struct ring *ring;
  struct epoll_event ready[MAX_READY];
  int32_t results[MAX_READY];
};

static napi_value fail(napi_env env, const char *message) {
  napi_throw_type_error(env, NULL, message);
  return NULL;
}

/* A recv(2) for each read the ring did not do (all of them without a ring). */
static void read_each(struct reader *r, int n, size_t slot) {
  for (int i = 0; i < n; i++) {
    if (r->results[i] != PENDING) continue;
    ssize_t got;
    do got = recv((int)(uint32_t)r->ready[i].data.u64, r->bytes + (size_t)i * slot, slot, MSG_DONTWAIT);
    while (got < 0 && errno == EINTR);
    r->results[i] = got < 0 ? -errno : (int32_t)got;
  }
}

/* Read k of those the ring's tail will take: from fd into `into`, its result at results[k]. */
static void queue_recv(struct ring *ring, unsigned k, int fd, char *into, size_t length, int32_t *results) {
  unsigned index = (*ring->sq_tail + k) & *ring->sq_mask;
  struct io_uring_sqe *sqe = &ring->sqes[index];
  memset(sqe, 0, sizeof *sqe);
  sqe->opcode = IORING_OP_RECV;
  sqe->fd = fd;
  sqe->addr = (uintptr_t)into;
  sqe->len = (uint32_t)length;
  /* Never parked until data comes (ring_check): a read is done when the call returns. */
  sqe->msg_flags = MSG_DONTWAIT;
  sqe->user_data = k;
  ring->sq_array[index] = index;
  results[k] = PENDING;
}

/* Hands the kernel the `count` reads queued. */
static void queue_done(struct ring *ring, unsigned count) {
  atomic_store_explicit((_Atomic unsigned *)ring->sq_tail, *ring->sq_tail + count, memory_order_release);
}

/* Reads through the ring; 0 when the kernel would not take them all (the caller then drops the ring; the reads not done are still PENDING). */
static int ring_read(struct reader *r, int n, size_t slot) {
  struct ring *ring = r->ring;
  for (int from = 0; from < n; from += (int)ring->entries) {
    int count = n - from < (int)ring->entries ? n - from : (int)ring->entries;
    for (int i = 0; i < count; i++) queue_recv(ring, (unsigned)i, (int)(uint32_t)r->ready[from + i].data.u64, r->bytes + (size_t)(from + i) * slot, slot, r->results + from);
    queue_done(ring, (unsigned)count);
    int entered = ring_enter(ring, (unsigned)count, (unsigned)count);
    /* The chunk's user_data count from 0: its results from `from`. */
    uint32_t reaped = ring_reap(ring, r->results + from);
    while (entered == count && reaped < (uint32_t)count && ring_enter(ring, 0, (unsigned)count - reaped) >= 0) reaped += ring_reap(ring, r->results + from);
    if (entered != count || reaped != (uint32_t)count) return 0;
  }
  return 1;
}

/*
 * What the reader relies on, tried on a socket pair: a read completes within
 * the call that submits it, with the bytes when there are some and -EAGAIN
 * when there are none (never parked until data comes, which would write into
 * the buffer during a later round).
 */
static const char *ring_check(struct ring *ring) {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) != 0) return "no socket pair to try it on";
  char into[2][8];
  int32_t results[2];
  if (send(pair[1], "x", 1, MSG_DONTWAIT) != 1) return "no socket pair to try it on";
  for (unsigned i = 0; i < 2; i++) queue_recv(ring, i, pair[i], into[i], sizeof into[i], results);
  queue_done(ring, 2);
  int entered = ring_enter(ring, 2, 0);
  ring_reap(ring, results);
  close(pair[0]);
  close(pair[1]);
  if (entered != 2) return "reads were not taken";
  if (results[1] == PENDING) return "a read of an empty socket would wait for data";
  if (results[0] == -EINVAL || results[0] == -EOPNOTSUPP) return "no IORING_OP_RECV (Linux 5.6)";
  if (results[0] != 1 || results[1] != -EAGAIN) return "reads did not complete as recv(2) would";
  return NULL;
}

static void report(struct reader *r, int count) {
  napi_env env = r->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value on_reads, global, argv[1], result;
  napi_get_reference_value(env, r->on_reads, &on_reads);
  napi_get_global(env, &global);
  napi_create_int32(env, count, &argv[0]);
  /* As a callback from the event loop: microtasks and nextTicks run after it, and a throw is an uncaught exception. */
  if (napi_make_callback(env, r->context, global, on_reads, 1, argv, &result) == napi_pending_exception) {
    napi_value error;
    napi_get_and_clear_last_exception(env, &error);
    napi_fatal_exception(env, error);
  }
  napi_close_handle_scope(env, scope);
}

static void on_readable(uv_poll_t *poll, int status, int events) {
  (void)status;
  (void)events;
  struct reader *r = poll->data;
  if (r->closed) return;
  size_t most = r->bytes_length / MIN_SLOT;
  if (most > r->info_reads) most = r->info_reads;
  if (most > MAX_READY) most = MAX_READY;
  int n;
  do n = epoll_wait(r->epfd, r->ready, (int)most, 0);
  while (n < 0 && errno == EINTR);
  if (n <= 0) return;
  size_t slot = r->bytes_length / (size_t)n;
  if (slot > MAX_SLOT) slot = MAX_SLOT;
  for (int i = 0; i < n; i++) r->results[i] = PENDING;
  if (r->ring && !ring_read(r, n, slot)) {
    /* The kernel would not take them all: the rest are read by recv(2), and so is everything after. */
    ring_close(r->ring);
    r->ring = NULL;
    snprintf(r->no_ring, sizeof r->no_ring, "io_uring: the kernel would not take a round's reads");
  }
  read_each(r, n, slot);
  /* A socket with nothing after all (-EAGAIN) is not reported: epoll tells again when there is. */
  int count = 0;
  for (int i = 0; i < n; i++) {
    if (r->results[i] == -EAGAIN) continue;
    r->info[3 * count] = (int32_t)(r->ready[i].data.u64 >> 32);
    r->info[3 * count + 1] = (int32_t)((size_t)i * slot);
    r->info[3 * count + 2] = r->results[i];
    count++;
  }
  if (count > 0) report(r, count);
}

static void on_closed(uv_handle_t *handle) {
  free(handle->data);
}

static void close_reader(struct reader *r) {
  if (r->closed) return;
  r->closed = 1;
  napi_env env = r->env;
  napi_delete_reference(env, r->on_reads);
  napi_delete_reference(env, r->bytes_ref);
  napi_delete_reference(env, r->info_ref);
  napi_async_destroy(env, r->context);
  if (r->ring) ring_close(r->ring);
  r->ring = NULL;
  uv_poll_stop(&r->poll);
  close(r->epfd);
  uv_close((uv_handle_t *)&r->poll, on_closed);
}

static void finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  close_reader(data);
}

static struct reader *reader_of(napi_env env, napi_value value) {
  void *data = NULL;
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_external) return NULL;
  if (napi_get_value_external(env, value, &data) != napi_ok) return NULL;
  return data;
}

static napi_value open_reader(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  bool use_ring;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 4) return fail(env, "openReader: 4 arguments");
  if (napi_get_value_bool(env, argv[3], &use_ring) != napi_ok) return fail(env, "openReader: ring must be a boolean");
  napi_valuetype type;
  bool is;
  if (napi_typeof(env, argv[0], &type) != napi_ok || type != napi_function) return fail(env, "openReader: onReads must be a function");
  void *bytes;
  size_t bytes_length;
  if (napi_is_buffer(env, argv[1], &is) != napi_ok || !is || napi_get_buffer_info(env, argv[1], &bytes, &bytes_length) != napi_ok) return fail(env, "openReader: bytes must be a Buffer");
  napi_typedarray_type array_type;
  size_t info_length;
  void *info_data;
  if (napi_is_typedarray(env, argv[2], &is) != napi_ok || !is || napi_get_typedarray_info(env, argv[2], &array_type, &info_length, &info_data, NULL, NULL) != napi_ok || array_type != napi_int32_array) return fail(env, "openReader: info must be an Int32Array");
  if (bytes_length < MIN_SLOT || info_length < 3) return fail(env, "openReader: room for one read at least");

  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return fail(env, "openReader: no event loop");
  struct reader *r = calloc(1, sizeof *r);
  if (!r) return fail(env, "openReader: out of memory");
  r->env = env;
  r->bytes = bytes;
  r->bytes_length = bytes_length;
  r->info = info_data;
  r->info_reads = info_length / 3;
  r->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (r->epfd < 0 || uv_poll_init(loop, &r->poll, r->epfd) != 0) {
    if (r->epfd >= 0) close(r->epfd);
    free(r);
    return fail(env, "openReader: no epoll set");
  }
  r->poll.data = r;
  napi_value name;
  napi_create_string_utf8(env, "msgbus:reader", NAPI_AUTO_LENGTH, &name);
  napi_value resource;
  napi_create_object(env, &resource);
  napi_async_init(env, resource, name, &r->context);
  napi_create_reference(env, argv[0], 1, &r->on_reads);
  napi_create_reference(env, argv[1], 1, &r->bytes_ref);
  napi_create_reference(env, argv[2], 1, &r->info_ref);
  if (use_ring) {
    r->ring = ring_open(RING_ENTRIES);
    const char *problem = r->ring ? ring_check(r->ring) : strerror(errno);
    if (problem) {
      snprintf(r->no_ring, sizeof r->no_ring, "io_uring: %s", problem);
      if (r->ring) ring_close(r->ring);
      r->ring = NULL;
    }
  } else {
    snprintf(r->no_ring, sizeof r->no_ring, "not asked for");
  }
  uv_poll_start(&r->poll, UV_READABLE, on_readable);
  /* Holds the process open only while it watches a socket, as a socket read by Node would. */
  uv_unref((uv_handle_t *)&r->poll);
  napi_value external;
  if (napi_create_external(env, r, finalize, NULL, &external) != napi_ok) {
    close_reader(r);
    return fail(env, "openReader: cannot keep it");
  }
  return external;
}

static napi_value add_socket(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t fd, id;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 3) return fail(env, "addSocket: 3 arguments");
  struct reader *r = reader_of(env, argv[0]);
  if (!r || r->closed) return fail(env, "addSocket: not an open reader");
  if (napi_get_value_int32(env, argv[1], &fd) != napi_ok || fd < 0) return fail(env, "addSocket: fd must be a file descriptor");
  if (napi_get_value_int32(env, argv[2], &id) != napi_ok || id < 0) return fail(env, "addSocket: id must be a number from 0");
  struct epoll_event event = {.events = EPOLLIN | EPOLLRDHUP, .data.u64 = ((uint64_t)(uint32_t)id << 32) | (uint32_t)fd};
  int result = epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &event) == 0 ? 0 : -errno;
  if (result == 0 && r->watched++ == 0) uv_ref((uv_handle_t *)&r->poll);
  napi_value out;
  napi_create_int32(env, result, &out);
  return out;
}

/* The one argument of `name`, a reader; NULL, with a TypeError thrown, when it is not. */
static struct reader *only_reader(napi_env env, napi_callback_info info, const char *name) {
  size_t argc = 1;
  napi_value argv[1];
  struct reader *r = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok && argc == 1) r = reader_of(env, argv[0]);
  if (!r) {
    char message[64];
    snprintf(message, sizeof message, "%s: a reader, and nothing else", name);
    fail(env, message);
  }
  return r;
}

static napi_value forget_socket(napi_env env, napi_callback_info info) {
  struct reader *r = only_reader(env, info, "forgetSocket");
  if (r && !r->closed && r->watched > 0 && --r->watched == 0) uv_unref((uv_handle_t *)&r->poll);
  return NULL;
}

/* How the reader reads: undefined through its ring, else why not. */
static napi_value reader_ring(napi_env env, napi_callback_info info) {
  struct reader *r = only_reader(env, info, "readerRing");
  if (!r || r->ring) return NULL;
  napi_value why;
  napi_create_string_utf8(env, r->no_ring, NAPI_AUTO_LENGTH, &why);
  return why;
}

napi_status read_many_register(napi_env env, napi_value exports) {
  const struct {
    const char *name;
    napi_callback callback;
  } functions[] = {{"openReader", open_reader}, {"addSocket", add_socket}, {"forgetSocket", forget_socket}, {"readerRing", reader_ring}};
  for (size_t i = 0; i < sizeof functions / sizeof functions[0]; i++) {
    napi_value fn;
    napi_status status = napi_create_function(env, functions[i].name, NAPI_AUTO_LENGTH, functions[i].callback, NULL, &fn);
    if (status == napi_ok) status = napi_set_named_property(env, exports, functions[i].name, fn);
    if (status != napi_ok) return status;
  }
  return napi_ok;
}
#else
napi_status read_many_register(napi_env env, napi_value exports) {
  (void)env;
  (void)exports;
  return napi_ok;
}
#endif
