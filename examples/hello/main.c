/* hello - the smallest Lambda function built on sparta_imager.h: an echo.

   Every event comes back as it was sent. A few fields of a JSON event let
   the tests reach the other paths of the runtime:

      {"fail": "why"}   the invocation fails (errorType HelloError)
      {"size": N}       the answer is N bytes of 'x' (text/plain)
      {"trace": true}   the answer describes the invocation: request id,
                        $_X_AMZN_TRACE_ID, remaining ms, function ARN, ...
      {"log": "text"}   one INFO log line with that text
      {"sleep_ms": N}   wait N ms (up to 10 s) first: an invocation that lasts

   With HELLO_FAIL_INIT=1 initialisation fails, as with a bad configuration.

      make build/hello/bootstrap
      build/hello/bootstrap --event event.json      # invoke once, locally
      AWS_LAMBDA_RUNTIME_API=127.0.0.1:9001 build/hello/bootstrap
*/
#define SPARTA_IMAGER_IMPLEMENTATION
#include "sparta_imager.h"

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

#define HELLO_SIZE_MAX (64L * 1024 * 1024)

static spim_status hello_init(void *user, spim_error *err)
{
    const char *fail = getenv("HELLO_FAIL_INIT");
    (void)user;
    if (fail && strcmp(fail, "1") == 0)
        return spim_error_set(err, SPIM_ERR_CONFIG, "HELLO_FAIL_INIT=1: refusing to start");
    return SPIM_OK;
}

static void add_string(cJSON *obj, const char *name, const char *value)
{
    if (value) cJSON_AddStringToObject(obj, name, value);
    else cJSON_AddNullToObject(obj, name);
}

static spim_status describe_invocation(const spim_invocation *inv, spim_response *resp)
{
    cJSON *out = cJSON_CreateObject();
    char *text;
    spim_status st = SPIM_ERR_NOMEM;
    if (!out) return st;
    add_string(out, "requestId", inv->request_id);
    add_string(out, "traceId", inv->trace_id);
    add_string(out, "envTraceId", getenv("_X_AMZN_TRACE_ID"));
    add_string(out, "functionArn", inv->function_arn);
    add_string(out, "clientContext", inv->client_context);
    add_string(out, "cognitoIdentity", inv->cognito_identity);
    add_string(out, "tenantId", inv->tenant_id);
    cJSON_AddNumberToObject(out, "deadlineMs", (double)inv->deadline_ms);
    cJSON_AddNumberToObject(out, "remainingMs", (double)spim_invocation_remaining_ms(inv));
    cJSON_AddNumberToObject(out, "worker", inv->worker);
    text = cJSON_PrintUnformatted(out);
    if (text) st = spim_response_ok(resp, text, strlen(text), NULL);
    cJSON_free(text);
    cJSON_Delete(out);
    return st;
}

/* n bytes of 'x', built in place in the response buffer */
static spim_status answer_bytes(spim_response *resp, size_t n)
{
    spim_status st = spim_response_ok(resp, NULL, 0, "text/plain");
    if (st == SPIM_OK) st = spim_buf_reserve(&resp->payload, n);
    if (st != SPIM_OK) return st;
    memset(resp->payload.data, 'x', n);
    resp->payload.len = n;
    resp->payload.data[n] = 0;
    return SPIM_OK;
}

static spim_status hello(const spim_invocation *inv, spim_response *resp, void *user)
{
    cJSON *event = cJSON_ParseWithLength(inv->payload, inv->payload_len);
    const cJSON *fail = cJSON_GetObjectItemCaseSensitive(event, "fail");
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(event, "size");
    const cJSON *log = cJSON_GetObjectItemCaseSensitive(event, "log");
    const cJSON *sleep_ms = cJSON_GetObjectItemCaseSensitive(event, "sleep_ms");
    spim_status st;
    (void)user;
    if (cJSON_IsNumber(sleep_ms) && sleep_ms->valuedouble > 0 && sleep_ms->valuedouble <= 10000) {
        struct timespec ts = {0, 0};
        ts.tv_sec = (time_t)(sleep_ms->valuedouble / 1000);
        ts.tv_nsec = (long)((long)sleep_ms->valuedouble % 1000) * 1000000L;
        nanosleep(&ts, NULL);
    }
    if (cJSON_IsString(log))
        spim_log_fields(SPIM_LOG_INFO, "hello", SPIM_LOG_STR("text", log->valuestring),
                        SPIM_LOG_END);
    if (cJSON_IsString(fail)) {
        spim_response_fail(resp, "HelloError", "%s", fail->valuestring);
        st = SPIM_ERR_INVALID;
    } else if (cJSON_IsNumber(size) && size->valuedouble >= 0 &&
               size->valuedouble <= HELLO_SIZE_MAX) {
        st = answer_bytes(resp, (size_t)size->valuedouble);
    } else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(event, "trace"))) {
        st = describe_invocation(inv, resp);
    } else {
        st = spim_response_ok(resp, inv->payload, inv->payload_len, NULL);
    }
    cJSON_Delete(event);
    return st;
}

int main(int argc, char **argv)
{
    return spim_lambda_main(argc, argv, hello_init, hello, NULL);
}
