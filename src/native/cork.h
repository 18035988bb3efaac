/* corkSocket (cork.c), put on the module's exports by its init (send-many.c). */
#ifndef MSGBUS_CORK_H
#define MSGBUS_CORK_H
#include <node_api.h>

napi_status cork_register(napi_env env, napi_value exports);

#endif
