/* The reader's functions (read-many.c), put on the module's exports by its init (send-many.c). */
#ifndef MSGBUS_READ_MANY_H
#define MSGBUS_READ_MANY_H
#include <node_api.h>

napi_status read_many_register(napi_env env, napi_value exports);

#endif
