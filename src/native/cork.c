/*
 * corkSocket(fd: number, on: boolean): 0, or -errno
 *
 * TCP_CORK on a plain TCP socket: while it is on, the kernel sends only
 * full segments; turning it off sends what is queued. Node writes the
 * answers of pipelined requests one after the other, a write each, and each
 * small write is a segment of its own: on loopback the receiver's side of
 * TCP runs in the writer's time for every one, and wakes the client for
 * every one. Corked for the turn in which they are written, they leave
 * together (answer-cork.ts). Not on Linux: -ENOTSUP, and answers go out as
 * before.
 */
#include <errno.h>
#include <node_api.h>
#ifdef __linux__
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#endif
#include "cork.h"

static napi_value cork_socket(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd = -1;
  bool on = false;
  napi_value result;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_bool(env, argv[1], &on) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "corkSocket(fd, on): a file descriptor and a boolean");
    return NULL;
  }
#ifdef __linux__
  int value = on ? 1 : 0;
  int32_t status = setsockopt(fd, IPPROTO_TCP, TCP_CORK, &value, sizeof value) == 0 ? 0 : -errno;
#else
  int32_t status = -ENOTSUP;
#endif
  napi_create_int32(env, status, &result);
  return result;
}

napi_status cork_register(napi_env env, napi_value exports) {
  napi_value fn;
  napi_status status = napi_create_function(env, "corkSocket", NAPI_AUTO_LENGTH, cork_socket, NULL, &fn);
  if (status != napi_ok) return status;
  return napi_set_named_property(env, exports, "corkSocket", fn);
}
