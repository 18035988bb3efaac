/*
 * sendMany: the fan-out's system calls, many sockets a call.
 *
 * With one write per subscriber per message, a big fan-out spends most of its
 * time in those writes, and Node adds ~1.5 µs of its own to each (the
 * Writable stream, a WriteWrap, StreamBase, libuv): at 1,000 subscribers ×
 * 100 msg/s that was a third of the server's CPU. Here the writer hands a
 * slice of sockets and their bytes over in one call, and each is one send(2).
 *
 * sendMany(fds: Int32Array, buffers: Buffer[], which: Int32Array,
 *          count: number, results: Int32Array): undefined
 *
 * Socket i (i < count) is sent buffers[which[i]] whole; results[i] is the
 * bytes the kernel took (all of them, some, or none) or -errno. Never blocks
 * (MSG_DONTWAIT) and raises no SIGPIPE (MSG_NOSIGNAL): what a socket did not
 * take, and every error, is for the caller to give to Node's own stream,
 * which queues the rest or fails the connection as it always does. The
 * caller owns the rules that make this safe (socket-writer.ts): only plain
 * TCP sockets, open, with nothing queued in Node in front of these bytes.
 */
#include <errno.h>
#include <stdint.h>
#include <sys/socket.h>
#include <node_api.h>

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

  for (uint32_t i = 0; i < count; i++) {
    ssize_t sent;
    do sent = send(fds[i], data[which[i]], length[which[i]], MSG_DONTWAIT | MSG_NOSIGNAL);
    while (sent < 0 && errno == EINTR);
    results[i] = sent < 0 ? -errno : (int32_t)sent;
  }
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "sendMany", NAPI_AUTO_LENGTH, send_many, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "sendMany", fn) != napi_ok) return NULL;
  return exports;
}
